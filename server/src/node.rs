//! A node: the roles one process runs, started together and stopped together.
//!
//! `flowtape-server run` starts every role, `ingest`/`process` one each, and
//! `flowtape --demo` embeds a whole node on the memory bus. [`Node::start`]
//! spawns the roles; [`Node::shutdown`] signals them; [`Node::wait`] returns
//! once every role has drained.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::bus::Bus;
use crate::feed::{self, FeedStats, Pace, ReplayReader, SimConfig, SimMarket};
use crate::pipeline::{run_ingest, run_processor, IngestStats, ProcessStats, ProcessorConfig};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};

/// Where prints come from.
#[derive(Clone, Debug)]
pub enum FeedChoice {
    Sim(SimConfig),
    Replay { path: PathBuf, pace: Pace },
}

/// Which roles to run, and how.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// Run a feed and ingest it.
    pub feed: Option<FeedChoice>,
    /// Run a processor.
    pub process: Option<ProcessorConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Replay(#[from] feed::OpenError),
    #[error(transparent)]
    Sim(#[from] feed::SimConfigError),
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
}

impl Node {
    pub async fn start(bus: Bus, config: NodeConfig) -> Result<Node, NodeError> {
        let (trigger, shutdown) = shutdown::channel();
        let stats = Arc::new(NodeStats::default());
        let mut tasks = JoinSet::new();
        if let Some(choice) = config.feed {
            let (tx, rx) = mpsc::channel(FEED_CHANNEL_BATCHES);
            spawn_feed(&mut tasks, choice, tx, shutdown.clone(), stats.clone())?;
            tasks.spawn(run_ingest(
                bus.clone(),
                rx,
                shutdown.clone(),
                stats.ingest.clone(),
            ));
        }
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
        })
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
    }
}

fn spawn_feed(
    tasks: &mut JoinSet<()>,
    choice: FeedChoice,
    tx: mpsc::Sender<Vec<crate::event::Print>>,
    shutdown: Shutdown,
    stats: Arc<NodeStats>,
) -> Result<(), NodeError> {
    let done = move |s: FeedStats| {
        tracing::info!(prints = s.prints, malformed = s.malformed, end = ?s.end, "feed stopped");
        if let Ok(mut slot) = stats.feed.lock() {
            *slot = Some(s);
        }
    };
    match choice {
        FeedChoice::Sim(config) => {
            let source = SimMarket::new(config)?;
            tasks.spawn(async move {
                let s = feed::run_paced(source, Pace::RealTime { speed: 1.0 }, tx, async move {
                    shutdown.wait().await
                })
                .await;
                done(s);
            });
        }
        FeedChoice::Replay { path, pace } => {
            let source = ReplayReader::open(&path)?;
            tasks.spawn(async move {
                let s =
                    feed::run_paced(source, pace, tx, async move { shutdown.wait().await }).await;
                done(s);
            });
        }
    }
    Ok(())
}
