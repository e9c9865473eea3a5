//! # flowtape-bench
//!
//! The end-to-end benchmark harness and the `flowtape-bench` binary: the whole
//! system on one machine against a real `redis-server`, measured as a user
//! would feel it (latency from feed to decoded event, exact loss, CPU and
//! memory). `docs/bench.md` has the method and the figures.
//!
//! - The harness ([`run`]) starts a private `redis-server` ([`redis_server`])
//!   and two children of this executable, and talks to them over stdin and
//!   stdout ([`control`]):
//!   - the server half ([`server`]): processor and gateway as one node, fed by
//!     the sim at a set rate ([`source`]);
//!   - the clients half ([`clients`]): the WebSocket clients of the [`mix`],
//!     on a reader of their own ([`ws`]), recording into histograms ([`hist`]).
//! - After a window it works out what each client should have received
//!   ([`verify`]) and compares ([`tally`]); CPU and memory come from each
//!   process's `/proc` ([`procfs`]); [`report`] prints the table and JSON.
//! - [`redis_cluster`] runs a private Redis Cluster (`--cluster`, and the
//!   failover tests).
//! - Scenarios: `steady`, `burst`, `capacity`, `idle`, `firehose` ([`Scenario`]),
//!   and [`soak`]: half an hour of `flowtape-server` processes with clients
//!   coming and going and a gateway restarted, memory read throughout.
//! - [`nginx`] runs nginx with the deploy config in front of gateways
//!   (`tests/nginx_failover.rs` uses it).
//! - [`postgres_server`] runs a private PostgreSQL (the archive's tests and bench);
//!   [`sim_days`] makes whole trading days of flow to fill it, and
//!   [`archive_size`] reads how much the archive holds.

pub mod archive_size;
pub mod clients;
pub mod control;
pub mod hist;
pub mod mix;
pub mod nginx;
pub mod postgres_server;
pub mod procfs;
pub mod redis_cluster;
pub mod redis_server;
pub mod report;
pub mod run;
pub mod server;
pub mod sim_days;
pub mod soak;
pub mod source;
pub mod synthetic;
pub mod tally;
pub mod verify;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use flowtape_core::cursor::Cursor;
use flowtape_server::bus::BusError;
use flowtape_server::feed::SimConfigError;
use flowtape_server::node::NodeError;

/// The scenarios of `--scenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1,000 prints/s for 60 s with the client mix.
    Steady,
    /// 10,000 prints/s for 10 s, as at the open, with the same clients.
    Burst,
    /// Raise the rate step by step until p99 passes the limit or anything is lost.
    Capacity,
    /// 10,000 idle clients: gateway memory per connection.
    Idle,
    /// Prints through ingest and processing as fast as they go, no clients.
    Firehose,
    /// 30 minutes at the steady rate, clients churning, a gateway restarted: does memory level off?
    Soak,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Burst => "burst",
            Scenario::Capacity => "capacity",
            Scenario::Idle => "idle",
            Scenario::Firehose => "firehose",
            Scenario::Soak => "soak",
        }
    }
}

/// Which master `--kill-master` kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KillMaster {
    /// The master of the flow slot (flow stream, leases, guards, live channel).
    Flow,
    /// A master that serves raw shards and not the flow slot.
    Raw,
}

pub const EXAMPLES: &str = "\
Examples:
  # The issue's scenarios (release build; each starts its own redis-server):
  flowtape-bench --scenario steady --json steady.json
  flowtape-bench --scenario burst
  flowtape-bench --scenario capacity --duration 5
  flowtape-bench --scenario idle
  flowtape-bench --scenario firehose --prints 300000
  flowtape-bench --scenario soak --json soak.json      # 30 min; needs flowtape-server beside it
  flowtape-bench --scenario soak --duration 180        # a 3-minute smoke check

  # A short, small run:
  flowtape-bench --scenario steady --duration 3 --rate 200 --clients 50

  # On a private 3+3 Redis Cluster, in durable mode, killing the flow master halfway:
  flowtape-bench --scenario steady --cluster --wait-replicas 1 --kill-master flow

  # The halves by hand (each reads JSON commands on stdin, see docs/bench.md):
  flowtape-bench --server-only --redis redis://127.0.0.1:6379 --listen 127.0.0.1:9000
  flowtape-bench --clients-only --connect ws://127.0.0.1:9000/ws --clients 1000";

/// The harness's command line: the scenario and its load, or one half.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "steady")]
    pub scenario: Scenario,
    /// Seconds of feed per window (default: steady 60, burst 10, capacity steps 10, soak 1,800).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Prints per second (default: steady 1,000, burst 10,000, capacity's first step 250).
    #[arg(long)]
    pub rate: Option<f64>,
    /// WebSocket clients (default: 1,000; idle 10,000); in a soak, the base that stays connected.
    #[arg(long)]
    pub clients: Option<usize>,
    /// soak: clients that come and go on top of the base (default: 200).
    #[arg(long)]
    pub churn_clients: Option<usize>,
    /// soak: seconds of each process's life left out of its memory slope
    /// (at most a third of the run).
    #[arg(long, default_value_t = 300.0)]
    pub warmup: f64,
    /// Flow events Redis keeps (default: all of them, for the loss check; soak 200,000).
    #[arg(long)]
    pub flow_max_len: Option<u64>,
    /// Prints per raw shard Redis keeps (default: all of them; soak 20,000).
    #[arg(long)]
    pub raw_max_len: Option<u64>,
    /// Of the clients, how many watch `premium>=50k` (default: a tenth); the rest watch watchlists.
    #[arg(long)]
    pub premium_clients: Option<usize>,
    /// Tickers on each watchlist.
    #[arg(long, default_value_t = 5)]
    pub watchlist: usize,
    /// Seed of the simulated market.
    #[arg(long, default_value_t = 1)]
    pub sim_seed: u64,
    /// Seed of the clients' watchlists.
    #[arg(long, default_value_t = 7)]
    pub client_seed: u64,
    /// Raw print shards (and processor workers).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub shards: u16,
    /// Use this Redis instead of starting a private redis-server (a unique key
    /// namespace is used); a redis+cluster:// URL names a cluster.
    #[arg(long, conflicts_with = "cluster")]
    pub redis: Option<String>,
    /// Start a private Redis Cluster (3 masters, 3 replicas) instead of one redis-server.
    #[arg(long)]
    pub cluster: bool,
    /// Durable mode: writes count once this many replicas have them (`--wait-replicas` of the server).
    #[arg(long, default_value_t = 0)]
    pub wait_replicas: u32,
    /// The clients connect through nginx (`assets/deploy/nginx.conf`) in front of the gateway.
    #[arg(long)]
    pub nginx: bool,
    /// With --cluster: SIGKILL a master halfway through each measured window.
    #[arg(long, value_enum, requires = "cluster")]
    pub kill_master: Option<KillMaster>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// capacity: each step's rate is the last one's times this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// capacity: the highest rate tried, prints/s.
    #[arg(long, default_value_t = 50_000.0)]
    pub max_rate: f64,
    /// capacity: a step holds while the e2e p99 of single and block events stays at or under this, ms.
    #[arg(long, default_value_t = 10.0)]
    pub p99_limit_ms: f64,
    /// firehose: prints to push through.
    #[arg(long, default_value_t = 200_000)]
    pub prints: u64,

    /// Run only the server half, controlled over stdin/stdout (needs --redis).
    #[arg(long, conflicts_with = "clients_only", requires = "redis")]
    pub server_only: bool,
    /// server half: where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// server half: most open gateway connections (default: clients + 100, at least 10,000).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// The gateway's write coalescing interval in milliseconds (`--coalesce-ms` of `gateway`).
    #[arg(long)]
    pub coalesce_ms: Option<u64>,
    /// server half: run no gateway (ingest and processing only).
    #[arg(long)]
    pub no_gateway: bool,
    /// server half: run no processor.
    #[arg(long)]
    pub no_process: bool,
    /// server half: key namespace.
    #[arg(long, default_value = "ftbench")]
    pub namespace: String,

    /// Run only the clients half against this gateway (`ws://HOST:PORT/ws`), controlled over stdin/stdout.
    #[arg(long, conflicts_with = "server_only")]
    pub clients_only: bool,
    /// clients half: the gateway's WebSocket URL (soak clients: several, comma-separated).
    #[arg(long, required_if_eq_any([("clients_only", "true"), ("soak_clients", "true")]))]
    pub connect: Option<String>,

    /// Run only the soak's clients half (base and churning clients), controlled over stdin/stdout.
    #[arg(long, conflicts_with_all = ["server_only", "clients_only"])]
    pub soak_clients: bool,
    /// soak clients: wall-clock ms where minute 0 of the checks begins.
    #[arg(long, default_value_t = 0)]
    pub epoch_origin_ms: u64,
    /// soak clients: the base clients subscribe with this `since`.
    #[arg(long, default_value = "0-0")]
    pub since: Cursor,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    RedisServer(#[from] redis_server::RedisServerError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Sim(#[from] SimConfigError),
    #[error(transparent)]
    Mix(#[from] mix::MixError),
    #[error(transparent)]
    Proc(#[from] procfs::ProcError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error(transparent)]
    Nginx(#[from] nginx::NginxError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("interrupted")]
    Interrupted,
}

/// Fails early, with the fix, when this process may not open `needed` files.
pub fn check_open_files(needed: u64) -> Result<(), BenchError> {
    let limit = procfs::open_files_limit()?;
    if limit < needed {
        return Err(BenchError::Config(format!(
            "this needs about {needed} open files but the limit is {limit}: raise it (ulimit -n {needed}) and retry"
        )));
    }
    Ok(())
}

/// Runs the harness, or one half of it, with these arguments.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    if args.server_only {
        let redis = args.redis.clone().unwrap_or_default();
        let clients = args.clients.unwrap_or(0);
        return server::serve(server::ServerOptions {
            redis,
            namespace: args.namespace.clone(),
            shards: args.shards,
            wait_replicas: args.wait_replicas,
            listen: args.listen,
            max_connections: args.max_connections.unwrap_or((clients + 100).max(10_000)),
            process: !args.no_process,
            gateway: !args.no_gateway,
            retention: run::retention(&args),
            coalesce_ms: args.coalesce_ms,
        })
        .await;
    }
    if args.soak_clients {
        let connect = args.connect.clone().unwrap_or_default();
        return soak::churn::run(soak::churn::ChurnOptions {
            gateways: connect.split(',').map(str::to_string).collect(),
            mix: run::mix(&args),
            churn: args.churn_clients.unwrap_or(soak::CHURN_CLIENTS),
            epochs: soak::ledger::Epochs {
                origin_ms: args.epoch_origin_ms,
                length_ms: soak::EPOCH.as_millis() as u64,
            },
            since: args.since,
        })
        .await;
    }
    if args.clients_only {
        let connect = args.connect.clone().ok_or_else(|| {
            BenchError::Config("--clients-only needs --connect ws://HOST:PORT/ws".into())
        })?;
        return clients::run(clients::ClientsOptions {
            connect,
            mix: run::mix(&args),
        })
        .await;
    }
    run::harness(args).await
}
