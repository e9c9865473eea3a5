//! The soak's results: the per-minute table (printed as the run goes) and
//! the summary (memory plateau and slope per process, loss, delivery).

use std::fmt::Write as _;

use serde::Serialize;

use super::check::EpochCheck;
use super::memory::{self, Sample, Trend};
use crate::control::Activity;
use crate::hist::{Histogram, Quantiles};
use crate::tally::Accounting;

/// One process's memory over one life (a restarted process has two).
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub name: String,
    pub pid: u32,
    pub samples: Vec<Sample>,
}

/// The verdict on one [`Series`].
#[derive(Clone, Debug, Serialize)]
pub struct MemoryVerdict {
    pub name: String,
    pub pid: u32,
    /// Seconds after the run began that the life's samples span.
    pub from_s: f64,
    pub to_s: f64,
    pub first_mib: f64,
    pub last_mib: f64,
    pub peak_mib: f64,
    /// `None` when too few samples follow the warm-up.
    pub trend: Option<Trend>,
}

impl MemoryVerdict {
    pub fn of(series: &Series, warmup_s: f64) -> MemoryVerdict {
        let mibs = series.samples.iter().map(|s| s.mib);
        MemoryVerdict {
            name: series.name.clone(),
            pid: series.pid,
            from_s: series.samples.first().map_or(0.0, |s| s.at_s),
            to_s: series.samples.last().map_or(0.0, |s| s.at_s),
            first_mib: series.samples.first().map_or(0.0, |s| s.mib),
            last_mib: series.samples.last().map_or(0.0, |s| s.mib),
            peak_mib: mibs.fold(0.0, f64::max),
            trend: memory::trend(&series.samples, warmup_s),
        }
    }
}

/// One row of the per-minute table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Minute {
    /// Minutes since the run began; memory was read then.
    pub minute: u32,
    /// RSS per process, MiB, in [`Soak::processes`] order.
    pub rss_mib: Vec<f64>,
    pub redis_used_mib: f64,
    /// The 1-minute load average of the machine.
    pub load: f64,
    /// The check of the minute before this one.
    pub check: EpochCheck,
    pub activity: Activity,
    /// Latency of the events received in the minute before.
    pub e2e_ms: Option<Quantiles>,
}

/// The gateway restart halfway through.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Restart {
    /// Seconds after the run began.
    pub at_s: f64,
    pub old_pid: u32,
    pub new_pid: u32,
    /// SIGTERM → exited, and SIGTERM → healthy again, seconds.
    pub stop_s: f64,
    pub down_s: f64,
    /// Whether the old process exited by itself with status 0.
    pub clean_exit: bool,
}

/// A gateway's own counters (`/metrics`) over one life.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GatewayCounters {
    pub name: String,
    pub connections_total: f64,
    pub slow_consumer_disconnects: f64,
    pub lag_resumes: f64,
    pub heartbeat_timeouts: f64,
    pub history_lost: f64,
}

/// The whole soak.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Soak {
    pub base_clients: usize,
    pub churn_clients: usize,
    pub warmup_s: f64,
    pub sample_every_s: f64,
    /// The processes of the table's RSS columns.
    pub processes: Vec<String>,
    pub prints: u64,
    pub feed_s: f64,
    pub minutes: Vec<Minute>,
    pub restart: Option<Restart>,
    pub gateways: Vec<GatewayCounters>,
    pub memory: Vec<MemoryVerdict>,
    /// Every reading, per process life (and Redis's `used_memory` last).
    pub series: Vec<Series>,
    /// Redis's `used_memory`.
    pub redis_used: Option<MemoryVerdict>,
    /// Over every epoch.
    pub events: u64,
    #[serde(flatten)]
    pub accounting: Accounting,
    pub switches: u64,
    pub switches_unexplained: u64,
    pub switch_events: u64,
    pub late: u64,
    pub retroactive: u64,
    pub trimmed_epochs: u64,
    /// Client-minutes reported before the client was live again.
    pub unsettled: u64,
    pub activity: Activity,
    pub e2e_ms: Option<Quantiles>,
    #[serde(skip)]
    pub e2e: Histogram,
}

/// Adds `b`'s counts to `a`.
pub fn add_activity(a: &mut Activity, b: &Activity) {
    a.connects += b.connects;
    a.connect_failures += b.connect_failures;
    a.leaves += b.leaves;
    a.drops += b.drops;
    a.refreshes += b.refreshes;
    for (why, n) in &b.server_closes {
        *a.server_closes.entry(why.clone()).or_default() += n;
    }
    a.filter_ops += b.filter_ops;
    a.resubscribes += b.resubscribes;
    a.resumes += b.resumes;
    a.resume_ms_max = a.resume_ms_max.max(b.resume_ms_max);
    a.resume_ms_total += b.resume_ms_total;
    a.history_lost += b.history_lost;
    a.errors += b.errors;
    a.connected = b.connected;
}

impl Soak {
    /// Adds one minute's check and activity to the totals.
    pub fn add(&mut self, row: Minute, e2e: &Histogram) {
        let c = &row.check;
        self.events += c.events;
        let (a, b) = (&mut self.accounting, &c.accounting);
        a.expected += b.expected;
        a.delivered += b.delivered;
        a.lost += b.lost;
        a.unexpected += b.unexpected;
        a.duplicates += b.duplicates;
        a.mismatched_clients += b.mismatched_clients;
        self.switches += c.switches;
        self.switches_unexplained += c.switches_unexplained;
        self.switch_events += c.switch_events;
        self.late += c.late;
        self.retroactive += c.retroactive;
        self.trimmed_epochs += u64::from(c.trimmed);
        self.unsettled += c.unsettled;
        add_activity(&mut self.activity, &row.activity);
        self.e2e.merge(e2e);
        self.minutes.push(row);
    }

    /// Nothing lost, duplicated, unexplained or late in any minute.
    pub fn clean(&self) -> bool {
        self.minutes.iter().all(|m| m.check.clean())
    }

    /// The table's heading.
    pub fn heading(&self) -> String {
        let mut out = String::from("  min");
        for p in &self.processes {
            let _ = write!(out, " {:>9}", short(p));
        }
        let _ = write!(
            out,
            " {:>7} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} {:>9} {:>5} {:>6} {:>15}",
            "r.used",
            "load",
            "live",
            "conn",
            "left",
            "filt",
            "srv",
            "events",
            "delivered",
            "lost",
            "faults",
            "e2e p50/p99 ms"
        );
        out + "\n  (RSS and Redis used_memory in MiB; live: clients live; conn, left, filt, srv: \
                 connections opened, left by clients, filter ops, closed by a server, in the \
                 minute; events .. faults: the minute before, checked against the stream)"
    }

    /// One row of the table.
    pub fn row(&self, m: &Minute) -> String {
        let mut out = format!("{:>5}", m.minute);
        for rss in &m.rss_mib {
            let _ = write!(out, " {rss:>9.1}");
        }
        let a = &m.activity;
        let c = &m.check;
        let faults = c.accounting.unexpected
            + c.accounting.duplicates
            + c.accounting.mismatched_clients
            + c.switches_unexplained
            + c.late
            + c.retroactive
            + u64::from(c.trimmed);
        let e2e = m
            .e2e_ms
            .map_or("-".into(), |q| format!("{:.1}/{:.0}", q.p50, q.p99));
        let _ = write!(
            out,
            " {:>7.1} {:>5.2} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} {:>9} {:>5} {:>6} {:>15}",
            m.redis_used_mib,
            m.load,
            a.connected,
            a.connects,
            a.leaves + a.drops,
            a.filter_ops,
            a.server_closes.values().sum::<u64>(),
            c.events,
            c.accounting.delivered + c.switch_events,
            c.accounting.lost,
            faults,
            e2e
        );
        out
    }

    /// The summary printed at the end.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "soak: {} prints in {:.0} s; {} base + {} churning clients on {} gateways",
            self.prints,
            self.feed_s,
            self.base_clients,
            self.churn_clients,
            self.gateways.len().min(2)
        );
        let _ = writeln!(out, "{}", self.heading());
        for m in &self.minutes {
            let _ = writeln!(out, "{}", self.row(m));
        }
        if let Some(r) = &self.restart {
            let _ = writeln!(
                out,
                "restart: gateway-b (pid {} → {}) at {:.0} s: stopped in {:.1} s ({}), healthy again after {:.1} s",
                r.old_pid,
                r.new_pid,
                r.at_s,
                r.stop_s,
                if r.clean_exit { "exit 0" } else { "NOT a clean exit" },
                r.down_s
            );
        }
        let a = &self.activity;
        let closes: Vec<String> = a
            .server_closes
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        let _ = writeln!(
            out,
            "clients: {} connections opened ({} failed attempts), {} left with a close, {} dropped, {} refreshed; \
             {} filter ops; closed by a server: {}; {} subscribes again after `unavailable`; \
             {} resumed by cursor after a server close (max {:.1} s, mean {:.1} s); \
             {} lost-history statuses, {} error frames",
            a.connects,
            a.connect_failures,
            a.leaves,
            a.drops,
            a.refreshes,
            a.filter_ops,
            if closes.is_empty() { "none".into() } else { closes.join(", ") },
            a.resubscribes,
            a.resumes,
            a.resume_ms_max as f64 / 1000.0,
            a.resume_ms_total as f64 / 1000.0 / a.resumes.max(1) as f64,
            a.history_lost,
            a.errors
        );
        for g in &self.gateways {
            let _ = writeln!(
                out,
                "  {:<22} connections {:>6.0}  slow-consumer disconnects {:.0}  lag resumes {:.0}  heartbeat timeouts {:.0}  history lost {:.0}",
                g.name, g.connections_total, g.slow_consumer_disconnects, g.lag_resumes,
                g.heartbeat_timeouts, g.history_lost
            );
        }
        let acc = &self.accounting;
        let _ = writeln!(
            out,
            "delivery: {} events committed; {} delivered to clients ({} under a filter against {} expected, {} in {} filter switches); \
             lost {}, unexpected {}, duplicates {}, mismatched client-minutes {}, unexplained switches {}, late {}, retroactive {}, trimmed minutes {} \
             (client-minutes reported before the client was live again: {}): {}",
            self.events,
            acc.delivered + self.switch_events,
            acc.delivered,
            acc.expected,
            self.switch_events,
            self.switches,
            acc.lost,
            acc.unexpected,
            acc.duplicates,
            acc.mismatched_clients,
            self.switches_unexplained,
            self.late,
            self.retroactive,
            self.trimmed_epochs,
            self.unsettled,
            if self.clean() { "NOTHING LOST" } else { "FAULTS (see above)" }
        );
        if let Some(q) = &self.e2e_ms {
            let _ = writeln!(
                out,
                "e2e ms (live events, not replays after a reconnect): p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.0}",
                q.p50, q.p99, q.p999, q.max
            );
        }
        let _ = writeln!(
            out,
            "memory after a {:.0} s warm-up (slope: least squares over samples every {:.0} s; plateau: median of the life's second half; \
             late slope: over its last third):",
            self.warmup_s, self.sample_every_s
        );
        for v in self.memory.iter().chain(&self.redis_used) {
            let _ = writeln!(out, "  {}", verdict_line(v));
        }
        out
    }
}

fn verdict_line(v: &MemoryVerdict) -> String {
    let life = format!(
        "{:<24} {:>5.0}–{:<5.0}s {:>7.1} → {:>7.1} MiB (peak {:>7.1})",
        v.name, v.from_s, v.to_s, v.first_mib, v.last_mib, v.peak_mib
    );
    match &v.trend {
        Some(t) => format!(
            "{life}  plateau {:>7.1} MiB  slope {:>+7.2} ± {:.2} MiB/h (flat under {:.1}): {}; late slope {}",
            t.plateau_mib,
            t.slope_mib_per_h,
            t.slope_stderr,
            t.threshold,
            if t.levelled {
                "levelled off"
            } else {
                "STILL GROWING"
            },
            t.late_slope_mib_per_h
                .map_or("-".into(), |b| format!("{b:+.2} MiB/h"))
        ),
        None => format!("{life}  too short after the warm-up for a slope"),
    }
}

/// A column heading for a process name.
fn short(name: &str) -> &str {
    match name {
        "redis-server" => "redis",
        other => other,
    }
}

/// The merged latency of several reports.
pub fn quantiles(h: &Histogram) -> Option<Quantiles> {
    (h.count() > 0).then(|| h.quantiles())
}
