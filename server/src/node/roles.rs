//! A node's ingest and process roles as operators see them: each one's
//! families of `/metrics` and its `/healthz` rule (`docs/operations.md`).
//!
//! - Ingest is unhealthy when appends have been failing, with prints held,
//!   for longer than [`MAX_HELD`], or when its feed stopped by itself for
//!   any reason but reaching the end of a replay. A feed that is degraded or
//!   down upstream (and says so in its status) is a note, not a problem:
//!   ingest is doing its job, and restarting it would not bring the market
//!   back.
//! - Process is unhealthy when a shard it owns is more than
//!   [`ProcessorConfig::max_lag`] entries behind, when some shard has had no
//!   processor at all for longer than its lease time to live, or when the
//!   backlog could not be sampled for three sampling periods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::NodeStats;
use crate::feed::breaker::{BreakerState, Transitions};
use crate::feed::massive::MassiveStats;
use crate::feed::{FeedEnd, PrintSource, SourceError};
use crate::metrics::{Exposition, Health, Kind, Role};
use crate::pipeline::ProcessorConfig;
use crate::shutdown::Shutdown;
use flowtape_core::event::{Kind as EventKind, Print};
use flowtape_core::protocol::{FeedHealth, FeedStatus};

/// Ingest is unhealthy once its appends have failed, prints held, this long.
pub const MAX_HELD: Duration = Duration::from_secs(10);

/// The feed's own counters, where its kind keeps them.
pub(super) enum FeedCounters {
    /// A paced source (sim, replay): its unreadable records.
    Paced { malformed: Arc<AtomicU64> },
    /// The Massive feed: its sockets' counters and the options breaker.
    Massive(Arc<MassiveStats>),
}

impl FeedCounters {
    fn malformed(&self) -> u64 {
        match self {
            FeedCounters::Paced { malformed } => malformed.load(Ordering::Relaxed),
            FeedCounters::Massive(stats) => stats.options.malformed.load(Ordering::Relaxed),
        }
    }

    fn breaker(&self) -> Option<&Transitions> {
        match self {
            FeedCounters::Paced { .. } => None,
            FeedCounters::Massive(stats) => Some(&stats.options.breaker),
        }
    }
}

/// A paced source that also counts its unreadable records where `/metrics`
/// reads them while the feed runs (the driver's own count comes at the end).
pub(super) struct CountMalformed<S> {
    pub source: S,
    pub malformed: Arc<AtomicU64>,
}

impl<S: PrintSource> PrintSource for CountMalformed<S> {
    fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
        let next = self.source.next_print();
        if matches!(next, Some(Err(_))) {
            self.malformed.fetch_add(1, Ordering::Relaxed);
        }
        next
    }
}

/// The feed and ingest of a node.
pub(super) struct IngestRole {
    pub stats: Arc<NodeStats>,
    pub status: watch::Receiver<FeedStatus>,
    pub counters: FeedCounters,
    /// The node's: a feed that stops at shutdown stopped normally.
    pub shutdown: Shutdown,
}

fn feed_state_name(state: FeedHealth) -> &'static str {
    match state {
        FeedHealth::Ok => "ok",
        FeedHealth::Degraded => "degraded",
        FeedHealth::Down => "down",
    }
}

impl Role for IngestRole {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn render(&self, out: &mut Exposition) {
        let status = self.status.borrow().clone();
        out.labelled(
            "flowtape_ingest_feed_state",
            Kind::Gauge,
            "The feed's state as its ingest publishes it (1 = current).",
            "state",
            [FeedHealth::Ok, FeedHealth::Degraded, FeedHealth::Down]
                .map(|s| (feed_state_name(s), u8::from(status.state == s))),
        );
        out.gauge(
            "flowtape_ingest_feed_state_since_seconds",
            "When the feed entered its current state (Unix time).",
            status.since.max(0) as f64 / 1000.0,
        );
        let breaker = self.counters.breaker();
        out.labelled(
            "flowtape_ingest_breaker_transitions_total",
            Kind::Counter,
            "Changes of state of the feed's circuit breaker, by the state entered (live feeds only).",
            "to",
            BreakerState::ALL.map(|s| (s.name(), breaker.map_or(0, |b| b.into_state(s)))),
        );
        let ingest = &self.stats.ingest;
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        out.counter(
            "flowtape_ingest_prints_total",
            "Prints appended to the raw streams.",
            get(&ingest.prints),
        );
        out.counter(
            "flowtape_ingest_appends_total",
            "Appends to the raw streams.",
            get(&ingest.appends),
        );
        out.counter(
            "flowtape_ingest_append_errors_total",
            "Failed appends (each retried; nothing is dropped).",
            get(&ingest.errors),
        );
        out.histogram(
            "flowtape_ingest_append_seconds",
            "How long successful appends took.",
            &ingest.append_latency,
        );
        out.gauge(
            "flowtape_ingest_prints_held",
            "Prints of the append being retried: not written yet, the feed waits behind them.",
            get(&ingest.held),
        );
        out.counter(
            "flowtape_ingest_malformed_total",
            "Records or frames from the feed that could not be read (skipped).",
            self.counters.malformed(),
        );
    }

    fn health(&self) -> Health {
        let mut health = Health::default();
        let status = self.status.borrow().clone();
        match status.state {
            FeedHealth::Ok => {}
            state => health.notes.push(format!(
                "feed {}: {}",
                feed_state_name(state),
                status.reason
            )),
        }
        let ingest = &self.stats.ingest;
        let held = ingest.held.load(Ordering::Relaxed);
        let failing = ingest.held_for();
        if let Some(failing) = failing.filter(|d| *d > MAX_HELD) {
            health.problems.push(format!(
                "redis: appends failing for {}s, {held} prints held",
                failing.as_secs()
            ));
        }
        let end = self
            .stats
            .feed
            .lock()
            .ok()
            .and_then(|f| f.as_ref().map(|f| f.end));
        match end {
            Some(FeedEnd::Exhausted) | None => {}
            Some(FeedEnd::Shutdown) if self.shutdown.is_triggered() => {}
            Some(end) => health.problems.push(format!("the feed stopped: {end:?}")),
        }
        health.facts.insert("feed".into(), json!(status));
        health.facts.insert("prints_held".into(), held.into());
        health.facts.insert(
            "appends_failing_s".into(),
            json!(failing.map(|d| d.as_secs_f64())),
        );
        health
    }
}

/// The processor of a node.
pub(super) struct ProcessRole {
    pub stats: Arc<crate::pipeline::ProcessStats>,
    pub config: ProcessorConfig,
    pub started: Instant,
}

impl Role for ProcessRole {
    fn name(&self) -> &'static str {
        "process"
    }

    fn render(&self, out: &mut Exposition) {
        let p = &self.stats;
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        out.counter(
            "flowtape_process_prints_total",
            "Raw prints processed and acknowledged.",
            get(&p.prints),
        );
        out.labelled(
            "flowtape_process_events_total",
            Kind::Counter,
            "Flow events committed, by kind.",
            "kind",
            EventKind::ALL.map(|k| (k.name(), p.events_of(k))),
        );
        for (name, help, v) in [
            (
                "flowtape_process_duplicates_skipped_total",
                "Events not committed again after a take-over (the guard had them).",
                &p.duplicates_skipped,
            ),
            (
                "flowtape_process_malformed_total",
                "Raw entries that could not be decoded (skipped).",
                &p.malformed,
            ),
            (
                "flowtape_process_trimmed_total",
                "Raw prints trimmed from their stream before they were processed (lost).",
                &p.trimmed,
            ),
            (
                "flowtape_process_takeovers_total",
                "Shard leases taken: at start, and from a processor that stopped.",
                &p.takeovers,
            ),
            (
                "flowtape_process_errors_total",
                "Failed bus (Redis) operations of the shard workers (each retried).",
                &p.errors,
            ),
        ] {
            out.counter(name, help, get(v));
        }
        out.histogram(
            "flowtape_process_commit_seconds",
            "How long commits of flow events took.",
            &p.commit_latency,
        );
        out.gauge(
            "flowtape_process_shards_owned",
            "Shards this processor holds the lease of.",
            p.owned().len(),
        );
        let backlog = p.backlog.view();
        out.gauge(
            "flowtape_process_shards_unowned",
            "Shards no processor held a lease on at the last sample.",
            backlog.unowned.len(),
        );
        out.gauge(
            "flowtape_process_backlog_age_seconds",
            "How long ago the shards' backlog was last sampled (-1: never).",
            backlog.age.map_or(-1.0, |a| a.as_secs_f64()),
        );
        out.labelled(
            "flowtape_process_shard_lag",
            Kind::Gauge,
            "Raw prints of the shard not yet read by any processor (every shard, as last sampled).",
            "shard",
            backlog
                .shards
                .iter()
                .filter_map(|b| Some((b.shard, b.lag?))),
        );
        out.labelled(
            "flowtape_process_shard_pending",
            Kind::Gauge,
            "Raw prints of the shard read and not yet acknowledged (every shard, as last sampled).",
            "shard",
            backlog.shards.iter().map(|b| (b.shard, b.pending)),
        );
    }

    fn health(&self) -> Health {
        let mut health = Health::default();
        let owned = self.stats.owned();
        let backlog = self.stats.backlog.view();
        // Three sampling periods without a sample: the backlog is unknown.
        let stale = self.config.sample_every * 3;
        let fresh = match backlog.age {
            Some(age) => age <= stale,
            None => self.started.elapsed() <= stale,
        };
        if !fresh {
            health.problems.push(format!(
                "backlog not sampled for {}s: {}",
                backlog.age.unwrap_or(self.started.elapsed()).as_secs(),
                backlog.error.as_deref().unwrap_or("no sample yet")
            ));
        }
        for b in backlog.shards.iter().filter(|b| owned.contains(&b.shard)) {
            if let Some(lag) = b.lag.filter(|l| *l > self.config.max_lag) {
                health.problems.push(format!(
                    "shard {}: {lag} prints not read (max_lag {})",
                    b.shard, self.config.max_lag
                ));
            }
        }
        for (shard, for_) in &backlog.unowned {
            if *for_ > self.config.lease_ttl {
                health.problems.push(format!(
                    "shard {shard}: no processor for {}s",
                    for_.as_secs()
                ));
            }
        }
        if owned.is_empty() && health.problems.is_empty() {
            health
                .notes
                .push("standing by: other processors own every shard".into());
        }
        let max_lag = backlog
            .shards
            .iter()
            .filter(|b| owned.contains(&b.shard))
            .filter_map(|b| b.lag)
            .max();
        health.facts.insert(
            "shards_owned".into(),
            json!(owned.iter().collect::<Vec<_>>()),
        );
        health.facts.insert("lag".into(), json!(max_lag));
        health
            .facts
            .insert("max_lag".into(), self.config.max_lag.into());
        health
    }
}
