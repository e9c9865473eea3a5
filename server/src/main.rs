//! `flowtape-server`: the headless server. See `--help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flowtape_core::conditions::ConditionTable;
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::feed::massive::{self, MassiveConfig};
use flowtape_server::feed::{self, Pace, SimConfig, SimMarket};
use flowtape_server::gateway::{AuthConfig, GatewayConfig, TlsConfig};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;
use flowtape_server::shutdown;

const EXAMPLES: &str = "\
Examples:
  # Everything in one process on the embedded memory bus, with the simulated market:
  flowtape-server run --memory --feed sim --sim-rate 2000

  # Production roles on Redis, scaled apart:
  flowtape-server ingest  --redis redis://10.0.0.5:6379 --feed sim --shards 16
  flowtape-server process --redis redis://10.0.0.5:6379 --shards 16
  flowtape-server gateway --redis redis://10.0.0.5:6379 --listen 0.0.0.0:8765 --auth-file tokens.toml

  # The Massive (Polygon) options feed, with an open-interest snapshot:
  MASSIVE_API_KEY=... flowtape-server ingest --feed massive --oi-file oi.csv

  # Replay a recorded file as fast as possible:
  flowtape-server run --feed replay --replay assets/sample-prints.ndjson --replay-speed 0

  # Record 10,000 simulated prints as a replay file:
  flowtape-server record --count 10000 --sim-seed 1 > prints.ndjson";

/// flowtape's server: market feed → ingest → Redis Streams → processing → flow events.
#[derive(Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing `EnvFilter` syntax); logs go to stderr.
    #[arg(long, global = true, env = "FLOWTAPE_LOG", default_value = "info")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process.
    Run {
        #[command(flatten)]
        bus: BusArgs,
        #[command(flatten)]
        feed: FeedArgs,
        #[command(flatten)]
        process: ProcessArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Run the feed and ingest it into the raw streams.
    Ingest {
        #[command(flatten)]
        bus: BusArgs,
        #[command(flatten)]
        feed: FeedArgs,
    },
    /// Turn raw prints into flow events.
    Process {
        #[command(flatten)]
        bus: BusArgs,
        #[command(flatten)]
        process: ProcessArgs,
    },
    /// Serve flow events to WebSocket clients.
    Gateway {
        #[command(flatten)]
        bus: BusArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Write simulated prints as an NDJSON replay file to stdout.
    Record {
        /// How many prints.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[command(flatten)]
        sim: SimArgs,
    },
}

#[derive(Args)]
struct BusArgs {
    /// Redis URL: redis://[user:pass@]host:port for one Redis, or
    /// redis+cluster://[user:pass@]host:port[,host:port…] for seed nodes of a Redis Cluster.
    #[arg(long, env = "FLOWTAPE_REDIS", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Use the embedded in-memory bus instead of Redis (single process only).
    #[arg(long)]
    memory: bool,
    /// Number of raw print shards (every ingest and processor must agree).
    #[arg(long, default_value_t = BusConfig::default().shards, value_parser = clap::value_parser!(u16).range(1..=1024))]
    shards: u16,
    /// Key namespace.
    #[arg(long, default_value = "ft")]
    namespace: String,
    /// Keep about this many flow events (XADD MAXLEN ~).
    #[arg(long, default_value_t = BusConfig::default().flow_max_len)]
    flow_max_len: u64,
    /// Keep flow events for this long (XTRIM MINID ~), e.g. 24h, 90m; 0 for no age limit.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    flow_retention: Duration,
    /// Keep about this many raw prints per shard: how far processing may fall behind.
    #[arg(long, default_value_t = BusConfig::default().raw_max_len)]
    raw_max_len: u64,
    /// Time to live of per-day keys (day volume, premium aggregates).
    #[arg(long, default_value = "48h", value_parser = parse_duration)]
    day_ttl: Duration,
    /// Durable mode: count a print or event as stored only once this many
    /// replicas have it (WAIT); 0 trusts the master's acknowledgement (see docs/redis.md, Durability).
    #[arg(long, env = "FLOWTAPE_WAIT_REPLICAS", default_value_t = 0)]
    wait_replicas: u32,
    /// Durable mode: how long a write waits for its replicas before it is retried, in ms.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    wait_timeout_ms: u64,
}

#[derive(Args)]
struct GatewayArgs {
    /// Listen address for WebSocket clients (`/ws`), `/healthz` and `/metrics`.
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: std::net::SocketAddr,
    /// TOML file of accepted tokens (SHA-256 hashes, entitlements, connection caps); see docs/protocol.md.
    #[arg(long)]
    auth_file: Option<PathBuf>,
    /// Serve anonymous clients on a non-loopback address (refused by default).
    #[arg(long)]
    allow_anonymous: bool,
    /// TLS certificate chain (PEM) to serve wss://; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Most open connections at once.
    #[arg(long, default_value_t = GatewayConfig::default().max_connections)]
    max_connections: usize,
    /// At peaks, write to a client at most once per this many milliseconds,
    /// the events due meanwhile in one frame; 0 writes each event at once.
    #[arg(long, default_value_t = GatewayConfig::default().coalesce.as_millis() as u64)]
    coalesce_ms: u64,
}

impl GatewayArgs {
    fn config(&self) -> Result<GatewayConfig, String> {
        let auth = match &self.auth_file {
            Some(path) => Some(AuthConfig::load(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok(GatewayConfig {
            listen: self.listen,
            auth,
            allow_anonymous: self.allow_anonymous,
            tls,
            max_connections: self.max_connections,
            coalesce: Duration::from_millis(self.coalesce_ms),
            ..GatewayConfig::default()
        })
    }
}

#[derive(Args)]
struct ProcessArgs {
    /// How long a processor's shard leases last without renewal: how soon
    /// another processor takes over the shards of one that died.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// Trade condition table (TOML); the shipped default is assets/conditions.toml.
    #[arg(long)]
    conditions: Option<PathBuf>,
}

impl ProcessArgs {
    fn config(&self) -> Result<ProcessorConfig, String> {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut config = ProcessorConfig::new(format!("{host}-{}-{nonce:x}", std::process::id()));
        config.lease_ttl = self.lease_ttl.max(Duration::from_secs(1));
        if let Some(path) = &self.conditions {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read condition table {}: {e}", path.display()))?;
            let origin = format!("condition table {}", path.display());
            config.conditions =
                ConditionTable::from_toml_str(&text, &origin).map_err(|e| e.to_string())?;
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FeedKind {
    Sim,
    Replay,
    /// The Massive (Polygon) options WebSocket; see docs/massive.md.
    Massive,
    None,
}

#[derive(Args)]
struct MassiveArgs {
    /// Massive options WebSocket URL.
    #[arg(long, default_value = massive::DEFAULT_URL)]
    massive_url: String,
    /// Massive API key (never logged).
    #[arg(long, env = "MASSIVE_API_KEY", hide_env_values = true)]
    massive_key: Option<String>,
    /// Massive subscription (trades and quotes of every option by default).
    #[arg(long, default_value = massive::DEFAULT_SUBSCRIBE)]
    massive_subscribe: String,
    /// Massive stocks WebSocket URL, for the underlyings' spot prices (none by default).
    #[arg(long)]
    massive_stocks_url: Option<String>,
    /// Open interest snapshot, CSV `occ,oi`, joined onto prints.
    #[arg(long)]
    oi_file: Option<PathBuf>,
}

impl MassiveArgs {
    fn config(&self) -> Result<MassiveConfig, String> {
        let key = self
            .massive_key
            .clone()
            .ok_or("--feed massive needs an API key: --massive-key or MASSIVE_API_KEY")?;
        let mut config = MassiveConfig::new(key);
        config.url = self.massive_url.clone();
        config.subscribe = self.massive_subscribe.clone();
        config.stocks_url = self.massive_stocks_url.clone();
        config.oi_file = self.oi_file.clone();
        Ok(config)
    }
}

#[derive(Args)]
struct FeedArgs {
    /// Where prints come from.
    #[arg(long, value_enum, default_value = "sim")]
    feed: FeedKind,
    #[command(flatten)]
    sim: SimArgs,
    /// NDJSON replay file (with --feed replay); format in docs/replay.md.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Replay pace: 1 = recorded pace, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    replay_speed: f64,
    #[command(flatten)]
    massive: MassiveArgs,
}

#[derive(Args)]
struct SimArgs {
    /// Mean simulated prints per second.
    #[arg(long, default_value_t = 1000.0)]
    sim_rate: f64,
    /// Seed of the simulated market (same seed, same tape).
    #[arg(long, default_value_t = 1)]
    sim_seed: u64,
}

/// Parses `90s`, `15m`, `24h`, `2d` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 24h or 2d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?}; use s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

impl BusArgs {
    fn config(&self) -> BusConfig {
        BusConfig {
            namespace: self.namespace.clone(),
            shards: self.shards,
            raw_max_len: self.raw_max_len,
            flow_max_len: self.flow_max_len,
            flow_max_age: self.flow_retention,
            day_ttl: self.day_ttl,
            wait_replicas: self.wait_replicas,
            wait_timeout: Duration::from_millis(self.wait_timeout_ms),
        }
    }

    async fn connect(&self, role: &str) -> Result<Bus, String> {
        if self.memory {
            if role != "run" {
                return Err(format!(
                    "--memory only works with `run`: the memory bus lives inside one process, so `{role}` alone would see nothing"
                ));
            }
            return Ok(Bus::memory(self.config()));
        }
        Bus::redis(&self.redis, self.config())
            .await
            .map_err(|e| e.to_string())
    }
}

impl SimArgs {
    /// The sim's config; a live feed starts its clock now, a recording at the
    /// fixed default start so the same seed always writes the same file.
    fn config(&self, live: bool) -> SimConfig {
        let mut config = SimConfig {
            seed: self.sim_seed,
            rate: self.sim_rate,
            ..SimConfig::default()
        };
        if live {
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(config.start_ns);
            config = config.starting_at(now_ns);
        }
        config
    }
}

impl FeedArgs {
    fn choice(&self) -> Result<Option<FeedChoice>, String> {
        match self.feed {
            FeedKind::None => Ok(None),
            FeedKind::Sim => Ok(Some(FeedChoice::Sim(self.sim.config(true)))),
            FeedKind::Replay => {
                let path = self
                    .replay
                    .clone()
                    .ok_or("--feed replay needs --replay PATH")?;
                let pace = Pace::from_speed(self.replay_speed).map_err(|e| e.to_string())?;
                Ok(Some(FeedChoice::Replay { path, pace }))
            }
            FeedKind::Massive => Ok(Some(FeedChoice::Massive(Box::new(self.massive.config()?)))),
        }
    }
}

async fn serve(bus: Bus, config: NodeConfig) -> Result<(), String> {
    let node = Node::start(bus, config).await.map_err(|e| e.to_string())?;
    let stats = node.stats.clone();
    let trigger = node.trigger();
    let wait = node.wait();
    tokio::pin!(wait);
    tokio::select! {
        _ = &mut wait => {}
        _ = shutdown::signal() => {
            tracing::info!("shutting down: draining");
            trigger.trigger();
            wait.await;
        }
    }
    let p = &stats.process;
    tracing::info!(
        ingested = stats
            .ingest
            .prints
            .load(std::sync::atomic::Ordering::Relaxed),
        processed = p.prints.load(std::sync::atomic::Ordering::Relaxed),
        events = p.events.load(std::sync::atomic::Ordering::Relaxed),
        "stopped"
    );
    Ok(())
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run {
            bus,
            feed,
            process,
            gateway,
        } => {
            let config = NodeConfig {
                feed: feed.choice()?,
                process: Some(process.config()?),
                gateway: Some(gateway.config()?),
            };
            serve(bus.connect("run").await?, config).await
        }
        Command::Ingest { bus, feed } => {
            let config = NodeConfig {
                feed: Some(
                    feed.choice()?
                        .ok_or("`ingest` needs a feed: --feed sim, replay or massive")?,
                ),
                process: None,
                gateway: None,
            };
            serve(bus.connect("ingest").await?, config).await
        }
        Command::Process { bus, process } => {
            let config = NodeConfig {
                feed: None,
                process: Some(process.config()?),
                gateway: None,
            };
            serve(bus.connect("process").await?, config).await
        }
        Command::Gateway { bus, gateway } => {
            let config = NodeConfig {
                feed: None,
                process: None,
                gateway: Some(gateway.config()?),
            };
            serve(bus.connect("gateway").await?, config).await
        }
        Command::Record { count, sim } => {
            let mut source = SimMarket::new(sim.config(false)).map_err(|e| e.to_string())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            feed::record(&mut source, count, &mut out).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.clone();
    flowtape_server::binary::run("flowtape-server", &log, run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("h").is_err());
    }
}
