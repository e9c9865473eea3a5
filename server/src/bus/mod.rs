//! The bus: where prints and flow events travel between the roles.
//!
//! Two implementations sit behind one interface, [`Bus`]:
//! - [`RedisBus`](redis::RedisBus), the production bus: raw prints on sharded
//!   Redis streams read through a consumer group, flow events on one bounded
//!   stream plus Pub/Sub for instant fan-out (layout in [`keys`] and
//!   `docs/redis.md`);
//! - [`MemoryBus`](memory::MemoryBus), the same semantics inside one process,
//!   for `--memory`, single-user runs and the TUI's demo mode.
//!
//! Exactly-once processing rests on three operations that both buses provide:
//! a shard is processed by the holder of its lease only; a processor commits
//! flow events together with the raw entry ids they reflect into a guard set,
//! and their prints' day volume and premium into the day aggregates,
//! atomically with the lease check ([`Bus::commit_flow`]); and it acknowledges
//! raw entries only after that commit ([`Bus::ack_raw`]). A processor that
//! takes a shard over re-reads the pending entries and skips those already
//! in the guard.

pub mod history;
pub mod keys;
pub mod memory;
pub mod redis;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_core::day::DayTotals;
use flowtape_core::event::{Print, Sentiment};
use flowtape_core::occ::Right;
use flowtape_core::protocol::FeedStatus;

pub use keys::{shard_of, Keys};
pub use memory::MemoryBus;
pub use redis::RedisBus;

/// Sizes and bounds shared by both buses.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// Key namespace (`ft`).
    pub namespace: String,
    /// Number of raw print shards.
    pub shards: u16,
    /// Approximate maximum entries kept per raw shard: the backlog the
    /// processors may fall behind by before unprocessed prints are trimmed.
    pub raw_max_len: u64,
    /// Approximate maximum events kept in the flow stream.
    pub flow_max_len: u64,
    /// Maximum age of flow events kept (zero: no age limit).
    pub flow_max_age: Duration,
    /// Time to live of per-day keys (day volume, premium aggregates).
    pub day_ttl: Duration,
    /// Durability on Redis: writes count as stored only once this many
    /// replicas have them (`WAIT`); 0 counts a write the master acknowledged
    /// (asynchronous replication: a master that dies may lose its last
    /// writes). See `docs/redis.md`, "Durability".
    pub wait_replicas: u32,
    /// How long a write waits for its replicas before it counts as failed
    /// (and is written again, without duplicates). A healthy replica answers
    /// in well under a millisecond; `WAIT` holds its connection meanwhile.
    pub wait_timeout: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            namespace: "ft".into(),
            shards: 8,
            raw_max_len: 100_000,
            flow_max_len: 1_000_000,
            flow_max_age: Duration::from_secs(24 * 3600),
            day_ttl: Duration::from_secs(48 * 3600),
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(250),
        }
    }
}

/// Prints on their way into the raw streams, each with the stream id it is
/// written under. The ids are chosen when the batch is made ([`Bus::raw_batch`])
/// and kept across attempts, so an append retried after an error (a lost
/// reply, a failover) finds what an earlier attempt wrote and writes no print
/// twice.
#[derive(Debug)]
pub struct RawBatch<'a> {
    prints: &'a [Print],
    /// One per print on Redis; none on the memory bus, which cannot half-fail.
    ids: Vec<Cursor>,
}

impl RawBatch<'_> {
    pub fn len(&self) -> usize {
        self.prints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prints.is_empty()
    }
}

/// One raw stream entry. `print` is `None` when the entry could not be
/// decoded: it is counted, acknowledged and skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEntry {
    pub id: Cursor,
    pub print: Option<Print>,
}

/// One flow stream entry: its cursor and the event JSON as stored (without `id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub id: Cursor,
    pub json: Arc<str>,
}

/// A flow event to commit, with the raw entry ids it reflects (first leg
/// first) and what its prints add to the day aggregates.
#[derive(Clone, Copy, Debug)]
pub struct NewEvent<'a> {
    pub legs: &'a [Cursor],
    pub json: &'a str,
    /// One per leg that counts (a canceled print adds nothing).
    pub deltas: &'a [DayDelta],
}

/// What one print adds to its trading day's volume and premium aggregates.
/// The strings are shared (`Arc`) so a processor builds each contract's
/// once, not once per print.
#[derive(Clone, Debug, PartialEq)]
pub struct DayDelta {
    pub day: Date,
    /// Unpadded OSI symbol: the day volume field, and the contract's
    /// field in the premium hash.
    pub occ: Arc<str>,
    pub size: u64,
    /// The premium bucket field, `SYM:call` or `SYM:put`.
    pub bucket: Arc<str>,
    /// The direction field, `SYM:bull` or `SYM:bear`; none for neutral
    /// premium, which counts in neither direction.
    pub direction: Option<Arc<str>>,
    /// Premium in cents.
    pub premium_cents: i64,
}

/// The day-aggregate field names of one contract, built once and shared by
/// every [`DayDelta`] of that contract.
#[derive(Clone, Debug)]
pub struct DayFields {
    pub occ: Arc<str>,
    pub bucket: Arc<str>,
    pub bull: Arc<str>,
    pub bear: Arc<str>,
}

impl DayFields {
    pub fn new(contract: &flowtape_core::occ::Contract) -> DayFields {
        let sym = contract.underlying();
        let bucket = match contract.right {
            Right::Call => "call",
            Right::Put => "put",
        };
        DayFields {
            occ: contract.osi().into(),
            bucket: format!("{sym}:{bucket}").into(),
            bull: format!("{sym}:bull").into(),
            bear: format!("{sym}:bear").into(),
        }
    }

    /// The direction field for a sentiment.
    pub fn direction(&self, sentiment: Sentiment) -> Option<Arc<str>> {
        match sentiment {
            Sentiment::Bull => Some(self.bull.clone()),
            Sentiment::Bear => Some(self.bear.clone()),
            Sentiment::Neutral => None,
        }
    }
}

/// A message from the live fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Live {
    Entry(FlowEntry),
    /// Messages may have been missed (the subscription was lost and restored,
    /// or the subscriber lagged): repair from the stream by cursor.
    Gap,
}

/// Length and ends of the flow stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowBounds {
    pub len: u64,
    pub first: Option<Cursor>,
    pub last: Option<Cursor>,
}

/// Where processing of one raw shard stands, as the bus sees it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardBacklog {
    pub shard: u16,
    /// Who holds the shard's lease (`None`: nobody, or it expired).
    pub owner: Option<String>,
    /// Entries not yet delivered to the consumer group; `None` when Redis
    /// cannot tell (`XINFO GROUPS` answers no `lag` after some deletions).
    pub lag: Option<u64>,
    /// Entries delivered and not yet acknowledged (open sweep windows, work
    /// in flight, or a dead processor's until it is taken over).
    pub pending: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach Redis at {url}: {reason} (start redis-server, or run with --memory)")]
    Unavailable { url: String, reason: String },
    #[error("invalid Redis URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: {reason}")]
    Misconfigured { url: String, reason: String },
    #[error("the lease on shard {0} is held by another processor")]
    LeaseLost(u16),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
    #[error("a write reached {acked} of the {wanted} replicas required within the wait timeout")]
    NotReplicated { acked: i64, wanted: u32 },
    /// Durable mode: raw entries were acknowledged, but the acknowledgement
    /// did not reach the replicas in time (the guard keeps them meanwhile).
    #[error("{acknowledged} raw entries were acknowledged, but: {source}")]
    UnconfirmedAck {
        acknowledged: u64,
        source: Box<BusError>,
    },
}

/// The bus the roles talk through; cheap to clone.
#[derive(Clone)]
pub enum Bus {
    Memory(Arc<MemoryBus>),
    Redis(Arc<RedisBus>),
}

/// A dedicated reader of one raw shard (on Redis, its own connection, since
/// blocking reads hold a connection).
pub enum ShardReader {
    Memory(Arc<MemoryBus>, u16),
    Redis(Box<redis::RedisShardReader>),
}

/// The live fan-out subscription of one gateway.
pub enum LiveFeed {
    Memory(tokio::sync::broadcast::Receiver<FlowEntry>),
    Redis(tokio::sync::mpsc::Receiver<Live>),
}

impl Bus {
    pub fn memory(config: BusConfig) -> Bus {
        Bus::Memory(Arc::new(MemoryBus::new(config)))
    }

    /// Connects to Redis, checks it answers, and creates the consumer groups.
    pub async fn redis(url: &str, config: BusConfig) -> Result<Bus, BusError> {
        Ok(Bus::Redis(Arc::new(RedisBus::connect(url, config).await?)))
    }

    /// The same bus with a command connection of its own, opened on the
    /// calling task's runtime (a role running on a runtime of its own uses
    /// it so its Redis I/O is driven there). The memory bus is shared as is.
    pub async fn with_own_connection(&self) -> Result<Bus, BusError> {
        match self {
            Bus::Memory(m) => Ok(Bus::Memory(m.clone())),
            Bus::Redis(r) => Ok(Bus::Redis(Arc::new(r.with_own_connection().await?))),
        }
    }

    pub fn config(&self) -> &BusConfig {
        match self {
            Bus::Memory(m) => m.config(),
            Bus::Redis(r) => r.config(),
        }
    }

    /// The shard an underlying's prints go to.
    pub fn shard_of(&self, underlying: &str) -> u16 {
        shard_of(underlying, self.config().shards)
    }

    pub async fn ping(&self) -> Result<(), BusError> {
        match self {
            Bus::Memory(_) => Ok(()),
            Bus::Redis(r) => r.ping().await,
        }
    }

    /// Gives each print the raw stream id it will be written under.
    pub fn raw_batch<'a>(&self, prints: &'a [Print]) -> RawBatch<'a> {
        match self {
            Bus::Memory(_) => RawBatch {
                prints,
                ids: Vec::new(),
            },
            Bus::Redis(r) => RawBatch {
                prints,
                ids: r.raw_ids(prints),
            },
        }
    }

    /// Appends a batch to its shards' raw streams, in order, in one round
    /// trip per shard. After an error the same batch may be appended again:
    /// what was written before is found, not written twice.
    pub async fn append_raw(&self, batch: &mut RawBatch<'_>) -> Result<(), BusError> {
        match self {
            Bus::Memory(m) => {
                m.append_raw(batch.prints);
                Ok(())
            }
            Bus::Redis(r) => r.append_raw(batch.prints, &mut batch.ids).await,
        }
    }

    /// Takes the lease on a shard if nobody holds it.
    pub async fn acquire_lease(
        &self,
        shard: u16,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.acquire_lease(shard, owner, ttl)),
            Bus::Redis(r) => r.acquire_lease(shard, owner, ttl).await,
        }
    }

    /// Extends a lease this owner holds; false if it is no longer held.
    pub async fn renew_lease(
        &self,
        shard: u16,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.renew_lease(shard, owner, ttl)),
            Bus::Redis(r) => r.renew_lease(shard, owner, ttl).await,
        }
    }

    /// Gives a held lease up, so another processor can take over at once.
    pub async fn release_lease(&self, shard: u16, owner: &str) -> Result<(), BusError> {
        match self {
            Bus::Memory(m) => {
                m.release_lease(shard, owner);
                Ok(())
            }
            Bus::Redis(r) => r.release_lease(shard, owner).await,
        }
    }

    pub async fn shard_reader(&self, shard: u16) -> Result<ShardReader, BusError> {
        match self {
            Bus::Memory(m) => Ok(ShardReader::Memory(m.clone(), shard)),
            Bus::Redis(r) => Ok(ShardReader::Redis(Box::new(r.shard_reader(shard).await?))),
        }
    }

    /// Raw entry ids of a shard already reflected in the flow stream but not acknowledged.
    pub async fn guard_members(&self, shard: u16) -> Result<HashSet<Cursor>, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.guard_members(shard)),
            Bus::Redis(r) => r.guard_members(shard).await,
        }
    }

    /// Atomically, if `owner` holds the shard's lease: forgets `prune` from the
    /// guard, and appends each event whose first leg is not in the guard to the
    /// flow stream, adds its legs to the guard and its deltas to the day
    /// aggregates, and publishes it. Returns each event's cursor, or `None`
    /// for an event skipped as already committed (its deltas are not counted
    /// again).
    pub async fn commit_flow(
        &self,
        shard: u16,
        owner: &str,
        events: &[NewEvent<'_>],
        prune: &[Cursor],
    ) -> Result<Vec<Option<Cursor>>, BusError> {
        match self {
            Bus::Memory(m) => m.commit_flow(shard, owner, events, prune),
            Bus::Redis(r) => r.commit_flow(shard, owner, events, prune).await,
        }
    }

    /// Acknowledges raw entries. Returns how many were acknowledged now
    /// (not before).
    pub async fn ack_raw(&self, shard: u16, ids: &[Cursor]) -> Result<u64, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.ack_raw(shard, ids)),
            Bus::Redis(r) => r.ack_raw(shard, ids).await,
        }
    }

    /// The persisted day volume of every contract of a shard (occ → contracts).
    pub async fn day_volume(&self, shard: u16, day: Date) -> Result<Vec<(String, u64)>, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.day_volume(shard, day)),
            Bus::Redis(r) => r.day_volume(shard, day).await,
        }
    }

    /// The day's premium totals per ticker and per contract, every shard's
    /// summed (on Redis, one `HGETALL` per shard, the shards at once).
    pub async fn day_totals(&self, day: Date) -> Result<DayTotals, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.day_totals(day)),
            Bus::Redis(r) => r.day_totals(day).await,
        }
    }

    /// Every raw shard's lease holder, lag and pending count: for
    /// `/metrics` and `/healthz`, sampled now and then, not per batch.
    pub async fn shard_backlog(&self) -> Result<Vec<ShardBacklog>, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.shard_backlog()),
            Bus::Redis(r) => r.shard_backlog().await,
        }
    }

    /// Flow entries strictly after `after`, oldest first, at most `count`.
    pub async fn flow_after(
        &self,
        after: Cursor,
        count: usize,
    ) -> Result<Vec<FlowEntry>, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.flow_after(after, count)),
            Bus::Redis(r) => r.flow_after(after, count).await,
        }
    }

    /// The newest `count` flow entries at or before `before` (all when `None`), oldest first.
    pub async fn flow_before(
        &self,
        before: Option<Cursor>,
        count: usize,
    ) -> Result<Vec<FlowEntry>, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.flow_before(before, count)),
            Bus::Redis(r) => r.flow_before(before, count).await,
        }
    }

    pub async fn flow_bounds(&self) -> Result<FlowBounds, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.flow_bounds()),
            Bus::Redis(r) => r.flow_bounds().await,
        }
    }

    /// What became of the history after `cursor`: kept, trimmed by
    /// retention, or lost ([`history::judge`]; `delivered`: the cursor is an
    /// entry id read from this stream). The memory bus never loses history.
    pub async fn flow_continuity(
        &self,
        cursor: Cursor,
        delivered: bool,
    ) -> Result<history::Continuity, BusError> {
        match self {
            Bus::Memory(m) => Ok(history::Continuity {
                lost: None,
                trimmed: m.flow_bounds().first.is_some_and(|first| cursor < first),
            }),
            Bus::Redis(r) => {
                let facts = r.flow_facts(cursor).await?;
                Ok(history::judge(facts.as_ref(), cursor, delivered))
            }
        }
    }

    /// Publishes the feed's status for gateways to report; it expires after
    /// `ttl` unless published again, so a dead ingest reads as "no status".
    pub async fn publish_feed_status(
        &self,
        status: &FeedStatus,
        ttl: Duration,
    ) -> Result<(), BusError> {
        match self {
            Bus::Memory(m) => {
                m.publish_feed_status(status, ttl);
                Ok(())
            }
            Bus::Redis(r) => r.publish_feed_status(status, ttl).await,
        }
    }

    /// The feed status last published by an ingest, if it has not expired.
    pub async fn feed_status(&self) -> Result<Option<FeedStatus>, BusError> {
        match self {
            Bus::Memory(m) => Ok(m.feed_status()),
            Bus::Redis(r) => r.feed_status().await,
        }
    }

    /// Subscribes to the live fan-out. On Redis, the subscription reconnects
    /// by itself and reports [`Live::Gap`] when it may have missed messages.
    pub async fn subscribe_live(&self) -> Result<LiveFeed, BusError> {
        match self {
            Bus::Memory(m) => Ok(LiveFeed::Memory(m.subscribe_live())),
            Bus::Redis(r) => Ok(LiveFeed::Redis(r.subscribe_live().await?)),
        }
    }
}

impl ShardReader {
    /// Up to `count` entries never delivered to the group before, waiting up
    /// to `block` for the first; they become pending for `consumer`.
    pub async fn read_new(
        &mut self,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<RawEntry>, BusError> {
        match self {
            ShardReader::Memory(m, shard) => Ok(m.read_new(*shard, consumer, count, block).await),
            ShardReader::Redis(r) => r.read_new(consumer, count, block).await,
        }
    }

    /// Transfers every pending entry of the shard (whoever held it) to
    /// `consumer` and returns them, oldest first. Pending entries already
    /// trimmed from the stream are dropped from the pending list and counted
    /// in the second value.
    pub async fn claim_all(&mut self, consumer: &str) -> Result<(Vec<RawEntry>, u64), BusError> {
        match self {
            ShardReader::Memory(m, shard) => Ok(m.claim_all(*shard, consumer)),
            ShardReader::Redis(r) => r.claim_all(consumer).await,
        }
    }
}

impl LiveFeed {
    /// The next live message; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Live> {
        match self {
            LiveFeed::Memory(rx) => match rx.recv().await {
                Ok(entry) => Some(Live::Entry(entry)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some(Live::Gap),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            },
            LiveFeed::Redis(rx) => rx.recv().await,
        }
    }

    /// The next live message if one is waiting now.
    pub fn try_recv(&mut self) -> Option<Live> {
        use tokio::sync::broadcast::error::TryRecvError;
        match self {
            LiveFeed::Memory(rx) => match rx.try_recv() {
                Ok(entry) => Some(Live::Entry(entry)),
                Err(TryRecvError::Lagged(_)) => Some(Live::Gap),
                Err(TryRecvError::Empty | TryRecvError::Closed) => None,
            },
            LiveFeed::Redis(rx) => rx.try_recv().ok(),
        }
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The MINID cutoff for age-based retention, or `None` without an age limit.
pub(crate) fn min_id_cutoff(max_age: Duration) -> Option<Cursor> {
    if max_age.is_zero() {
        return None;
    }
    Some(Cursor::new(
        now_ms().saturating_sub(max_age.as_millis() as u64),
        0,
    ))
}
