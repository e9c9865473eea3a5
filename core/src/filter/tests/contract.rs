//! `occ:` terms: one exact option contract, in the forms traders paste.

use super::{canonical, filter, hits};
use crate::filter::{Filter, FilterErrorKind as E};

/// AAPL's (and spy's) contract, and TSLA's (and BULL's).
const AAPL_C190: &str = "AAPL241220C00190000";
const TSLA_P300: &str = "TSLA261218P00300000";

#[test]
fn every_accepted_form_selects_the_same_contract() {
    for form in [
        "occ:AAPL241220C00190000",
        "occ:aapl241220c00190000",
        "OCC:Aapl241220C00190000",
        "occ:O:AAPL241220C00190000",
        "occ:o:aapl241220c00190000",
    ] {
        assert_eq!(hits(form), ["AAPL", "spy"], "{form}");
        assert_eq!(canonical(form), format!("occ:{AAPL_C190}"), "{form}");
    }
    assert_eq!(hits(&format!("occ:{TSLA_P300}")), ["TSLA", "BULL"]);
    // A six-character root: the padded form has no spaces and is the same text.
    assert_eq!(
        canonical("occ:GOOGL1261218C00150000"),
        "occ:GOOGL1261218C00150000"
    );
}

#[test]
fn contracts_or_together_and_and_with_other_categories() {
    assert_eq!(
        hits(&format!("occ:{AAPL_C190} occ:{TSLA_P300}")),
        ["AAPL", "TSLA", "spy", "BULL"]
    );
    assert_eq!(hits(&format!("AAPL occ:{AAPL_C190}")), ["AAPL"]);
    assert_eq!(hits(&format!("AAPL occ:{TSLA_P300}")), Vec::<String>::new());
    assert_eq!(hits(&format!("occ:{TSLA_P300} block")), ["TSLA"]);
    assert_eq!(
        canonical(&format!(
            "calls occ:{TSLA_P300} AAPL occ:{AAPL_C190} occ:{AAPL_C190}"
        )),
        format!("AAPL occ:{AAPL_C190} occ:{TSLA_P300} calls")
    );
    // A contract is no ticker: it does not index the filter by ticker.
    assert!(filter(&format!("occ:{AAPL_C190}")).tickers().is_empty());
    assert!(!filter(&format!("occ:{AAPL_C190}")).is_empty());
}

#[test]
fn errors_say_what_an_option_symbol_is() {
    let cases: &[(&str, E, usize, &str, Option<&str>)] = &[
        (
            "occ:NVDA261318C00200000",
            E::BadContract,
            5,
            "NVDA261318C00200000",
            None,
        ),
        ("AAPL occ:hello", E::BadContract, 10, "hello", None),
        (
            "occ:NVDA261218X00200000",
            E::BadContract,
            5,
            "NVDA261218X00200000",
            None,
        ),
        (
            "occ:TOOLONGX261218C00200000",
            E::BadContract,
            5,
            "TOOLONGX261218C00200000",
            None,
        ),
        // A plain strike, as some platforms print it.
        (
            "occ:NVDA261218C200",
            E::BadContract,
            5,
            "NVDA261218C200",
            Some("NVDA261218C00200000"),
        ),
        (
            "occ:.nvda261218p187.5",
            E::BadContract,
            5,
            ".nvda261218p187.5",
            Some("NVDA261218P00187500"),
        ),
        // The padded form pasted with its spaces.
        (
            "occ:NVDA  261218C00200000",
            E::BadContract,
            5,
            "NVDA",
            Some("occ:NVDA261218C00200000"),
        ),
        ("occ:", E::MissingValue, 1, "occ:", None),
        (
            "occ: NVDA261218C00200000",
            E::MissingValue,
            1,
            "occ:",
            Some("occ:NVDA261218C00200000"),
        ),
        (
            "occ=NVDA261218C00200000",
            E::PrefixWithOperator,
            1,
            "occ",
            Some("occ:NVDA261218C00200000"),
        ),
        (
            "-occ:NVDA261218C00200000",
            E::NotExcludable,
            2,
            "occ:NVDA261218C00200000",
            None,
        ),
        (
            "oc:NVDA261218C00200000",
            E::UnknownPrefix,
            1,
            "oc:",
            Some("occ:"),
        ),
    ];
    for &(src, kind, column, token, suggestion) in cases {
        let e = match Filter::parse(src) {
            Ok(f) => panic!("{src:?} parsed as {:?}", f.canonical()),
            Err(e) => e,
        };
        assert_eq!(
            (e.kind, e.column, e.token.as_str(), e.suggestion.as_deref()),
            (kind, column, token, suggestion),
            "{src:?}: {e}"
        );
    }
    let message = Filter::parse("occ:NVDA261318C00200000")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "bad option symbol `NVDA261318C00200000` at column 5; expected an OSI option symbol \
             like NVDA261218C00200000 (root, YYMMDD, C/P, strike×1000 in 8 digits)"
        )
    );
}
