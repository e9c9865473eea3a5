//! The archive reader's filter pushdown against a real private PostgreSQL:
//! for random filters (terms, exclusions, comparisons, `or` and groups)
//! over random archived events, the pages read with the filter pushed into
//! SQL hold exactly the events the Rust filter alone selects, in cursor
//! order, once each, walked forwards and backwards in small pages with a
//! small scan cap. One PostgreSQL serves every case.

use std::sync::Arc;

use flowtape_bench::postgres_server::PostgresServer;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;
use flowtape_server::archive::row::ArchiveRow;
use flowtape_server::archive::{ArchiveReader, PageSide, Writer};
use flowtape_server::bus::FlowEntry;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// 2026-11-18 15:00 UTC (10:00 in New York).
const T0: i64 = 1_795_532_400_000;
const DAY_MS: i64 = 86_400_000;
const EVENTS: u64 = 600;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A small deterministic generator (xorshift), so the data is the same on
/// every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const SYMS: [&str; 6] = ["AAPL", "SPY", "NVDA", "TSLA", "BRK.B", "amd"];
const EXPIRIES: [&str; 3] = ["2026-11-20", "2026-12-18", "2027-01-15"];

/// Event `k`: every field drawn from a few values the filters name, with
/// values right at and around the thresholds (and the `=` tolerance), and
/// the optional ones absent now and then. The trading day cycles with `k`,
/// so the day partitions' cursor spans overlap.
fn event(k: u64, rng: &mut Rng) -> FlowEvent {
    let sym = rng.pick(&SYMS).to_string();
    let expiry = rng.pick(&EXPIRIES);
    let right = if rng.chance(50) { Right::Call } else { Right::Put };
    let strike = rng.pick(&[190.0, 195.0, 200.0, 202.5]);
    let occ = format!(
        "{}{}{}{:08}",
        sym.to_ascii_uppercase().replace('.', ""),
        expiry.replace('-', "").get(2..).unwrap_or(""),
        if right == Right::Put { "P" } else { "C" },
        (strike * 1000.0) as u64
    );
    let tags: Tags = Tag::ALL.into_iter().filter(|_| rng.chance(30)).collect();
    FlowEvent {
        id: String::new(),
        ts: T0 + (k as i64 % 3) * DAY_MS + k as i64,
        sym,
        occ,
        expiry: expiry.to_string(),
        strike,
        right,
        side: rng.pick(&[
            Side::AboveAsk,
            Side::Ask,
            Side::Mid,
            Side::Bid,
            Side::BelowBid,
            Side::Unknown,
        ]),
        size: rng.pick(&[1, 99, 100, 101, 500, 5000]),
        price: rng.pick(&[2.5, 2.5 + 1e-10, 2.5 + 1e-8, 2.4999999999, 0.05, 12.0]),
        premium: rng.pick(&[24_999.99, 25_000.0, 250_000.0, 250_000.01, 1_000_000.0]),
        kind: rng.pick(&Kind::ALL),
        legs: 1,
        exchanges: vec![1],
        spot: rng.chance(80).then_some(200.0),
        otm: rng
            .chance(80)
            .then(|| rng.pick(&[-5.0, 0.0, 4.99, 5.0, 12.0])),
        dte: rng.pick(&[0, 5, 7, 30]),
        oi: rng.chance(80).then(|| rng.pick(&[0, 100, 1000])),
        vol: rng.pick(&[50, 200, 2000]),
        iv: rng.chance(80).then(|| rng.pick(&[0.2, 0.3, 0.30000000001, 0.9])),
        bid: Some(2.4),
        ask: Some(2.6),
        tags,
        sentiment: rng.pick(&[Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral]),
        score: rng.pick(&[0, 50, 80, 99]),
    }
}

/// One term of the filter language, drawn from its pieces.
fn term() -> impl Strategy<Value = String> {
    let words = [
        "AAPL", "SPY", "NVDA", "TSLA", "BRK.B", "AMD", "-SPY", "-AAPL", "-amd", "calls", "puts",
        "sweep", "block", "split", "single", "unusual", "golden", "opening", "repeat", "bull",
        "bear", "neutral", "side:ask", "side:aa", "side:mid", "side:bid", "side:bb",
        "exp:2026-11-20", "exp:2026-12-18", "occ:AAPL261120C00190000", "occ:SPY261218P00200000",
        "premium>=250k", "premium<25k", "premium=250000", "size>100", "size<=100", "size=99",
        "price=2.5", "price<2.5", "price>=2.5", "strike>195", "strike=202.5", "dte<=5", "dte=0",
        "score>=80", "score<50", "otm>=5%", "otm<0", "otm=0", "iv>=30%", "iv=30%", "iv<25%",
        "voloi>2", "voloi<=0.5", "voloi=2",
    ];
    prop::sample::select(words.to_vec()).prop_map(String::from)
}

/// Terms side by side, sometimes with a parenthesised group of alternatives.
fn clause() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(term(), 1..4),
        prop::option::of(prop::collection::vec(
            prop::collection::vec(term(), 1..3),
            2..4,
        )),
    )
        .prop_map(|(terms, group)| {
            let mut s = terms.join(" ");
            if let Some(alts) = group {
                let alts: Vec<String> = alts.iter().map(|a| a.join(" ")).collect();
                s.push_str(&format!(" ({})", alts.join(" or ")));
            }
            s
        })
}

fn filter_text() -> impl Strategy<Value = String> {
    prop::collection::vec(clause(), 1..4).prop_map(|clauses| clauses.join(" or "))
}

/// Every event of the archive matching `filter`, by pages of `limit`
/// walked `forwards` (from the start) or backwards (from the end).
async fn walk(
    reader: &ArchiveReader,
    filter: &Filter,
    forwards: bool,
    limit: usize,
    scan_cap: usize,
) -> Vec<String> {
    let mut side = if forwards {
        PageSide::After(Cursor::ZERO)
    } else {
        PageSide::Before(Cursor::new(u64::MAX >> 1, 0))
    };
    let mut pages: Vec<Vec<String>> = Vec::new();
    for _ in 0..10_000 {
        let page = ok(reader.page(side, limit, filter, scan_cap).await);
        assert!(page.events.len() <= limit);
        pages.push(page.events.into_iter().map(|e| e.id).collect());
        match (page.more, page.next) {
            (true, Some(next)) if forwards => side = PageSide::After(next),
            (true, Some(next)) => side = PageSide::Before(next),
            _ => break,
        }
    }
    if !forwards {
        pages.reverse();
    }
    pages.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_filters_select_what_the_rust_filter_selects() {
    let pg = ok(PostgresServer::start().await);
    let mut writer = ok(Writer::connect(&pg.url(), "pushdown-test").await);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events: Vec<FlowEvent> = (1..=EVENTS).map(|k| event(k, &mut rng)).collect();
    let rows: Vec<ArchiveRow> = events
        .iter()
        .zip(1..)
        .map(|(e, k)| {
            let entry = FlowEntry {
                id: Cursor::new(T0 as u64 + k * 10, k % 3),
                json: Arc::from(e.to_stored_json()),
            };
            ok(ArchiveRow::from_entry(&entry))
        })
        .collect();
    ok(writer.write(&rows, Cursor::new(T0 as u64 + EVENTS * 10, 9)).await);
    let reader = ok(ArchiveReader::connect(&pg.url()).await);
    // What the archive holds, read back: the Rust filter judges these.
    let everything = Filter::default();
    let all = ok(reader
        .page(PageSide::After(Cursor::ZERO), 1000, &everything, 100_000)
        .await);
    assert_eq!(all.events.len(), EVENTS as usize);
    assert!(!all.more);
    assert!(all.events.windows(2).all(|w| {
        let c = |e: &FlowEvent| e.id.parse::<Cursor>().unwrap_or_default();
        c(&w[0]) < c(&w[1])
    }));

    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(
        &(filter_text(), 1usize..40, 20usize..400),
        |(text, limit, scan_cap)| {
            let Ok(filter) = Filter::parse(&text) else {
                return Err(TestCaseError::reject("not a filter"));
            };
            let want: Vec<String> = all
                .events
                .iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.id.clone())
                .collect();
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let one = ok(reader
                        .page(PageSide::After(Cursor::ZERO), 1000, &filter, 100_000)
                        .await);
                    let ids: Vec<String> = one.events.into_iter().map(|e| e.id).collect();
                    prop_assert_eq!(&ids, &want, "one page, filter {:?}", text);
                    let up = walk(&reader, &filter, true, limit, scan_cap).await;
                    prop_assert_eq!(&up, &want, "forwards, filter {:?}", text);
                    let down = walk(&reader, &filter, false, limit, scan_cap).await;
                    prop_assert_eq!(&down, &want, "backwards, filter {:?}", text);
                    Ok(())
                })
            })
        },
    );
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
