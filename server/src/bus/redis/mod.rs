//! The Redis bus.
//!
//! Raw prints go to one stream per shard (`XADD … MAXLEN ~`), pipelined so a
//! batch costs one round trip. Processors read a shard through the consumer
//! group [`PROCESS_GROUP`](super::keys::PROCESS_GROUP) on a dedicated
//! connection (blocking reads hold a connection), take over a dead
//! processor's pending entries with `XAUTOCLAIM`, commit with one Lua
//! script, `COMMIT_FLOW` (flow slot), and then acknowledge with a plain
//! `XACK`. The script checks the shard lease and the guard set, appends the
//! events to the bounded flow stream, records their raw ids in the guard,
//! adds their prints' volume and premium to the per-day hashes (which carry
//! a TTL), and publishes each event with its stream id, all atomically. The
//! day deltas are summed per field here, before the call, so an event the
//! guard shows committed already makes the script write nothing and name it;
//! the commit is then sent again without it. That happens only after a
//! crash, so the common commit is one round trip.
//!
//! Connections are `ConnectionManager`s, which reconnect by themselves; the
//! live subscription is a task that resubscribes and reports a gap.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{Script, ToRedisArgs, Value};
use tokio::sync::mpsc;

use super::keys::PROCESS_GROUP;
use super::{
    min_id_cutoff, shard_of, BusConfig, BusError, DayDelta, FlowBounds, FlowEntry, Keys, Live,
    NewEvent, RawEntry, ShardBacklog,
};
use durable::Durability;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_core::day::DayTotals;
use flowtape_core::event::Print;
use flowtape_core::protocol::FeedStatus;
use reply::{
    day_hash, flow_entries, group_backlog, raw_entries_of_read, raw_stream_entries,
    raw_stream_payloads, server_code, string_of,
};
use target::{Conn, Target};

mod durable;
mod history;
mod live;
mod reply;
mod target;

/// Live messages are cut at about this many bytes: one `PUBLISH` carries
/// every event of a commit up to this size.
const LIVE_MESSAGE_BYTES: usize = 65_536;

/// The commit script: see `commit_flow.lua` for its keys, arguments and reply.
const COMMIT_FLOW: &str = include_str!("commit_flow.lua");
/// Extends a shard lease if `owner` still holds it.
const RENEW_LEASE: &str = include_str!("renew_lease.lua");
/// Gives a shard lease up if `owner` still holds it.
const RELEASE_LEASE: &str = include_str!("release_lease.lua");

/// What one `COMMIT_FLOW` call did.
enum Committed {
    /// Each event's stream id.
    Ids(Vec<Option<Cursor>>),
    /// Nothing: these events (indexes into the call's) were committed before.
    Duplicates(Vec<usize>),
}

/// A commit's day deltas, summed per hash field: the days they fall on (in
/// order of first use) and, per `(KEYS index, field)`, the amount to add.
/// Day `i`'s volume hash is `KEYS[4 + 2i]`, its premium hash the next.
struct DayAdds {
    days: Vec<Date>,
    fields: HashMap<(usize, Arc<str>), i64>,
}

impl DayAdds {
    fn of<'a>(deltas: impl Iterator<Item = &'a DayDelta>) -> DayAdds {
        let mut adds = DayAdds {
            days: Vec::new(),
            fields: HashMap::new(),
        };
        for d in deltas {
            let day = match adds.days.iter().position(|x| *x == d.day) {
                Some(i) => i,
                None => {
                    adds.days.push(d.day);
                    adds.days.len() - 1
                }
            };
            let (volume, premium) = (4 + 2 * day, 5 + 2 * day);
            let size = i64::try_from(d.size).unwrap_or(i64::MAX);
            *adds.fields.entry((volume, d.occ.clone())).or_default() += size;
            *adds.fields.entry((premium, d.bucket.clone())).or_default() += d.premium_cents;
            *adds.fields.entry((premium, d.occ.clone())).or_default() += d.premium_cents;
            if let Some(direction) = &d.direction {
                *adds.fields.entry((premium, direction.clone())).or_default() += d.premium_cents;
            }
        }
        adds
    }
}

/// About how long a stream entry id is as an argument (`ms-seq`).
const ID_BYTES: usize = 16;

/// How many times an append gives prints new ids before it gives up: only
/// another writer on the same shard takes ids from under it.
const RAW_ID_ATTEMPTS: usize = 8;

/// The raw id after `last`: the current millisecond, or `last`'s with the next sequence number.
fn next_raw_id(last: Cursor, now_ms: u64) -> Cursor {
    if now_ms > last.ms {
        Cursor::new(now_ms, 0)
    } else {
        Cursor::new(last.ms, last.seq.saturating_add(1))
    }
}

/// Whether `XADD` refused an id because the stream already has it or a later one.
fn is_stale_id(e: &redis::RedisError) -> bool {
    e.to_string()
        .contains("equal or smaller than the target stream top item")
}

/// A stream entry id as a command argument, written without a temporary string.
struct IdArg(Cursor);

impl redis::ToRedisArgs for IdArg {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        let mut buf = [0u8; 41];
        let n = write_id(&mut buf, self.0.ms, self.0.seq);
        out.write_arg(&buf[..n]);
    }
}

/// Writes `ms-seq` into `buf` (41 bytes fit two u64s and the dash); returns the length.
fn write_id(buf: &mut [u8; 41], ms: u64, seq: u64) -> usize {
    fn digits(mut v: u64, out: &mut [u8]) -> usize {
        let mut tmp = [0u8; 20];
        let mut n = 0;
        loop {
            tmp[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for k in 0..n {
            out[k] = tmp[n - 1 - k];
        }
        n
    }
    let a = digits(ms, &mut buf[..20]);
    buf[a] = b'-';
    let b = digits(seq, &mut buf[a + 1..]);
    a + 1 + b
}

/// `redis://user:secret@host` → `redis://user:***@host`: URLs go into errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            if creds.contains(':') {
                format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
            } else {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Clone)]
pub struct RedisBus {
    target: Target,
    url: String,
    conn: Conn,
    config: BusConfig,
    keys: Keys,
    names: Arc<Names>,
    scripts: Arc<Scripts>,
    /// Each shard's last raw id given out ([`RedisBus::raw_ids`]).
    raw_last: Arc<Mutex<Vec<Cursor>>>,
    durability: Arc<Durability>,
}

/// The key names the hot paths use, built once.
struct Names {
    raw_streams: Vec<String>,
    leases: Vec<String>,
    guards: Vec<String>,
    flow_stream: String,
    flow_channel: String,
}

impl Names {
    fn new(keys: &Keys, shards: u16) -> Names {
        Names {
            raw_streams: (0..shards).map(|k| keys.raw_stream(k)).collect(),
            leases: (0..shards).map(|k| keys.lease(k)).collect(),
            guards: (0..shards).map(|k| keys.guard(k)).collect(),
            flow_stream: keys.flow_stream(),
            flow_channel: keys.flow_channel(),
        }
    }

    fn raw_stream(&self, keys: &Keys, shard: u16) -> std::borrow::Cow<'_, str> {
        match self.raw_streams.get(usize::from(shard)) {
            Some(k) => k.as_str().into(),
            None => keys.raw_stream(shard).into(),
        }
    }

    fn lease(&self, keys: &Keys, shard: u16) -> std::borrow::Cow<'_, str> {
        match self.leases.get(usize::from(shard)) {
            Some(k) => k.as_str().into(),
            None => keys.lease(shard).into(),
        }
    }

    fn guard(&self, keys: &Keys, shard: u16) -> std::borrow::Cow<'_, str> {
        match self.guards.get(usize::from(shard)) {
            Some(k) => k.as_str().into(),
            None => keys.guard(shard).into(),
        }
    }
}

struct Scripts {
    commit_flow: Script,
}

impl RedisBus {
    /// Connects to one Redis (`redis://…`) or a cluster
    /// (`redis+cluster://host:port[,host:port…]`), checks that it is what the
    /// URL says and answers, and creates the consumer groups.
    pub async fn connect(url: &str, config: BusConfig) -> Result<RedisBus, BusError> {
        let shown = redact_url(url);
        let target = Target::parse(url, &shown)?;
        let unavailable = |e: redis::RedisError| BusError::Unavailable {
            url: shown.clone(),
            reason: e.to_string(),
        };
        target.check(&shown).await?;
        let conn = target.connect().await.map_err(unavailable)?;
        let keys = Keys::new(&config.namespace);
        let shards = usize::from(config.shards);
        let durability = Arc::new(Durability::new(config.wait_replicas, config.wait_timeout));
        let bus = RedisBus {
            target,
            url: shown.clone(),
            conn,
            names: Arc::new(Names::new(&keys, config.shards)),
            keys,
            config,
            scripts: Arc::new(Scripts {
                commit_flow: Script::new(COMMIT_FLOW),
            }),
            raw_last: Arc::new(Mutex::new(vec![Cursor::ZERO; shards])),
            durability,
        };
        bus.ping().await.map_err(|e| BusError::Unavailable {
            url: shown,
            reason: e.to_string(),
        })?;
        for shard in 0..bus.config.shards {
            bus.ensure_group(shard).await?;
        }
        Ok(bus)
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// This bus with a new command connection, whose I/O task runs on the
    /// caller's runtime.
    pub(super) async fn with_own_connection(&self) -> Result<RedisBus, BusError> {
        Ok(RedisBus {
            conn: self.target.connect().await?,
            ..self.clone()
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The URL with any password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn ping(&self) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    async fn ensure_group(&self, shard: u16) -> Result<(), BusError> {
        create_group(&mut self.conn.clone(), &self.keys.raw_stream(shard)).await
    }

    /// Gives each print the next id of its shard's raw stream: the current
    /// millisecond, or the last id's millisecond with the next sequence
    /// number, so a shard's ids rise however the clock moves.
    pub(super) fn raw_ids(&self, prints: &[Print]) -> Vec<Cursor> {
        let now = super::now_ms();
        let mut last = self
            .raw_last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prints
            .iter()
            .map(|p| {
                let k = usize::from(shard_of(p.contract.underlying(), self.config.shards));
                let id = next_raw_id(last[k], now);
                last[k] = id;
                id
            })
            .collect()
    }

    /// Appends prints under their ids (`ids[i]` is `prints[i]`'s), one
    /// pipeline per shard, the shards at once. An id the stream already has
    /// is either this print, written by an earlier attempt (left as it is), or
    /// another writer's (the print gets a new id above the stream's top,
    /// recorded in `ids` for the next attempt).
    pub(super) async fn append_raw(
        &self,
        prints: &[Print],
        ids: &mut [Cursor],
    ) -> Result<(), BusError> {
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); usize::from(self.config.shards)];
        let mut json = Vec::with_capacity(prints.len());
        for (i, p) in prints.iter().enumerate() {
            let k = usize::from(shard_of(p.contract.underlying(), self.config.shards));
            by_shard[k].push(i);
            json.push(serde_json::to_vec(p).map_err(|e| BusError::Protocol(e.to_string()))?);
        }
        let ids_now: &[Cursor] = ids;
        let appends = by_shard
            .iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(k, idx)| self.append_shard(k as u16, idx, &json, ids_now));
        let done = futures_util::future::join_all(appends).await;
        let mut first_error = None;
        let mut moves = Vec::new();
        for (moved, result) in done {
            moves.extend(moved);
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        for (i, id) in moves {
            ids[i] = id;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Appends one shard's prints (`idx` into `json` and `ids`). Returns the
    /// prints that moved to a new id, whatever the outcome.
    async fn append_shard(
        &self,
        shard: u16,
        idx: &[usize],
        json: &[Vec<u8>],
        ids: &[Cursor],
    ) -> (Vec<(usize, Cursor)>, Result<(), BusError>) {
        let key = self.names.raw_stream(&self.keys, shard);
        let mut c = self.conn.clone();
        let mut moved: Vec<(usize, Cursor)> = Vec::new();
        let mut todo: Vec<(usize, Cursor)> = idx.iter().map(|&i| (i, ids[i])).collect();
        for _ in 0..RAW_ID_ATTEMPTS {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &(i, id) in &todo {
                pipe.cmd("XADD")
                    .arg(&*key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.config.raw_max_len)
                    .arg(IdArg(id))
                    .arg("p")
                    .arg(&json[i][..]);
            }
            let asked = self.durability.wait_behind(&mut pipe, &key);
            let replies: Vec<redis::RedisResult<Value>> = match pipe.query_async(&mut c).await {
                Ok(r) => r,
                Err(e) => return (moved, Err(e.into())),
            };
            let mut taken = Vec::new();
            for (&(i, id), reply) in todo.iter().zip(&replies) {
                match reply {
                    Ok(_) => {}
                    Err(e) if is_stale_id(e) => taken.push((i, id)),
                    Err(e) => return (moved, Err(e.clone().into())),
                }
            }
            let waited = self
                .durability
                .confirm(
                    &mut c,
                    &key,
                    asked,
                    replies.get(todo.len()).map(Result::as_ref),
                )
                .await;
            // Ids already in the stream: this print, from an earlier attempt, or another's.
            let retake = match self.not_ours(&mut c, &key, &taken, json).await {
                Ok(r) => r,
                Err(e) => return (moved, Err(e)),
            };
            if retake.is_empty() {
                return (moved, waited);
            }
            let top = match self.stream_top(&mut c, &key).await {
                Ok(top) => top,
                Err(e) => return (moved, Err(e)),
            };
            let now = super::now_ms();
            {
                let mut last = self
                    .raw_last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let k = usize::from(shard);
                last[k] = last[k].max(top);
                todo = retake
                    .into_iter()
                    .map(|i| {
                        last[k] = next_raw_id(last[k], now);
                        (i, last[k])
                    })
                    .collect();
            }
            moved.extend(todo.iter().copied());
        }
        (
            moved,
            Err(BusError::Protocol(format!(
                "raw stream {key}: no free id after {RAW_ID_ATTEMPTS} attempts (another writer?)"
            ))),
        )
    }

    /// Of the prints whose ids the stream already had, those that are not
    /// this print (so need a new id).
    async fn not_ours(
        &self,
        c: &mut Conn,
        key: &str,
        taken: &[(usize, Cursor)],
        json: &[Vec<u8>],
    ) -> Result<Vec<usize>, BusError> {
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for &(_, id) in taken {
            pipe.cmd("XRANGE").arg(key).arg(IdArg(id)).arg(IdArg(id));
        }
        let found: Vec<Value> = pipe.query_async(c).await?;
        let mut retake = Vec::new();
        for (&(i, _), entry) in taken.iter().zip(found) {
            let stored = raw_stream_payloads(entry)?;
            if stored.first().map(Vec::as_slice) != Some(&json[i][..]) {
                retake.push(i);
            }
        }
        Ok(retake)
    }

    /// The id of a stream's newest entry (`0-0` if it has none).
    async fn stream_top(&self, c: &mut Conn, key: &str) -> Result<Cursor, BusError> {
        let v: Value = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(c)
            .await?;
        Ok(flow_entries(v)?.first().map_or(Cursor::ZERO, |e| e.id))
    }

    pub(super) async fn acquire_lease(
        &self,
        shard: u16,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BusError> {
        let mut c = self.conn.clone();
        let key = self.names.lease(&self.keys, shard);
        let set: Option<String> = redis::cmd("SET")
            .arg(&*key)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        if set.is_some() {
            return Ok(true);
        }
        // Already ours (a restart with the same identity): renew.
        self.renew_lease(shard, owner, ttl).await
    }

    pub(super) async fn renew_lease(
        &self,
        shard: u16,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BusError> {
        let script = Script::new(RENEW_LEASE);
        let mut c = self.conn.clone();
        let renewed: i64 = script
            .key(&*self.names.lease(&self.keys, shard))
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(renewed == 1)
    }

    pub(super) async fn release_lease(&self, shard: u16, owner: &str) -> Result<(), BusError> {
        let script = Script::new(RELEASE_LEASE);
        let mut c = self.conn.clone();
        let _: i64 = script
            .key(self.keys.lease(shard))
            .arg(owner)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    pub(super) async fn shard_reader(&self, shard: u16) -> Result<RedisShardReader, BusError> {
        // Blocking reads hold their connection: a reader's is its own.
        Ok(RedisShardReader {
            conn: self.target.connect().await?,
            stream: self.names.raw_stream(&self.keys, shard).into_owned(),
        })
    }

    pub(super) async fn guard_members(&self, shard: u16) -> Result<HashSet<Cursor>, BusError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.guard(shard))
            .query_async(&mut c)
            .await?;
        Ok(ids
            .iter()
            .filter_map(|s| Cursor::from_str(s).ok())
            .collect())
    }

    pub(super) async fn commit_flow(
        &self,
        shard: u16,
        owner: &str,
        events: &[NewEvent<'_>],
        prune: &[Cursor],
    ) -> Result<Vec<Option<Cursor>>, BusError> {
        // Index into `events` of each event still to commit. Each pass
        // either commits or removes at least one duplicate.
        let mut todo: Vec<usize> = (0..events.len()).collect();
        loop {
            match self.try_commit(shard, owner, events, &todo, prune).await? {
                Committed::Ids(ids) => {
                    let mut out = vec![None; events.len()];
                    for (&e, id) in todo.iter().zip(ids) {
                        out[e] = id;
                    }
                    return Ok(out);
                }
                Committed::Duplicates(dups) => {
                    let before = todo.len();
                    let dups: HashSet<usize> = dups.into_iter().collect();
                    todo = todo
                        .into_iter()
                        .enumerate()
                        .filter(|(k, _)| !dups.contains(k))
                        .map(|(_, e)| e)
                        .collect();
                    if todo.len() == before {
                        return Err(BusError::Protocol(
                            "the commit script named no duplicate it could skip".into(),
                        ));
                    }
                }
            }
        }
    }

    /// One `COMMIT_FLOW` call with `events[todo]`.
    async fn try_commit(
        &self,
        shard: u16,
        owner: &str,
        events: &[NewEvent<'_>],
        todo: &[usize],
        prune: &[Cursor],
    ) -> Result<Committed, BusError> {
        let adds = DayAdds::of(todo.iter().flat_map(|&e| events[e].deltas));
        // The command is built directly (not as a `ScriptInvocation`, which
        // keeps each argument in a buffer of its own and copies them all
        // again): a commit carries thousands of arguments at peaks.
        let script = &self.scripts.commit_flow;
        // Sized up front: a commit at peaks is hundreds of kilobytes, which
        // growing by doubling would copy again and again.
        let (mut args, mut bytes) = (16 + prune.len() + 2 * adds.days.len(), 512);
        bytes += ID_BYTES * prune.len();
        for &e in todo {
            let e = &events[e];
            args += 2 + e.legs.len();
            bytes += e.json.len() + ID_BYTES * e.legs.len() + 4;
        }
        for (_, field) in adds.fields.keys() {
            args += 3;
            bytes += field.len() + 24;
        }
        let mut cmd = redis::Cmd::with_capacity(args, bytes);
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(4 + 2 * adds.days.len())
            .arg(&self.names.flow_stream)
            .arg(&*self.names.lease(&self.keys, shard))
            .arg(&*self.names.guard(&self.keys, shard));
        for day in &adds.days {
            cmd.arg(self.keys.day_volume(shard, *day))
                .arg(self.keys.day_premium(shard, *day));
        }
        cmd.arg(self.keys.flow_origin());
        cmd.arg(owner)
            .arg(self.config.flow_max_len)
            .arg(match min_id_cutoff(self.config.flow_max_age) {
                Some(c) => IdArg(c).to_redis_args().concat(),
                None => Vec::new(),
            })
            .arg(&self.names.flow_channel)
            .arg(LIVE_MESSAGE_BYTES)
            .arg(self.config.day_ttl.as_secs().max(1))
            .arg(if self.target.is_cluster() {
                "SPUBLISH"
            } else {
                "PUBLISH"
            })
            .arg(prune.len());
        for id in prune {
            cmd.arg(IdArg(*id));
        }
        cmd.arg(todo.len());
        for &e in todo {
            let e = &events[e];
            cmd.arg(e.legs.len());
            for id in e.legs {
                cmd.arg(IdArg(*id));
            }
            cmd.arg(e.json);
        }
        cmd.arg(adds.fields.len());
        for ((key, field), amount) in &adds.fields {
            cmd.arg(key).arg(&**field).arg(amount);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        let asked = self
            .durability
            .wait_behind(&mut pipe, &self.names.flow_stream);
        let mut c = self.conn.clone();
        let mut reply = pipe.query_async::<Vec<Value>>(&mut c).await;
        if matches!(&reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            // A Redis that restarted, a new one, or a replica promoted by a
            // failover (script loads are not replicated): load it, once.
            script.prepare_invoke().load_async(&mut c).await?;
            reply = pipe.query_async(&mut c).await;
        }
        let mut replies = match reply {
            Ok(replies) => replies.into_iter(),
            Err(e) if server_code(&e).as_deref() == Some("LEASE_LOST") => {
                return Err(BusError::LeaseLost(shard))
            }
            Err(e) => return Err(e.into()),
        };
        let Some(Value::Array(reply)) = replies.next() else {
            return Err(BusError::Protocol(
                "the commit script's reply is not an array".into(),
            ));
        };
        // Durable mode: the caller acknowledges the raw prints only once the
        // events are on the replicas; short of that it commits again.
        self.durability
            .confirm(
                &mut c,
                &self.names.flow_stream,
                asked,
                replies.next().as_ref().map(Ok),
            )
            .await?;
        if reply.iter().any(|v| matches!(v, Value::Int(_))) {
            return Ok(Committed::Duplicates(
                reply
                    .iter()
                    .filter_map(|v| match v {
                        Value::Int(k) => usize::try_from(*k).ok(),
                        _ => None,
                    })
                    .collect(),
            ));
        }
        Ok(Committed::Ids(
            reply
                .iter()
                .map(|v| match v {
                    Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                    Value::SimpleString(s) => s.parse().ok(),
                    _ => None,
                })
                .collect(),
        ))
    }

    pub(super) async fn ack_raw(&self, shard: u16, ids: &[Cursor]) -> Result<u64, BusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&*self.names.raw_stream(&self.keys, shard))
            .arg(PROCESS_GROUP);
        for id in ids {
            cmd.arg(IdArg(*id));
        }
        let key = self.names.raw_stream(&self.keys, shard);
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        let asked = self.durability.wait_behind(&mut pipe, &key);
        let mut c = self.conn.clone();
        let mut replies = pipe.query_async::<Vec<Value>>(&mut c).await?.into_iter();
        let acked = match replies.next() {
            Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
            other => return Err(BusError::Protocol(format!("XACK reply: {other:?}"))),
        };
        // Durable mode: the guard forgets these only once the replicas have the acknowledgement.
        match self
            .durability
            .confirm(&mut c, &key, asked, replies.next().as_ref().map(Ok))
            .await
        {
            Ok(()) => Ok(acked),
            Err(e) => Err(BusError::UnconfirmedAck {
                acknowledged: acked,
                source: Box::new(e),
            }),
        }
    }

    pub(super) async fn day_volume(
        &self,
        shard: u16,
        day: Date,
    ) -> Result<Vec<(String, u64)>, BusError> {
        let mut c = self.conn.clone();
        let map: HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(self.keys.day_volume(shard, day))
            .query_async(&mut c)
            .await?;
        Ok(map.into_iter().collect())
    }

    /// The day's premium totals: every shard's premium hash (`HGETALL`,
    /// the shards at once), summed; fields it cannot read are counted in
    /// [`DayTotals::skipped`].
    pub(super) async fn day_totals(&self, day: Date) -> Result<DayTotals, BusError> {
        let reads = (0..self.config.shards).map(|shard| {
            let mut c = self.conn.clone();
            let key = self.keys.day_premium(shard, day);
            async move {
                let v: Value = redis::cmd("HGETALL").arg(&key).query_async(&mut c).await?;
                day_hash(v)
            }
        });
        let mut totals = DayTotals::default();
        for part in futures_util::future::join_all(reads).await {
            totals.merge(part?);
        }
        Ok(totals)
    }

    /// The leases in one `MGET` (they share the flow slot), then each
    /// shard's `XINFO GROUPS` (each in its own slot), all at once.
    pub(super) async fn shard_backlog(&self) -> Result<Vec<ShardBacklog>, BusError> {
        let mut c = self.conn.clone();
        let owners: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&self.names.leases)
            .query_async(&mut c)
            .await?;
        let groups = (0..self.config.shards).map(|shard| {
            let mut c = self.conn.clone();
            let key = self.names.raw_stream(&self.keys, shard).into_owned();
            async move {
                let reply = redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&key)
                    .query_async::<Value>(&mut c)
                    .await;
                match reply {
                    Ok(v) => group_backlog(v, PROCESS_GROUP),
                    // A Redis that restarted empty: the stream comes back with the next read.
                    Err(e) if e.to_string().contains("no such key") => Ok((Some(0), 0)),
                    Err(e) => Err(BusError::from(e)),
                }
            }
        });
        let groups = futures_util::future::join_all(groups).await;
        owners
            .into_iter()
            .chain(std::iter::repeat(None))
            .zip(groups)
            .enumerate()
            .map(|(shard, (owner, group))| {
                let (lag, pending) = group?;
                Ok(ShardBacklog {
                    shard: shard as u16,
                    owner,
                    lag,
                    pending,
                })
            })
            .collect()
    }

    pub(super) async fn flow_after(
        &self,
        after: Cursor,
        count: usize,
    ) -> Result<Vec<FlowEntry>, BusError> {
        let mut c = self.conn.clone();
        let v: Value = redis::cmd("XRANGE")
            .arg(self.keys.flow_stream())
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        flow_entries(v)
    }

    pub(super) async fn flow_before(
        &self,
        before: Option<Cursor>,
        count: usize,
    ) -> Result<Vec<FlowEntry>, BusError> {
        let mut c = self.conn.clone();
        let end = before.map(|b| b.to_string()).unwrap_or_else(|| "+".into());
        let v: Value = redis::cmd("XREVRANGE")
            .arg(self.keys.flow_stream())
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        let mut entries = flow_entries(v)?;
        entries.reverse();
        Ok(entries)
    }

    pub(super) async fn flow_bounds(&self) -> Result<FlowBounds, BusError> {
        let mut c = self.conn.clone();
        let key = self.keys.flow_stream();
        let (len, first, last): (u64, Value, Value) = redis::pipe()
            .cmd("XLEN")
            .arg(&key)
            .cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        let id_of = |v: Value| -> Result<Option<Cursor>, BusError> {
            Ok(flow_entries(v)?.first().map(|e| e.id))
        };
        Ok(FlowBounds {
            len,
            first: id_of(first)?,
            last: id_of(last)?,
        })
    }

    pub(super) async fn publish_feed_status(
        &self,
        status: &FeedStatus,
        ttl: Duration,
    ) -> Result<(), BusError> {
        let json = serde_json::to_string(status).map_err(|e| BusError::Protocol(e.to_string()))?;
        let mut c = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(self.keys.feed_status())
            .arg(json)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    pub(super) async fn feed_status(&self) -> Result<Option<FeedStatus>, BusError> {
        let mut c = self.conn.clone();
        let json: Option<String> = redis::cmd("GET")
            .arg(self.keys.feed_status())
            .query_async(&mut c)
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Subscribes to the live fan-out: Pub/Sub on one Redis, sharded
    /// Pub/Sub on a cluster ([`live`]).
    pub(super) async fn subscribe_live(&self) -> Result<mpsc::Receiver<Live>, BusError> {
        let channel = self.keys.flow_channel();
        match &self.target {
            Target::Single(client) => live::subscribe(client.clone(), channel).await,
            Target::Cluster { seeds, .. } => {
                live::subscribe_sharded(
                    seeds.clone(),
                    channel,
                    self.keys.flow_probe_channel(),
                    self.conn.clone(),
                )
                .await
            }
        }
    }
}

async fn create_group(conn: &mut Conn, stream: &str) -> Result<(), BusError> {
    let created: Result<String, redis::RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(PROCESS_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads one raw shard through the consumer group, on its own connection.
pub struct RedisShardReader {
    conn: Conn,
    stream: String,
}

impl RedisShardReader {
    pub(super) async fn read_new(
        &mut self,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<RawEntry>, BusError> {
        let read = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(PROCESS_GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async::<Value>(&mut self.conn)
            .await;
        match read {
            Ok(v) => raw_entries_of_read(v),
            // The stream or group vanished (Redis restarted without persistence): recreate it.
            Err(e) if e.code() == Some("NOGROUP") => {
                create_group(&mut self.conn, &self.stream).await?;
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn claim_all(
        &mut self,
        consumer: &str,
    ) -> Result<(Vec<RawEntry>, u64), BusError> {
        let mut out = Vec::new();
        let mut trimmed = 0u64;
        let mut start = "0-0".to_string();
        loop {
            let reply = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(PROCESS_GROUP)
                .arg(consumer)
                .arg(0)
                .arg(&start)
                .arg("COUNT")
                .arg(1000)
                .query_async::<Value>(&mut self.conn)
                .await;
            let v = match reply {
                Ok(v) => v,
                Err(e) if e.code() == Some("NOGROUP") => {
                    create_group(&mut self.conn, &self.stream).await?;
                    return Ok((out, trimmed));
                }
                Err(e) => return Err(e.into()),
            };
            let Value::Array(parts) = v else {
                return Err(BusError::Protocol(
                    "XAUTOCLAIM reply is not an array".into(),
                ));
            };
            let mut parts = parts.into_iter();
            let next = parts.next().and_then(|v| string_of(&v));
            let entries = parts.next().unwrap_or(Value::Nil);
            if let Some(Value::Array(deleted)) = parts.next() {
                trimmed += deleted.len() as u64;
            }
            for (id, print) in raw_stream_entries(entries)? {
                match print {
                    Some(print) => out.push(RawEntry { id, print }),
                    None => trimmed += 1,
                }
            }
            match next {
                Some(n) if n != "0-0" => start = n,
                _ => break,
            }
        }
        Ok((out, trimmed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@db:6379/0"),
            "redis://:***@db:6379/0"
        );
        assert_eq!(
            redact_url("redis://app:hunter2@db:6379"),
            "redis://app:***@db:6379"
        );
        assert_eq!(redact_url("rediss://token@db"), "rediss://***@db");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn ids_are_written_as_redis_stream_ids() {
        for (ms, seq) in [(0, 0), (1_734_700_000_123, 7), (u64::MAX, u64::MAX)] {
            let mut buf = [0u8; 41];
            let n = write_id(&mut buf, ms, seq);
            assert_eq!(&buf[..n], Cursor::new(ms, seq).to_string().as_bytes());
        }
    }
}
