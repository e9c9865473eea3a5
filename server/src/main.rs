//! `flowtape-server`: the headless server. See `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flowtape_server::archive::{self, ArchiveConfig};
use flowtape_server::bus::Bus;
use flowtape_server::config::{
    ArchiveSection, BusSection, FeedSection, GatewaySection, LogFormat, LogSection, ProcessSection,
    Resolved, Roles, ServerConfig,
};
use flowtape_server::feed::{self, SimMarket};
use flowtape_server::node::{Node, NodeConfig};
use flowtape_server::shutdown;

const EXAMPLES: &str = "\
Examples:
  # Every role in one process, configured by a file (keys in assets/server.example.toml):
  flowtape-server --config /etc/flowtape/server.toml run
  flowtape-server config check /etc/flowtape/server.toml
  flowtape-server --config /etc/flowtape/server.toml config show   # every setting, with defaults

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

  # Archive every flow event in PostgreSQL (docs/archive.md):
  flowtape-server archive --redis redis://10.0.0.5:6379 --postgres postgres://flowtape@db/flowtape

  # Record 10,000 simulated prints as a replay file:
  flowtape-server record --count 10000 --sim-seed 1 > prints.ndjson";

/// flowtape's server: market feed → ingest → Redis Streams → processing → flow events.
///
/// Every flag can also be set in the config file (`--config`); flags beat the
/// environment, which beats the file, which beats the defaults.
#[derive(Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Config file (TOML; every key documented in assets/server.example.toml).
    #[arg(long, global = true, env = "FLOWTAPE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    log: LogSection,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process.
    Run(EverySection),
    /// Run the feed and ingest it into the raw streams.
    Ingest {
        #[command(flatten)]
        bus: BusSection,
        #[command(flatten)]
        feed: FeedSection,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Turn raw prints into flow events.
    Process {
        #[command(flatten)]
        bus: BusSection,
        #[command(flatten)]
        process: ProcessSection,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Serve flow events to WebSocket clients.
    Gateway {
        #[command(flatten)]
        bus: BusSection,
        #[command(flatten)]
        gateway: GatewaySection,
        /// PostgreSQL URL of the archive, for history past the flow stream and past days' totals
        /// (`[archive] postgres`; unset: none).
        #[arg(long, env = "FLOWTAPE_POSTGRES", hide_env_values = true)]
        postgres: Option<String>,
    },
    /// Archive every flow event in PostgreSQL (docs/archive.md).
    Archive {
        #[command(flatten)]
        bus: BusSection,
        #[command(flatten)]
        archive: ArchiveSection,
    },
    /// Write simulated prints as an NDJSON replay file to stdout.
    Record {
        /// How many prints.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Mean simulated prints per second (the recording's pace).
        #[arg(long)]
        sim_rate: Option<f64>,
        /// Seed of the simulated market (same seed, same tape).
        #[arg(long)]
        sim_seed: Option<u64>,
    },
    /// Check or print the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// Where a role run apart serves `/metrics` and `/healthz`.
#[derive(clap::Args)]
struct MetricsArgs {
    /// Address for this role's /metrics and /healthz ([metrics] ingest_listen
    /// or process_listen; 127.0.0.1:8766 for ingest, :8767 for process).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
// Parsed once at start: the size of `Show`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
enum ConfigAction {
    /// Validate a config file for every role, starting nothing; exit status 1 if it is bad.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the effective configuration (defaults, file, environment and
    /// flags laid together) as TOML, secrets redacted.
    Show(EverySection),
}

/// The flags of every role's sections, for `run` and `config show`.
#[derive(clap::Args)]
struct EverySection {
    #[command(flatten)]
    bus: BusSection,
    #[command(flatten)]
    feed: FeedSection,
    #[command(flatten)]
    process: ProcessSection,
    #[command(flatten)]
    gateway: GatewaySection,
    #[command(flatten)]
    archive: ArchiveSection,
}

impl EverySection {
    /// Lays these flags into `flags`.
    fn into_layer(self, flags: &mut ServerConfig) {
        (flags.bus, flags.feed, flags.process, flags.gateway) =
            (self.bus, self.feed, self.process, self.gateway);
        flags.archive = self.archive;
    }
}

/// What to do once the configuration is resolved.
enum Task {
    Serve(&'static str, Roles),
    Archive,
    Record(u64),
    Check,
    Show,
}

impl Command {
    /// The command-line layer of the configuration, and the task.
    fn split(self, log: LogSection) -> (ServerConfig, Task) {
        let mut flags = ServerConfig {
            log,
            ..ServerConfig::default()
        };
        let task = match self {
            Command::Run(sections) => {
                sections.into_layer(&mut flags);
                Task::Serve("run", Roles::ALL)
            }
            Command::Ingest { bus, feed, metrics } => {
                (flags.bus, flags.feed) = (bus, feed);
                flags.metrics.ingest_listen = metrics.metrics_listen;
                Task::Serve("ingest", Roles::INGEST)
            }
            Command::Process {
                bus,
                process,
                metrics,
            } => {
                (flags.bus, flags.process) = (bus, process);
                flags.metrics.process_listen = metrics.metrics_listen;
                Task::Serve("process", Roles::PROCESS)
            }
            Command::Gateway {
                bus,
                gateway,
                postgres,
            } => {
                (flags.bus, flags.gateway) = (bus, gateway);
                flags.archive.postgres = postgres;
                Task::Serve("gateway", Roles::GATEWAY)
            }
            Command::Archive { bus, archive } => {
                (flags.bus, flags.archive) = (bus, archive);
                Task::Archive
            }
            Command::Record {
                count,
                sim_rate,
                sim_seed,
            } => {
                (flags.feed.sim_rate, flags.feed.sim_seed) = (sim_rate, sim_seed);
                Task::Record(count)
            }
            Command::Config {
                action: ConfigAction::Check { .. },
            } => Task::Check,
            Command::Config {
                action: ConfigAction::Show(sections),
            } => {
                sections.into_layer(&mut flags);
                Task::Show
            }
        };
        (flags, task)
    }
}

async fn connect(config: &Resolved, role: &str) -> Result<Bus, String> {
    let bus_config = config.bus_config().map_err(|e| e.to_string())?;
    if config.config.bus.memory == Some(true) {
        if role != "run" {
            return Err(format!(
                "--memory only works with `run`: the memory bus lives inside one process, so `{role}` alone would see nothing"
            ));
        }
        return Ok(Bus::memory(bus_config));
    }
    let url = config
        .config
        .bus
        .redis
        .as_deref()
        .unwrap_or("redis://127.0.0.1:6379");
    Bus::redis(url, bus_config).await.map_err(|e| e.to_string())
}

/// Runs `config`'s roles until they end or a signal drains them; `metrics`
/// is where a role run apart serves `/metrics` and `/healthz`.
async fn serve(
    bus: Bus,
    config: NodeConfig,
    metrics: Option<std::net::SocketAddr>,
    archive: Option<(ArchiveConfig, Option<std::net::SocketAddr>)>,
) -> Result<(), String> {
    let archive_bus = bus.clone();
    let mut node = Node::start(bus, config).await.map_err(|e| e.to_string())?;
    let archive = archive.map(|(config, listen)| {
        tokio::spawn(archive::service::serve(
            archive_bus,
            config,
            listen,
            node.shutdown_signal(),
        ))
    });
    if let Some(addr) = metrics {
        match node.serve_metrics(addr).await {
            Ok(bound) => tracing::info!(%bound, "serving /metrics and /healthz"),
            Err(e) => {
                node.shutdown();
                node.wait().await;
                return Err(e.to_string());
            }
        }
    }
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
    if let Some(archive) = archive {
        // The node's shutdown stops it, after its batch in flight.
        trigger.trigger();
        match archive.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(format!("the archive ended abnormally: {e}")),
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

async fn run(config: Resolved, task: Task) -> Result<(), String> {
    match task {
        Task::Serve(role, roles) => {
            // Every role's settings are built (and their files read) before
            // the bus is touched: a bad setting starts nothing.
            let node = config.node_config(roles).map_err(|e| e.to_string())?;
            if roles.ingest && node.feed.is_none() && role == "ingest" {
                return Err("`ingest` needs a feed: --feed sim, replay or massive".into());
            }
            let metrics = &config.config.metrics;
            let metrics = match role {
                "ingest" => metrics.ingest_listen,
                "process" => metrics.process_listen,
                _ => None,
            };
            let archive = config
                .archive_config()
                .map_err(|e| e.to_string())?
                .filter(|_| role == "run")
                .map(|a| (a, config.config.archive.metrics_listen));
            serve(connect(&config, role).await?, node, metrics, archive).await
        }
        Task::Archive => {
            let Some(archive) = config.archive_config().map_err(|e| e.to_string())? else {
                return Err("`archive` needs a PostgreSQL URL: --postgres, FLOWTAPE_POSTGRES or [archive] postgres".into());
            };
            let listen = config.config.archive.metrics_listen;
            let bus = connect(&config, "archive").await?;
            let (trigger, shutdown) = shutdown::channel();
            tokio::spawn(async move {
                shutdown::signal().await;
                tracing::info!("shutting down: finishing the batch in flight");
                trigger.trigger();
            });
            archive::service::serve(bus, archive, listen, shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        Task::Record(count) => {
            let sim = config.sim_config(false).map_err(|e| e.to_string())?;
            let mut source = SimMarket::new(sim).map_err(|e| e.to_string())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            feed::record(&mut source, count, &mut out).map_err(|e| e.to_string())?;
            Ok(())
        }
        Task::Check | Task::Show => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.command {
        Command::Config {
            action: ConfigAction::Check { file },
        } => Some(file.clone()),
        _ => cli.config.clone(),
    };
    let (flags, task) = cli.command.split(cli.log);
    let config = match Resolved::load(file.as_deref(), flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("flowtape-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    match task {
        Task::Check => match config.check(Roles::ALL) {
            Ok(()) => {
                if let Some(file) = &file {
                    println!("{}: ok", file.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("flowtape-server: {e}");
                ExitCode::FAILURE
            }
        },
        Task::Show => {
            print!("{}", config.config.show());
            ExitCode::SUCCESS
        }
        Task::Serve(..) | Task::Archive | Task::Record(_) => {
            let log = &config.config.log;
            let filter = log.filter.clone().unwrap_or_else(|| "info".into());
            let format = log.format.unwrap_or(LogFormat::Text);
            flowtape_server::binary::run("flowtape-server", &filter, format, run(config, task))
        }
    }
}
