//! Behaviour of the filter language as a user sees it: what matches, what
//! errors say, and which filters are the same.

mod alternatives;
mod contract;
mod presets;

use proptest::prelude::*;

use super::{Filter, FilterErrorKind as E};
use crate::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use crate::occ::Right;

/// An AAPL call sweep bought at the ask, unusual and opening.
fn aapl() -> FlowEvent {
    crate::event::sample_event()
}

/// A TSLA put block sold at the bid, with no OTM, IV or OI known.
fn tsla() -> FlowEvent {
    FlowEvent {
        sym: "TSLA".into(),
        occ: "TSLA261218P00300000".into(),
        expiry: "2026-12-18".into(),
        strike: 300.0,
        right: Right::Put,
        side: Side::BelowBid,
        size: 500,
        price: 50.0,
        premium: 2_500_000.0,
        kind: Kind::Block,
        legs: 1,
        otm: None,
        dte: 400,
        oi: None,
        vol: 500,
        iv: None,
        tags: Tags::EMPTY.with(Tag::Golden),
        sentiment: Sentiment::Bear,
        score: 91,
        ..aapl()
    }
}

/// Lower-case `spy`, a mid single with zero OI, golden and repeat.
fn spy() -> FlowEvent {
    FlowEvent {
        sym: "spy".into(),
        side: Side::Mid,
        kind: Kind::Single,
        sentiment: Sentiment::Neutral,
        oi: Some(0),
        otm: Some(-4.0),
        iv: Some(0.5),
        premium: 40_000.0,
        size: 20,
        score: 10,
        tags: Tags::EMPTY.with(Tag::Golden).with(Tag::Repeat),
        ..aapl()
    }
}

/// A ticker that is also a keyword, split above the ask.
fn bull_ticker() -> FlowEvent {
    FlowEvent {
        sym: "BULL".into(),
        side: Side::AboveAsk,
        kind: Kind::Split,
        tags: Tags::EMPTY,
        ..tsla()
    }
}

fn samples() -> [FlowEvent; 4] {
    [aapl(), tsla(), spy(), bull_ticker()]
}

fn filter(src: &str) -> Filter {
    Filter::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

/// Which of [`samples`] match, by ticker.
fn hits(src: &str) -> Vec<String> {
    let f = filter(src);
    samples()
        .into_iter()
        .filter(|e| f.matches(e))
        .map(|e| e.sym)
        .collect()
}

fn canonical(src: &str) -> String {
    filter(src).canonical()
}

#[test]
fn empty_filter_matches_everything() {
    for src in ["", "   ", "\t \n"] {
        let f = filter(src);
        assert!(f.is_empty());
        assert_eq!(f.canonical(), "");
        assert_eq!(hits(src), ["AAPL", "TSLA", "spy", "BULL"]);
    }
    assert!(Filter::default().is_empty());
    assert!(Filter::default().matches(&aapl()));
    assert_eq!(Filter::default().source(), "");
}

#[test]
fn tickers_or_together_ignoring_case() {
    assert_eq!(hits("AAPL"), ["AAPL"]);
    assert_eq!(hits("aapl TSLA"), ["AAPL", "TSLA"]);
    assert_eq!(hits("SPY"), ["spy"]);
    assert_eq!(hits("QQQ"), Vec::<String>::new());
    // Short words near keywords are still tickers.
    assert_eq!(
        filter("swep bul")
            .tickers()
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
        ["BUL", "SWEP"]
    );
    assert_eq!(
        filter("brk.b").tickers().first().map(|t| t.as_str()),
        Some("BRK.B")
    );
}

#[test]
fn exclusions_never_match_and_and_together() {
    assert_eq!(hits("-SPY"), ["AAPL", "TSLA", "BULL"]);
    assert_eq!(hits("-spy -aapl"), ["TSLA", "BULL"]);
    assert_eq!(hits("AAPL TSLA -AAPL"), ["TSLA"]);
    assert_eq!(hits("-sym:BULL"), ["AAPL", "TSLA", "spy"]);
}

#[test]
fn sym_prefix_reaches_tickers_that_are_keywords() {
    assert_eq!(hits("sym:BULL"), ["BULL"]);
    assert_eq!(hits("sym:bull AAPL"), ["AAPL", "BULL"]);
    // Without the prefix it is the sentiment.
    assert_eq!(hits("bull"), ["AAPL"]);
}

#[test]
fn keywords_or_within_a_category_and_across_categories() {
    assert_eq!(hits("calls"), ["AAPL", "spy"]);
    assert_eq!(hits("PUTS"), ["TSLA", "BULL"]);
    assert_eq!(hits("put"), hits("puts"));
    assert_eq!(hits("calls puts"), ["AAPL", "TSLA", "spy", "BULL"]);
    assert!(filter("calls puts").is_empty());
    assert_eq!(hits("sweep"), ["AAPL"]);
    assert_eq!(hits("sweep block"), ["AAPL", "TSLA"]);
    assert_eq!(hits("split single"), ["spy", "BULL"]);
    assert_eq!(hits("bull bear"), ["AAPL", "TSLA", "BULL"]);
    assert_eq!(hits("neutral"), ["spy"]);
    // AND across categories.
    assert_eq!(hits("calls block"), Vec::<String>::new());
    assert_eq!(hits("puts block bear"), ["TSLA"]);
    assert_eq!(hits("SWEEP Calls aapl"), ["AAPL"]);
}

#[test]
fn tags_and_together() {
    assert_eq!(hits("golden"), ["TSLA", "spy"]);
    assert_eq!(hits("unusual"), ["AAPL"]);
    assert_eq!(hits("opening unusual"), ["AAPL"]);
    assert_eq!(hits("golden repeat"), ["spy"]);
    assert_eq!(hits("golden unusual"), Vec::<String>::new());
}

#[test]
fn sides_or_together() {
    assert_eq!(hits("side:ask"), ["AAPL", "BULL"]);
    assert_eq!(hits("side:aa"), ["BULL"]);
    assert_eq!(hits("side:bid"), ["TSLA"]);
    assert_eq!(hits("side:BB"), ["TSLA"]);
    assert_eq!(hits("side:mid"), ["spy"]);
    assert_eq!(hits("side:mid side:bid"), ["TSLA", "spy"]);
    let bid = FlowEvent {
        side: Side::Bid,
        ..aapl()
    };
    assert!(filter("side:bid").matches(&bid));
    assert!(!filter("side:bb").matches(&bid));
    let unknown = FlowEvent {
        side: Side::Unknown,
        ..aapl()
    };
    assert!(!filter("side:ask side:mid side:bid").matches(&unknown));
}

#[test]
fn expiries_or_together() {
    assert_eq!(hits("exp:2026-12-18"), ["TSLA", "BULL"]);
    assert_eq!(
        hits("exp:2026-12-18 exp:2024-12-20"),
        ["AAPL", "TSLA", "spy", "BULL"]
    );
    assert_eq!(hits("exp:2025-01-17"), Vec::<String>::new());
}

#[test]
fn comparisons_on_every_field() {
    assert_eq!(hits("premium>=250k"), ["AAPL", "TSLA", "BULL"]);
    assert_eq!(hits("premium>2m"), ["TSLA", "BULL"]);
    assert_eq!(hits("premium<=258000"), ["AAPL", "spy"]);
    assert_eq!(hits("premium=258k"), ["AAPL"]);
    assert_eq!(hits("size>1.5k"), Vec::<String>::new());
    assert_eq!(hits("size>=1.2K"), ["AAPL"]);
    assert_eq!(hits("price=2.15"), ["AAPL", "spy"]);
    assert_eq!(hits("price>10"), ["TSLA", "BULL"]);
    assert_eq!(hits("strike<200"), ["AAPL", "spy"]);
    assert_eq!(hits("dte<=7"), ["AAPL", "spy"]);
    assert_eq!(hits("score>=90"), ["TSLA", "BULL"]);
    assert_eq!(hits("otm>0"), ["AAPL"]);
    assert_eq!(hits("otm<-3"), ["spy"]);
    assert_eq!(hits("voloi>2"), ["AAPL"]);
    assert_eq!(hits("voloi=3"), ["AAPL"]);
    // Ranges are two comparisons.
    assert_eq!(hits("premium>=50k premium<1m"), ["AAPL"]);
}

#[test]
fn iv_is_read_as_percent_above_three() {
    // AAPL's iv is 0.31, spy's 0.5.
    assert_eq!(hits("iv>30"), ["AAPL", "spy"]);
    assert_eq!(hits("iv>0.3"), ["AAPL", "spy"]);
    assert_eq!(hits("iv>=50"), ["spy"]);
    assert_eq!(hits("iv>=50%"), ["spy"]);
    assert_eq!(hits("iv<0.4"), ["AAPL"]);
    // 3 is a fraction (300%), 3.5 is a percent.
    assert_eq!(hits("iv<3"), ["AAPL", "spy"]);
    assert_eq!(hits("iv<3.5"), Vec::<String>::new());
    assert_eq!(canonical("iv>0.35"), canonical("iv>35"));
}

#[test]
fn comparisons_on_unknown_values_never_match() {
    // TSLA and BULL have no otm, iv or oi; spy has oi 0, so no vol/oi.
    assert_eq!(hits("otm>-1000"), ["AAPL", "spy"]);
    assert_eq!(hits("otm<1000"), ["AAPL", "spy"]);
    assert_eq!(hits("iv>=0"), ["AAPL", "spy"]);
    assert_eq!(hits("voloi>=0"), ["AAPL"]);
    assert_eq!(hits("voloi<1000000"), ["AAPL"]);
    let nan = FlowEvent {
        premium: f64::NAN,
        ..aapl()
    };
    assert!(!filter("premium>=0").matches(&nan));
    assert!(!filter("premium<0").matches(&nan));
}

#[test]
fn every_term_type_at_once() {
    let src = "aapl TSLA -SPY calls sweep bull unusual side:ask exp:2024-12-20 premium>=250k size>1k price<3 \
               strike=190 dte<7 score>70 otm>2 iv>30 voloi>=3";
    assert_eq!(hits(src), ["AAPL"]);
    // Swapping any one term for one AAPL fails loses the match.
    let swaps = [
        ("aapl TSLA", "TSLA"),
        ("-SPY", "-AAPL"),
        ("calls", "puts"),
        ("sweep", "block"),
        ("bull", "bear"),
        ("unusual", "golden"),
        ("side:ask", "side:bid"),
        ("exp:2024-12-20", "exp:2026-12-18"),
        ("premium>=250k", "premium>=300k"),
        ("size>1k", "size>1.5k"),
        ("price<3", "price<2"),
        ("strike=190", "strike=195"),
        ("dte<7", "dte<3"),
        ("score>70", "score>80"),
        ("otm>2", "otm>3"),
        ("iv>30", "iv>35"),
        ("voloi>=3", "voloi>3"),
    ];
    for (term, other) in swaps {
        assert_eq!(
            hits(&src.replace(term, other)),
            Vec::<String>::new(),
            "{other}"
        );
    }
}

#[test]
fn errors_name_the_token_column_and_suggestion() {
    let cases: &[(&str, E, usize, &str, Option<&str>)] = &[
        ("premum>=1k", E::UnknownField, 1, "premum", Some("premium")),
        (
            "AAPL premum>=1k",
            E::UnknownField,
            6,
            "premum",
            Some("premium"),
        ),
        ("prem>1k", E::UnknownField, 1, "prem", Some("premium")),
        ("volume>1k", E::UnknownField, 1, "volume", None),
        (">=5", E::MissingField, 1, ">=5", None),
        ("premium=>5", E::BadOperator, 8, "=>", Some(">=")),
        ("size!=5", E::BadOperator, 5, "!=", None),
        ("premium>=", E::MissingValue, 1, "premium>=", None),
        ("calls side:", E::MissingValue, 7, "side:", None),
        (
            "premium >= 250k",
            E::MissingOperator,
            1,
            "premium",
            Some("premium>=250k"),
        ),
        (
            "premium>= 250k",
            E::MissingValue,
            1,
            "premium>=",
            Some("premium>=250k"),
        ),
        ("premium>=abc", E::BadNumber, 10, "abc", None),
        ("size>$1,500", E::BadNumber, 6, "$1,500", Some("1500")),
        ("premium>=5x", E::BadSuffix, 10, "5x", None),
        ("premium>=2mm", E::BadSuffix, 10, "2mm", Some("2m")),
        ("size>5%", E::BadSuffix, 6, "5%", None),
        ("side:up", E::BadSide, 6, "up", None),
        ("side:asks", E::BadSide, 6, "asks", Some("ask")),
        ("exp:2026-02-30", E::BadDate, 5, "2026-02-30", None),
        (
            "exp:20261218",
            E::BadDate,
            5,
            "20261218",
            Some("2026-12-18"),
        ),
        (
            "exp:12/18/2026",
            E::BadDate,
            5,
            "12/18/2026",
            Some("2026-12-18"),
        ),
        ("AAPL -", E::EmptyExclusion, 6, "-", None),
        ("- SPY", E::EmptyExclusion, 1, "-", Some("-SPY")),
        ("AAP$L", E::BadTicker, 1, "AAP$L", None),
        ("TOOLONGX", E::BadTicker, 1, "TOOLONGX", None),
        ("$aapl", E::BadTicker, 1, "$aapl", Some("AAPL")),
        ("AAPL,TSLA", E::BadTicker, 1, "AAPL,TSLA", Some("AAPL TSLA")),
        ("sym:1X", E::BadTicker, 5, "1X", None),
        ("-sym:", E::MissingValue, 1, "-sym:", None),
        ("sid:ask", E::UnknownPrefix, 1, "sid:", Some("side:")),
        ("ticker:AAPL", E::UnknownPrefix, 1, "ticker:", Some("sym:")),
        ("kind:sweep", E::UnknownPrefix, 1, "kind:", Some("sweep")),
        ("sweeps", E::UnknownWord, 1, "sweeps", Some("sweep")),
        ("AAPL unusal", E::UnknownWord, 6, "unusal", Some("unusual")),
        ("golen", E::UnknownWord, 1, "golen", Some("golden")),
        ("openning", E::UnknownWord, 1, "openning", Some("opening")),
        ("bullish", E::UnknownWord, 1, "bullish", Some("bull")),
        (
            "calloptions",
            E::UnknownWord,
            1,
            "calloptions",
            Some("calls"),
        ),
        ("premium", E::MissingOperator, 1, "premium", None),
        (
            "premium:250k",
            E::MissingOperator,
            1,
            "premium",
            Some("premium>=250k"),
        ),
        (
            "side=ask",
            E::PrefixWithOperator,
            1,
            "side",
            Some("side:ask"),
        ),
        ("exp>2026-12-18", E::PrefixWithOperator, 1, "exp", None),
        ("-bull", E::NotExcludable, 2, "bull", Some("-sym:BULL")),
        ("-premium>5", E::NotExcludable, 2, "premium>5", None),
        ("-1X", E::BadTicker, 2, "1X", None),
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
}

#[test]
fn error_messages_are_one_readable_line() {
    let message = |src: &str| {
        Filter::parse(src)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        message("AAPL premum>=1k"),
        "unknown field `premum` at column 6; did you mean `premium`?"
    );
    assert_eq!(
        message("swep sweeps"),
        "unknown word `sweeps` at column 6; did you mean `sweep`?"
    );
    assert_eq!(
        message("premium>=abc"),
        "bad number `abc` at column 10; write a number such as 250000, 250k, 1.5m or 0.35"
    );
    assert_eq!(
        message("side:up"),
        "unknown side `up` at column 6; sides are ask bid mid aa bb"
    );
    assert_eq!(
        message("-"),
        "empty exclusion `-` at column 1; write -TICKER"
    );
    assert_eq!(
        message("-bull"),
        "cannot exclude `bull` (only tickers) at column 2; did you mean `-sym:BULL`?"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // A no-break space and an ideographic space are whitespace of 2 and 3 bytes.
    let e = Filter::parse("AAPL\u{a0}TSLA\u{3000}premum>=1k").err();
    assert_eq!(
        e.map(|e| (e.column, e.token)),
        Some((11, "premum".to_string()))
    );
    let e = Filter::parse("AAPL ÄPPLE").err();
    assert_eq!(e.map(|e| (e.kind, e.column)), Some((E::BadTicker, 6)));
}

#[test]
fn canonical_form_ignores_order_case_and_number_spelling() {
    let same = [
        [
            "AAPL calls premium>=250k",
            "premium>=250000 CALLS aapl",
            "call AAPL Premium>=250.0K",
        ],
        [
            "sweep block -spy",
            "-SPY BLOCK sweep sweep",
            "-spy -SPY block sweep",
        ],
        ["side:ask", "side:ASK side:aa", "side:aa side:ask"],
        ["iv>50 size<1.5k", "size<1500 iv>0.5", "iv>50% size<1500.00"],
        [
            "exp:2026-12-18 golden",
            "GOLDEN exp:2026-12-18 exp:2026-12-18",
            "golden golden exp:2026-12-18",
        ],
        ["", "calls puts", "sweep block split single"],
        ["otm>0", "otm>-0", "OTM>0.0%"],
    ];
    for group in same {
        let forms: Vec<String> = group.iter().map(|s| canonical(s)).collect();
        assert!(
            forms.iter().all(|f| *f == forms[0]),
            "{group:?} → {forms:?}"
        );
    }
    assert_ne!(canonical("premium>250k"), canonical("premium>=250k"));
    assert_ne!(canonical("AAPL"), canonical("-AAPL"));
    assert_ne!(canonical("bull"), canonical("sym:BULL"));
}

#[test]
fn canonical_text_is_readable_and_ordered() {
    assert_eq!(
        canonical("premium>=2500000 iv<40 side:bb side:mid exp:2026-12-18 golden bull sweep puts -qqq sym:bull aapl"),
        "AAPL sym:BULL -QQQ puts sweep bull golden side:mid side:bb exp:2026-12-18 premium>=2.5m iv<40%"
    );
    assert_eq!(canonical("sym:SWEEPS sym:tsla"), "sym:SWEEPS TSLA");
    let f = filter("  aapl   CALLS ");
    assert_eq!(f.source(), "  aapl   CALLS ");
    assert_eq!(f.canonical(), "AAPL calls");
}

#[test]
fn tickers_lists_included_tickers_only() {
    let f = filter("tsla AAPL sym:bull -SPY aapl calls");
    let tickers: Vec<&str> = f.tickers().iter().map(|t| t.as_str()).collect();
    assert_eq!(tickers, ["AAPL", "BULL", "TSLA"]);
    assert!(filter("-SPY calls").tickers().is_empty());
}

#[test]
fn filter_is_a_plain_shareable_value() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync + Default + std::str::FromStr>() {}
    assert_traits::<Filter>();
    let f: Result<Filter, _> = "AAPL sweep".parse();
    assert_eq!(f.map(|f| f.canonical()), Ok("AAPL sweep".to_string()));
}

/// A term of every kind, in random case, with random numbers.
fn term() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "AAPL",
        "tsla",
        "Spy",
        "BULL",
        "swep",
        "-SPY",
        "-aapl",
        "-sym:bull",
        "sym:BULL",
        "sym:sweeps",
        "calls",
        "puts",
        "call",
        "sweep",
        "block",
        "split",
        "single",
        "golden",
        "unusual",
        "opening",
        "repeat",
        "bull",
        "bear",
        "neutral",
        "side:ask",
        "side:bid",
        "side:mid",
        "side:aa",
        "side:bb",
        "exp:2024-12-20",
        "exp:2026-12-18",
    ])
    .prop_map(String::from);
    let field = prop::sample::select(vec![
        "premium", "size", "price", "strike", "dte", "score", "otm", "iv", "voloi",
    ]);
    let op = prop::sample::select(vec![">", ">=", "<", "<=", "="]);
    let number = (
        any::<bool>(),
        0u32..3_000_000,
        0u32..4,
        prop::sample::select(vec!["", "k", "m", "K"]),
    )
        .prop_map(|(neg, n, decimals, suffix)| {
            let sign = if neg { "-" } else { "" };
            let digits = n.to_string();
            let cut = digits.len().saturating_sub(decimals as usize);
            let (int, frac) = digits.split_at(cut);
            let frac = if frac.is_empty() {
                String::new()
            } else {
                format!(".{frac}")
            };
            format!("{sign}{int}{frac}{suffix}")
        });
    let comparison = (field, op, number).prop_map(|(f, o, n)| format!("{f}{o}{n}"));
    let term = prop_oneof![word, comparison];
    (term, any::<bool>()).prop_map(|(t, upper)| if upper { t.to_uppercase() } else { t })
}

fn assert_round_trip(f: &Filter) -> Result<(), TestCaseError> {
    let canon = f.canonical();
    let again =
        Filter::parse(&canon).map_err(|e| TestCaseError::fail(format!("{canon:?}: {e}")))?;
    prop_assert_eq!(again.canonical(), canon.clone());
    for e in samples() {
        prop_assert_eq!(again.matches(&e), f.matches(&e), "{} on {}", canon, e.sym);
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        if let Ok(f) = Filter::parse(&src) {
            assert_round_trip(&f)?;
        }
    }

    #[test]
    fn filter_like_text_never_panics(src in "[-a-zA-Z0-9:<>=!.,$%_ ]{0,40}") {
        match Filter::parse(&src) {
            Ok(f) => assert_round_trip(&f)?,
            Err(e) => prop_assert!(e.column >= 1 && e.column <= src.chars().count()),
        }
    }

    #[test]
    fn canonical_form_is_stable_and_order_free(
        (terms, shuffled) in prop::collection::vec(term(), 0..8)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        let f = Filter::parse(&terms.join(" ")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let g = Filter::parse(&shuffled.join("  ")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(f.canonical(), g.canonical());
        assert_round_trip(&f)?;
    }
}
