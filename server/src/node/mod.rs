//! A node: the roles one process runs, started together and stopped together.
//!
//! `flowtape-server run` starts every role, `ingest`/`process`/`gateway` one each, and
//! `flowtape --demo` embeds a whole node on the memory bus. [`Node::start`]
//! spawns the roles; [`Node::shutdown`] signals them; [`Node::wait`] returns
//! once every role has drained.
//!
//! Every role is observable ([`roles`]): a gateway shows the node's other
//! roles on its own port; a node without one shows them on the port
//! [`Node::serve_metrics`] binds.

mod roles;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::bus::Bus;
use crate::feed::massive::{MassiveConfig, MassiveError, MassiveFeed};
use crate::feed::{self, FeedStats, Pace, ReplayReader, SimConfig, SimMarket};
use crate::gateway::{Gateway, GatewayConfig, GatewayError, GatewayMetrics};
use crate::metrics::{MetricsServer, Role, Roles};
use crate::pipeline::{run_ingest, run_processor, IngestStats, ProcessStats, ProcessorConfig};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use flowtape_core::protocol::{FeedHealth, FeedStatus};
use roles::{CountMalformed, FeedCounters, IngestRole, ProcessRole};

pub use roles::MAX_HELD;

/// Where `flowtape-server ingest` serves `/metrics` and `/healthz` by default.
pub const INGEST_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8766);
/// Where `flowtape-server process` serves `/metrics` and `/healthz` by default.
pub const PROCESS_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8767);

/// Where prints come from.
#[derive(Clone, Debug)]
pub enum FeedChoice {
    Sim(SimConfig),
    Replay {
        path: PathBuf,
        pace: Pace,
    },
    /// The Massive (Polygon) options WebSocket (`docs/massive.md`).
    Massive(Box<MassiveConfig>),
}

/// Which roles to run, and how.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// Run a feed and ingest it.
    pub feed: Option<FeedChoice>,
    /// Run a processor.
    pub process: Option<ProcessorConfig>,
    /// Run a gateway.
    pub gateway: Option<GatewayConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Replay(#[from] feed::OpenError),
    #[error(transparent)]
    Sim(#[from] feed::SimConfigError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Massive(#[from] MassiveError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Counters of a running node.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub ingest: Arc<IngestStats>,
    pub process: Arc<ProcessStats>,
    /// Set when the feed stops.
    pub feed: Mutex<Option<FeedStats>>,
}

/// Batches in flight between a feed and ingest: enough to ride out a slow
/// append, small enough that a stalled bus holds the feed back quickly.
const FEED_CHANNEL_BATCHES: usize = 64;

pub struct Node {
    trigger: Arc<ShutdownTrigger>,
    tasks: JoinSet<()>,
    pub stats: Arc<NodeStats>,
    gateway: Option<(SocketAddr, Arc<GatewayMetrics>)>,
    /// The roles besides the gateway, as operators see them.
    roles: Roles,
    /// The metrics server, if [`Node::serve_metrics`] started one: stopped
    /// once the roles have.
    metrics: Option<(ShutdownTrigger, tokio::task::JoinHandle<()>)>,
}

impl Node {
    pub async fn start(bus: Bus, config: NodeConfig) -> Result<Node, NodeError> {
        let (trigger, shutdown) = shutdown::channel();
        let stats = Arc::new(NodeStats::default());
        let mut tasks = JoinSet::new();
        let mut roles: Vec<Arc<dyn Role>> = Vec::new();
        if let Some(choice) = config.feed {
            let (tx, rx) = mpsc::channel(FEED_CHANNEL_BATCHES);
            let (status_tx, status_rx) = watch::channel(feed_status(FeedHealth::Ok, ""));
            // Published once before anything else starts, so a gateway of this
            // node never reports "no feed status" while the feed is coming up.
            let first = status_rx.borrow().clone();
            if let Err(e) = bus.publish_feed_status(&first, FEED_STATUS_TTL).await {
                tracing::warn!("cannot publish the feed status: {e}");
            }
            let counters = spawn_feed(
                &mut tasks,
                choice,
                tx,
                status_tx,
                shutdown.clone(),
                stats.clone(),
            )?;
            roles.push(Arc::new(IngestRole {
                stats: stats.clone(),
                status: status_rx.clone(),
                counters,
                shutdown: shutdown.clone(),
            }));
            tasks.spawn(run_ingest(
                bus.clone(),
                rx,
                shutdown.clone(),
                stats.ingest.clone(),
            ));
            tasks.spawn(publish_feed_status(
                bus.clone(),
                status_rx,
                shutdown.clone(),
            ));
        }
        if let Some(process) = &config.process {
            roles.push(Arc::new(ProcessRole {
                stats: stats.process.clone(),
                config: process.clone(),
                started: Instant::now(),
            }));
        }
        let roles = Roles::new(roles);
        // Bind the gateway first, so a taken port fails the start, not a task later.
        let gateway = match config.gateway {
            Some(gw) => {
                let gateway = Gateway::bind(bus.clone(), gw)
                    .await?
                    .with_roles(roles.clone());
                let info = (gateway.local_addr(), gateway.metrics());
                tasks.spawn(gateway.run(shutdown.clone()));
                Some(info)
            }
            None => None,
        };
        if let Some(process) = config.process {
            tasks.spawn(run_processor(
                bus.clone(),
                process,
                shutdown.clone(),
                stats.process.clone(),
            ));
        }
        Ok(Node {
            trigger: Arc::new(trigger),
            tasks,
            stats,
            gateway,
            roles,
            metrics: None,
        })
    }

    /// Serves `/metrics` and `/healthz` of this node's roles other than a
    /// gateway (which shows them on its own port) on `addr`, until the roles
    /// have stopped. Returns the address bound (useful with port 0).
    pub async fn serve_metrics(&mut self, addr: SocketAddr) -> Result<SocketAddr, NodeError> {
        let server = MetricsServer::bind(addr, self.roles.clone())
            .await
            .map_err(|source| NodeError::Metrics { addr, source })?;
        let bound = server.local_addr();
        let (stop, stopped) = shutdown::channel();
        if let Some((previous, _)) = self
            .metrics
            .replace((stop, tokio::spawn(server.run(stopped))))
        {
            previous.trigger();
        }
        Ok(bound)
    }

    /// A whole server in this process for `flowtape --demo`: the memory bus,
    /// the simulated market at a lively `rate` prints/s starting now, a
    /// processor, and a gateway on a free loopback port
    /// ([`gateway_addr`](Node::gateway_addr)).
    pub async fn start_demo(rate: f64) -> Result<Node, NodeError> {
        let bus = Bus::memory(crate::bus::BusConfig {
            flow_max_len: 200_000,
            ..crate::bus::BusConfig::default()
        });
        let sim = SimConfig {
            rate,
            ..SimConfig::default()
        }
        .starting_at(crate::bus::now_ms() as i64 * 1_000_000);
        let config = NodeConfig {
            feed: Some(FeedChoice::Sim(sim)),
            process: Some(ProcessorConfig::new(format!("demo-{}", std::process::id()))),
            gateway: Some(GatewayConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                ..GatewayConfig::default()
            }),
        };
        Node::start(bus, config).await
    }

    /// The address the gateway listens on, if this node runs one.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|(addr, _)| *addr)
    }

    /// The gateway's metrics, if this node runs one.
    pub fn gateway_metrics(&self) -> Option<Arc<GatewayMetrics>> {
        self.gateway.as_ref().map(|(_, m)| m.clone())
    }

    /// A listener for this node's shutdown signal, for tasks started beside it.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.trigger.subscribe()
    }

    /// Signals every role to drain and stop.
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// The trigger of this node's shutdown, to fire it from elsewhere.
    pub fn trigger(&self) -> Arc<ShutdownTrigger> {
        self.trigger.clone()
    }

    /// Waits until every role has stopped: after a shutdown, or when every
    /// role has finished by itself (an ingest-only node whose replay ended).
    pub async fn wait(mut self) {
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!("a role ended abnormally: {e}");
            }
        }
        if let Some((stop, server)) = self.metrics.take() {
            stop.trigger();
            let _ = server.await;
        }
    }
}

fn feed_status(state: FeedHealth, reason: &str) -> FeedStatus {
    FeedStatus {
        state,
        reason: reason.to_string(),
        since: crate::bus::now_ms() as i64,
    }
}

/// How often an ingest republishes its feed status, and how long a published
/// status lives: a gateway whose ingest died stops reporting a stale "ok"
/// within [`FEED_STATUS_TTL`].
const FEED_STATUS_EVERY: Duration = Duration::from_secs(2);
const FEED_STATUS_TTL: Duration = Duration::from_secs(6);

/// Publishes the feed's status to the bus on every change and every
/// [`FEED_STATUS_EVERY`] until the feed ends, and "down: ingest stopped" on
/// shutdown.
async fn publish_feed_status(
    bus: Bus,
    mut status: watch::Receiver<FeedStatus>,
    shutdown: Shutdown,
) {
    loop {
        let current = status.borrow_and_update().clone();
        if let Err(e) = bus.publish_feed_status(&current, FEED_STATUS_TTL).await {
            tracing::warn!("cannot publish the feed status: {e}");
        }
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            changed = status.changed() => if changed.is_err() {
                // A feed stopping because of the shutdown is "ingest stopped".
                if shutdown.is_triggered() {
                    break;
                }
                // The feed ended by itself: publish its last word; the role is done.
                let last = status.borrow().clone();
                let _ = bus.publish_feed_status(&last, FEED_STATUS_TTL).await;
                return;
            },
            _ = tokio::time::sleep(FEED_STATUS_EVERY) => {}
        }
    }
    let _ = bus
        .publish_feed_status(
            &feed_status(FeedHealth::Down, "ingest stopped"),
            FEED_STATUS_TTL,
        )
        .await;
}

/// Starts the feed; returns the counters `/metrics` reads while it runs.
fn spawn_feed(
    tasks: &mut JoinSet<()>,
    choice: FeedChoice,
    tx: mpsc::Sender<Vec<flowtape_core::event::Print>>,
    status: watch::Sender<FeedStatus>,
    shutdown: Shutdown,
    stats: Arc<NodeStats>,
) -> Result<FeedCounters, NodeError> {
    let stopped = async move { shutdown.wait().await };
    let done = move |s: FeedStats| {
        tracing::info!(prints = s.prints, malformed = s.malformed, end = ?s.end, "feed stopped");
        if let Ok(mut slot) = stats.feed.lock() {
            *slot = Some(s);
        }
    };
    let malformed = Arc::new(AtomicU64::new(0));
    let counted = |source| CountMalformed {
        source,
        malformed: malformed.clone(),
    };
    match choice {
        FeedChoice::Sim(config) => {
            let source = SimMarket::new(config)?;
            tasks.spawn(async move {
                // The sim never degrades: its status stays the initial "ok"
                // for as long as it runs (the sender lives until it ends).
                let _status = status;
                done(feed::run_paced(source, Pace::RealTime { speed: 1.0 }, tx, stopped).await);
            });
        }
        FeedChoice::Replay { path, pace } => {
            let source = counted(ReplayReader::open(&path)?);
            tasks.spawn(async move {
                let s = feed::run_paced(source, pace, tx, stopped).await;
                if s.end == feed::FeedEnd::Exhausted {
                    status.send_replace(feed_status(FeedHealth::Down, "replay finished"));
                }
                done(s);
            });
        }
        FeedChoice::Massive(config) => {
            let massive = MassiveFeed::new(*config)?;
            let stats = massive.stats();
            tasks.spawn(async move { done(massive.run(tx, status, stopped).await) });
            return Ok(FeedCounters::Massive(stats));
        }
    }
    Ok(FeedCounters::Paced { malformed })
}
