//! Archive throughput: how fast the archive role writes flow events into
//! PostgreSQL, and how much room they take. Fills a memory bus with N
//! events (shaped like the sim's: varied tickers, tags, optional fields),
//! starts a private PostgreSQL (default settings: fsync and synchronous
//! commit on) and times the archiver from the first event to the last
//! committed; then reads the size of the day partitions with their indexes.
//!
//! Run: `cargo run --release -p flowtape-bench --example archive_throughput [EVENTS [BATCH]]`
//! (default 500000 events, batches of 5000). The figures are in docs/bench.md.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_bench::archive_size::{self, ArchiveSize};
use flowtape_bench::postgres_server::PostgresServer;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use flowtape_core::occ::Right;
use flowtape_server::archive::{self, ArchiveConfig, ArchiveStats};
use flowtape_server::bus::{Bus, BusConfig, NewEvent};

const TICKERS: [&str; 8] = ["SPY", "QQQ", "TSLA", "NVDA", "AAPL", "AMD", "META", "IWM"];
/// 2024-12-20 15:00 UTC: every event on one trading day, as in a session.
const T0: i64 = 1_734_706_800_000;

fn event(k: u64) -> FlowEvent {
    let tags: Tags = Tag::ALL
        .into_iter()
        .filter(|t| (k.wrapping_mul(2_654_435_761) >> (*t as u8 + 7)) & 3 == 0)
        .collect();
    let sym = TICKERS[(k % 8) as usize];
    let strike = 100.0 + (k % 200) as f64 * 2.5;
    FlowEvent {
        id: String::new(),
        ts: T0 + (k / 50) as i64,
        sym: sym.into(),
        occ: format!("{sym}241220C{:08}", (strike * 1000.0) as u64),
        expiry: "2024-12-20".into(),
        strike,
        right: if k % 2 == 0 { Right::Call } else { Right::Put },
        side: [Side::Ask, Side::Bid, Side::Mid, Side::AboveAsk][(k % 4) as usize],
        size: 1 + k % 500,
        price: 0.05 + (k % 997) as f64 / 100.0,
        premium: 500.0 + (k % 99_991) as f64 * 3.7,
        kind: Kind::ALL[(k % 4) as usize],
        legs: 1 + (k % 5) as u32,
        exchanges: vec![1 + (k % 20) as u16],
        spot: Some(450.0 + (k % 100) as f64 / 10.0),
        otm: Some(2.5 - (k % 50) as f64 / 10.0),
        dte: 0,
        oi: (k % 3 != 0).then_some(1000 + k % 50_000),
        vol: 10 + k % 100_000,
        iv: (k % 7 != 0).then_some(0.2 + (k % 60) as f64 / 100.0),
        bid: Some(1.0),
        ask: Some(1.05),
        tags,
        sentiment: [Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral][(k % 3) as usize],
        score: (k % 100) as u8,
    }
}

async fn fill(bus: &Bus, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    bus.acquire_lease(0, "bench", Duration::from_secs(3600))
        .await?;
    let mut k = 0;
    while k < n {
        let end = (k + 10_000).min(n);
        let jsons: Vec<String> = (k..end).map(|i| event(i).to_stored_json()).collect();
        let legs: Vec<[Cursor; 1]> = (k..end).map(|i| [Cursor::new(i + 1, 0)]).collect();
        let events: Vec<NewEvent<'_>> = jsons
            .iter()
            .zip(&legs)
            .map(|(json, legs)| NewEvent {
                legs,
                json,
                deltas: &[],
            })
            .collect();
        bus.commit_flow(0, "bench", &events, &[]).await?;
        k = end;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(500_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let bus = Bus::memory(BusConfig {
        flow_max_len: n + 1,
        ..BusConfig::default()
    });
    fill(&bus, n).await?;
    let pg = PostgresServer::start().await?;
    let stats = Arc::new(ArchiveStats::default());
    let (stop, shutdown) = flowtape_server::shutdown::channel();
    let config = ArchiveConfig {
        batch_size: batch,
        ..ArchiveConfig::new(pg.url())
    };
    let started = Instant::now();
    let task = tokio::spawn(archive::run(bus.clone(), config, stats.clone(), shutdown));
    while stats.archived.load(Ordering::Relaxed) < n {
        if task.is_finished() {
            return Err("the archiver stopped early".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    stop.trigger();
    task.await??;

    let size = ArchiveSize::read(&archive_size::connect(&pg.url()).await?).await?;
    let latency = &stats.commit_latency;
    println!(
        "{n} events in {:.2} s: {:.0} events/s (batches of {batch}, {} commits)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        latency.count()
    );
    println!("{size}");
    Ok(())
}
