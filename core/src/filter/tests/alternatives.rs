//! `or` and parentheses: what they mean, what errors say, the canonical
//! form, the ticker index, and properties over random filters and events.

use proptest::prelude::*;

use super::{aapl, canonical, filter, hits, term};
use crate::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use crate::filter::{Filter, FilterErrorKind as E, MAX_DEPTH};
use crate::occ::Right;

#[test]
fn or_matches_either_side() {
    assert_eq!(hits("block or unusual"), ["AAPL", "TSLA"]);
    assert_eq!(hits("golden or premium>=2m"), ["TSLA", "spy", "BULL"]);
    assert_eq!(
        hits("sweep or block or unusual or premium>=25k"),
        ["AAPL", "TSLA", "spy", "BULL"]
    );
    assert_eq!(hits("sweep OR block"), hits("sweep Or block"));
    assert_eq!(hits("QQQ or -AAPL"), ["TSLA", "spy", "BULL"]);
}

#[test]
fn side_by_side_binds_tighter_than_or() {
    // (AAPL sweep) or TSLA.
    assert_eq!(hits("AAPL sweep or TSLA"), ["AAPL", "TSLA"]);
    assert_eq!(hits("AAPL (sweep or TSLA)"), ["AAPL"]);
    // calls or (puts block).
    assert_eq!(hits("calls or puts block"), ["AAPL", "TSLA", "spy"]);
    assert_eq!(hits("(calls or puts) block"), ["TSLA"]);
    assert_eq!(hits("(sweep or block) side:ask"), ["AAPL"]);
    assert_eq!(hits("(sweep)or(block)premium>=1m"), ["AAPL", "TSLA"]);
    assert_eq!(hits("((sweep))"), hits("sweep"));
}

#[test]
fn parentheses_keep_a_category_from_oring_across_them() {
    // Side by side, tickers OR; in separate groups, both must hold.
    assert_eq!(hits("AAPL TSLA"), ["AAPL", "TSLA"]);
    assert_eq!(hits("(AAPL) (TSLA)"), Vec::<String>::new());
    assert_eq!(hits("AAPL (TSLA)"), Vec::<String>::new());
    assert_eq!(hits("(sweep block) (block split)"), ["TSLA"]);
    // Categories that AND anyway are not changed by parentheses.
    assert_eq!(hits("(golden) (repeat)"), hits("golden repeat"));
}

#[test]
fn or_is_reserved_and_the_ticker_is_sym_or() {
    let or = FlowEvent {
        sym: "OR".into(),
        ..aapl()
    };
    assert!(filter("sym:OR").matches(&or));
    assert!(!filter("sym:OR").matches(&aapl()));
    assert!(!filter("-OR").matches(&or));
    assert_eq!(canonical("sym:or"), "sym:OR");
    assert_eq!(canonical("sym:OR or sweep"), "sweep or sym:OR");
    assert_eq!(
        Filter::parse("OR").err().map(|e| (e.kind, e.column)),
        Some((E::DanglingOr, 1))
    );
}

#[test]
fn errors_name_the_operator_or_parenthesis_and_its_column() {
    let deep = |n: usize| format!("{}sweep{}", "(".repeat(n), ")".repeat(n));
    let cases: Vec<(String, E, usize, &str)> = vec![
        ("sweep or".into(), E::DanglingOr, 7, "or"),
        ("or sweep".into(), E::DanglingOr, 1, "or"),
        ("sweep OR or block".into(), E::DanglingOr, 7, "OR"),
        ("(or sweep)".into(), E::DanglingOr, 2, "or"),
        ("AAPL (sweep or)".into(), E::DanglingOr, 13, "or"),
        ("sweep or )".into(), E::DanglingOr, 7, "or"),
        ("(sweep or block".into(), E::UnclosedParen, 1, "("),
        ("AAPL ((sweep) or block".into(), E::UnclosedParen, 6, "("),
        ("sweep)".into(), E::UnmatchedParen, 6, ")"),
        ("(sweep)) block".into(), E::UnmatchedParen, 8, ")"),
        (")".into(), E::UnmatchedParen, 1, ")"),
        ("()".into(), E::EmptyGroup, 1, "("),
        ("AAPL (  ) calls".into(), E::EmptyGroup, 6, "("),
        (deep(MAX_DEPTH + 1), E::TooDeep, MAX_DEPTH + 1, "("),
        (
            "(sweep or premum>=1k)".into(),
            E::UnknownField,
            11,
            "premum",
        ),
        ("-(AAPL)".into(), E::EmptyExclusion, 1, "-"),
    ];
    for (src, kind, column, token) in cases {
        let e = match Filter::parse(&src) {
            Ok(f) => panic!("{src:?} parsed as {:?}", f.canonical()),
            Err(e) => e,
        };
        assert_eq!(
            (e.kind, e.column, e.token.as_str()),
            (kind, column, token),
            "{src:?}: {e}"
        );
    }
    assert_eq!(canonical(&deep(MAX_DEPTH)), "sweep");
    // Far too deep is an error, not a stack overflow.
    let e = Filter::parse(&deep(100_000)).err();
    assert_eq!(e.map(|e| e.kind), Some(E::TooDeep));
}

#[test]
fn error_messages_for_or_and_parentheses() {
    let message = |src: &str| {
        Filter::parse(src)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        message("sweep or"),
        "`or` without a term on both sides at column 7; write a term on each side, as in \
         `sweep or block`"
    );
    assert_eq!(
        message("(sweep or block"),
        "unclosed `(` at column 1; close the group with `)`"
    );
    assert_eq!(
        message("sweep)"),
        "unmatched `)` at column 6; remove it, or open the group with `(`"
    );
    assert_eq!(
        message("()"),
        "empty group `(` at column 1; write terms inside, as in `(sweep or block)`"
    );
    assert_eq!(
        message(&"(".repeat(MAX_DEPTH + 1)),
        format!(
            "too deeply nested `(` at column {}; groups nest at most {MAX_DEPTH} deep",
            MAX_DEPTH + 1
        )
    );
}

#[test]
fn canonical_form_sorts_alternatives_and_flattens_groups() {
    let same: [&[&str]; 6] = [
        &[
            "sweep or block",
            "block or sweep",
            "BLOCK OR SWEEP",
            "(sweep) or (block)",
            "sweep or (block or sweep)",
            "sweep or block or sweep",
        ],
        &[
            "AAPL (sweep or block)",
            "(block or sweep) aapl",
            "(AAPL) (sweep or block)",
        ],
        &[
            "AAPL calls",
            "(AAPL calls)",
            "AAPL (calls)",
            "((aapl) calls)",
        ],
        &["(sweep or block) or golden", "golden or (block or (sweep))"],
        &[
            "",
            "sweep or calls puts",
            "(calls puts) or AAPL",
            "(calls puts)",
        ],
        &["(AAPL) (TSLA)", "(TSLA) (AAPL)"],
    ];
    for group in same {
        let forms: Vec<String> = group.iter().map(|s| canonical(s)).collect();
        assert!(
            forms.iter().all(|f| *f == forms[0]),
            "{group:?} → {forms:?}"
        );
    }
    assert_eq!(canonical("sweep or block"), "block or sweep");
    assert_eq!(canonical("block (sweep or AAPL)"), "block (AAPL or sweep)");
    assert_eq!(canonical("(TSLA) (AAPL)"), "AAPL (TSLA)");
    assert_eq!(
        canonical("premium>=1m (calls or golden) (puts or bull) or QQQ"),
        "QQQ or premium>=1m (bull or puts) (calls or golden)"
    );
    assert!(filter("sweep or calls puts").is_empty());
    assert!(!filter("sweep or block").is_empty());
}

#[test]
fn tickers_cover_every_alternative() {
    let tickers = |src: &str| -> Vec<String> {
        filter(src)
            .tickers()
            .iter()
            .map(|t| t.to_string())
            .collect()
    };
    assert_eq!(tickers("AAPL sweep or TSLA"), ["AAPL", "TSLA"]);
    assert_eq!(tickers("(AAPL or TSLA) calls"), ["AAPL", "TSLA"]);
    assert_eq!(tickers("AAPL (TSLA or sweep)"), ["AAPL"]);
    assert_eq!(tickers("(AAPL or TSLA) (sweep or QQQ)"), ["AAPL", "TSLA"]);
    // One alternative of any ticker makes the filter one of any ticker.
    assert!(tickers("AAPL or sweep").is_empty());
    assert!(tickers("AAPL sweep or -TSLA").is_empty());
    // An event of a listed ticker is checked in full when there are alternatives.
    let f = filter("AAPL sweep or TSLA block");
    let tsla_sweep = FlowEvent {
        kind: Kind::Sweep,
        ..super::tsla()
    };
    assert!(!f.matches_listed(&tsla_sweep));
    assert!(f.matches_listed(&aapl()));
}

/// A random event: every field a filter reads, from small sets of values.
fn event() -> impl Strategy<Value = FlowEvent> {
    let sym = prop::sample::select(vec!["AAPL", "TSLA", "spy", "BULL", "OR", "QQQ"]);
    let occ = prop::sample::select(vec!["AAPL241220C00190000", "TSLA261218P00300000"]);
    let expiry = prop::sample::select(vec!["2024-12-20", "2026-12-18"]);
    let right = prop::sample::select(vec![Right::Call, Right::Put]);
    let kind = prop::sample::select(Kind::ALL.to_vec());
    let side = prop::sample::select(vec![
        Side::AboveAsk,
        Side::Ask,
        Side::Mid,
        Side::Bid,
        Side::BelowBid,
        Side::Unknown,
    ]);
    let sentiment =
        prop::sample::select(vec![Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral]);
    let tags = prop::collection::vec(
        prop::sample::select(vec![Tag::Unusual, Tag::Golden, Tag::Opening, Tag::Repeat]),
        0..3,
    )
    .prop_map(|tags| tags.into_iter().fold(Tags::EMPTY, Tags::with));
    let numbers = (
        0u32..3_000_000,
        0u64..3000,
        0u32..500,
        prop::option::of(-20i32..20),
        prop::option::of(0u32..200),
        prop::option::of(0u64..5000),
        0u8..=100,
    );
    (
        (sym, occ, expiry, right, kind, side, sentiment, tags),
        numbers,
    )
        .prop_map(
            |((sym, occ, expiry, right, kind, side, sentiment, tags), numbers)| {
                let (premium, size, dte, otm, iv, oi, score) = numbers;
                FlowEvent {
                    sym: sym.into(),
                    occ: occ.into(),
                    expiry: expiry.into(),
                    right,
                    kind,
                    side,
                    sentiment,
                    tags,
                    premium: f64::from(premium),
                    size,
                    dte: dte as i32,
                    otm: otm.map(f64::from),
                    iv: iv.map(|p| f64::from(p) / 100.0),
                    oi,
                    score,
                    ..aapl()
                }
            },
        )
}

/// A random filter text: terms, contracts and presets side by side, `or`
/// and parenthesised groups, nested a few deep.
fn filter_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => term(),
        1 => prop::sample::select(vec![
            "occ:AAPL241220C00190000",
            "occ:o:tsla261218p00300000",
            "notable",
            "sym:OR",
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let clause = prop::collection::vec(
            prop_oneof![inner.clone(), inner.prop_map(|t| format!("({t})"))],
            1..4,
        )
        .prop_map(|items| items.join(" "));
        prop::collection::vec(clause, 1..4).prop_map(|clauses| clauses.join(" or "))
    })
}

fn parsed(src: &str) -> Result<Filter, TestCaseError> {
    Filter::parse(src).map_err(|e| TestCaseError::fail(format!("{src:?}: {e}")))
}

proptest! {
    #[test]
    fn or_matches_iff_either_side_matches(
        a in filter_text(),
        b in filter_text(),
        events in prop::collection::vec(event(), 1..16),
    ) {
        let (fa, fb) = (parsed(&a)?, parsed(&b)?);
        let either = parsed(&format!("{a} or {b}"))?;
        let both = parsed(&format!("({a}) ({b})"))?;
        for e in &events {
            prop_assert_eq!(either.matches(e), fa.matches(e) || fb.matches(e), "{} or {}", a, b);
            prop_assert_eq!(both.matches(e), fa.matches(e) && fb.matches(e), "({}) ({})", a, b);
        }
    }

    #[test]
    fn canonical_form_round_trips(
        src in filter_text(),
        events in prop::collection::vec(event(), 1..16),
    ) {
        let f = parsed(&src)?;
        let canon = f.canonical();
        let again = parsed(&canon)?;
        prop_assert_eq!(again.canonical(), canon.clone(), "{}", src);
        prop_assert_eq!(again.tickers(), f.tickers());
        for e in &events {
            prop_assert_eq!(again.matches(e), f.matches(e), "{} → {}", src, canon);
        }
    }

    #[test]
    fn tickers_are_a_sound_index(
        src in filter_text(),
        events in prop::collection::vec(event(), 1..16),
    ) {
        let f = parsed(&src)?;
        for e in &events {
            let listed = crate::filter::vocab::contains_sym(f.tickers(), &e.sym);
            if !f.tickers().is_empty() && f.matches(e) {
                prop_assert!(listed, "{} matched {} outside {:?}", src, e.sym, f.tickers());
            }
            if listed {
                prop_assert_eq!(f.matches_listed(e), f.matches(e), "{}", src);
            }
        }
    }
}
