//! The archive role as a service: [`serve`] runs [`run`](super::run) with its
//! `/metrics` and `/healthz` on a port of its own, until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{run, ArchiveConfig, ArchiveError, ArchiveRole, ArchiveStats};
use crate::bus::Bus;
use crate::metrics::{MetricsServer, Roles};
use crate::shutdown::{self, Shutdown};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("archive: cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Archives `bus`'s flow stream until `shutdown`, serving the role's
/// metrics on `metrics` (if given; port 0 picks one).
pub async fn serve(
    bus: Bus,
    config: ArchiveConfig,
    metrics: Option<SocketAddr>,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let stats = Arc::new(ArchiveStats::default());
    let (stop, stopped) = shutdown::channel();
    let server = match metrics {
        Some(addr) => {
            let roles = Roles::new(vec![Arc::new(ArchiveRole {
                stats: stats.clone(),
            })]);
            let server = MetricsServer::bind(addr, roles)
                .await
                .map_err(|source| ServeError::Metrics { addr, source })?;
            Some(tokio::spawn(server.run(stopped)))
        }
        None => None,
    };
    let result = run(bus, config, stats, shutdown).await;
    stop.trigger();
    if let Some(server) = server {
        let _ = server.await;
    }
    match &result {
        Ok(()) => tracing::info!("archive stopped"),
        Err(e) => tracing::error!("archive stopped: {e}"),
    }
    Ok(result?)
}
