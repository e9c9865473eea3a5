//! The results of a run: the JSON document (`--json PATH`) and the table.
//!
//! Every scenario writes the same top-level keys (`scenario`, `e2e_ms`,
//! `delivered`, `delivered_per_s`, `lost`, `server_cpu_pct`,
//! `server_rss_mib`, `redis_used_memory_mib`, …), taken from its headline
//! window ([`Window`]); scenarios add their own section (`capacity`, `idle`,
//! `firehose`). Latencies are milliseconds; CPU is percent of one core.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::control::BucketHistogram;
use super::hist::Quantiles;
use super::soak::report::Soak;
use super::tally::Accounting;

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub machine: Machine,
    pub settings: Settings,
    #[serde(flatten)]
    pub window: Window,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Window>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firehose: Option<Firehose>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<Soak>,
}

/// What the run was asked to do.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub rate: f64,
    pub duration_s: f64,
    pub clients: usize,
    pub premium_clients: usize,
    pub watchlist: usize,
    pub shards: u16,
    pub sim_seed: u64,
    pub client_seed: u64,
    /// `started` (a private redis-server) or the URL given.
    pub redis: String,
}

/// The machine the run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub redis_version: String,
}

impl Machine {
    pub fn describe(redis_version: String) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let memory_gib = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(0.0, |kb| kb / MIB);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            redis_version,
        }
    }
}

/// One measured window: a paced feed with clients attached.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    /// Target prints per second.
    pub rate: f64,
    /// Prints handed to ingest, and over how long.
    pub prints: u64,
    pub feed_s: f64,
    pub prints_per_s: f64,
    /// Flow events committed in the window.
    pub events: u64,
    pub e2e_ms: Option<Quantiles>,
    /// `single` and `block` events; `sweep` and `split` events wait out the sweep window.
    pub e2e_single_block_ms: Option<Quantiles>,
    pub e2e_sweep_split_ms: Option<Quantiles>,
    /// Per stage: `feed_to_stream`, `stream_to_client`, `decode` (client side,
    /// log-linear) and `gateway_stream_to_hub`, `gateway_hub_to_socket`
    /// (the gateway's own buckets: quantiles are bucket bounds).
    pub stages_ms: BTreeMap<String, Quantiles>,
    pub delivered: u64,
    pub delivered_per_s: f64,
    #[serde(flatten)]
    pub accounting: Accounting,
    pub frames: u64,
    pub batches_out: u64,
    pub slow_consumer_disconnects: u64,
    pub lag_resumes: u64,
    pub server_cpu_pct: f64,
    pub server_rss_mib: f64,
    pub client_cpu_pct: f64,
    pub client_rss_mib: f64,
    pub redis_cpu_pct: f64,
    pub redis_used_memory_mib: f64,
    /// Whether everything fed was processed and delivered within the drain
    /// timeout (2 min; 10 for firehose) after the feed ended. When false,
    /// `lost` includes events still in flight at the deadline.
    pub drained: bool,
    /// Whether the window met the capacity criteria (capacity steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<bool>,
}

/// The capacity search's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// Highest delivered messages per second of a step that held.
    pub best_delivered_per_s: f64,
    pub best_rate: f64,
    pub p99_limit_ms: f64,
    /// Why the search stopped.
    pub stopped: String,
}

/// Gateway memory with idle clients.
#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    pub clients: usize,
    pub connected: u64,
    pub server_rss_before_mib: f64,
    pub server_rss_after_mib: f64,
    pub server_kib_per_connection: f64,
    pub client_kib_per_connection: f64,
}

/// Ingest and processing throughput with no clients.
#[derive(Clone, Debug, Serialize)]
pub struct Firehose {
    pub prints: u64,
    /// Feed start → last print appended to the raw streams.
    pub ingest_s: f64,
    pub ingest_prints_per_s: f64,
    /// Feed start → last print processed into the flow stream.
    pub total_s: f64,
    pub prints_per_s: f64,
    pub events: u64,
    pub redis_commands_per_print: f64,
    /// Per command, as Redis counts calls (including those made by scripts).
    pub redis_calls_per_print: BTreeMap<String, f64>,
}

/// Quantiles of a gateway bucket histogram (the difference of two
/// cumulative snapshots), each reported as the upper bound of its bucket.
pub fn bucket_quantiles(after: &BucketHistogram, before: &BucketHistogram) -> Quantiles {
    let delta: Vec<u64> = after
        .cumulative
        .iter()
        .enumerate()
        .map(|(i, c)| c.saturating_sub(before.cumulative.get(i).copied().unwrap_or(0)))
        .collect();
    let count = after.count.saturating_sub(before.count);
    // Beyond the last finite bound, a quantile is infinite (JSON null).
    let at = |q: f64| -> f64 {
        let rank = ((q * count as f64).ceil() as u64).max(1);
        delta
            .iter()
            .position(|c| *c >= rank)
            .and_then(|i| after.bounds.get(i))
            .map_or(f64::INFINITY, |b| b * 1000.0)
    };
    let mean = if count > 0 {
        (after.sum_s - before.sum_s) / count as f64 * 1000.0
    } else {
        0.0
    };
    Quantiles {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
        mean,
        count,
    }
}

fn q(q: &Option<Quantiles>) -> String {
    match q {
        Some(q) => format!(
            "p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n={})",
            q.p50, q.p99, q.p999, q.max, q.count
        ),
        None => "-".into(),
    }
}

impl Window {
    fn table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  feed            {:.0} prints/s target, {} prints in {:.1} s = {:.0}/s, {} events",
            self.rate, self.prints, self.feed_s, self.prints_per_s, self.events
        );
        let _ = writeln!(out, "  e2e ms          {}", q(&self.e2e_ms));
        let _ = writeln!(out, "   single/block   {}", q(&self.e2e_single_block_ms));
        let _ = writeln!(out, "   sweep/split    {}", q(&self.e2e_sweep_split_ms));
        for (stage, v) in &self.stages_ms {
            let _ = writeln!(out, "   {stage:<22} mean {:.3}  {}", v.mean, q(&Some(*v)));
        }
        let a = &self.accounting;
        if !self.drained {
            let _ = writeln!(
                out,
                "  NOT DRAINED     the system had not caught up 2 min after the feed ended"
            );
        }
        let _ = writeln!(
            out,
            "  delivered       {} ({:.0} msgs/s in {} frames); expected {}; lost {}; unexpected {}; duplicates {}; mismatched clients {}",
            self.delivered, self.delivered_per_s, self.frames, a.expected, a.lost, a.unexpected, a.duplicates, a.mismatched_clients
        );
        let _ = writeln!(
            out,
            "  clients         disconnected {}; slow-consumer disconnects {}; lag resumes {}; batch frames {}",
            a.disconnected_clients, self.slow_consumer_disconnects, self.lag_resumes, self.batches_out
        );
        let _ = write!(
            out,
            "  cpu %           server {:.0}  clients {:.0}  redis {:.0}",
            self.server_cpu_pct, self.client_cpu_pct, self.redis_cpu_pct
        );
        if self.delivered > 0 {
            // CPU over the feed, per message delivered in the window.
            let per_msg = |pct: f64| pct / 100.0 * self.feed_s * 1e6 / self.delivered as f64;
            let _ = write!(
                out,
                "  (per delivered message: server {:.1} µs, clients {:.1} µs)",
                per_msg(self.server_cpu_pct),
                per_msg(self.client_cpu_pct)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  memory MiB      server peak {:.1}  clients {:.1}  redis used {:.1}",
            self.server_rss_mib, self.client_rss_mib, self.redis_used_memory_mib
        );
    }
}

impl Report {
    /// The human-readable table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "flowtape bench: {} on {} cpus ({}), {:.0} GiB, Linux {}, Redis {}",
            self.scenario, m.cpus, m.cpu_model, m.memory_gib, m.kernel, m.redis_version
        );
        for (i, step) in self.steps.iter().enumerate() {
            let held = match step.held {
                Some(true) => "held",
                Some(false) => "FAILED",
                None => "",
            };
            let _ = writeln!(out, "step {} at {:.0} prints/s: {held}", i + 1, step.rate);
            step.table(&mut out);
        }
        if let Some(c) = &self.capacity {
            let _ = writeln!(
                out,
                "capacity: {:.0} delivered msgs/s held (at {:.0} prints/s, p99 ≤ {} ms, no loss); stopped: {}",
                c.best_delivered_per_s, c.best_rate, c.p99_limit_ms, c.stopped
            );
        } else if let Some(i) = &self.idle {
            let _ = writeln!(
                out,
                "idle: {} of {} clients connected; gateway RSS {:.1} → {:.1} MiB = {:.2} KiB per connection (clients {:.2} KiB each); redis {:.1} MiB",
                i.connected, i.clients, i.server_rss_before_mib, i.server_rss_after_mib,
                i.server_kib_per_connection, i.client_kib_per_connection, self.window.redis_used_memory_mib
            );
        } else if let Some(soak) = &self.soak {
            out.push_str(&soak.summary());
        } else if let Some(f) = &self.firehose {
            let _ = writeln!(
                out,
                "firehose: {} prints: ingest {:.0}/s ({:.2} s), into the flow stream {:.0}/s ({:.2} s), {} events; \
                 redis {:.2} commands/print; server cpu {:.0}%, redis cpu {:.0}%, redis used {:.1} MiB",
                f.prints, f.ingest_prints_per_s, f.ingest_s, f.prints_per_s, f.total_s, f.events,
                f.redis_commands_per_print, self.window.server_cpu_pct, self.window.redis_cpu_pct,
                self.window.redis_used_memory_mib
            );
            let calls: Vec<String> = f
                .redis_calls_per_print
                .iter()
                .map(|(k, v)| format!("{k} {v:.3}"))
                .collect();
            let _ = writeln!(out, "  redis calls per print: {}", calls.join(", "));
        } else {
            self.window.table(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_bucket_deltas_give_bucket_bounds() {
        let bounds = vec![0.0005, 0.001, 0.0025];
        let before = BucketHistogram {
            bounds: bounds.clone(),
            cumulative: vec![10, 10, 10],
            sum_s: 0.001,
            count: 10,
        };
        let after = BucketHistogram {
            bounds,
            cumulative: vec![10, 60, 109],
            sum_s: 0.101,
            count: 110,
        };
        let q = bucket_quantiles(&after, &before);
        assert_eq!(q.count, 100);
        assert_eq!((q.p50, q.p99), (1.0, 2.5));
        assert!(q.p999.is_infinite());
        assert!((q.mean - 1.0).abs() < 1e-9);
    }
}
