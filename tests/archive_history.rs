//! History past the flow stream, served from the archive by a real gateway,
//! on a private redis-server and a private PostgreSQL with the real archive
//! role: events are archived, then the stream is trimmed so the oldest exist
//! only in the archive. `before` pages from live back to the archive's start
//! and `after` pages from its start to live hold every event once, in order
//! (with a filter too); a day the archive does not hold says so; a gateway
//! without an archive says that; with PostgreSQL stopped a page past the
//! stream is `history_unavailable` and the connection stays; a past day's
//! totals are the sum of that day's archived events.

use std::time::{Duration, Instant};

use flowtape_bench::postgres_server::PostgresServer;
use flowtape_bench::redis_server::RedisServer;
use flowtape_bench::synthetic;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, Date};
use flowtape_core::day::DayTotals;
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tags};
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;
use flowtape_core::protocol::ErrorCode;
use flowtape_server::archive::{self, ArchiveConfig, ArchiveStats, ArchiveUrl};
use flowtape_server::bus::{Bus, BusConfig, Keys};
use flowtape_server::gateway::GatewayConfig;
use flowtape_server::node::{Node, NodeConfig};
use flowtape_server::shutdown;

mod support;
use support::ws::{Answer, Client};

const OWNER: &str = "archive-history-test";
const EVENTS: u64 = 600;
/// Events trimmed from the stream: only the archive has them.
const TRIMMED: usize = 250;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Two past trading days older than the bus keeps its day totals.
fn past_days() -> [Date; 2] {
    let today = market_date(now_ms());
    [today.add_days(-6), today.add_days(-5)]
}

/// Event `k`, on one of the two past days (alternating, so the days'
/// cursor spans overlap); premiums half a cent past whole cents, so that
/// the day's totals round as the processor does (half away from zero).
fn event(k: u64) -> FlowEvent {
    let day = past_days()[(k % 2) as usize];
    // 15:00 UTC of that day is 10:00 or 11:00 in New York.
    let ts = day.days_since_epoch() * 86_400_000 + 15 * 3_600_000 + k as i64;
    let right = if k % 3 == 0 { Right::Put } else { Right::Call };
    let sym = ["AAPL", "SPY", "NVDA"][(k % 3) as usize];
    FlowEvent {
        id: String::new(),
        ts,
        sym: sym.into(),
        occ: format!(
            "{sym}261218{}00200000",
            if right == Right::Put { "P" } else { "C" }
        ),
        expiry: "2026-12-18".into(),
        strike: 200.0,
        right,
        side: Side::Ask,
        size: 10 + k,
        price: 1.0,
        premium: (1000 + k * 10) as f64 + 0.125,
        kind: Kind::ALL[(k % 4) as usize],
        legs: 1,
        exchanges: vec![1],
        spot: Some(200.0),
        otm: None,
        dte: 30,
        oi: None,
        vol: 100,
        iv: None,
        bid: None,
        ask: None,
        tags: Tags::EMPTY,
        sentiment: [Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral][(k % 3) as usize],
        score: 10,
    }
}

/// Commits events `1..=EVENTS` through the bus, as a processor would; their cursors.
async fn commit_all(bus: &Bus) -> Vec<Cursor> {
    assert!(ok(bus
        .acquire_lease(0, OWNER, Duration::from_secs(600))
        .await));
    let mut ids = Vec::new();
    for chunk in (1..=EVENTS).collect::<Vec<_>>().chunks(100) {
        let events: Vec<(u64, String)> = chunk
            .iter()
            .map(|k| (*k, event(*k).to_stored_json()))
            .collect();
        for id in ok(synthetic::commit(bus, OWNER, &events).await) {
            ids.push(id.unwrap_or_else(|| panic!("an event was not committed")));
        }
    }
    ids
}

async fn archived_rows(pg: &PostgresServer) -> i64 {
    let Ok((client, conn)) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await else {
        return 0;
    };
    tokio::spawn(conn);
    match client
        .query_one("SELECT count(*) FROM flow_events", &[])
        .await
    {
        Ok(row) => row.try_get::<_, i64>(0).unwrap_or(0),
        Err(_) => 0, // Not created yet.
    }
}

async fn gateway(bus: &Bus, archive: Option<ArchiveUrl>) -> (Node, String) {
    let node = ok(Node::start(
        bus.clone(),
        NodeConfig {
            gateway: Some(GatewayConfig {
                listen: ok("127.0.0.1:0".parse()),
                archive,
                ..GatewayConfig::default()
            }),
            ..NodeConfig::default()
        },
    )
    .await);
    let addr = node.gateway_addr().unwrap_or_else(|| panic!("no gateway"));
    (node, format!("ws://{addr}/ws"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_past_days_come_from_the_archive_past_the_stream() {
    let redis = ok(RedisServer::start().await);
    let bus = ok(Bus::redis(&redis.url(), BusConfig::default()).await);
    let pg = ok(PostgresServer::start().await);
    let ids = commit_all(&bus).await;
    assert_eq!(ids.len(), EVENTS as usize);

    // The real archive role archives every event.
    let (trigger, shutdown) = shutdown::channel();
    let archiver = tokio::spawn(archive::run(
        bus.clone(),
        ArchiveConfig {
            poll: Duration::from_millis(20),
            ..ArchiveConfig::new(pg.url())
        },
        std::sync::Arc::new(ArchiveStats::default()),
        shutdown,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived_rows(&pg).await < EVENTS as i64 {
        assert!(Instant::now() < deadline, "not archived within a minute");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trigger.trigger();
    ok(ok(archiver.await));

    // The oldest events now exist only in the archive.
    let mut redis_conn = ok(ok(redis::Client::open(redis.url()))
        .get_multiplexed_async_connection()
        .await);
    let trimmed: i64 = ok(redis::cmd("XTRIM")
        .arg(Keys::new(&bus.config().namespace).flow_stream())
        .arg("MINID")
        .arg(ids[TRIMMED].to_string())
        .query_async(&mut redis_conn)
        .await);
    assert_eq!(trimmed, TRIMMED as i64);

    let (node, url) = gateway(&bus, Some(ArchiveUrl(pg.url()))).await;
    let mut client = Client::connect(&url).await;

    // Every event, once, in order: walked back from live, and forwards
    // from the start.
    let (back, notices) = client.walk(false, "").await;
    assert_eq!(back, ids, "before pages from live to the archive's start");
    let [first_day, last_day] = past_days();
    assert_eq!(
        notices,
        [format!(
            "the start of the archive (the archive holds {first_day} to {last_day})"
        )]
    );
    let (up, notices) = client.walk(true, "").await;
    assert_eq!(up, ids, "after pages from the archive's start to live");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].ends_with(&format!(
            "is not archived (the archive holds {first_day} to {last_day}), showing from there"
        )),
        "{notices:?}"
    );

    // With a filter, both ways.
    let filter = Filter::parse("calls sweep or bear").unwrap_or_else(|e| panic!("{e}"));
    let want: Vec<Cursor> = (1..=EVENTS)
        .zip(&ids)
        .filter(|(k, _)| filter.matches(&event(*k)))
        .map(|(_, id)| *id)
        .collect();
    assert!(want.len() > 100 && want.len() < 500, "{}", want.len());
    assert_eq!(client.walk(false, filter.source()).await.0, want);
    assert_eq!(client.walk(true, filter.source()).await.0, want);

    // A past day's totals: the sum of that day's events.
    let Answer::Day(report) = client
        .ask(&format!(r#"{{"op":"day","date":"{first_day}","top":100}}"#))
        .await
    else {
        panic!("no day report");
    };
    let mut totals = DayTotals::default();
    for e in (1..=EVENTS)
        .map(event)
        .filter(|e| market_date(e.ts) == first_day)
    {
        let cents = (e.premium * 100.0).round() as i64;
        let bucket = if e.right == Right::Put { "put" } else { "call" };
        totals.add(&format!("{}:{bucket}", e.sym), cents);
        match e.sentiment {
            Sentiment::Bull => totals.add(&format!("{}:bull", e.sym), cents),
            Sentiment::Bear => totals.add(&format!("{}:bear", e.sym), cents),
            Sentiment::Neutral => true,
        };
        totals.add(&e.occ, cents);
    }
    let expected = totals.report(first_day, report.as_of, 100);
    assert_eq!(report.date, first_day);
    assert_eq!(report.totals, expected.totals);
    assert_eq!(report.tickers, expected.tickers);
    assert_eq!(report.contracts, expected.contracts);
    // A day the archive does not hold.
    let older = first_day.add_days(-3);
    match client
        .ask(&format!(r#"{{"op":"day","date":"{older}"}}"#))
        .await
    {
        Answer::Error(ErrorCode::BadField, m, _) => assert_eq!(
            m,
            format!("day: {older} is not archived (the archive holds {first_day} to {last_day})")
        ),
        other => panic!("{other:?}"),
    }

    // PostgreSQL stopped: a page past the stream is history_unavailable,
    // and the connection stays (a page of the stream is still served).
    ok(pg.stop());
    let past = format!(r#"{{"op":"history","before":"{}","limit":10}}"#, ids[10]);
    match client.ask(&past).await {
        Answer::Error(ErrorCode::HistoryUnavailable, ..) => {}
        other => panic!("{other:?}"),
    }
    let recent = format!(r#"{{"op":"history","after":"{}","limit":10}}"#, ids[500]);
    let page = client.page(&recent).await;
    assert_eq!(
        page.events.iter().map(|i| i.cursor).collect::<Vec<_>>(),
        ids[501..511].to_vec()
    );
    // Back again: the reader reconnects (after its backoff).
    ok(pg.resume().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.ask(&past).await {
            Answer::Page(page) => {
                let got: Vec<Cursor> = page.events.iter().map(|i| i.cursor).collect();
                assert_eq!(got, ids[..10].to_vec());
                break;
            }
            Answer::Error(ErrorCode::HistoryUnavailable | ErrorCode::RateLimited, ..)
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("{other:?}"),
        }
    }

    // A gateway without an archive says so.
    let (plain, plain_url) = gateway(&bus, None).await;
    let mut client = Client::connect(&plain_url).await;
    let page = client
        .page(r#"{"op":"history","after":"1-0","limit":20}"#)
        .await;
    let notice = page.notice.clone().unwrap_or_default();
    assert!(notice.contains("no archive configured"), "{notice}");
    assert_eq!(
        page.events.iter().map(|i| i.cursor).collect::<Vec<_>>(),
        ids[TRIMMED..TRIMMED + 20].to_vec(),
        "what the stream keeps"
    );
    match client
        .ask(&format!(r#"{{"op":"day","date":"{first_day}"}}"#))
        .await
    {
        Answer::Error(ErrorCode::BadField, m, _) => {
            assert!(
                m.starts_with("day: ") && m.contains("no archive is configured"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }

    // The stream emptied (a Redis restarted without its data): a gateway
    // started on it, having seen no event, finds every one in the archive.
    let emptied: i64 = ok(redis::cmd("XTRIM")
        .arg(Keys::new(&bus.config().namespace).flow_stream())
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut redis_conn)
        .await);
    assert_eq!(emptied, (EVENTS as usize - TRIMMED) as i64);
    let (fresh, fresh_url) = gateway(&bus, Some(ArchiveUrl(pg.url()))).await;
    let mut client = Client::connect(&fresh_url).await;
    assert_eq!(
        client.walk(false, "").await.0,
        ids,
        "before pages, stream empty"
    );
    assert_eq!(
        client.walk(true, "").await.0,
        ids,
        "after pages, stream empty"
    );
    for n in [node, plain, fresh] {
        n.shutdown();
        n.wait().await;
    }
}
