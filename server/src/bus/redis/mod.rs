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
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ToRedisArgs, Value};
use tokio::sync::mpsc;

use super::keys::PROCESS_GROUP;
use super::{
    min_id_cutoff, shard_of, BusConfig, BusError, DayDelta, FlowBounds, FlowEntry, Keys, Live,
    NewEvent, RawEntry,
};
use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_core::event::Print;
use flowtape_core::protocol::FeedStatus;
use reply::{flow_entries, parse_live, raw_entries_of_read, raw_stream_entries, string_of};

mod history;
mod reply;

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
            if let Some(direction) = &d.direction {
                *adds.fields.entry((premium, direction.clone())).or_default() += d.premium_cents;
            }
        }
        adds
    }
}

/// About how long a stream entry id is as an argument (`ms-seq`).
const ID_BYTES: usize = 16;

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
    client: redis::Client,
    url: String,
    conn: ConnectionManager,
    config: BusConfig,
    keys: Keys,
    names: Arc<Names>,
    scripts: Arc<Scripts>,
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

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2))
}

impl RedisBus {
    pub async fn connect(url: &str, config: BusConfig) -> Result<RedisBus, BusError> {
        let shown = redact_url(url);
        let client = redis::Client::open(url).map_err(|e| BusError::BadUrl {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        let unavailable = |e: redis::RedisError| BusError::Unavailable {
            url: shown.clone(),
            reason: e.to_string(),
        };
        let conn = client
            .get_connection_manager_with_config(manager_config())
            .await
            .map_err(unavailable)?;
        let keys = Keys::new(&config.namespace);
        let bus = RedisBus {
            client,
            url: shown.clone(),
            conn,
            names: Arc::new(Names::new(&keys, config.shards)),
            keys,
            config,
            scripts: Arc::new(Scripts {
                commit_flow: Script::new(COMMIT_FLOW),
            }),
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
        let conn = self
            .client
            .get_connection_manager_with_config(manager_config())
            .await?;
        Ok(RedisBus {
            conn,
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

    pub(super) async fn append_raw(&self, prints: &[Print]) -> Result<(), BusError> {
        if prints.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut json = Vec::with_capacity(512);
        for p in prints {
            let key = self.names.raw_stream(
                &self.keys,
                shard_of(p.contract.underlying(), self.config.shards),
            );
            json.clear();
            serde_json::to_writer(&mut json, p).map_err(|e| BusError::Protocol(e.to_string()))?;
            pipe.cmd("XADD")
                .arg(&*key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.raw_max_len)
                .arg("*")
                .arg("p")
                .arg(&json[..])
                .ignore();
        }
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await?;
        Ok(())
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
        let conn = self
            .client
            .get_connection_manager_with_config(manager_config())
            .await?;
        Ok(RedisShardReader {
            conn,
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
        let mut c = self.conn.clone();
        let mut reply = cmd.query_async::<Vec<Value>>(&mut c).await;
        if matches!(&reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            // A Redis that restarted, or a new one: load the script once.
            script.prepare_invoke().load_async(&mut c).await?;
            reply = cmd.query_async(&mut c).await;
        }
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if e.code() == Some("LEASE_LOST") => return Err(BusError::LeaseLost(shard)),
            Err(e) => return Err(e.into()),
        };
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
        let mut c = self.conn.clone();
        Ok(cmd.query_async(&mut c).await?)
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

    /// Starts a task that holds a Pub/Sub subscription to the flow channel,
    /// resubscribing with backoff when it is lost; after each loss it sends
    /// [`Live::Gap`]. The task ends when the receiver is dropped.
    pub(super) async fn subscribe_live(&self) -> Result<mpsc::Receiver<Live>, BusError> {
        let (tx, rx) = mpsc::channel(8192);
        let client = self.client.clone();
        let channel = self.keys.flow_channel();
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            let mut backoff = Duration::from_millis(50);
            loop {
                if let Some(ps) = pubsub.take() {
                    backoff = Duration::from_millis(50);
                    let mut stream = ps.into_on_message();
                    while let Some(msg) = futures_util::StreamExt::next(&mut stream).await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        // One message carries one commit's events, a line each.
                        for line in payload.split('\n') {
                            let Some(entry) = parse_live(line) else {
                                tracing::warn!("ignoring a malformed live message");
                                continue;
                            };
                            if tx.send(Live::Entry(entry)).await.is_err() {
                                return;
                            }
                        }
                    }
                    tracing::warn!("lost the live subscription; resubscribing");
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                match client.get_async_pubsub().await {
                    Ok(mut ps) => {
                        if ps.subscribe(&channel).await.is_ok() {
                            pubsub = Some(ps);
                            if tx.send(Live::Gap).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::debug!("resubscribe failed: {e}"),
                }
            }
        });
        Ok(rx)
    }
}

async fn create_group(conn: &mut ConnectionManager, stream: &str) -> Result<(), BusError> {
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
    conn: ConnectionManager,
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
