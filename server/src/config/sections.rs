//! The sections of the server's configuration. Each field is a command-line
//! flag (`--flow-retention`) and a key of the file (`[bus] flow_retention`)
//! at once, so the two cannot drift apart. Every field is optional: `None`
//! means "not given here", and [`ServerConfig::defaults`](super::ServerConfig::defaults)
//! fills them from the roles' own defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use super::size::ByteSize;
use crate::bus::BusConfig;
use crate::feed::massive::{self, MassiveConfig};
use crate::gateway::GatewayConfig;
use crate::node;
use crate::pipeline::ProcessorConfig;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers; the same fields as `text`.
    Json,
}

/// `[log]`: where every role's logs go (stderr) and how.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,flowtape_server=debug`).
    #[arg(long = "log", global = true, env = "FLOWTAPE_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Log line format.
    #[arg(long = "log-format", global = true, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// `[bus]`: where the streams live and how much they keep.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSection {
    /// Redis URL: redis://[user:pass@]host:port for one Redis, or
    /// redis+cluster://[user:pass@]host:port[,host:port…] for seed nodes of a Redis Cluster.
    #[arg(long, env = "FLOWTAPE_REDIS", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Use the embedded in-memory bus instead of Redis (`run` only).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<bool>,
    /// Number of raw print shards (every ingest and processor must agree).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u16>,
    /// Key namespace.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Keep about this many flow events (XADD MAXLEN ~).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_max_len: Option<u64>,
    /// Keep flow events for this long (XTRIM MINID ~), e.g. 24h, 90m; 0 for no age limit.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_retention: Option<HumanDuration>,
    /// Keep about this many raw prints per shard: how far processing may fall behind.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_max_len: Option<u64>,
    /// Time to live of per-day keys (day volume, premium aggregates).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_ttl: Option<HumanDuration>,
    /// Durable mode: count a print or event as stored only once this many
    /// replicas have it (WAIT); 0 trusts the master's acknowledgement (docs/redis.md).
    #[arg(long, env = "FLOWTAPE_WAIT_REPLICAS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_replicas: Option<u32>,
    /// Durable mode: how long a write waits for its replicas before it is retried, in ms (1–60000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_timeout_ms: Option<u64>,
}

impl BusSection {
    pub(super) fn defaults() -> BusSection {
        let d = BusConfig::default();
        BusSection {
            redis: Some("redis://127.0.0.1:6379".into()),
            memory: Some(false),
            shards: Some(d.shards),
            namespace: Some(d.namespace),
            flow_max_len: Some(d.flow_max_len),
            flow_retention: Some(HumanDuration(d.flow_max_age)),
            raw_max_len: Some(d.raw_max_len),
            day_ttl: Some(HumanDuration(d.day_ttl)),
            wait_replicas: Some(d.wait_replicas),
            wait_timeout_ms: Some(d.wait_timeout.as_millis() as u64),
        }
    }

    /// The bus configuration; unset fields take [`BusConfig`]'s defaults.
    pub fn bus_config(&self) -> BusConfig {
        let d = BusConfig::default();
        BusConfig {
            namespace: self.namespace.clone().unwrap_or(d.namespace),
            shards: self.shards.unwrap_or(d.shards),
            raw_max_len: self.raw_max_len.unwrap_or(d.raw_max_len),
            flow_max_len: self.flow_max_len.unwrap_or(d.flow_max_len),
            flow_max_age: self.flow_retention.map_or(d.flow_max_age, |h| h.0),
            day_ttl: self.day_ttl.map_or(d.day_ttl, |h| h.0),
            wait_replicas: self.wait_replicas.unwrap_or(d.wait_replicas),
            wait_timeout: self
                .wait_timeout_ms
                .map_or(d.wait_timeout, Duration::from_millis),
        }
    }
}

/// Where prints come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// The simulated market.
    Sim,
    /// A recorded NDJSON file (docs/replay.md).
    Replay,
    /// The Massive (Polygon) options WebSocket (docs/massive.md).
    Massive,
    /// No feed.
    None,
}

/// `[feed]`: the market feed an ingest runs.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSection {
    /// Where prints come from.
    #[arg(long = "feed", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FeedKind>,
    /// NDJSON replay file (with --feed replay); format in docs/replay.md.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// Replay pace: 1 = recorded pace, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_speed: Option<f64>,
    /// Mean simulated prints per second.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_rate: Option<f64>,
    /// Seed of the simulated market (same seed, same tape).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_seed: Option<u64>,
    /// Massive options WebSocket URL.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub massive_url: Option<String>,
    /// Massive API key (a secret: never logged, redacted by `config show`).
    #[arg(long, env = "MASSIVE_API_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub massive_key: Option<String>,
    /// Massive subscription (trades and quotes of every option by default).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub massive_subscribe: Option<String>,
    /// Massive stocks WebSocket URL, for the underlyings' spot prices (none by default).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub massive_stocks_url: Option<String>,
    /// Open interest snapshot, CSV `occ,oi`, joined onto prints.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oi_file: Option<PathBuf>,
}

impl FeedSection {
    pub(super) fn defaults() -> FeedSection {
        FeedSection {
            kind: Some(FeedKind::Sim),
            replay: None,
            replay_speed: Some(1.0),
            sim_rate: Some(1000.0),
            sim_seed: Some(1),
            massive_url: Some(massive::DEFAULT_URL.into()),
            massive_key: None,
            massive_subscribe: Some(massive::DEFAULT_SUBSCRIBE.into()),
            massive_stocks_url: None,
            oi_file: None,
        }
    }

    /// The Massive feed's configuration; it needs a key.
    pub fn massive_config(&self) -> Result<MassiveConfig, String> {
        let key = self.massive_key.clone().ok_or(
            "--feed massive needs an API key: --massive-key, MASSIVE_API_KEY or [feed] massive_key",
        )?;
        let mut config = MassiveConfig::new(key);
        if let Some(url) = &self.massive_url {
            config.url = url.clone();
        }
        if let Some(subscribe) = &self.massive_subscribe {
            config.subscribe = subscribe.clone();
        }
        config.stocks_url = self.massive_stocks_url.clone();
        config.oi_file = self.oi_file.clone();
        Ok(config)
    }
}

/// `[process]`: how a processor runs (its detection thresholds are `[detection]`).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessSection {
    /// How long a processor's shard leases last without renewal: how soon
    /// another processor takes over the shards of one that died (at least 1s).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<HumanDuration>,
    /// Trade condition table (TOML); the shipped default is assets/conditions.toml.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<PathBuf>,
    /// `/healthz` answers 503 while a shard this processor owns has more raw
    /// prints than this waiting (at least 1).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
}

impl ProcessSection {
    pub(super) fn defaults() -> ProcessSection {
        let d = ProcessorConfig::new(String::new());
        ProcessSection {
            lease_ttl: Some(HumanDuration(d.lease_ttl)),
            conditions: None,
            max_lag: Some(d.max_lag),
        }
    }
}

/// `[metrics]`: where ingest and process serve `/metrics` and `/healthz`
/// when run apart (`--metrics-listen` on each); inside `run` the gateway's
/// port serves every role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_listen: Option<SocketAddr>,
}

impl MetricsSection {
    pub(super) fn defaults() -> MetricsSection {
        MetricsSection {
            ingest_listen: Some(node::INGEST_METRICS_LISTEN),
            process_listen: Some(node::PROCESS_METRICS_LISTEN),
        }
    }
}

/// `[gateway]`: where clients connect and the limits they get.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySection {
    /// Listen address for WebSocket clients (`/ws`), `/healthz` and `/metrics`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// TOML file of accepted tokens (SHA-256 hashes, entitlements, connection caps); see docs/protocol.md.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<PathBuf>,
    /// Serve anonymous clients on a non-loopback address (refused by default).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    /// TLS certificate chain (PEM) to serve wss://; needs tls_key.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs tls_cert.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Most open connections at once.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// At peaks, write to a client at most once per this many milliseconds,
    /// the events due meanwhile in one frame; 0 writes each event at once.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coalesce_ms: Option<u64>,
    /// Bytes queued for one client before it is closed as a slow consumer
    /// (e.g. 4MiB).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_queue_bytes: Option<ByteSize>,
    /// Bytes queued for all clients together (e.g. 512MiB); over it, the
    /// clients furthest behind are closed first (4008, resumable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_bytes: Option<ByteSize>,
    /// Largest client message (e.g. 64KiB).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<ByteSize>,
    /// The most events one backfill may ask for.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backfill: Option<u32>,
    /// Client messages per second allowed on average.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// Client messages allowed in a burst.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_burst: Option<u32>,
    /// The server pings every client this often.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_interval: Option<HumanDuration>,
    /// A socket that takes nothing for this long is closed as a slow consumer.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<HumanDuration>,
    /// How long the `delayed` entitlement holds events after their trade time.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<HumanDuration>,
    /// `/healthz` answers 503 when the gateway is further behind the stream.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_healthy_lag: Option<HumanDuration>,
    /// On shutdown, how long to wait for connections to close.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<HumanDuration>,
    /// The day's totals (`day` op) are read from Redis at most once per
    /// this, for all clients of the gateway.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_cache: Option<HumanDuration>,
}

impl GatewaySection {
    pub(super) fn defaults() -> GatewaySection {
        let d = GatewayConfig::default();
        GatewaySection {
            listen: Some(d.listen),
            auth_file: None,
            allow_anonymous: Some(d.allow_anonymous),
            tls_cert: None,
            tls_key: None,
            max_connections: Some(d.max_connections),
            coalesce_ms: Some(d.coalesce.as_millis() as u64),
            send_queue_bytes: Some(ByteSize(d.send_queue_bytes)),
            max_queued_bytes: Some(ByteSize(d.max_queued_bytes)),
            max_message_size: Some(ByteSize(d.max_message_size)),
            max_backfill: Some(d.max_backfill),
            rate_per_second: Some(d.rate_limit.per_second),
            rate_burst: Some(d.rate_limit.burst),
            ping_interval: Some(HumanDuration(d.ping_interval)),
            write_timeout: Some(HumanDuration(d.write_timeout)),
            delay: Some(HumanDuration(d.delay)),
            max_healthy_lag: Some(HumanDuration(d.max_healthy_lag)),
            drain_timeout: Some(HumanDuration(d.drain_timeout)),
            day_cache: Some(HumanDuration(d.day_cache)),
        }
    }

    /// The gateway's configuration, without auth and TLS (which read files;
    /// see [`ServerConfig::gateway_config`](super::ServerConfig::gateway_config)).
    pub(super) fn limits(&self) -> GatewayConfig {
        let d = GatewayConfig::default();
        let duration = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |h| h.0);
        let mut rate_limit = d.rate_limit.clone();
        rate_limit.per_second = self.rate_per_second.unwrap_or(rate_limit.per_second);
        rate_limit.burst = self.rate_burst.unwrap_or(rate_limit.burst);
        GatewayConfig {
            listen: self.listen.unwrap_or(d.listen),
            allow_anonymous: self.allow_anonymous.unwrap_or(d.allow_anonymous),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            coalesce: self.coalesce_ms.map_or(d.coalesce, Duration::from_millis),
            send_queue_bytes: self.send_queue_bytes.map_or(d.send_queue_bytes, |b| b.0),
            max_queued_bytes: self.max_queued_bytes.map_or(d.max_queued_bytes, |b| b.0),
            max_message_size: self.max_message_size.map_or(d.max_message_size, |b| b.0),
            max_backfill: self.max_backfill.unwrap_or(d.max_backfill),
            rate_limit,
            ping_interval: duration(self.ping_interval, d.ping_interval),
            write_timeout: duration(self.write_timeout, d.write_timeout),
            delay: duration(self.delay, d.delay),
            max_healthy_lag: duration(self.max_healthy_lag, d.max_healthy_lag),
            drain_timeout: duration(self.drain_timeout, d.drain_timeout),
            day_cache: duration(self.day_cache, d.day_cache),
            ..d
        }
    }
}
