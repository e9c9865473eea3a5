//! The pipeline's roles, as long-running tasks over a [`Bus`](crate::bus::Bus).
//!
//! - [`ingest`]: takes batches of prints from a feed and appends them to the
//!   sharded raw streams.
//! - [`process`]: one worker per raw shard, holding the shard's lease, turns
//!   raw prints into flow events exactly once.
//! - [`backlog`]: every shard's lease holder, lag and pending count, as a
//!   processor samples them for `/metrics` and `/healthz`.
//!
//! Each role runs until its [`Shutdown`](crate::shutdown::Shutdown) fires and
//! then drains: ingest writes what the feed already handed it, processors
//! commit what is complete, leave the rest pending, and release their leases.

pub mod backlog;
pub mod ingest;
pub mod process;

use std::future::Future;

use crate::bus::Bus;

pub use ingest::{run_ingest, IngestStats};
pub use process::{run_processor, ProcessStats, ProcessorConfig};

/// Runs a role on a thread and single-threaded runtime of its own, with its
/// own bus connection, and returns when it ends.
///
/// The pipeline's hops (feed → ingest → Redis → processor → Redis) are each a
/// task wake-up; on the runtime a gateway shares, every one of them queues
/// behind the gateway's per-client tasks, which at a thousand clients adds
/// milliseconds per print. On a thread of their own they are scheduled by
/// the kernel, which runs a woken thread that has been sleeping promptly.
/// If the thread cannot be started, the role runs here instead.
pub(crate) async fn run_isolated<F, Fut>(name: &str, bus: Bus, role: F)
where
    F: FnOnce(Bus) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (role_tx, role_rx) = std::sync::mpsc::channel::<F>();
    let shared = bus.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("flowtape-{name}"))
        .spawn(move || {
            let Ok(role) = role_rx.recv() else { return };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(async move {
                    let bus = match shared.with_own_connection().await {
                        Ok(own) => own,
                        Err(e) => {
                            tracing::warn!("no connection of its own, sharing one: {e}");
                            shared
                        }
                    };
                    role(bus).await;
                }),
                Err(e) => tracing::error!("cannot build a runtime: {e}"),
            }
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => match role_tx.send(role) {
            Ok(()) => {
                let _ = done_rx.await;
            }
            Err(std::sync::mpsc::SendError(role)) => role(bus).await,
        },
        Err(e) => {
            tracing::warn!("cannot start a {name} thread, running it in place: {e}");
            role(bus).await;
        }
    }
}
