//! Processing: raw shard streams → flow events, exactly once.
//!
//! One [`ShardWorker`] per raw shard. A worker first takes the shard's lease
//! (so exactly one processor in the deployment works a shard: sweep legs must
//! meet in one detector), then:
//! 1. takes over every pending entry of the shard (`XAUTOCLAIM`), treating
//!    those already in the guard set as reflected (count their volume, ack
//!    them) and re-detecting the rest;
//! 2. loops: read new entries, detect, commit complete events (with what
//!    their prints add to the day aggregates) with [`Bus::commit_flow`], then
//!    acknowledge their raw entries with [`Bus::ack_raw`], and prune the
//!    acknowledged ids from the guard with the next commit.
//!
//! Prints in open sweep windows stay pending until their event is committed.
//! A crash anywhere leaves the shard in a state the next owner resumes from
//! without loss or duplicate: before the commit nothing was written; after it,
//! the guard says so. On shutdown a worker commits what is complete, leaves
//! open windows pending and releases its lease so another processor can take
//! over at once.
//!
//! Beside the workers, the processor samples every shard's backlog
//! ([`super::backlog`]) for `/metrics` and `/healthz`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::backlog::{self, Backlog};
use crate::bus::{Bus, BusError, DayDelta, DayFields, NewEvent, RawEntry, ShardReader};
use crate::metrics::Histogram;
use crate::shutdown::Shutdown;
use flowtape_core::conditions::ConditionTable;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::market_date;
use flowtape_core::detect::side::{sentiment_of, side_of};
use flowtape_core::detect::{Detected, DetectionConfig, Detector};
use flowtape_core::event::{Kind, Print};
use flowtape_core::occ::Contract;

/// How a processor runs.
#[derive(Clone, Debug)]
pub struct ProcessorConfig {
    /// This processor's identity in leases and consumer names; unique per process.
    pub owner: String,
    /// Shard leases expire this long after the last renewal: how long a crashed
    /// processor's shards wait before another takes them over.
    pub lease_ttl: Duration,
    /// Most raw entries read per round trip.
    pub read_count: usize,
    pub detection: DetectionConfig,
    pub conditions: ConditionTable,
    /// `/healthz` is 503 while a shard this processor owns has more raw
    /// entries than this not yet read (prints; `XINFO GROUPS` lag).
    pub max_lag: u64,
    /// How often every shard's lease holder, lag and pending count are sampled.
    pub sample_every: Duration,
}

impl ProcessorConfig {
    pub fn new(owner: String) -> ProcessorConfig {
        ProcessorConfig {
            owner,
            lease_ttl: Duration::from_secs(5),
            read_count: 2000,
            detection: DetectionConfig::default(),
            conditions: ConditionTable::default(),
            max_lag: 10_000,
            sample_every: Duration::from_secs(5),
        }
    }
}

/// Counters of one processor (all its shards).
#[derive(Debug, Default)]
pub struct ProcessStats {
    /// Raw entries acknowledged.
    pub prints: AtomicU64,
    /// Flow events committed.
    pub events: AtomicU64,
    /// Of those, by kind (in [`Kind::ALL`]'s order).
    pub events_by_kind: [AtomicU64; 4],
    /// How long commits of flow events took.
    pub commit_latency: Histogram,
    /// Events skipped because the guard showed them committed already.
    pub duplicates_skipped: AtomicU64,
    /// Raw entries that could not be decoded.
    pub malformed: AtomicU64,
    /// Pending raw entries trimmed from a stream before they were processed.
    pub trimmed: AtomicU64,
    /// Shard leases taken (at start, and from a processor that stopped).
    pub takeovers: AtomicU64,
    /// Failed bus operations (each retried).
    pub errors: AtomicU64,
    /// The shards this processor holds the lease of now.
    pub owned: Mutex<BTreeSet<u16>>,
    /// Every shard's backlog, as last sampled.
    pub backlog: Backlog,
}

impl ProcessStats {
    /// The shards this processor owns now.
    pub fn owned(&self) -> BTreeSet<u16> {
        self.owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Events of `kind` committed so far.
    pub fn events_of(&self, kind: Kind) -> u64 {
        self.events_by_kind[kind as usize].load(Ordering::Relaxed)
    }
}

/// Marks a shard owned for as long as it lives.
struct Owning<'a> {
    stats: &'a ProcessStats,
    shard: u16,
}

impl<'a> Owning<'a> {
    fn new(stats: &'a ProcessStats, shard: u16) -> Owning<'a> {
        stats
            .owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(shard);
        Owning { stats, shard }
    }
}

impl Drop for Owning<'_> {
    fn drop(&mut self) {
        self.stats
            .owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.shard);
    }
}

/// Runs one worker per shard, and the backlog sampler, until shutdown;
/// returns when all have drained. They run on a thread of their own
/// ([`super::run_isolated`]).
pub async fn run_processor(
    bus: Bus,
    config: ProcessorConfig,
    shutdown: Shutdown,
    stats: Arc<ProcessStats>,
) {
    super::run_isolated("process", bus, move |bus| {
        run_workers(bus, config, shutdown, stats)
    })
    .await
}

async fn run_workers(
    bus: Bus,
    config: ProcessorConfig,
    shutdown: Shutdown,
    stats: Arc<ProcessStats>,
) {
    let mut workers = tokio::task::JoinSet::new();
    {
        let (bus, config, stats, shutdown) =
            (bus.clone(), config.clone(), stats.clone(), shutdown.clone());
        workers.spawn(async move { backlog::sample(bus, &stats.backlog, &config, shutdown).await });
    }
    for shard in 0..bus.config().shards {
        let worker = ShardWorker {
            bus: bus.clone(),
            shard,
            config: config.clone(),
            shutdown: shutdown.clone(),
            stats: stats.clone(),
        };
        workers.spawn(worker.run());
    }
    while workers.join_next().await.is_some() {}
}

struct ShardWorker {
    bus: Bus,
    shard: u16,
    config: ProcessorConfig,
    shutdown: Shutdown,
    stats: Arc<ProcessStats>,
}

/// Why a worker stopped owning its shard.
enum Release {
    Shutdown,
    LeaseLost,
}

impl ShardWorker {
    async fn run(self) {
        let retry = self.config.lease_ttl / 5;
        while !self.shutdown.is_triggered() {
            match self
                .bus
                .acquire_lease(self.shard, &self.config.owner, self.config.lease_ttl)
                .await
            {
                Ok(true) => match self.own().await {
                    Ok(Release::Shutdown) => break,
                    Ok(Release::LeaseLost) => {
                        tracing::warn!(shard = self.shard, "lost the shard lease")
                    }
                    Err(e) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(shard = self.shard, "shard worker error: {e}");
                    }
                },
                Ok(false) => {}
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(shard = self.shard, "cannot take the shard lease: {e}");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = self.shutdown.wait() => {}
            }
        }
        if let Err(e) = self.bus.release_lease(self.shard, &self.config.owner).await {
            tracing::warn!(shard = self.shard, "could not release the lease: {e}");
        }
    }

    /// Works the shard while the lease holds.
    ///
    /// Each turn is one commit round trip, then the acknowledgement of what
    /// it reflected sent together with the next read (on another
    /// connection), so a print that arrives meanwhile waits for neither the
    /// acknowledgement nor a read of its own.
    async fn own(&self) -> Result<Release, BusError> {
        tracing::info!(shard = self.shard, owner = %self.config.owner, "took the shard");
        self.stats.takeovers.fetch_add(1, Ordering::Relaxed);
        let _owning = Owning::new(&self.stats, self.shard);
        let mut state = ShardState::new(self);
        let mut reader = self.bus.shard_reader(self.shard).await?;
        self.recover(&mut state, &mut reader).await?;
        let consumer = self.consumer();
        let mut last_renewal = Instant::now();
        loop {
            if self.shutdown.is_triggered() {
                state.commit(self).await?;
                state.ack(self).await?;
                return Ok(Release::Shutdown);
            }
            if last_renewal.elapsed() >= self.config.lease_ttl / 3 {
                if !self
                    .bus
                    .renew_lease(self.shard, &self.config.owner, self.config.lease_ttl)
                    .await?
                {
                    return Ok(Release::LeaseLost);
                }
                last_renewal = Instant::now();
            }
            let block = state.block_for();
            let (acked, entries) = tokio::join!(
                state.ack(self),
                reader.read_new(&consumer, self.config.read_count, block)
            );
            acked?;
            for entry in entries? {
                state.push(entry);
            }
            state.flush_due();
            match state.commit(self).await {
                Err(BusError::LeaseLost(_)) => return Ok(Release::LeaseLost),
                other => other?,
            }
        }
    }

    fn consumer(&self) -> String {
        format!("{}:{}", self.config.owner, self.shard)
    }

    /// Takes over the shard's pending entries and its guard.
    async fn recover(
        &self,
        state: &mut ShardState,
        reader: &mut ShardReader,
    ) -> Result<(), BusError> {
        let today = market_date(crate::bus::now_ms() as i64);
        for (occ, vol) in self.bus.day_volume(self.shard, today).await? {
            if let Ok(contract) = Contract::parse(&occ) {
                state.detector.set_day_volume(contract, today, vol);
            }
        }
        let guard = self.bus.guard_members(self.shard).await?;
        let (pending, trimmed) = reader.claim_all(&self.consumer()).await?;
        if trimmed > 0 {
            self.stats.trimmed.fetch_add(trimmed, Ordering::Relaxed);
            tracing::error!(
                shard = self.shard,
                trimmed,
                "pending raw entries were trimmed before processing"
            );
        }
        let pending_ids: HashSet<Cursor> = pending.iter().map(|e| e.id).collect();
        // Guard members no longer pending were acknowledged before a crash: forget them.
        state
            .prune
            .extend(guard.iter().filter(|id| !pending_ids.contains(id)));
        if !pending.is_empty() {
            tracing::info!(
                shard = self.shard,
                pending = pending.len(),
                reflected = guard.len(),
                "resuming pending entries"
            );
        }
        for entry in pending {
            if guard.contains(&entry.id) {
                // Already in the flow stream and in the day volume read
                // above; only its acknowledgement was lost.
                state.acks.push(entry.id);
                // Forgotten by the guard only once the acknowledgement is done.
                state.guarded.push(entry.id);
            } else {
                state.push(entry);
            }
        }
        state.commit(self).await?;
        state.ack(self).await
    }
}

/// The worker's state while it owns the shard.
struct ShardState {
    detector: Detector,
    conditions: ConditionTable,
    detection: DetectionConfig,
    /// What each print read and not yet committed adds to the day
    /// aggregates, by raw id (computed on arrival, so the print itself goes
    /// to the detector without a copy).
    in_flight: HashMap<Cursor, (i64, Option<DayDelta>), FastHash>,
    /// Each contract's day-aggregate field names.
    fields: HashMap<Contract, DayFields, FastHash>,
    /// The last minute (ms / 60,000) a market date was worked out for, and
    /// that date: New York dates change only on whole minutes.
    last_day: Option<(i64, flowtape_core::date::Date)>,
    /// Detector output not yet committed.
    completed: Vec<Detected>,
    /// Entries reflected in the flow stream, to acknowledge next.
    acks: Vec<Cursor>,
    /// Of `acks`, those in the guard: forgotten by it once acknowledged.
    guarded: Vec<Cursor>,
    /// Guard members to forget in the next commit (acknowledged, or stale).
    prune: Vec<Cursor>,
    /// The newest print time seen, and when it was seen: the feed clock.
    feed_clock: Option<(i64, Instant)>,
    /// Raw entries that could not be decoded, not yet added to the stats.
    malformed: u64,
}

/// A fast hasher for the shard's in-process maps (keys are stream ids and
/// contracts it made itself, not input an attacker chooses): FxHash's
/// multiply-rotate, instead of SipHash.
#[derive(Clone, Copy, Default)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// The most contracts whose field names a shard keeps (then it starts over).
const MAX_FIELD_CACHE: usize = 100_000;

/// The longest a read waits for new entries when no sweep window is open.
const IDLE_BLOCK: Duration = Duration::from_millis(100);

impl ShardState {
    fn new(worker: &ShardWorker) -> ShardState {
        ShardState {
            detector: Detector::new(
                worker.config.detection.clone(),
                worker.config.conditions.clone(),
            ),
            conditions: worker.config.conditions.clone(),
            detection: worker.config.detection.clone(),
            in_flight: HashMap::default(),
            fields: HashMap::default(),
            last_day: None,
            completed: Vec::new(),
            acks: Vec::new(),
            guarded: Vec::new(),
            prune: Vec::new(),
            feed_clock: None,
            malformed: 0,
        }
    }

    fn push(&mut self, entry: RawEntry) {
        match entry.print {
            Some(print) => {
                if self.feed_clock.is_none_or(|(ts, _)| print.ts_ns > ts) {
                    self.feed_clock = Some((print.ts_ns, Instant::now()));
                }
                let delta = self.delta_of(&print);
                self.in_flight.insert(entry.id, (print.ts_ns, delta));
                self.detector.push(entry.id, print, &mut self.completed);
            }
            None => {
                self.malformed += 1;
                self.acks.push(entry.id);
            }
        }
    }

    /// How long the next read may wait: until the oldest open sweep window
    /// is due to close on the feed clock (at least 1 ms), or [`IDLE_BLOCK`].
    fn block_for(&self) -> Duration {
        if self.detector.oldest_open().is_none() {
            return IDLE_BLOCK;
        }
        // The earliest leg held open: its group is the first to close.
        let first_ts = self
            .detector
            .pending_ids()
            .filter_map(|id| self.in_flight.get(&id).map(|(ts, _)| *ts))
            .min();
        let (Some((newest_ts, seen)), Some(first_ts)) = (self.feed_clock, first_ts) else {
            return Duration::from_millis(1);
        };
        let window_ns = self.detection.sweep_window_ms as i64 * 1_000_000;
        let now_ns = newest_ts.saturating_add(seen.elapsed().as_nanos() as i64);
        let left_ns = first_ts.saturating_add(window_ns).saturating_sub(now_ns);
        let left_ms = (left_ns.max(0) as u64).div_ceil(1_000_000);
        Duration::from_millis(left_ms.clamp(1, IDLE_BLOCK.as_millis() as u64))
    }

    /// Closes sweep windows that have passed on the feed clock: the newest
    /// print time plus the real time elapsed since it was seen.
    fn flush_due(&mut self) {
        if let Some((ts, seen)) = self.feed_clock {
            let now_ns = ts.saturating_add(seen.elapsed().as_nanos() as i64);
            self.detector.flush_due(now_ns, &mut self.completed);
        }
    }

    /// What committing a print's event adds to the day aggregates: nothing
    /// for a cancelled trade.
    fn delta_of(&mut self, p: &Print) -> Option<DayDelta> {
        let flags = self.conditions.flags(&p.conditions);
        if flags.canceled {
            return None;
        }
        let side = side_of(p.price, p.bid, p.ask, &self.detection);
        let minute = p.ts_ms().div_euclid(60_000);
        let day = match self.last_day {
            Some((m, day)) if m == minute => day,
            _ => {
                let day = market_date(p.ts_ms());
                self.last_day = Some((minute, day));
                day
            }
        };
        if self.fields.len() >= MAX_FIELD_CACHE {
            self.fields.clear();
        }
        let fields = self
            .fields
            .entry(p.contract)
            .or_insert_with(|| DayFields::new(&p.contract));
        Some(DayDelta {
            day,
            occ: fields.occ.clone(),
            size: u64::from(p.size),
            bucket: fields.bucket.clone(),
            direction: fields.direction(sentiment_of(p.contract.right, side, flags.multi_leg)),
            premium_cents: (p.premium() * 100.0).round() as i64,
        })
    }

    /// Commits completed events (and forgets acknowledged guard members);
    /// their raw entries are then due for acknowledgement ([`Self::ack`]).
    async fn commit(&mut self, worker: &ShardWorker) -> Result<(), BusError> {
        worker
            .stats
            .malformed
            .fetch_add(std::mem::take(&mut self.malformed), Ordering::Relaxed);
        // Each completed result's JSON (none for a dropped print) and the
        // range of `deltas` its legs add.
        let mut deltas: Vec<DayDelta> = Vec::new();
        let mut built: Vec<(Option<String>, std::ops::Range<usize>)> =
            Vec::with_capacity(self.completed.len());
        for d in &self.completed {
            let start = deltas.len();
            for id in &d.entries {
                let delta = self.in_flight.remove(id).and_then(|(_, delta)| delta);
                // A dropped print's volume does not count.
                if d.event.is_some() {
                    deltas.extend(delta);
                }
            }
            let json = d.event.as_ref().map(|e| e.to_stored_json());
            built.push((json, start..deltas.len()));
        }
        let (kinds, new_events): (Vec<Kind>, Vec<NewEvent<'_>>) = self
            .completed
            .iter()
            .zip(&built)
            .filter_map(|(d, (json, range))| {
                let event = NewEvent {
                    legs: &d.entries,
                    json: json.as_deref()?,
                    deltas: &deltas[range.clone()],
                };
                Some((d.event.as_ref()?.kind, event))
            })
            .unzip();
        if !new_events.is_empty() || !self.prune.is_empty() {
            let started = Instant::now();
            let ids = worker
                .bus
                .commit_flow(worker.shard, &worker.config.owner, &new_events, &self.prune)
                .await?;
            worker.stats.commit_latency.observe(started.elapsed());
            let mut by_kind = [0u64; 4];
            for (kind, _) in kinds.iter().zip(&ids).filter(|(_, id)| id.is_some()) {
                by_kind[*kind as usize] += 1;
            }
            for (counter, n) in worker.stats.events_by_kind.iter().zip(by_kind) {
                if n > 0 {
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            }
            let committed = by_kind.iter().sum::<u64>();
            worker.stats.events.fetch_add(committed, Ordering::Relaxed);
            worker
                .stats
                .duplicates_skipped
                .fetch_add(ids.len() as u64 - committed, Ordering::Relaxed);
            self.prune.clear();
        }
        // Everything completed is now reflected (committed now, or before a crash).
        for d in self.completed.drain(..) {
            self.acks.extend_from_slice(&d.entries);
            if d.event.is_some() {
                self.guarded.extend_from_slice(&d.entries);
            }
        }
        Ok(())
    }

    /// Acknowledges the entries the commits so far reflect; the guard
    /// forgets them in the next commit.
    async fn ack(&mut self, worker: &ShardWorker) -> Result<(), BusError> {
        if self.acks.is_empty() {
            return Ok(());
        }
        let acked = match worker.bus.ack_raw(worker.shard, &self.acks).await {
            Ok(acked) => acked,
            Err(BusError::UnconfirmedAck {
                acknowledged,
                source,
            }) => {
                // Done, though not yet on a replica: counted now; the guard
                // keeps them until the take-over that follows prunes them.
                worker
                    .stats
                    .prints
                    .fetch_add(acknowledged, Ordering::Relaxed);
                return Err(*source);
            }
            Err(e) => return Err(e),
        };
        worker.stats.prints.fetch_add(acked, Ordering::Relaxed);
        self.acks.clear();
        self.prune.append(&mut self.guarded);
        Ok(())
    }
}
