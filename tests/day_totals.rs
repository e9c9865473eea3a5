//! The day's totals a real gateway serves (`day` op) on a private
//! redis-server are exactly what the committed prints add up to.
//!
//! The sim runs through ingest and a processor; once every raw print is
//! processed and acknowledged, the expected totals are computed twice, from
//! the raw prints (each print that is a trade and not cancelled adds its
//! premium to its ticker's call or put bucket, to its contract, and to bull
//! or bear by its own side, neutral to neither) and from the flow stream's
//! events (call/put and per contract: the events' premium; bull/bear: exact
//! for one-print events, bounded for sweeps, whose legs are judged one by
//! one while the event is judged on its VWAP). Both must agree with what the
//! gateway answers, to the cent. Bad requests, and a request Redis cannot
//! answer, get an `error` frame and the connection stays.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowtape_bench::redis_server::RedisServer;
use flowtape_core::conditions::ConditionTable;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, Date};
use flowtape_core::day::{DayReport, DayTotals, Premium};
use flowtape_core::detect::side::{sentiment_of, side_of};
use flowtape_core::detect::DetectionConfig;
use flowtape_core::event::{FlowEvent, Print, Sentiment};
use flowtape_core::occ::Right;
use flowtape_core::protocol::{ErrorCode, ServerMessage};
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;

mod support;
use support::ws::{Answer, Client};
use support::{gateway_node, sim_from_now};

fn bucket(right: Right) -> &'static str {
    match right {
        Right::Call => "call",
        Right::Put => "put",
    }
}

/// The day totals the raw prints add up to, per New York trading day.
fn from_raw_prints(url: &str, shards: u16) -> BTreeMap<Date, DayTotals> {
    let mut c = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("{e}"));
    let conditions = ConditionTable::default();
    let detection = DetectionConfig::default();
    let mut days: BTreeMap<Date, DayTotals> = BTreeMap::new();
    for shard in 0..shards {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(format!("ft:{{ft:raw:{shard}}}:prints"))
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        for (_, fields) in entries {
            let p: Print = serde_json::from_str(&fields[0].1).unwrap_or_else(|e| panic!("{e}"));
            let flags = conditions.flags(&p.conditions);
            if flags.canceled || p.size == 0 || !p.price.is_finite() || p.price <= 0.0 {
                continue;
            }
            let cents = (p.premium() * 100.0).round() as i64;
            let sym = p.contract.underlying().to_string();
            let t = days.entry(market_date(p.ts_ms())).or_default();
            t.add(&format!("{sym}:{}", bucket(p.contract.right)), cents);
            t.add(&p.contract.osi(), cents);
            let side = side_of(p.price, p.bid, p.ask, &detection);
            match sentiment_of(p.contract.right, side, flags.multi_leg) {
                Sentiment::Bull => t.add(&format!("{sym}:bull"), cents),
                Sentiment::Bear => t.add(&format!("{sym}:bear"), cents),
                Sentiment::Neutral => true,
            };
        }
    }
    days
}

/// What the flow stream's events add up to, per day: call/put per ticker
/// and premium per contract exactly; bull/bear of the one-print events
/// exactly, and the sweeps' premium per ticker (their legs' directions are
/// judged one by one).
#[derive(Default)]
struct FromEvents {
    totals: DayTotals,
    sweeps: BTreeMap<String, i64>,
}

async fn from_events(bus: &Bus) -> BTreeMap<Date, FromEvents> {
    let mut days: BTreeMap<Date, FromEvents> = BTreeMap::new();
    let mut after = Cursor::ZERO;
    loop {
        let page = bus
            .flow_after(after, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = page.last().map(|e| e.id) else {
            break;
        };
        for entry in page {
            let e: FlowEvent = serde_json::from_str(&entry.json).unwrap_or_else(|e| panic!("{e}"));
            let cents = (e.premium * 100.0).round() as i64;
            let day = days.entry(market_date(e.ts)).or_default();
            day.totals
                .add(&format!("{}:{}", e.sym, bucket(e.right)), cents);
            day.totals.add(&e.occ, cents);
            if e.legs > 1 {
                *day.sweeps.entry(e.sym.clone()).or_default() += cents;
                continue;
            }
            match e.sentiment {
                Sentiment::Bull => day.totals.add(&format!("{}:bull", e.sym), cents),
                Sentiment::Bear => day.totals.add(&format!("{}:bear", e.sym), cents),
                Sentiment::Neutral => true,
            };
        }
        after = last;
    }
    days
}

/// Waits until every raw print has been processed and acknowledged, and the
/// flow stream has stopped growing.
async fn wait_until_processed(bus: &Bus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_len = None;
    loop {
        assert!(Instant::now() < deadline, "the processor did not finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let backlog = bus.shard_backlog().await.unwrap_or_else(|e| panic!("{e}"));
        let idle = backlog.iter().all(|s| s.lag == Some(0) && s.pending == 0);
        let len = bus.flow_bounds().await.map(|b| b.len).ok();
        if idle && len == last_len {
            return;
        }
        last_len = len;
    }
}

fn day_of(a: Answer) -> DayReport {
    match a {
        Answer::Day(report) => report,
        other => panic!("not a day frame: {other:?}"),
    }
}

fn error_of(a: Answer) -> (ErrorCode, String) {
    match a {
        Answer::Error(code, message, _) => (code, message),
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_day_totals_of_exactly_the_committed_prints() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let config = BusConfig::default();
    let shards = config.shards;
    let bus = Bus::redis(&redis.url(), config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let feed = Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(400.0))),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let processor = Node::start(
        bus.clone(),
        NodeConfig {
            process: Some(ProcessorConfig::new("day-test".into())),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (gateway, url) = gateway_node(&bus).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    feed.shutdown();
    feed.wait().await;
    wait_until_processed(&bus).await;

    let raw = from_raw_prints(&redis.url(), shards);
    let events = from_events(&bus).await;
    assert!(!raw.is_empty(), "no prints");
    assert_eq!(
        raw.keys().collect::<Vec<_>>(),
        events.keys().collect::<Vec<_>>()
    );
    let mut ws = Client::connect(url.as_str()).await;
    for (date, want) in &raw {
        let got_events = &events[date];
        // The events' premium is their prints' premium, per contract and per
        // ticker's calls and puts.
        assert_eq!(got_events.totals.contracts, want.contracts);
        let sweeps: i64 = got_events.sweeps.values().sum();
        for (sym, w) in &want.tickers {
            let e = got_events
                .totals
                .tickers
                .get(sym)
                .copied()
                .unwrap_or_default();
            assert_eq!((e.call, e.put), (w.call, w.put), "{sym} calls and puts");
            // Sweeps aside, each event's sentiment is its print's; a sweep's
            // legs add to bull or bear or neither, up to its premium.
            let swept = got_events.sweeps.get(sym).copied().unwrap_or(0);
            let (more_bull, more_bear) = (w.bull - e.bull, w.bear - e.bear);
            assert!(
                more_bull >= 0 && more_bear >= 0 && more_bull + more_bear <= swept,
                "{sym}: prints bull {} bear {}, one-print events bull {} bear {}, sweeps {swept}",
                w.bull,
                w.bear,
                e.bull,
                e.bear
            );
        }
        assert_eq!(
            got_events.totals.tickers.len(),
            want.tickers.len(),
            "the same tickers"
        );
        // The bus's totals are the prints', every ticker and contract.
        let stored = bus
            .day_totals(*date)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.skipped, 0);
        assert_eq!(stored.tickers, want.tickers);
        assert_eq!(stored.contracts, want.contracts);
        // The gateway serves them, summed and ranked.
        let answer = day_of(
            ws.ask(&format!(r#"{{"op":"day","date":"{date}","top":100}}"#))
                .await,
        );
        let expected = want.report(*date, answer.as_of, 100);
        assert_eq!(answer, expected);
        assert!(
            answer.totals.contracts > 20 && answer.totals.tickers > 5,
            "{:?}",
            answer.totals
        );
        assert!(sweeps > 0, "no sweeps: the test would not cover legs");
        let sum: Premium = want.sum();
        assert_eq!(answer.totals.premium(), sum);
    }

    // The default day is today's in New York, with the default top 10.
    let today = market_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let answer = day_of(ws.ask(r#"{"op":"day"}"#).await);
    assert_eq!(answer.date, today);
    assert!(answer.tickers.len() <= 10 && answer.contracts.len() <= 10);

    // Bad requests: an error each, and the connection stays.
    let future = today.add_days(1);
    let (code, message) = error_of(
        ws.ask(&format!(r#"{{"op":"day","date":"{future}"}}"#))
            .await,
    );
    assert_eq!(code, ErrorCode::BadField);
    assert!(message.contains("in the future"), "{message}");
    let (code, message) = error_of(ws.ask(r#"{"op":"day","date":"2026-02-30"}"#).await);
    assert_eq!(code, ErrorCode::BadField);
    assert!(message.contains("not a calendar date"), "{message}");
    let (code, message) = error_of(ws.ask(r#"{"op":"day","top":1000}"#).await);
    assert_eq!(code, ErrorCode::BadField);
    assert!(message.contains("over the cap of 100"), "{message}");
    let again = day_of(ws.ask(r#"{"op":"day","top":3}"#).await);
    assert_eq!(again.tickers.len(), 3);

    // Redis gone: a day not read yet is `unavailable`, and the connection stays.
    drop(redis);
    let yesterday = today.add_days(-1);
    let (code, message) = error_of(
        ws.ask(&format!(r#"{{"op":"day","date":"{yesterday}"}}"#))
            .await,
    );
    assert_eq!(code, ErrorCode::Unavailable);
    assert!(message.starts_with("day: "), "{message}");
    ws.send(r#"{"op":"ping"}"#).await;
    assert_eq!(ws.next_message().await.err(), Some(ServerMessage::Pong));

    gateway.shutdown();
    gateway.wait().await;
    processor.shutdown();
    processor.wait().await;
}
