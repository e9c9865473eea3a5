//! The composed filter the gateway gets matches what the client shows.

use flowtape_core::event::{Kind, Tag, Tags};
use flowtape_core::filter::{Presets, NOTABLE_DEFAULT};
use proptest::prelude::*;

use super::*;
use crate::app::testing::event;

const TICKERS: [&str; 5] = ["AAPL", "NVDA", "SPY", "BULL", "OR"];
const CONTRACTS: [&str; 3] = [
    "AAPL241227C00190000",
    "NVDA250117P00150000",
    "SPY241220C00590000",
];
const EXPRESSIONS: [&str; 8] = [
    "",
    "AAPL",
    "sweep or block",
    "notable -SPY",
    "(sym:AAPL or sym:NVDA) premium>=100k",
    "-NVDA calls",
    "puts or golden",
    "calls puts",
];

fn notable() -> Filter {
    Filter::parse("notable").unwrap_or_default()
}

fn scope(view: View) -> Scope {
    Scope {
        view,
        notable: notable(),
        ..Scope::everything()
    }
}

fn wire(s: &Scope) -> String {
    s.wire_filter().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn each_part_composes_as_a_conjunct() {
    assert_eq!(wire(&Scope::everything()), "", "nothing to constrain");
    let notable_canonical = notable().canonical();
    assert_eq!(wire(&scope(View::Notable)), notable_canonical);
    let mut s = scope(View::All);
    s.watch = Some(["NVDA".to_string(), "AAPL".to_string()].into());
    s.toggles.right = Some(Right::Call);
    s.toggles.sweeps = true;
    assert_eq!(wire(&s), "AAPL NVDA calls sweep");
    s.view = View::Notable;
    s.filter = Filter::parse("premium>=1m or golden").unwrap_or_default();
    s.focus.ticker = Some("NVDA".into());
    let w = wire(&s);
    assert!(w.contains(&format!("({notable_canonical})")), "{w}");
    assert!(w.contains("(golden or premium>=1m)"), "{w}");
    // A ticker spelled like a keyword stays a ticker.
    s.watch = Some(["BULL".to_string(), "OR".to_string()].into());
    let w = wire(&s);
    let f = Filter::parse(&w).unwrap_or_else(|e| panic!("{w}: {e}"));
    let mut bull = event("BULL", 0);
    bull.kind = Kind::Sweep;
    assert!(!f.matches(&bull), "BULL is not NVDA: {w}");
}

#[test]
fn an_empty_watchlist_shows_nothing_on_both_sides() {
    let mut s = scope(View::All);
    s.watch = Some(BTreeSet::new());
    let f = Filter::parse(&wire(&s)).unwrap_or_else(|e| panic!("{e}"));
    for sym in TICKERS {
        let e = event(sym, 0);
        assert!(!s.matches(&e) && !f.matches(&e));
    }
}

#[test]
fn a_redefined_notable_is_sent_expanded() {
    let mut presets = Presets::builtin().clone();
    presets
        .define("notable", "premium>=500k")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut s = scope(View::Notable);
    s.notable = Filter::parse_with("notable", &presets).unwrap_or_default();
    assert_eq!(wire(&s), "premium>=500k");
    assert_ne!(NOTABLE_DEFAULT, "premium>=500k");
}

prop_compose! {
    fn any_event()(
        sym in 0..TICKERS.len(),
        occ in 0..CONTRACTS.len(),
        put in any::<bool>(),
        kind in 0..4usize,
        tags in any::<[bool; 4]>(),
        premium in prop_oneof![Just(25_000.0), 0.0..2_000_000.0f64],
    ) -> FlowEvent {
        let mut e = event(TICKERS[sym], 0);
        e.occ = CONTRACTS[occ].to_string();
        e.right = if put { Right::Put } else { Right::Call };
        e.kind = [Kind::Sweep, Kind::Block, Kind::Split, Kind::Single][kind];
        e.tags = Tag::ALL
            .iter()
            .zip(tags)
            .filter(|(_, on)| *on)
            .fold(Tags::EMPTY, |t, (tag, _)| t.with(*tag));
        e.premium = premium;
        e
    }
}

prop_compose! {
    fn any_scope()(
        notable_view in any::<bool>(),
        expr in 0..EXPRESSIONS.len(),
        watch in proptest::option::of(proptest::collection::btree_set(0..TICKERS.len(), 0..4)),
        right in proptest::option::of(any::<bool>()),
        sweeps in any::<bool>(),
        unusual in any::<bool>(),
        ticker in proptest::option::of(0..TICKERS.len()),
        contract in proptest::option::of(0..CONTRACTS.len()),
    ) -> Scope {
        let text = EXPRESSIONS[expr];
        Scope {
            view: if notable_view { View::Notable } else { View::All },
            notable: notable(),
            filter_text: text.to_string(),
            filter: Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")),
            toggles: Toggles {
                right: right.map(|put| if put { Right::Put } else { Right::Call }),
                sweeps,
                unusual,
            },
            watch: watch.map(|w| w.into_iter().map(|i| TICKERS[i].to_string()).collect()),
            focus: Focus {
                ticker: ticker.map(|i| TICKERS[i].to_string()),
                contract: contract.map(|i| CONTRACTS[i].to_string()),
            },
        }
    }
}

proptest! {
    #[test]
    fn the_wire_filter_matches_what_the_scope_matches(
        s in any_scope(),
        events in proptest::collection::vec(any_event(), 40),
    ) {
        let text = s.wire_filter().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let f = Filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        for e in &events {
            prop_assert_eq!(f.matches(e), s.matches(e), "{} on {:?}", text, e);
        }
    }
}
