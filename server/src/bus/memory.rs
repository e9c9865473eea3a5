//! The embedded in-memory bus.
//!
//! It keeps the same semantics as the Redis bus inside one process: bounded
//! raw shards with one consumer group's delivered position and pending list,
//! shard leases with expiry, the exactly-once guard, day aggregates, and a
//! bounded flow log with a broadcast channel for live fan-out. Locks are held
//! only for short, non-blocking sections; waiting readers park on a `Notify`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, Notify};

use super::{
    min_id_cutoff, now_ms, shard_of, BusConfig, BusError, FlowBounds, FlowEntry, NewEvent,
    RawEntry, ShardBacklog,
};
use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_core::day::DayTotals;
use flowtape_core::event::Print;
use flowtape_core::protocol::FeedStatus;

/// Live fan-out buffer: a subscriber further behind than this gets a gap.
const LIVE_CAPACITY: usize = 1 << 16;

#[derive(Default)]
struct Shard {
    entries: VecDeque<(Cursor, Print)>,
    last_id: Cursor,
    /// The last id delivered to the group (XREADGROUP `>` reads after it).
    delivered: Cursor,
    /// Pending entries: id → consumer.
    pending: BTreeMap<Cursor, String>,
    guard: HashSet<Cursor>,
    lease: Option<(String, Instant)>,
}

#[derive(Default)]
struct FlowLog {
    entries: VecDeque<FlowEntry>,
    last_id: Cursor,
}

/// One shard's aggregates for one trading day, and when they were last
/// written: like a Redis key with a TTL, they expire `day_ttl` after that.
#[derive(Default)]
struct DayAggregates {
    /// occ → contracts.
    volume: HashMap<String, u64>,
    /// `SYM:call|put|bull|bear` and unpadded OSI symbol → cents.
    premium: HashMap<String, i64>,
    written: Option<Instant>,
}

#[derive(Default)]
struct DayStats {
    by_day: HashMap<(u16, Date), DayAggregates>,
}

pub struct MemoryBus {
    config: BusConfig,
    shards: Vec<Mutex<Shard>>,
    arrivals: Vec<Notify>,
    flow: Mutex<FlowLog>,
    live: broadcast::Sender<FlowEntry>,
    days: Mutex<DayStats>,
    feed: Mutex<Option<(FeedStatus, Instant)>>,
}

/// Locks a mutex, recovering the data if a holder panicked: every critical
/// section here leaves the state consistent at each step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The next stream id after `last`, as Redis assigns them (`<ms>-<seq>`).
fn next_id(last: Cursor) -> Cursor {
    let ms = now_ms();
    if ms > last.ms {
        Cursor::new(ms, 0)
    } else {
        last.successor()
    }
}

impl MemoryBus {
    pub fn new(config: BusConfig) -> MemoryBus {
        let shards = config.shards.max(1);
        MemoryBus {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            arrivals: (0..shards).map(|_| Notify::new()).collect(),
            flow: Mutex::new(FlowLog::default()),
            live: broadcast::channel(LIVE_CAPACITY).0,
            days: Mutex::new(DayStats::default()),
            feed: Mutex::new(None),
            config,
        }
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    fn shard(&self, shard: u16) -> MutexGuard<'_, Shard> {
        lock(&self.shards[usize::from(shard) % self.shards.len()])
    }

    pub(super) fn append_raw(&self, prints: &[Print]) {
        let n = self.shards.len() as u16;
        let mut touched = vec![false; self.shards.len()];
        for p in prints {
            let k = shard_of(p.contract.underlying(), n);
            let mut s = self.shard(k);
            let id = next_id(s.last_id);
            s.last_id = id;
            s.entries.push_back((id, p.clone()));
            while s.entries.len() as u64 > self.config.raw_max_len {
                s.entries.pop_front();
            }
            touched[usize::from(k)] = true;
        }
        for (k, t) in touched.into_iter().enumerate() {
            if t {
                self.arrivals[k].notify_waiters();
            }
        }
    }

    pub(super) fn acquire_lease(&self, shard: u16, owner: &str, ttl: Duration) -> bool {
        let mut s = self.shard(shard);
        let now = Instant::now();
        match &s.lease {
            Some((holder, until)) if *until > now && holder != owner => false,
            _ => {
                s.lease = Some((owner.to_string(), now + ttl));
                true
            }
        }
    }

    pub(super) fn renew_lease(&self, shard: u16, owner: &str, ttl: Duration) -> bool {
        let mut s = self.shard(shard);
        let now = Instant::now();
        match &mut s.lease {
            Some((holder, until)) if holder == owner && *until > now => {
                *until = now + ttl;
                true
            }
            _ => false,
        }
    }

    pub(super) fn release_lease(&self, shard: u16, owner: &str) {
        let mut s = self.shard(shard);
        if matches!(&s.lease, Some((holder, _)) if holder == owner) {
            s.lease = None;
        }
    }

    fn holds_lease(s: &Shard, owner: &str) -> bool {
        matches!(&s.lease, Some((holder, until)) if holder == owner && *until > Instant::now())
    }

    pub(super) async fn read_new(
        &self,
        shard: u16,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Vec<RawEntry> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let arrived = self.arrivals[usize::from(shard) % self.arrivals.len()].notified();
            {
                let mut s = self.shard(shard);
                let start = s.entries.partition_point(|(id, _)| *id <= s.delivered);
                let batch: Vec<RawEntry> = s
                    .entries
                    .range(start..)
                    .take(count)
                    .map(|(id, p)| RawEntry {
                        id: *id,
                        print: Some(p.clone()),
                    })
                    .collect();
                if let Some(last) = batch.last() {
                    s.delivered = last.id;
                    for e in &batch {
                        s.pending.insert(e.id, consumer.to_string());
                    }
                    return batch;
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Vec::new();
            }
        }
    }

    pub(super) fn claim_all(&self, shard: u16, consumer: &str) -> (Vec<RawEntry>, u64) {
        let mut s = self.shard(shard);
        let ids: Vec<Cursor> = s.pending.keys().copied().collect();
        let mut claimed = Vec::with_capacity(ids.len());
        let mut trimmed = 0;
        for id in ids {
            let found = s
                .entries
                .binary_search_by(|(e, _)| e.cmp(&id))
                .ok()
                .and_then(|i| s.entries.get(i))
                .map(|(_, p)| p.clone());
            match found {
                Some(print) => {
                    s.pending.insert(id, consumer.to_string());
                    claimed.push(RawEntry {
                        id,
                        print: Some(print),
                    });
                }
                None => {
                    s.pending.remove(&id);
                    trimmed += 1;
                }
            }
        }
        (claimed, trimmed)
    }

    pub(super) fn shard_backlog(&self) -> Vec<ShardBacklog> {
        let now = Instant::now();
        (0..self.shards.len() as u16)
            .map(|shard| {
                let s = self.shard(shard);
                let delivered = s.entries.partition_point(|(id, _)| *id <= s.delivered);
                ShardBacklog {
                    shard,
                    owner: s
                        .lease
                        .as_ref()
                        .filter(|(_, until)| *until > now)
                        .map(|(owner, _)| owner.clone()),
                    lag: Some((s.entries.len() - delivered) as u64),
                    pending: s.pending.len() as u64,
                }
            })
            .collect()
    }

    pub(super) fn guard_members(&self, shard: u16) -> HashSet<Cursor> {
        self.shard(shard).guard.clone()
    }

    pub(super) fn commit_flow(
        &self,
        shard: u16,
        owner: &str,
        events: &[NewEvent<'_>],
        prune: &[Cursor],
    ) -> Result<Vec<Option<Cursor>>, BusError> {
        // Lock order: shard, then flow log, then day aggregates.
        let mut s = self.shard(shard);
        if !Self::holds_lease(&s, owner) {
            return Err(BusError::LeaseLost(shard));
        }
        for id in prune {
            s.guard.remove(id);
        }
        let mut flow = lock(&self.flow);
        let mut days = lock(&self.days);
        let now = Instant::now();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let Some(first) = e.legs.first() else {
                out.push(None);
                continue;
            };
            if s.guard.contains(first) {
                out.push(None);
                continue;
            }
            let id = next_id(flow.last_id);
            flow.last_id = id;
            let entry = FlowEntry {
                id,
                json: e.json.into(),
            };
            flow.entries.push_back(entry.clone());
            s.guard.extend(e.legs.iter().copied());
            for d in e.deltas {
                let day = days.by_day.entry((shard, d.day)).or_default();
                *day.volume.entry(d.occ.to_string()).or_default() += d.size;
                *day.premium.entry(d.bucket.to_string()).or_default() += d.premium_cents;
                *day.premium.entry(d.occ.to_string()).or_default() += d.premium_cents;
                if let Some(dir) = &d.direction {
                    *day.premium.entry(dir.to_string()).or_default() += d.premium_cents;
                }
                day.written = Some(now);
            }
            // No subscribers is not an error: the log keeps the event.
            let _ = self.live.send(entry);
            out.push(Some(id));
        }
        while flow.entries.len() as u64 > self.config.flow_max_len {
            flow.entries.pop_front();
        }
        if let Some(cutoff) = min_id_cutoff(self.config.flow_max_age) {
            while flow.entries.front().is_some_and(|e| e.id < cutoff) {
                flow.entries.pop_front();
            }
        }
        let ttl = self.config.day_ttl;
        days.by_day
            .retain(|_, agg| agg.written.is_some_and(|w| now.duration_since(w) <= ttl));
        Ok(out)
    }

    pub(super) fn ack_raw(&self, shard: u16, ids: &[Cursor]) -> u64 {
        let mut s = self.shard(shard);
        ids.iter()
            .filter(|id| s.pending.remove(id).is_some())
            .count() as u64
    }

    pub(super) fn day_volume(&self, shard: u16, day: Date) -> Vec<(String, u64)> {
        lock(&self.days)
            .by_day
            .get(&(shard, day))
            .map(|agg| agg.volume.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// The day's premium totals, every shard's summed.
    pub(super) fn day_totals(&self, day: Date) -> DayTotals {
        let days = lock(&self.days);
        let mut totals = DayTotals::default();
        for shard in 0..self.shards.len() as u16 {
            if let Some(agg) = days.by_day.get(&(shard, day)) {
                for (field, cents) in &agg.premium {
                    totals.add(field, *cents);
                }
            }
        }
        totals
    }

    /// The day's premium aggregates of one shard (`SYM:call|put|bull|bear`
    /// and unpadded OSI symbol → cents).
    pub fn day_premium(&self, shard: u16, day: Date) -> HashMap<String, i64> {
        lock(&self.days)
            .by_day
            .get(&(shard, day))
            .map(|agg| agg.premium.clone())
            .unwrap_or_default()
    }

    /// Entries pending (delivered, not acknowledged) on a shard.
    pub fn pending_count(&self, shard: u16) -> usize {
        self.shard(shard).pending.len()
    }

    pub(super) fn flow_after(&self, after: Cursor, count: usize) -> Vec<FlowEntry> {
        let flow = lock(&self.flow);
        let start = flow.entries.partition_point(|e| e.id <= after);
        flow.entries.range(start..).take(count).cloned().collect()
    }

    pub(super) fn flow_before(&self, before: Option<Cursor>, count: usize) -> Vec<FlowEntry> {
        let flow = lock(&self.flow);
        let end = match before {
            Some(b) => flow.entries.partition_point(|e| e.id <= b),
            None => flow.entries.len(),
        };
        let start = end.saturating_sub(count);
        flow.entries.range(start..end).cloned().collect()
    }

    pub(super) fn flow_bounds(&self) -> FlowBounds {
        let flow = lock(&self.flow);
        FlowBounds {
            len: flow.entries.len() as u64,
            first: flow.entries.front().map(|e| e.id),
            last: flow.entries.back().map(|e| e.id),
        }
    }

    pub(super) fn publish_feed_status(&self, status: &FeedStatus, ttl: Duration) {
        *lock(&self.feed) = Some((status.clone(), Instant::now() + ttl));
    }

    pub(super) fn feed_status(&self) -> Option<FeedStatus> {
        lock(&self.feed)
            .as_ref()
            .filter(|(_, until)| *until > Instant::now())
            .map(|(s, _)| s.clone())
    }

    pub(super) fn subscribe_live(&self) -> broadcast::Receiver<FlowEntry> {
        self.live.subscribe()
    }
}
