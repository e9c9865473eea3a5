//! Redis key names, and which shard an underlying belongs to.
//!
//! Every key carries a hash tag so that Redis Cluster places it on purpose:
//! - each raw shard's stream has the tag `{<ns>:raw:<k>}`, so a cluster
//!   spreads the shards over its nodes;
//! - the flow stream, its Pub/Sub channel, the processing leases, the
//!   exactly-once guard sets and the day aggregates share the tag
//!   `{<ns>:flow}`, so the commit script that appends events also checks the
//!   lease and the guard and counts the day aggregates atomically, and the
//!   channel is a sharded Pub/Sub channel of the same slot.
//!
//! See `docs/redis.md` for the full layout, bounds and memory budget.

use flowtape_core::date::Date;

/// Name builder for one deployment's keys (the namespace defaults to `ft`).
#[derive(Clone, Debug)]
pub struct Keys {
    ns: String,
}

/// The consumer group every processor reads raw shards through.
pub const PROCESS_GROUP: &str = "process";

impl Keys {
    pub fn new(namespace: &str) -> Keys {
        Keys {
            ns: namespace.to_string(),
        }
    }

    fn raw_tag(&self, shard: u16) -> String {
        format!("{}:{{{}:raw:{}}}", self.ns, self.ns, shard)
    }

    fn flow_tag(&self) -> String {
        format!("{}:{{{}:flow}}", self.ns, self.ns)
    }

    /// Raw prints of one shard (stream, consumer group [`PROCESS_GROUP`]).
    pub fn raw_stream(&self, shard: u16) -> String {
        format!("{}:prints", self.raw_tag(shard))
    }

    /// Day volume per contract for one shard and trading day (hash occ → contracts).
    pub fn day_volume(&self, shard: u16, day: Date) -> String {
        format!("{}:vol:{}:{}", self.flow_tag(), shard, day.compact())
    }

    /// Premium per ticker and per contract for one shard and trading day
    /// (hash `SYM:call|put|bull|bear` and unpadded OSI symbol → cents).
    pub fn day_premium(&self, shard: u16, day: Date) -> String {
        format!("{}:prem:{}:{}", self.flow_tag(), shard, day.compact())
    }

    /// The flow event stream (the source of truth gateways read).
    pub fn flow_stream(&self) -> String {
        format!("{}:events", self.flow_tag())
    }

    /// The id of the first entry written to the flow stream since it was
    /// created (string): history before it is not this stream's, so a
    /// cursor older than it was lost, not trimmed (`docs/redis.md`).
    pub fn flow_origin(&self) -> String {
        format!("{}:origin", self.flow_tag())
    }

    /// The Pub/Sub channel every committed event is published on.
    pub fn flow_channel(&self) -> String {
        format!("{}:live", self.flow_tag())
    }

    /// The channel a gateway's sharded live subscription checks itself on
    /// (cluster only): the flow slot's, so it lives where the live channel does.
    pub fn flow_probe_channel(&self) -> String {
        format!("{}:probe", self.flow_tag())
    }

    /// Who processes a shard now (string owner id, with a TTL).
    pub fn lease(&self, shard: u16) -> String {
        format!("{}:lease:{}", self.flow_tag(), shard)
    }

    /// The feed status an ingest last published (JSON, with a TTL).
    pub fn feed_status(&self) -> String {
        format!("{}:feed", self.flow_tag())
    }

    /// Raw entry ids of a shard that are reflected in the flow stream but
    /// not yet acknowledged (set): the exactly-once guard.
    pub fn guard(&self, shard: u16) -> String {
        format!("{}:guard:{}", self.flow_tag(), shard)
    }
}

/// The shard an underlying's prints go to: FNV-1a of the ticker, modulo the
/// shard count. Stable across processes and versions, so every ingest and
/// processor agrees.
pub fn shard_of(underlying: &str, shards: u16) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in underlying.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(shards.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, modulo 16384.
    fn slot(key: &str) -> u16 {
        let tag = match (key.find('{'), key.find('}')) {
            (Some(a), Some(b)) if b > a + 1 => &key[a + 1..b],
            _ => key,
        };
        let mut crc: u16 = 0;
        for &byte in tag.as_bytes() {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn keys_share_slots_as_designed() {
        let k = Keys::new("ft");
        let day = Date::from_ymd(2026, 11, 27).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.raw_stream(3), "ft:{ft:raw:3}:prints");
        assert_eq!(k.day_volume(3, day), "ft:{ft:flow}:vol:3:20261127");
        let flow = slot(&k.flow_stream());
        for key in [
            k.flow_channel(),
            k.lease(0),
            k.lease(7),
            k.guard(5),
            k.feed_status(),
            k.flow_origin(),
            k.day_volume(3, day),
            k.day_premium(3, day),
        ] {
            assert_eq!(slot(&key), flow, "{key}");
        }
        // Sixteen shards land on many distinct slots, so a cluster spreads them.
        let mut slots: Vec<u16> = (0..16).map(|s| slot(&k.raw_stream(s))).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 16);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("AAPL", 8), shard_of("AAPL", 8));
        assert_eq!(shard_of("AAPL", 1), 0);
        let mut seen = std::collections::HashSet::new();
        for t in [
            "SPY", "QQQ", "AAPL", "TSLA", "NVDA", "AMZN", "META", "MSFT", "IWM", "AMD", "GOOGL",
            "NFLX",
        ] {
            seen.insert(shard_of(t, 4));
        }
        assert!(seen.len() >= 3, "{seen:?}");
    }
}
