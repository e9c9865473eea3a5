//! Behaviour of the whole detector on crafted prints.

use crate::conditions::{
    ConditionTable, CANCELED, INTERMARKET_SWEEP, LATE_OUT_OF_SEQUENCE, MULTI_LEG_AUTO,
};
use crate::cursor::Cursor;
use crate::event::{FlowEvent, Kind, Print, Sentiment, Side, Tag};
use crate::occ::{Contract, Right};

use super::testutil::{at_ms, contract, iso, print, trade_date};
use super::{Detected, DetectionConfig, Detector};

const WINDOW_MS: i64 = 20;

fn detector() -> Detector {
    Detector::new(DetectionConfig::default(), ConditionTable::default())
}

fn id(n: u64) -> Cursor {
    Cursor::new(1_000, n)
}

fn aapl_call() -> Contract {
    contract("AAPL", Right::Call, 190.0)
}

/// Pushes `prints` with ids 1, 2, … and returns what came out.
fn push_all(d: &mut Detector, prints: Vec<Print>) -> Vec<Detected> {
    let mut out = Vec::new();
    for (n, p) in (1..).zip(prints) {
        d.push(id(n), p, &mut out);
    }
    out
}

fn flushed(d: &mut Detector) -> Vec<Detected> {
    let mut out = Vec::new();
    d.flush_all(&mut out);
    out
}

/// The events of `detected`, panicking on a dropped result.
fn events(detected: &[Detected]) -> Vec<&FlowEvent> {
    detected
        .iter()
        .map(|d| {
            d.event
                .as_ref()
                .unwrap_or_else(|| panic!("dropped: {:?}", d.entries))
        })
        .collect()
}

/// The only event in `detected`.
fn only(detected: &[Detected]) -> &FlowEvent {
    assert_eq!(detected.len(), 1, "{detected:#?}");
    events(detected)[0]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn a_four_exchange_iso_sweep_is_one_event() {
    let c = aapl_call();
    let mut d = detector();
    let first = Print {
        bid: Some(2.00),
        ask: Some(2.15),
        ..iso(c, 0, 9, 2.10, 100)
    };
    let held = push_all(
        &mut d,
        vec![
            first,
            iso(c, 1, 4, 2.12, 200),
            iso(c, 2, 1, 2.15, 150),
            iso(c, 3, 7, 2.15, 50),
        ],
    );
    assert!(held.is_empty(), "legs are held while the window is open");
    assert_eq!(d.oldest_open(), Some(id(1)));
    assert_eq!(d.pending_ids().count(), 4);

    let mut out = Vec::new();
    d.flush_due(at_ms(WINDOW_MS), &mut out);
    assert!(out.is_empty(), "the window includes its last nanosecond");
    d.flush_due(at_ms(WINDOW_MS) + 1, &mut out);
    let e = only(&out);
    assert_eq!(out[0].entries, vec![id(1), id(2), id(3), id(4)]);
    assert_eq!(e.kind, Kind::Sweep);
    assert_eq!(e.size, 500);
    assert!(close(e.price, 2.128), "VWAP {}", e.price);
    assert!(close(e.premium, 106_400.0), "premium {}", e.premium);
    assert_eq!(e.legs, 4);
    assert_eq!(e.exchanges, vec![1, 4, 7, 9]);
    assert_eq!(
        (e.bid, e.ask),
        (Some(2.00), Some(2.15)),
        "the first leg's NBBO"
    );
    assert_eq!(
        e.side,
        Side::Ask,
        "VWAP 2.128 is 85% of the way from bid to ask"
    );
    assert_eq!(e.sentiment, Sentiment::Bull);
    assert_eq!(e.vol, 500);
    assert!(e.id.is_empty());
    assert_eq!(d.oldest_open(), None);
}

#[test]
fn iso_legs_on_one_exchange_are_a_split() {
    let c = aapl_call();
    let mut d = detector();
    push_all(
        &mut d,
        vec![
            iso(c, 0, 4, 2.10, 100),
            iso(c, 5, 4, 2.10, 100),
            iso(c, 9, 4, 2.11, 300),
        ],
    );
    let out = flushed(&mut d);
    let e = only(&out);
    assert_eq!(e.kind, Kind::Split);
    assert_eq!((e.size, e.legs), (500, 3));
    assert_eq!(e.exchanges, vec![4]);
    assert_eq!(out[0].entries, vec![id(1), id(2), id(3)]);
}

#[test]
fn interleaved_sweeps_on_two_contracts_stay_apart() {
    let call = aapl_call();
    let put = contract("SPY", Right::Put, 580.0);
    let mut d = detector();
    let held = push_all(
        &mut d,
        vec![
            iso(call, 0, 1, 2.10, 10),
            iso(put, 1, 3, 4.00, 20),
            iso(call, 2, 2, 2.10, 30),
            iso(put, 3, 5, 4.05, 40),
            iso(put, 4, 3, 4.05, 60),
        ],
    );
    assert!(held.is_empty());
    let out = flushed(&mut d);
    let ev = events(&out);
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[0].occ.as_str(), ev[0].size, ev[0].legs),
        ("AAPL260320C00190000", 40, 2)
    );
    assert_eq!(out[0].entries, vec![id(1), id(3)]);
    assert_eq!(
        (ev[1].occ.as_str(), ev[1].size, ev[1].legs),
        ("SPY260320P00580000", 120, 3)
    );
    assert_eq!(out[1].entries, vec![id(2), id(4), id(5)]);
    assert_eq!(ev[1].exchanges, vec![3, 5]);
    assert!(ev.iter().all(|e| e.kind == Kind::Sweep));
}

#[test]
fn iso_prints_farther_apart_than_the_window_are_separate_events() {
    let c = aapl_call();
    let mut d = detector();
    let out = push_all(
        &mut d,
        vec![iso(c, 0, 1, 2.10, 10), iso(c, WINDOW_MS + 1, 2, 2.10, 10)],
    );
    let e = only(&out);
    assert_eq!(
        out[0].entries,
        vec![id(1)],
        "the second print closed the first group"
    );
    assert_eq!(
        e.kind,
        Kind::Single,
        "a lone ISO print under the block thresholds"
    );
    assert_eq!(d.oldest_open(), Some(id(2)));
    let rest = flushed(&mut d);
    assert_eq!(rest[0].entries, vec![id(2)]);
    assert_eq!(only(&rest).kind, Kind::Single);
}

#[test]
fn an_out_of_order_leg_joins_and_becomes_the_first() {
    let c = aapl_call();
    let mut d = detector();
    let early = Print {
        bid: Some(1.90),
        ask: Some(2.00),
        ..iso(c, 0, 2, 2.00, 10)
    };
    push_all(&mut d, vec![iso(c, 8, 1, 2.10, 10), early]);
    let out = flushed(&mut d);
    let e = only(&out);
    assert_eq!(e.ts * 1_000_000, at_ms(0));
    assert_eq!((e.bid, e.ask), (Some(1.90), Some(2.00)));
    assert_eq!(
        out[0].entries,
        vec![id(1), id(2)],
        "entries keep push order"
    );
}

#[test]
fn blocks_by_size_or_premium_and_singles() {
    let c = aapl_call();
    let mut d = detector();
    let out = push_all(
        &mut d,
        vec![
            print(c, 0, 0.50, 1_000),
            print(c, 1, 60.00, 100),
            print(c, 2, 1.00, 10),
            iso(c, 100, 1, 60.00, 100),
        ],
    );
    let kinds: Vec<Kind> = events(&out).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![Kind::Block, Kind::Block, Kind::Single],
        "plain prints leave at once"
    );
    assert_eq!(
        only(&flushed(&mut d)).kind,
        Kind::Block,
        "a lone ISO print over the premium threshold"
    );
}

#[test]
fn canceled_and_impossible_prints_are_dropped_but_reported() {
    let c = aapl_call();
    let mut d = detector();
    let canceled = Print {
        conditions: vec![INTERMARKET_SWEEP, CANCELED],
        ..print(c, 0, 2.10, 500)
    };
    let out = push_all(
        &mut d,
        vec![canceled, print(c, 1, 2.10, 0), print(c, 2, f64::NAN, 5)],
    );
    let want: Vec<Detected> = (1..=3)
        .map(|n| Detected {
            event: None,
            entries: vec![id(n)],
        })
        .collect();
    assert_eq!(out, want);
    assert_eq!(d.oldest_open(), None, "nothing is held for them");
    let next = push_all(&mut d, vec![print(c, 3, 2.10, 7)]);
    assert_eq!(only(&next).vol, 7, "dropped prints are not volume");
}

#[test]
fn flush_due_closes_only_groups_past_their_window() {
    let (a, b) = (aapl_call(), contract("TSLA", Right::Put, 250.0));
    let mut d = detector();
    push_all(
        &mut d,
        vec![
            iso(a, 0, 1, 2.10, 10),
            iso(b, 15, 1, 3.00, 10),
            iso(b, 16, 2, 3.00, 10),
        ],
    );
    let mut out = Vec::new();
    d.flush_due(at_ms(21), &mut out);
    assert_eq!(only(&out).sym, "AAPL");
    assert_eq!(out[0].entries, vec![id(1)]);
    let mut pending: Vec<Cursor> = d.pending_ids().collect();
    pending.sort_unstable();
    assert_eq!(pending, vec![id(2), id(3)]);
    assert_eq!(d.oldest_open(), Some(id(2)));
    out.clear();
    d.flush_due(at_ms(36), &mut out);
    assert_eq!(only(&out).sym, "TSLA");
}

#[test]
fn the_same_prints_give_the_same_events() {
    let (a, b) = (aapl_call(), contract("SPY", Right::Put, 580.0));
    let prints = || {
        let mut ps = Vec::new();
        for i in 0..40i64 {
            let c = if i % 3 == 0 { b } else { a };
            let venue = u16::try_from(i % 5).unwrap_or(0);
            let p = if i % 4 == 0 {
                print(c, i * 7, 2.0 + i as f64 / 100.0, 10)
            } else {
                iso(c, i * 7, venue, 2.0, 25)
            };
            ps.push(Print {
                spot: Some(190.0),
                oi: Some(300),
                ..p
            });
        }
        ps
    };
    let run = || {
        let mut d = detector();
        let mut out = Vec::new();
        for (n, p) in (1..).zip(prints()) {
            let now = p.ts_ns;
            d.push(id(n), p, &mut out);
            d.flush_due(now, &mut out);
        }
        d.flush_all(&mut out);
        out
    };
    let first = run();
    assert_eq!(first, run());
    let mut covered: Vec<Cursor> = first
        .iter()
        .flat_map(|d| d.entries.iter().copied())
        .collect();
    covered.sort_unstable();
    assert_eq!(
        covered,
        (1..=40).map(id).collect::<Vec<_>>(),
        "every entry is covered exactly once"
    );
    assert!(events(&first).iter().any(|e| e.kind == Kind::Sweep));
}

#[test]
fn vol_includes_this_event_and_preloaded_volume() {
    let c = aapl_call();
    let mut d = detector();
    d.set_day_volume(c, trade_date(), 1_000);
    let out = push_all(&mut d, vec![print(c, 0, 2.10, 10), print(c, 1, 2.10, 20)]);
    let vols: Vec<u64> = events(&out).iter().map(|e| e.vol).collect();
    assert_eq!(vols, vec![1_010, 1_030]);
    let canceled = Print {
        conditions: vec![CANCELED],
        ..print(c, 3, 2.10, 99)
    };
    let mut out = Vec::new();
    d.push(id(8), canceled, &mut out);
    assert_eq!(
        d.day_volume(c, trade_date()),
        1_030,
        "a canceled print is not volume"
    );
    let mut out = Vec::new();
    d.push(id(9), print(c, 4, 2.10, 1), &mut out);
    assert_eq!(only(&out).vol, 1_031);
}

#[test]
fn unusual_and_opening_need_open_interest() {
    let c = aapl_call();
    // 300 contracts at $1.00 = $30k premium.
    let big = |oi: Option<u64>| Print {
        oi,
        ..print(c, 0, 1.00, 300)
    };
    let tags_of = |p: Print| {
        let out = push_all(&mut detector(), vec![p]);
        only(&out).tags
    };
    assert!(
        tags_of(big(None)).is_empty(),
        "no OI, no unusual or opening"
    );
    let t = tags_of(big(Some(200)));
    assert!(
        t.contains(Tag::Unusual) && t.contains(Tag::Opening),
        "{t:?}"
    );
    let t = tags_of(big(Some(5_000)));
    assert!(
        !t.contains(Tag::Unusual) && !t.contains(Tag::Opening),
        "{t:?}"
    );
    // Volume over OI but under the premium minimum.
    let small = Print {
        oi: Some(50),
        ..print(c, 0, 0.50, 300)
    };
    let t = tags_of(small);
    assert!(
        !t.contains(Tag::Unusual) && t.contains(Tag::Opening),
        "{t:?}"
    );
}

#[test]
fn golden_needs_a_million_dollar_otm_sweep_at_the_ask() {
    let call = aapl_call();
    // Two legs of 2,500 at $2.40 = $1.2M; spot 180 puts the 190 call 5.6% OTM.
    let order = |venues: [u16; 2], spot: f64, bid: f64, ask: f64, price: f64| {
        let legs = (0..).zip(venues).map(|(ms, venue)| Print {
            spot: Some(spot),
            bid: Some(bid),
            ask: Some(ask),
            ..iso(call, ms, venue, price, 2_500)
        });
        let mut d = detector();
        push_all(&mut d, legs.collect());
        only(&flushed(&mut d)).clone()
    };
    let sweep = |spot, bid, ask, price| order([3, 4], spot, bid, ask, price);
    let golden = sweep(180.0, 2.30, 2.40, 2.40);
    assert_eq!(golden.kind, Kind::Sweep);
    assert!(golden.tags.contains(Tag::Golden), "{golden:?}");
    assert!(
        sweep(180.0, 1.90, 2.00, 2.00).tags.contains(Tag::Golden),
        "exactly $1.0M"
    );
    assert!(
        !sweep(180.0, 1.80, 1.90, 1.90).tags.contains(Tag::Golden),
        "under $1M"
    );
    assert!(
        !sweep(200.0, 2.30, 2.40, 2.40).tags.contains(Tag::Golden),
        "in the money"
    );
    assert!(
        !sweep(180.0, 2.30, 2.50, 2.40).tags.contains(Tag::Golden),
        "mid"
    );
    let split = order([3, 3], 180.0, 2.30, 2.40, 2.40);
    assert_eq!(split.kind, Kind::Split);
    assert!(!split.tags.contains(Tag::Golden), "a split is not a sweep");
}

#[test]
fn repeat_after_three_hits_in_five_minutes() {
    let c = aapl_call();
    let mut d = detector();
    let minute = 60_000;
    let out = push_all(
        &mut d,
        vec![
            print(c, 0, 2.00, 10),
            print(c, minute, 2.00, 10),
            Print {
                bid: Some(2.00),
                ask: Some(2.10),
                ..print(c, 2 * minute, 2.00, 10)
            },
            print(c, 3 * minute, 2.00, 10),
            print(c, 9 * minute, 2.00, 10),
        ],
    );
    let repeats: Vec<bool> = events(&out)
        .iter()
        .map(|e| e.tags.contains(Tag::Repeat))
        .collect();
    assert_eq!(
        repeats,
        vec![false, false, false, true, false],
        "a bearish hit does not count toward bullish ones"
    );
}

#[test]
fn spread_legs_and_late_reports_are_never_merged() {
    let c = aapl_call();
    let mut d = detector();
    let leg = |ms, venue, code| Print {
        conditions: vec![INTERMARKET_SWEEP, code],
        ..iso(c, ms, venue, 2.10, 10)
    };
    let out = push_all(
        &mut d,
        vec![
            leg(0, 1, MULTI_LEG_AUTO),
            leg(1, 2, MULTI_LEG_AUTO),
            leg(2, 3, LATE_OUT_OF_SEQUENCE),
        ],
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 3, "each leaves at once, alone");
    assert!(ev.iter().all(|e| e.kind == Kind::Single && e.legs == 1));
    assert_eq!(ev[0].side, Side::Ask);
    assert_eq!(
        ev[0].sentiment,
        Sentiment::Neutral,
        "a spread leg is not directional"
    );
    assert_eq!(
        ev[2].sentiment,
        Sentiment::Bull,
        "a late report is still a trade"
    );
    assert_eq!(d.oldest_open(), None);
}

#[test]
fn enrichment_reports_what_the_feed_gave() {
    let c = contract("SPXW", Right::Put, 5_700.0);
    let p = Print {
        spot: Some(5_800.0),
        oi: Some(1_234),
        bid: Some(11.80),
        ask: Some(12.20),
        ..print(c, 0, 12.00, 50)
    };
    let out = push_all(&mut detector(), vec![p]);
    let e = only(&out);
    assert_eq!(e.ts * 1_000_000, at_ms(0));
    assert_eq!(
        (e.sym.as_str(), e.occ.as_str(), e.expiry.as_str()),
        ("SPX", "SPXW260320P05700000", "2026-03-20")
    );
    assert_eq!((e.strike, e.right, e.dte), (5_700.0, Right::Put, 3));
    // 100 / 58 = 1.7241…, reported to two decimals.
    assert_eq!(e.otm, Some(1.72));
    assert_eq!(
        (e.oi, e.bid, e.ask, e.side),
        (Some(1_234), Some(11.80), Some(12.20), Side::Mid)
    );
    assert!(e.iv.is_some_and(|iv| iv > 0.05 && iv < 1.0), "{:?}", e.iv);
    assert!(e.score <= 100);

    let bare = Print {
        bid: None,
        ask: None,
        ..print(c, 0, 12.00, 50)
    };
    let out = push_all(&mut detector(), vec![bare]);
    let e = only(&out);
    assert_eq!(
        (e.spot, e.otm, e.iv, e.oi, e.bid, e.ask),
        (None, None, None, None, None, None)
    );
    assert_eq!((e.side, e.sentiment), (Side::Unknown, Sentiment::Neutral));
}

#[test]
fn iv_is_none_below_intrinsic() {
    // The 190 call with spot 200 is worth at least 10; a print at 9 cannot be explained.
    let p = Print {
        spot: Some(200.0),
        ..print(aapl_call(), 0, 9.00, 10)
    };
    let out = push_all(&mut detector(), vec![p]);
    assert_eq!(only(&out).iv, None);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn any_print() -> impl Strategy<Value = Print> {
        let contracts = [
            aapl_call(),
            contract("SPY", Right::Put, 580.0),
            contract("TSLA", Right::Call, 250.0),
        ];
        let codes = prop::sample::subsequence(
            vec![
                INTERMARKET_SWEEP,
                CANCELED,
                MULTI_LEG_AUTO,
                LATE_OUT_OF_SEQUENCE,
            ],
            0..3,
        );
        let price = prop_oneof![
            0.01f64..500.0,
            Just(0.0),
            Just(-1.0),
            Just(f64::NAN),
            Just(f64::INFINITY)
        ];
        let quote = prop::option::of(prop_oneof![0.0f64..500.0, Just(f64::NAN), Just(-2.0)]);
        (
            (
                prop::sample::select(contracts.to_vec()),
                -5_000i64..5_000,
                price,
                0u32..20_000,
                0u16..20,
            ),
            (
                codes,
                quote.clone(),
                quote,
                prop::option::of(-10.0f64..10_000.0),
                prop::option::of(0u64..1_000_000),
            ),
        )
            .prop_map(
                |((c, ms, price, size, exchange), (conditions, bid, ask, spot, oi))| Print {
                    price,
                    exchange,
                    conditions,
                    bid,
                    ask,
                    spot,
                    oi,
                    ..print(c, ms, 1.0, size)
                },
            )
    }

    proptest! {
        #[test]
        fn every_entry_is_covered_exactly_once_and_events_are_sane(
            prints in prop::collection::vec(any_print(), 0..60),
            flush_every in 1usize..10,
        ) {
            let mut d = detector();
            let mut out = Vec::new();
            let mut unflushed = 0;
            for (n, p) in (1..).zip(prints.iter().cloned()) {
                let now = p.ts_ns;
                d.push(id(n), p, &mut out);
                unflushed += 1;
                if unflushed == flush_every {
                    d.flush_due(now, &mut out);
                    unflushed = 0;
                }
            }
            d.flush_all(&mut out);
            prop_assert_eq!(d.oldest_open(), None);
            let mut covered: Vec<Cursor> = out.iter().flat_map(|r| r.entries.iter().copied()).collect();
            covered.sort_unstable();
            prop_assert_eq!(covered, (1..=prints.len() as u64).map(id).collect::<Vec<_>>());
            for r in &out {
                if let Some(e) = &r.event {
                    prop_assert_eq!(e.legs as usize, r.entries.len());
                    prop_assert!(e.size > 0 && e.price.is_finite() && e.premium.is_finite());
                    prop_assert!(e.score <= 100);
                    prop_assert!(e.iv.is_none_or(|iv| iv.is_finite() && iv > 0.0));
                    prop_assert!(e.vol >= e.size);
                }
            }
        }
    }
}
