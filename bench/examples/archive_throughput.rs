//! Archive throughput: how fast the archive role writes flow events into
//! PostgreSQL, and how much room they take. Fills a memory bus with N
//! events (shaped like the sim's: varied tickers, tags, optional fields)
//! of today, so that the role writes them as it does live (a day not over
//! has its primary key only, `docs/archive.md`, "Indexes"),
//! starts a private PostgreSQL with the deployed settings
//! (`assets/deploy/postgresql/flowtape.conf`) and times the archive role
//! from the first event to the last committed; then reads the size of the
//! day partitions.
//!
//! Run: `cargo run --release -p flowtape-bench --example archive_throughput [EVENTS [BATCH]]`
//! (default 500000 events, batches of 5000). The figures are in docs/bench.md.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_bench::archive_size::{self, ArchiveSize};
use flowtape_bench::postgres_server::PostgresServer;
use flowtape_bench::synthetic::fill;
use flowtape_server::archive::{self, ArchiveConfig, ArchiveStats};
use flowtape_server::bus::{Bus, BusConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(500_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let bus = Bus::memory(BusConfig {
        flow_max_len: n + 1,
        ..BusConfig::default()
    });
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    fill(&bus, n, now_ms).await?;
    let pg = PostgresServer::start().await?;
    // The deployed settings (assets/deploy/postgresql/flowtape.conf).
    let conf = pg.data_dir().join("flowtape.conf");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/deploy/postgresql/flowtape.conf"),
        &conf,
    )?;
    if pg.include_config(&conf)? {
        pg.stop()?;
        pg.resume().await?;
    }
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
