//! The server half (`bench --server-only`): the whole flowtape server in one
//! process, on Redis, driven by the harness.
//!
//! It runs a processor (unless `--no-process`) and a gateway (unless
//! `--no-gateway`) as one [`Node`], exactly as `flowtape-server run` does,
//! and on each `feed` command runs the sim into ingest through
//! [`Aligned`](super::source::Aligned) (see [`source`](super::source) for why). Everything this process does is
//! server work, so its CPU and memory are the server's.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::control::{
    self, BucketHistogram, FeedSpec, GatewayStats, ServerCommand, ServerReply, ServerStats,
};
use super::source::{calibrated_sim, Aligned, Limit};
use super::BenchError;
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::feed::{run_paced, Pace, SimMarket};
use flowtape_server::gateway::{GatewayConfig, GatewayMetrics};
use flowtape_server::node::{Node, NodeConfig};
use flowtape_server::pipeline::{run_ingest, ProcessorConfig};

/// Batches in flight between the feed and ingest (as in a node).
const FEED_CHANNEL_BATCHES: usize = 64;

/// How much of the streams Redis keeps (`MAXLEN ~`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Flow events.
    pub flow_max_len: u64,
    /// Prints per raw shard.
    pub raw_max_len: u64,
}

impl Retention {
    /// Raw and flow streams kept whole for the run: nothing may be trimmed
    /// before a window's loss check reads it.
    pub const KEEP_ALL: Retention = Retention {
        flow_max_len: 100_000_000,
        raw_max_len: 100_000_000,
    };
}

/// How the server half runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub redis: String,
    pub namespace: String,
    pub shards: u16,
    /// Durable mode's replica count (0: off).
    pub wait_replicas: u32,
    pub listen: SocketAddr,
    pub max_connections: usize,
    /// Run a processor (without one this half is the feed and ingest only).
    pub process: bool,
    pub gateway: bool,
    pub retention: Retention,
    /// The gateway's coalescing interval, if not the default.
    pub coalesce_ms: Option<u64>,
}

/// The bus configuration both the server half and the harness's checker use.
pub fn bus_config(
    namespace: &str,
    shards: u16,
    wait_replicas: u32,
    retention: Retention,
) -> BusConfig {
    BusConfig {
        namespace: namespace.to_string(),
        shards,
        wait_replicas,
        raw_max_len: retention.raw_max_len,
        flow_max_len: retention.flow_max_len,
        flow_max_age: Duration::ZERO,
        ..BusConfig::default()
    }
}

/// Serves the harness's commands until `quit`, stdin closing, or a signal.
pub async fn serve(opts: ServerOptions) -> Result<(), BenchError> {
    super::check_open_files(opts.max_connections as u64 + 64)?;
    let bus = Bus::redis(
        &opts.redis,
        bus_config(
            &opts.namespace,
            opts.shards,
            opts.wait_replicas,
            opts.retention,
        ),
    )
    .await?;
    let config = NodeConfig {
        feed: None,
        process: opts
            .process
            .then(|| ProcessorConfig::new(format!("bench-{}", std::process::id()))),
        gateway: opts.gateway.then(|| GatewayConfig {
            listen: opts.listen,
            max_connections: opts.max_connections,
            coalesce: opts
                .coalesce_ms
                .map_or(GatewayConfig::default().coalesce, Duration::from_millis),
            ..GatewayConfig::default()
        }),
    };
    let node = Node::start(bus.clone(), config).await?;
    control::reply(&ServerReply::Ready {
        gateway: node.gateway_addr(),
        pid: std::process::id(),
    })?;
    let result = tokio::select! {
        r = command_loop(&bus, &node) => r,
        _ = flowtape_server::shutdown::signal() => Ok(()),
    };
    node.shutdown();
    node.wait().await;
    result
}

async fn command_loop(bus: &Bus, node: &Node) -> Result<(), BenchError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = control::next_command::<ServerCommand>(&mut lines).await? {
        let answer = match command {
            Ok(ServerCommand::Quit) => return Ok(()),
            Ok(ServerCommand::Stats) => ServerReply::Stats(Box::new(stats(node))),
            Ok(ServerCommand::Feed(spec)) => match feed(bus, node, &spec).await {
                Ok((prints, seconds)) => ServerReply::Fed { prints, seconds },
                Err(e) => ServerReply::Error {
                    message: e.to_string(),
                },
            },
            Err(e) => ServerReply::Error {
                message: format!("unreadable command: {e}"),
            },
        };
        control::reply(&answer)?;
    }
    Ok(())
}

/// Runs one feed into ingest and waits until ingest has appended all of it.
async fn feed(bus: &Bus, node: &Node, spec: &FeedSpec) -> Result<(u64, f64), BenchError> {
    let limit = match (spec.prints, spec.seconds) {
        (Some(n), _) => Limit::Prints(n),
        (None, Some(s)) if s.is_finite() && s > 0.0 => Limit::Duration(Duration::from_secs_f64(s)),
        _ => {
            return Err(BenchError::Config(
                "a feed needs a positive duration or a print count".into(),
            ))
        }
    };
    let window = Duration::from_secs_f64(spec.seconds.unwrap_or(10.0).clamp(1.0, 60.0));
    let sim = calibrated_sim(spec.sim_seed, spec.rate, window)?;
    let source = Aligned::new(SimMarket::new(sim)?, limit);
    let pace = if spec.fast {
        Pace::AsFastAsPossible
    } else {
        Pace::RealTime { speed: 1.0 }
    };
    let (tx, rx) = mpsc::channel(FEED_CHANNEL_BATCHES);
    let ingest = tokio::spawn(run_ingest(
        bus.clone(),
        rx,
        node.shutdown_signal(),
        node.stats.ingest.clone(),
    ));
    let stop = node.shutdown_signal();
    let started = Instant::now();
    let fed = run_paced(source, pace, tx, async move { stop.wait().await }).await;
    // The feed dropped its sender: ingest appends what is queued and ends.
    if let Err(e) = ingest.await {
        return Err(BenchError::Config(format!("ingest task failed: {e}")));
    }
    Ok((fed.prints, started.elapsed().as_secs_f64()))
}

fn stats(node: &Node) -> ServerStats {
    let s = &node.stats;
    ServerStats {
        ingested: s.ingest.prints.load(Ordering::Relaxed),
        processed: s.process.prints.load(Ordering::Relaxed),
        events: s.process.events.load(Ordering::Relaxed),
        ingest_errors: s.ingest.errors.load(Ordering::Relaxed),
        process_errors: s.process.errors.load(Ordering::Relaxed),
        gateway: node.gateway_metrics().map(|m| gateway_stats(&m)),
    }
}

fn gateway_stats(m: &Arc<GatewayMetrics>) -> GatewayStats {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    // The histograms' buckets are only exposed through the Prometheus text.
    let text = m.render();
    GatewayStats {
        connections: get(&m.connections),
        events_in: get(&m.events_in),
        events_out: get(&m.events_out),
        events_filtered: get(&m.events_filtered),
        batches_out: get(&m.batches_out),
        slow_consumer_disconnects: get(&m.slow_consumer_disconnects),
        lag_resumes: get(&m.lag_resumes),
        catching_up: get(&m.catching_up),
        gap_repairs: get(&m.gap_repairs),
        stream_to_hub: parse_histogram(&text, "flowtape_gateway_stream_to_gateway_seconds"),
        hub_to_socket: parse_histogram(&text, "flowtape_gateway_gateway_to_socket_seconds"),
    }
}

/// Reads one histogram family out of Prometheus text.
fn parse_histogram(text: &str, name: &str) -> BucketHistogram {
    let mut h = BucketHistogram::default();
    let bucket = format!("{name}_bucket{{le=\"");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&bucket) {
            // The `+Inf` bucket holds every observation: that is `count`.
            let Some((le, n)) = rest.split_once("\"} ") else {
                continue;
            };
            if let (Ok(bound), Ok(n)) = (le.parse::<f64>(), n.trim().parse()) {
                if bound.is_finite() {
                    h.bounds.push(bound);
                    h.cumulative.push(n);
                }
            }
        } else if let Some(v) = line.strip_prefix(&format!("{name}_sum ")) {
            h.sum_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix(&format!("{name}_count ")) {
            h.count = v.trim().parse().unwrap_or(0);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_histograms_are_read_from_metrics_text() {
        let m = GatewayMetrics::default();
        m.gateway_to_socket.observe(Duration::from_micros(300));
        m.gateway_to_socket.observe(Duration::from_millis(3));
        let h = parse_histogram(&m.render(), "flowtape_gateway_gateway_to_socket_seconds");
        assert_eq!(h.count, 2);
        assert_eq!(h.bounds.first(), Some(&0.0005));
        assert_eq!(h.bounds.last(), Some(&10.0));
        assert_eq!(h.cumulative.first(), Some(&1));
        assert_eq!(h.cumulative.last(), Some(&2));
        assert!((h.sum_s - 0.0033).abs() < 1e-9);
    }
}
