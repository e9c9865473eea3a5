//! Export rate of `flowtape tail --since … --until …`: how many events a
//! second tail reads by history pages from a real gateway and prints as
//! NDJSON. Starts a private `redis-server`, fills its flow stream with N
//! synthetic events, starts a gateway on it (its `history_rate` as given,
//! 10 pages/s by default, the gateway's default), then runs the `flowtape`
//! binary over the whole stream twice: printing to /dev/null (the figure),
//! then into a pipe whose lines are counted (the check: exactly N).
//!
//! Run: `cargo build --release -p flowtape --bin flowtape --example tail_export`,
//! then `target/release/examples/tail_export [EVENTS [PAGES_PER_SECOND]]`
//! (default 1000000 events, 10 pages/s). The binary is taken from beside
//! the example's directory, or from `$FLOWTAPE_BIN`. Figures: docs/bench.md.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowtape_bench::redis_server::RedisServer;
use flowtape_bench::synthetic::fill;
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
fn export(bin: &PathBuf, url: &str, until: &str, sink: Sink) -> Result<(Duration, u64), Error> {
    let home = tempfile::tempdir()?;
    let stdout = match sink {
        Sink::DevNull => Stdio::from(std::fs::File::create("/dev/null")?),
        Sink::Counted => Stdio::piped(),
    };
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["tail", "--server", url, "--since", "0-0", "--until", until])
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

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let pages_per_second: f64 = args.next().map_or(Ok(10.0), |a| a.parse())?;
    let bin = flowtape_bin()?;
    let redis = RedisServer::start().await?;
    let bus = Bus::redis(
        &redis.url(),
        BusConfig {
            flow_max_len: n + 1,
            ..BusConfig::default()
        },
    )
    .await?;
    let filled = Instant::now();
    fill(&bus, n).await?;
    let bounds = bus.flow_bounds().await?;
    let last = bounds.last.ok_or("the stream is empty")?;
    eprintln!(
        "filled {n} events in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
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
    let until = last.successor().to_string();
    let run = |sink| tokio::task::block_in_place(|| export(&bin, &url, &until, sink));
    let (took, _) = run(Sink::DevNull)?;
    println!(
        "tail --since --until > /dev/null: {n} events in {:.2} s: {:.0} events/s \
         (history_rate {pages_per_second} pages/s, pages of 1000)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let (took, lines) = run(Sink::Counted)?;
    println!(
        "tail --since --until | count: {lines} lines in {:.2} s: {:.0} events/s",
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64()
    );
    gateway.shutdown();
    gateway.wait().await;
    if lines != n {
        return Err(format!("printed {lines} events, the stream holds {n}").into());
    }
    Ok(())
}
