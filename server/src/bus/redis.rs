//! The Redis bus.
//!
//! Raw prints go to one stream per shard (`XADD … MAXLEN ~`), pipelined so a
//! batch costs one round trip. Processors read a shard through the consumer
//! group [`PROCESS_GROUP`](super::keys::PROCESS_GROUP) on a dedicated
//! connection (blocking reads hold a connection), take over a dead
//! processor's pending entries with `XAUTOCLAIM`, and commit with two Lua
//! scripts:
//! - `COMMIT_FLOW` (flow slot): checks the shard lease, appends events to the
//!   bounded flow stream, records their raw ids in the guard set and
//!   publishes each event with its stream id, all atomically;
//! - `ACK_RAW` (the shard's slot): acknowledges raw entries and, only for
//!   entries acknowledged by this call, adds their day volume and premium to
//!   the per-day hashes, which carry a TTL.
//!
//! Connections are `ConnectionManager`s, which reconnect by themselves; the
//! live subscription is a task that resubscribes and reports a gap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::sync::mpsc;

use super::keys::PROCESS_GROUP;
use super::{
    min_id_cutoff, shard_of, Ack, BusConfig, BusError, FlowBounds, FlowEntry, Keys, Live, NewEvent,
    RawEntry,
};
use crate::cursor::Cursor;
use crate::date::Date;
use crate::event::Print;
use crate::protocol::FeedStatus;

const COMMIT_FLOW: &str = r#"
-- KEYS: flow stream, lease, guard
-- ARGV: owner, maxlen, minid ('' = none), channel, nprune, prune..., nevents, {nlegs, legs..., json}...
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('LEASE_LOST the shard lease is held by another processor')
end
local function in_chunks(cmd, key, from, to)
  for s = from, to, 1000 do
    redis.call(cmd, key, unpack(ARGV, s, math.min(s + 999, to)))
  end
end
local i = 5
local np = tonumber(ARGV[i]); i = i + 1
if np > 0 then in_chunks('SREM', KEYS[3], i, i + np - 1) end
i = i + np
local ne = tonumber(ARGV[i]); i = i + 1
local out = {}
for e = 1, ne do
  local nl = tonumber(ARGV[i]); i = i + 1
  local json = ARGV[i + nl]
  if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 1 then
    out[e] = ''
  else
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', json)
    in_chunks('SADD', KEYS[3], i, i + nl - 1)
    redis.call('PUBLISH', ARGV[4], id .. ' ' .. json)
    out[e] = id
  end
  i = i + nl + 1
end
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
return out
"#;

const ACK_RAW: &str = r#"
-- KEYS: raw stream, then (volume hash, premium hash) per day
-- ARGV: group, ttl seconds, n, {id, day index (0 = none), occ, size, bucket field, direction field ('' = none), cents}...
local n = tonumber(ARGV[3])
local vol, prem = {}, {}
local acked = 0
local i = 4
for k = 1, n do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    acked = acked + 1
    local d = tonumber(ARGV[i + 1])
    if d > 0 then
      local vk, pk = 2 * d, 2 * d + 1
      vol[vk] = vol[vk] or {}
      vol[vk][ARGV[i + 2]] = (vol[vk][ARGV[i + 2]] or 0) + tonumber(ARGV[i + 3])
      prem[pk] = prem[pk] or {}
      local cents = tonumber(ARGV[i + 6])
      prem[pk][ARGV[i + 4]] = (prem[pk][ARGV[i + 4]] or 0) + cents
      if ARGV[i + 5] ~= '' then prem[pk][ARGV[i + 5]] = (prem[pk][ARGV[i + 5]] or 0) + cents end
    end
  end
  i = i + 7
end
for _, t in ipairs({vol, prem}) do
  for key, fields in pairs(t) do
    for f, v in pairs(fields) do redis.call('HINCRBY', KEYS[key], f, v) end
    redis.call('EXPIRE', KEYS[key], ARGV[2])
  end
end
return acked
"#;

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
    scripts: Arc<Scripts>,
}

struct Scripts {
    commit_flow: Script,
    ack_raw: Script,
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
        let bus = RedisBus {
            client,
            url: shown.clone(),
            conn,
            keys: Keys::new(&config.namespace),
            config,
            scripts: Arc::new(Scripts {
                commit_flow: Script::new(COMMIT_FLOW),
                ack_raw: Script::new(ACK_RAW),
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
        for p in prints {
            let key = self
                .keys
                .raw_stream(shard_of(p.contract.underlying(), self.config.shards));
            let json = serde_json::to_string(p).map_err(|e| BusError::Protocol(e.to_string()))?;
            pipe.cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.raw_max_len)
                .arg("*")
                .arg("p")
                .arg(json)
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
        let key = self.keys.lease(shard);
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
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
        let script = Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
        );
        let mut c = self.conn.clone();
        let renewed: i64 = script
            .key(self.keys.lease(shard))
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(renewed == 1)
    }

    pub(super) async fn release_lease(&self, shard: u16, owner: &str) -> Result<(), BusError> {
        let script = Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0");
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
            stream: self.keys.raw_stream(shard),
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
        let mut inv = self.scripts.commit_flow.prepare_invoke();
        inv.key(self.keys.flow_stream())
            .key(self.keys.lease(shard))
            .key(self.keys.guard(shard))
            .arg(owner)
            .arg(self.config.flow_max_len)
            .arg(
                min_id_cutoff(self.config.flow_max_age)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
            )
            .arg(self.keys.flow_channel())
            .arg(prune.len());
        for id in prune {
            inv.arg(id.to_string());
        }
        inv.arg(events.len());
        for e in events {
            inv.arg(e.legs.len());
            for id in e.legs {
                inv.arg(id.to_string());
            }
            inv.arg(e.json);
        }
        let mut c = self.conn.clone();
        let ids: Vec<String> = match inv.invoke_async(&mut c).await {
            Ok(ids) => ids,
            Err(e) if e.code() == Some("LEASE_LOST") => return Err(BusError::LeaseLost(shard)),
            Err(e) => return Err(e.into()),
        };
        Ok(ids.iter().map(|s| Cursor::from_str(s).ok()).collect())
    }

    pub(super) async fn ack_raw(&self, shard: u16, acks: &[Ack]) -> Result<u64, BusError> {
        if acks.is_empty() {
            return Ok(0);
        }
        let mut days: BTreeMap<Date, usize> = BTreeMap::new();
        for d in acks.iter().filter_map(|a| a.delta.as_ref()) {
            let next = days.len() + 1;
            days.entry(d.day).or_insert(next);
        }
        let mut inv = self.scripts.ack_raw.prepare_invoke();
        inv.key(self.keys.raw_stream(shard));
        let mut ordered: Vec<(&Date, &usize)> = days.iter().collect();
        ordered.sort_by_key(|(_, i)| **i);
        for (day, _) in ordered {
            inv.key(self.keys.day_volume(shard, *day))
                .key(self.keys.day_premium(shard, *day));
        }
        inv.arg(PROCESS_GROUP)
            .arg(self.config.day_ttl.as_secs().max(1))
            .arg(acks.len());
        for a in acks {
            inv.arg(a.id.to_string());
            match &a.delta {
                Some(d) => {
                    let (bucket, dir) = d.premium_fields();
                    inv.arg(days.get(&d.day).copied().unwrap_or(0))
                        .arg(&d.occ)
                        .arg(d.size)
                        .arg(bucket)
                        .arg(dir.unwrap_or_default())
                        .arg(d.premium_cents);
                }
                None => {
                    inv.arg(0).arg("").arg(0).arg("").arg("").arg(0);
                }
            }
        }
        let mut c = self.conn.clone();
        let acked: u64 = inv.invoke_async(&mut c).await?;
        Ok(acked)
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
                        let Some(entry) = parse_live(&payload) else {
                            tracing::warn!("ignoring a malformed live message");
                            continue;
                        };
                        if tx.send(Live::Entry(entry)).await.is_err() {
                            return;
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

/// `<id> <json>` as published by `COMMIT_FLOW`.
fn parse_live(payload: &str) -> Option<FlowEntry> {
    let (id, json) = payload.split_once(' ')?;
    Some(FlowEntry {
        id: id.parse().ok()?,
        json: json.into(),
    })
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
            for (id, fields) in stream_entries(entries)? {
                match fields {
                    Some(fields) => out.push(raw_entry(id, &fields)),
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

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// A stream entry's fields, or `None` for an entry deleted since it was delivered.
type Fields = Option<Vec<(String, String)>>;

/// Parses `[[id, [field, value, …] | nil], …]`.
fn stream_entries(v: Value) -> Result<Vec<(Cursor, Fields)>, BusError> {
    let items = match v {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(BusError::Protocol(format!("stream entries: {other:?}"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(BusError::Protocol("stream entry is not an array".into()));
        };
        let mut pair = pair.into_iter();
        let id = pair
            .next()
            .and_then(|v| string_of(&v))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| BusError::Protocol("stream entry without an id".into()))?;
        let fields = match pair.next() {
            Some(Value::Array(kv)) => {
                let flat: Vec<String> = kv.iter().filter_map(string_of).collect();
                Some(
                    flat.chunks(2)
                        .filter(|c| c.len() == 2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect(),
                )
            }
            Some(Value::Map(kv)) => Some(
                kv.iter()
                    .filter_map(|(k, v)| Some((string_of(k)?, string_of(v)?)))
                    .collect(),
            ),
            _ => None,
        };
        out.push((id, fields));
    }
    Ok(out)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn raw_entry(id: Cursor, fields: &[(String, String)]) -> RawEntry {
    let print = field(fields, "p").and_then(|json| match serde_json::from_str::<Print>(json) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(%id, "malformed raw entry: {e}");
            None
        }
    });
    RawEntry { id, print }
}

/// Parses an XREADGROUP reply for one stream.
fn raw_entries_of_read(v: Value) -> Result<Vec<RawEntry>, BusError> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(kv) => Ok(kv.into_iter().nth(1).unwrap_or(Value::Nil)),
                other => Err(BusError::Protocol(format!("XREADGROUP stream: {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(kv) => kv.into_iter().map(|(_, v)| v).collect(),
        other => return Err(BusError::Protocol(format!("XREADGROUP reply: {other:?}"))),
    };
    let mut out = Vec::new();
    for entries in streams {
        for (id, fields) in stream_entries(entries)? {
            out.push(match fields {
                Some(f) => raw_entry(id, &f),
                None => RawEntry { id, print: None },
            });
        }
    }
    Ok(out)
}

fn flow_entries(v: Value) -> Result<Vec<FlowEntry>, BusError> {
    Ok(stream_entries(v)?
        .into_iter()
        .filter_map(|(id, fields)| {
            let json = field(fields.as_deref()?, "e")?;
            Some(FlowEntry {
                id,
                json: json.into(),
            })
        })
        .collect())
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
    fn live_messages_parse() {
        let e = parse_live(r#"17-3 {"ts":1}"#);
        assert_eq!(
            e.map(|e| (e.id, e.json.to_string())),
            Some((Cursor::new(17, 3), r#"{"ts":1}"#.to_string()))
        );
        assert_eq!(parse_live("garbage"), None);
    }
}
