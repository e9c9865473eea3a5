//! Ingest: feed batches → raw shard streams.
//!
//! Batches waiting in the channel are coalesced into one append (one Redis
//! round trip) of up to [`MAX_APPEND`] prints. A failed append is retried with
//! backoff and never dropped: while Redis is away the channel fills and the
//! feed is held back, which is the backpressure the feed side expects.
//! [`IngestStats`] counts what happens, for `/metrics` and `/healthz`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::bus::{now_ms, Bus};
use crate::metrics::Histogram;
use crate::shutdown::Shutdown;
use flowtape_core::event::Print;

/// Most prints written in one append.
pub const MAX_APPEND: usize = 4096;

/// Counters of one ingest task.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Prints appended to the raw streams.
    pub prints: AtomicU64,
    /// Successful appends (each one round trip per shard it touches).
    pub appends: AtomicU64,
    /// Failed appends (each retried).
    pub errors: AtomicU64,
    /// How long successful appends took.
    pub append_latency: Histogram,
    /// Prints of the append being retried: not written yet, the feed waits
    /// behind them (gauge).
    pub held: AtomicU64,
    /// Since when (ms since the epoch) appends have been failing; 0 while they succeed.
    pub failing_since_ms: AtomicU64,
}

impl IngestStats {
    /// How long appends have been failing with prints held, if they are.
    pub fn held_for(&self) -> Option<Duration> {
        let since = self.failing_since_ms.load(Ordering::Relaxed);
        (since > 0).then(|| Duration::from_millis(now_ms().saturating_sub(since)))
    }

    fn failed(&self, held: usize) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.held.store(held as u64, Ordering::Relaxed);
        let _ = self.failing_since_ms.compare_exchange(
            0,
            now_ms().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    fn caught_up(&self) {
        self.held.store(0, Ordering::Relaxed);
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }
}

/// Appends every batch from `rx` to the bus until the feed closes the
/// channel, or shutdown fires and the batches already queued are written.
///
/// It runs on a thread of its own ([`super::run_isolated`]).
pub async fn run_ingest(
    bus: Bus,
    rx: mpsc::Receiver<Vec<Print>>,
    shutdown: Shutdown,
    stats: Arc<IngestStats>,
) {
    super::run_isolated("ingest", bus, move |bus| {
        ingest_loop(bus, rx, shutdown, stats)
    })
    .await
}

async fn ingest_loop(
    bus: Bus,
    mut rx: mpsc::Receiver<Vec<Print>>,
    shutdown: Shutdown,
    stats: Arc<IngestStats>,
) {
    let mut batch: Vec<Print> = Vec::with_capacity(MAX_APPEND);
    loop {
        let first = tokio::select! {
            biased;
            b = rx.recv() => b,
            _ = shutdown.wait() => {
                // Drain: the feed stops on the same signal; write what it already handed over.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        batch.extend(first);
        while batch.len() < MAX_APPEND {
            match rx.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        append_with_retry(&bus, &batch, &shutdown, &stats).await;
        batch.clear();
    }
}

async fn append_with_retry(bus: &Bus, batch: &[Print], shutdown: &Shutdown, stats: &IngestStats) {
    let mut backoff = Duration::from_millis(20);
    let mut left = batch.len();
    for chunk in batch.chunks(MAX_APPEND) {
        // The ids are chosen once: a retry writes nothing twice.
        let mut raw = bus.raw_batch(chunk);
        loop {
            let started = std::time::Instant::now();
            match bus.append_raw(&mut raw).await {
                Ok(()) => {
                    stats.append_latency.observe(started.elapsed());
                    stats
                        .prints
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    stats.appends.fetch_add(1, Ordering::Relaxed);
                    left -= chunk.len();
                    backoff = Duration::from_millis(20);
                    break;
                }
                Err(e) => {
                    stats.failed(left);
                    tracing::warn!("ingest append failed, retrying in {backoff:?}: {e}");
                    // Even during shutdown keep trying for a while: these prints are not written anywhere else.
                    if shutdown.is_triggered() && backoff >= Duration::from_secs(2) {
                        tracing::error!("ingest giving up on {left} prints at shutdown: {e}");
                        stats.caught_up();
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    stats.caught_up();
}
