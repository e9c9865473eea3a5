//! Export rate of `flowtape tail --since … --until …`: how many events a
//! second tail reads by history pages from a real gateway and prints as
//! NDJSON, from the flow stream or from the archive.
//!
//! - From the stream: starts a private `redis-server`, fills its flow stream
//!   with N synthetic events, starts a gateway on it.
//! - From the archive (`archive URL DATE`): a gateway with that PostgreSQL
//!   archive (e.g. `archive_scale`'s) on a private `redis-server` whose
//!   stream is empty, exporting the trading day DATE:
//!   `--since DATE --until DATE+1`.
//!
//! The gateway's `history_rate` is as given (10 pages/s by default, the
//! gateway's default). The `flowtape` binary runs over the window twice:
//! printing to /dev/null (the figure), then into a pipe whose lines are
//! counted (the check: every event of the window, once).
//!
//! Run: `cargo build --release -p flowtape --bin flowtape --example tail_export`,
//! then `target/release/examples/tail_export [EVENTS [PAGES_PER_SECOND]]`
//! (default 1000000 events, 10 pages/s), or
//! `target/release/examples/tail_export archive URL DATE [PAGES_PER_SECOND]`.
//! The binary is taken from beside the example's directory, or from
//! `$FLOWTAPE_BIN`. Figures: docs/bench.md.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowtape_bench::redis_server::RedisServer;
use flowtape_bench::synthetic::{fill, T0};
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_server::archive::ArchiveUrl;
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::gateway::{GatewayConfig, RateLimit};
use flowtape_server::node::{Node, NodeConfig};

type Error = Box<dyn std::error::Error>;

/// The `flowtape` binary: `$FLOWTAPE_BIN`, else `target/<profile>/flowtape`.
fn flowtape_bin() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("FLOWTAPE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or("cannot tell where the flowtape binary is; set FLOWTAPE_BIN")?;
    Ok(profile_dir.join("flowtape"))
}

/// Where the output goes.
enum Sink {
    DevNull,
    /// A pipe whose lines are counted.
    Counted,
}

/// Runs the tail over the window; its time and the lines counted (if counted).
fn export(
    bin: &PathBuf,
    url: &str,
    (since, until): (&str, &str),
    sink: Sink,
) -> Result<(Duration, u64), Error> {
    let home = tempfile::tempdir()?;
    let stdout = match sink {
        Sink::DevNull => Stdio::from(std::fs::File::create("/dev/null")?),
        Sink::Counted => Stdio::piped(),
    };
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["tail", "--server", url, "--since", since, "--until", until])
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_STATE_HOME", home.path())
        .env_remove("FLOWTAPE_CONFIG")
        .env_remove("FLOWTAPE_TOKEN")
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut lines = 0;
    if let Some(out) = child.stdout.take() {
        let mut reader = BufReader::with_capacity(1 << 20, out);
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
            let n = buf.len();
            reader.consume(n);
        }
    }
    let status = child.wait()?;
    let took = started.elapsed();
    if !status.success() {
        return Err(format!("flowtape tail failed: {status}").into());
    }
    Ok((took, lines))
}

/// What is exported.
enum Source {
    /// N synthetic events written into the stream.
    Stream(u64),
    /// One trading day of the archive at this URL.
    Archive(String, Date),
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (source, rate_arg) = match args.first().map(String::as_str) {
        Some("archive") => {
            let (Some(url), Some(day)) = (args.get(1), args.get(2)) else {
                return Err("usage: tail_export archive URL DATE [PAGES_PER_SECOND]".into());
            };
            (Source::Archive(url.clone(), day.parse()?), args.get(3))
        }
        _ => (
            Source::Stream(args.first().map_or(Ok(1_000_000), |a| a.parse())?),
            args.get(1),
        ),
    };
    let pages_per_second: f64 = rate_arg.map_or(Ok(10.0), |a| a.parse())?;
    let bin = flowtape_bin()?;
    let redis = RedisServer::start().await?;
    let flow_max_len = match source {
        Source::Stream(n) => n + 1,
        Source::Archive(..) => BusConfig::default().flow_max_len,
    };
    let bus = Bus::redis(
        &redis.url(),
        BusConfig {
            flow_max_len,
            ..BusConfig::default()
        },
    )
    .await?;
    // The window and the events it holds.
    let (window, expected, archive) = match &source {
        Source::Stream(n) => {
            let filled = Instant::now();
            fill(&bus, *n, T0).await?;
            let last = bus.flow_bounds().await?.last.ok_or("the stream is empty")?;
            eprintln!(
                "filled {n} events in {:.1} s",
                filled.elapsed().as_secs_f64()
            );
            (("0-0".to_string(), last.successor().to_string()), *n, None)
        }
        Source::Archive(url, day) => {
            let next = day.add_days(1);
            let (from, to) = (market_instant_ms(*day, 0, 0), market_instant_ms(next, 0, 0));
            let held = archived_between(url, from, to).await?;
            eprintln!("the archive holds {held} events of {day}");
            (
                (day.to_string(), next.to_string()),
                held,
                Some(ArchiveUrl(url.clone())),
            )
        }
    };
    let gateway = Node::start(
        bus.clone(),
        NodeConfig {
            gateway: Some(GatewayConfig {
                listen: "127.0.0.1:0".parse()?,
                history_rate: RateLimit {
                    per_second: pages_per_second,
                    burst: (pages_per_second * 2.0).max(1.0) as u32,
                    abuse_after: u32::MAX,
                },
                archive,
                ..GatewayConfig::default()
            }),
            ..NodeConfig::default()
        },
    )
    .await?;
    let url = format!(
        "ws://{}/ws",
        gateway.gateway_addr().ok_or("the node has no gateway")?
    );
    // The gateway's hub has the stream's newest event: pages reach it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = match source {
        Source::Stream(_) => "the stream",
        Source::Archive(..) => "the archive",
    };
    let window = (window.0.as_str(), window.1.as_str());
    let run = |sink| tokio::task::block_in_place(|| export(&bin, &url, window, sink));
    let (took, _) = run(Sink::DevNull)?;
    println!(
        "tail --since {} --until {} > /dev/null, from {from}: {expected} events in {:.2} s: \
         {:.0} events/s (history_rate {pages_per_second} pages/s, pages of 1000)",
        window.0,
        window.1,
        took.as_secs_f64(),
        expected as f64 / took.as_secs_f64()
    );
    let (took, lines) = run(Sink::Counted)?;
    println!(
        "tail --since --until | count: {lines} lines in {:.2} s: {:.0} events/s",
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64()
    );
    gateway.shutdown();
    gateway.wait().await;
    if lines != expected {
        return Err(
            format!("printed {lines} events, {from} holds {expected} in the window").into(),
        );
    }
    Ok(())
}

/// Archived events whose cursors lie in `[from, to)` ms: what `tail` is to
/// print for that window.
async fn archived_between(url: &str, from: i64, to: i64) -> Result<u64, Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM flow_events WHERE cursor_ms >= $1 AND cursor_ms < $2",
            &[&from, &to],
        )
        .await?
        .get(0);
    Ok(u64::try_from(n)?)
}
