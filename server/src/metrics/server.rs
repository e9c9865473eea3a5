//! `GET /metrics` and `GET /healthz` on a port of their own, for the roles of
//! a node that runs no gateway (`flowtape-server ingest`, `process`). Every
//! answer closes its connection; at most [`MAX_CONNECTIONS`] are served at
//! once, each within [`REQUEST_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{health_json, render_healthy, Exposition, Roles};
use crate::http::{self, HeadError};
use crate::shutdown::Shutdown;

/// Requests served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// How long one request may take, reading and answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound metrics listener, ready to [`run`](MetricsServer::run).
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    roles: Roles,
}

impl MetricsServer {
    /// Binds `addr` for `roles`.
    pub async fn bind(addr: SocketAddr, roles: Roles) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(MetricsServer {
            listener,
            local_addr,
            roles,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` fires.
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!(addr = %self.local_addr, "serving /metrics and /healthz");
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = shutdown.wait() => return,
            };
            let socket = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little and go on.
                        tracing::warn!("metrics accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.wait() => return,
            };
            let roles = self.roles.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(socket, &roles)).await;
                drop(permit);
            });
        }
    }
}

async fn answer(mut stream: TcpStream, roles: &Roles) {
    let (status, content_type, body) = match http::read_head(&mut stream).await {
        Ok((request, _)) => match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/metrics") => (200, "text/plain; version=0.0.4", metrics(roles)),
            ("GET", "/healthz") => {
                let (healthy, body) = healthz(roles);
                (if healthy { 200 } else { 503 }, "application/json", body)
            }
            (_, "/metrics" | "/healthz") => (405, "text/plain", "method not allowed\n".into()),
            _ => (
                404,
                "text/plain",
                "not found; this port serves /metrics and /healthz\n".into(),
            ),
        },
        Err(HeadError::Eof | HeadError::Io(_)) => return,
        Err(e @ (HeadError::TooLarge | HeadError::Malformed)) => {
            (400, "text/plain", format!("{e}\n"))
        }
    };
    let _ = http::respond(&mut stream, status, content_type, &body, &[]).await;
}

fn metrics(roles: &Roles) -> String {
    let mut out = Exposition::default();
    roles.render(&mut out);
    let verdicts = roles.health();
    render_healthy(&mut out, verdicts.iter().map(|(r, h)| (*r, h.is_ok())));
    out.into_text()
}

/// Healthy when every role is; the body names each role's problems.
fn healthz(roles: &Roles) -> (bool, String) {
    let verdicts = roles.health();
    let healthy = verdicts.iter().all(|(_, h)| h.is_ok());
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "roles": health_json(&verdicts),
    });
    (healthy, format!("{body}\n"))
}
