//! Presets: `notable` and presets a caller defines.

use super::{bull_ticker, canonical, filter, hits};
use crate::event::{FlowEvent, Kind, Tag, Tags};
use crate::filter::{Filter, FilterErrorKind as E, PresetError, Presets, NOTABLE_DEFAULT};

#[test]
fn notable_is_its_default_expression_in_parentheses() {
    let notable = "golden or premium>=100k (block or sweep) or premium>=500k or unusual";
    assert_eq!(canonical(NOTABLE_DEFAULT), notable);
    assert_eq!(canonical("notable"), notable);
    assert_eq!(canonical("NOTABLE"), notable);
    assert_eq!(hits("notable"), hits(NOTABLE_DEFAULT));
    assert_eq!(canonical("AAPL notable"), format!("AAPL ({notable})"));
    assert_eq!(hits("calls notable"), ["AAPL", "spy"]);
    assert_eq!(hits("notable premium<30k"), Vec::<String>::new());
    assert_eq!(hits("notable or calls"), hits("notable"));
    assert!(!filter("notable").is_empty());
}

#[test]
fn notable_asks_100k_of_a_sweep_or_block_and_500k_of_anything_else() {
    let notable = filter("notable");
    let order = |kind, premium, tags| FlowEvent {
        kind,
        premium,
        tags,
        ..bull_ticker()
    };
    let cases = [
        (order(Kind::Sweep, 99_999.0, Tags::EMPTY), false),
        (order(Kind::Sweep, 100_000.0, Tags::EMPTY), true),
        (order(Kind::Block, 150_000.0, Tags::EMPTY), true),
        (order(Kind::Single, 499_999.0, Tags::EMPTY), false),
        (order(Kind::Split, 500_000.0, Tags::EMPTY), true),
        (
            order(Kind::Single, 2_000.0, Tags::EMPTY.with(Tag::Golden)),
            true,
        ),
        (
            order(Kind::Single, 2_000.0, Tags::EMPTY.with(Tag::Unusual)),
            true,
        ),
        (
            order(Kind::Sweep, 2_000.0, Tags::EMPTY.with(Tag::Repeat)),
            false,
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(
            notable.matches(&event),
            expected,
            "{:?} ${} {:?}",
            event.kind,
            event.premium,
            event.tags
        );
    }
}

#[test]
fn misspelt_presets_are_suggested() {
    let e = Filter::parse("AAPL notabel").err();
    assert_eq!(
        e.map(|e| (e.kind, e.column, e.suggestion)),
        Some((E::UnknownWord, 6, Some("notable".to_string())))
    );
}

#[test]
fn callers_can_redefine_and_add_presets() {
    let mut presets = Presets::builtin().clone();
    let parse = |src: &str, presets: &Presets| {
        Filter::parse_with(src, presets)
            .map(|f| f.canonical())
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
    };
    assert_eq!(presets.define("notable", "premium>=100k"), Ok(()));
    assert_eq!(parse("notable calls", &presets), "calls premium>=100k");
    // The built-in meaning is unchanged for everyone else.
    assert_eq!(canonical("notable"), canonical(NOTABLE_DEFAULT));
    // A preset may use those defined before it.
    assert_eq!(presets.define("bigcalls", "notable calls"), Ok(()));
    assert_eq!(
        presets.define("WhaleFlow", "premium>=1m or bigcalls"),
        Ok(())
    );
    assert_eq!(
        parse("whaleflow", &presets),
        "calls premium>=100k or premium>=1m"
    );
    for bad in ["whales", "opening", "premium", "big-calls", "sweep2me", ""] {
        assert_eq!(
            presets.define(bad, "calls"),
            Err(PresetError::BadName(bad.to_string())),
            "{bad}"
        );
    }
    let refused = presets.define("brokenone", "premum>=1k");
    assert!(
        matches!(&refused, Err(PresetError::Expression { name, error })
            if name == "brokenone" && error.kind == E::UnknownField),
        "{refused:?}"
    );
}
