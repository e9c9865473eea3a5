//! The WebSocket gateway: filtered fan-out of flow events to many clients.
//!
//! A gateway is stateless: any number of them can serve one bus behind a
//! load balancer, each delivering the same events with the same cursors, so
//! a client that moves from one to another with `since` = its last cursor
//! misses nothing and sees nothing twice. The client protocol is
//! `docs/protocol.md` (version [`PROTOCOL_VERSION`](flowtape_core::protocol::PROTOCOL_VERSION)).
//!
//! One port serves:
//! - `GET /ws` (WebSocket upgrade): the client protocol;
//! - `GET /healthz`: 200 with JSON when Redis is reachable and the gateway is
//!   caught up with the flow stream (and every other role of its node is
//!   healthy, [`Gateway::with_roles`]), 503 otherwise;
//! - `GET /metrics`: Prometheus text ([`GatewayMetrics`], and the other roles');
//! - anything else: 404.
//!
//! Layout:
//! - [`config`]: [`GatewayConfig`] and its safety check;
//! - [`auth`]: the token file, entitlements and per-token connection caps;
//! - [`tls`]: `wss://` with rustls;
//! - `handshake`: the WebSocket upgrade and the client's token;
//! - `hub`: one reader of the bus per tier (realtime, delayed) fanning out
//!   events parsed and framed once, repairing gaps from the stream;
//! - `session`, `replay`, `outbox`: one client — its filter and cursor, the
//!   backfill/`since` seam, the byte-bounded send queue and writer;
//! - `budget`: the bytes queued for all clients together, and closing the
//!   clients furthest behind when they would exceed the memory budget;
//! - `ratelimit`: the per-connection token bucket;
//! - `day`: the `day` op, the day's totals read once per `day_cache` for all clients;
//! - [`metrics`]: counters and latency histograms.
//!
//! [`Gateway::bind`] checks the configuration, subscribes to the bus and
//! binds; [`Gateway::run`] serves until the shutdown signal, then closes every
//! client with 1001 "going away" and waits (up to `drain_timeout`) for the
//! connections to drain.

pub mod auth;
mod budget;
pub mod config;
mod day;
mod delivery;
mod handshake;
mod history;
mod hub;
mod mailbox;
pub mod metrics;
mod outbox;
mod ratelimit;
mod replay;
mod session;
pub mod tls;
mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

pub use auth::{hash_token, AuthConfig, AuthError, Entitlement, TokenSpec};
pub use config::{parse_byte_size, ByteSizeError, ConfigError, GatewayConfig, RateLimit};
pub use metrics::GatewayMetrics;
pub use tls::{TlsConfig, TlsError};

use crate::archive::ArchiveReader;
use crate::bus::{Bus, BusError, LiveFeed};
use crate::http::{self, HeadError, Request};
use crate::metrics::{health_json, render_healthy, Exposition, Roles};
use crate::shutdown::{self, Shutdown};
use auth::{Authenticator, Refusal};
use budget::MemoryBudget;
use day::DayCache;
use delivery::bus_call;
use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::FeedStatus;
use hub::{DelayedHub, HubHealth, LiveHub, Tap};
use metrics::Rejection;
use wire::{IntoWire, ReadOnly};

/// How often the delayed tier looks for events that have come due.
const DELAYED_POLL: Duration = Duration::from_millis(250);
/// How long `/healthz` waits for Redis.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A bound gateway, ready to [`run`](Gateway::run).
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    live: LiveFeed,
    feed: watch::Sender<Option<FeedStatus>>,
    shared: Shared,
}

/// What every connection task shares.
struct Shared {
    bus: Bus,
    config: Arc<GatewayConfig>,
    ws_config: WebSocketConfig,
    metrics: Arc<GatewayMetrics>,
    /// The bytes queued for all clients together.
    memory: Arc<MemoryBudget>,
    auth: Authenticator,
    tls: Option<TlsAcceptor>,
    realtime: Arc<Tap>,
    /// Present when some token has the delayed entitlement.
    delayed: Option<Arc<Tap>>,
    health: Arc<HubHealth>,
    /// The feed status last read from the bus (`None`: no ingest reports one).
    feed: watch::Receiver<Option<FeedStatus>>,
    /// The other roles of this gateway's node, shown on its port.
    roles: Roles,
    /// The day's totals, read at most once per `day_cache` for all clients.
    day: Arc<DayCache>,
    /// The archive (`config.archive`), shared by every connection.
    archive: Option<Arc<ArchiveReader>>,
}

impl Gateway {
    /// Checks the configuration, loads TLS, subscribes to the bus's live
    /// fan-out, notes where the flow stream ends, and binds the listener.
    pub async fn bind(bus: Bus, config: GatewayConfig) -> Result<Gateway, GatewayError> {
        config.validate()?;
        let tls = config.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        // Subscribe before reading the stream's end: nothing falls between.
        let live = bus_call(bus.subscribe_live()).await?;
        let start = bus_call(bus.flow_bounds())
            .await?
            .last
            .unwrap_or(Cursor::ZERO);
        let listener = listen(&config).map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics = Arc::new(GatewayMetrics::default());
        let memory = Arc::new(MemoryBudget::new(config.max_queued_bytes, metrics.clone()));
        let delayed = config.auth.as_ref().filter(|a| a.has_delayed()).map(|_| {
            Arc::new(Tap::new(
                DelayedHub::start_cursor(config.delay),
                config.recent_events,
                metrics.clone(),
            ))
        });
        let ws_config = WebSocketConfig::default()
            // Client messages are small, and the read buffer is resident
            // memory in every connection: read in small steps (a larger
            // message grows the buffer as it needs).
            .read_buffer_size(256)
            .write_buffer_size(0)
            .max_write_buffer_size(config.max_batch_bytes.max(config.max_message_size) * 4)
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        let initial_feed = bus_call(bus.feed_status()).await.ok().flatten();
        let (feed, feed_rx) = watch::channel(initial_feed);
        let archive = config
            .archive
            .as_ref()
            .map(|url| Arc::new(ArchiveReader::new(url.0.clone(), metrics.archive.clone())));
        let shared = Shared {
            feed: feed_rx,
            auth: Authenticator::new(config.auth.as_ref()),
            realtime: Arc::new(Tap::new(start, config.recent_events, metrics.clone())),
            delayed,
            bus,
            ws_config,
            metrics,
            memory,
            tls,
            health: Arc::new(HubHealth::new()),
            day: Arc::new(DayCache::new(config.day_cache)),
            archive,
            config: Arc::new(config),
            roles: Roles::default(),
        };
        Ok(Gateway {
            listener,
            local_addr,
            live,
            feed,
            shared,
        })
    }

    /// Shows the other roles of this node on the gateway's port: their
    /// families in `/metrics`, their verdicts in `/healthz` (which is then
    /// healthy only when every one of them is too).
    pub fn with_roles(mut self, roles: Roles) -> Gateway {
        self.shared.roles = roles;
        self
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> Arc<GatewayMetrics> {
        self.shared.metrics.clone()
    }

    /// Serves until `shutdown` fires, then closes every client with 1001 and
    /// returns once they have drained (or `drain_timeout` has passed).
    pub async fn run(self, shutdown: Shutdown) {
        let Gateway {
            listener,
            local_addr,
            live,
            feed,
            shared,
        } = self;
        let shared = Arc::new(shared);
        let (hub_stop, hub_signal) = shutdown::channel();
        let mut hubs = tokio::task::JoinSet::new();
        let config = &shared.config;
        hubs.spawn(
            LiveHub {
                bus: shared.bus.clone(),
                live,
                tap: shared.realtime.clone(),
                metrics: shared.metrics.clone(),
                health: shared.health.clone(),
                repair_check: config.repair_check,
                page_size: config.page_size,
            }
            .run(hub_signal.clone()),
        );
        hubs.spawn(watch_feed(
            shared.bus.clone(),
            feed,
            shared.metrics.clone(),
            config.feed_poll,
            hub_signal.clone(),
        ));
        if let Some(tap) = &shared.delayed {
            hubs.spawn(
                DelayedHub {
                    bus: shared.bus.clone(),
                    tap: tap.clone(),
                    metrics: shared.metrics.clone(),
                    health: shared.health.clone(),
                    delay: config.delay,
                    poll: DELAYED_POLL,
                    page_size: config.page_size,
                }
                .run(hub_signal),
            );
        }
        tracing::info!(
            addr = %local_addr,
            tls = shared.tls.is_some(),
            auth = config.auth.is_some(),
            "gateway listening"
        );
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        loop {
            // Take a connection slot before accepting, so a full gateway
            // leaves new connections in the kernel's backlog.
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.wait() => break,
            };
            let (socket, peer) = tokio::select! {
                accepted = accept(&listener) => accepted,
                _ = shutdown.wait() => break,
            };
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            let done = done_tx.clone();
            client_socket(&socket, shared.config.socket_unsent_limit);
            let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
            // The task's future is the connection's resident state for as
            // long as it stays open: a plain connection's is not sized for
            // the TLS one's.
            if shared.tls.is_some() {
                tokio::spawn(async move {
                    serve_tls(shared, socket, peer, deadline, shutdown).await;
                    drop((permit, done));
                });
            } else {
                tokio::spawn(async move {
                    serve_http(shared, socket, deadline, shutdown).await;
                    drop((permit, done));
                });
            }
        }
        drop(listener);
        drop(done_tx);
        tracing::info!("gateway shutting down: closing client connections");
        if tokio::time::timeout(shared.config.drain_timeout, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within the drain timeout");
        }
        hub_stop.trigger();
        while hubs.join_next().await.is_some() {}
    }
}

/// Follows the feed status on the bus: every change reaches every
/// subscribed client as a `status` message (through the watch channel the
/// sessions hold) and the `/metrics` feed gauge. An expired status (no
/// ingest publishing) reads as `None`. While the bus is unreachable the last
/// status is kept; `/healthz` reports Redis itself.
async fn watch_feed(
    bus: Bus,
    feed: watch::Sender<Option<FeedStatus>>,
    metrics: Arc<GatewayMetrics>,
    poll: Duration,
    shutdown: Shutdown,
) {
    metrics.set_feed(feed.borrow().as_ref());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.wait() => return,
        }
        let Ok(Ok(current)) = tokio::time::timeout(HEALTH_TIMEOUT, bus.feed_status()).await else {
            continue;
        };
        // Only a change of state or reason is news; `since` follows the state.
        let changed = {
            let last = feed.borrow();
            last.as_ref().map(|f| (f.state, &f.reason))
                != current.as_ref().map(|f| (f.state, &f.reason))
        };
        if changed {
            metrics.set_feed(current.as_ref());
            feed.send_replace(current);
        }
    }
}

/// The listening socket.
fn listen(config: &GatewayConfig) -> std::io::Result<TcpListener> {
    let socket = match config.listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(config.listen)?;
    socket.listen(1024)
}

/// Sets up an accepted client socket: no Nagle delay, and at most
/// `unsent_limit` unsent bytes in the kernel (see
/// [`GatewayConfig::socket_unsent_limit`]).
fn client_socket(socket: &TcpStream, unsent_limit: usize) {
    let _ = socket.set_nodelay(true);
    let limit = u32::try_from(unsent_limit).unwrap_or(u32::MAX);
    if let Err(e) = socket2::SockRef::from(socket).set_tcp_notsent_lowat(limit) {
        tracing::debug!("cannot limit a client socket's unsent bytes: {e}");
    }
}

/// Accepts one connection, retrying transient errors (e.g. out of file
/// descriptors) with backoff rather than giving up.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// One accepted TLS connection: the handshake, then HTTP.
async fn serve_tls(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    shutdown: Shutdown,
) {
    let Some(acceptor) = shared.tls.clone() else {
        return;
    };
    match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
        Ok(Ok(tls)) => serve_http(shared, tls, deadline, shutdown).await,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            shared.metrics.count_rejection(Rejection::Tls);
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            shared.metrics.count_rejection(Rejection::Tls);
        }
    }
}

async fn serve_http<S>(
    shared: Arc<Shared>,
    mut stream: S,
    deadline: tokio::time::Instant,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + IntoWire + Unpin + Send + 'static,
{
    let (request, rest) = match tokio::time::timeout_at(deadline, http::read_head(&mut stream))
        .await
    {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::TooLarge)) => {
            shared.metrics.count_rejection(Rejection::BadRequest);
            let _ = http::respond(
                &mut stream,
                400,
                "text/plain",
                "request head too large\n",
                &[],
            )
            .await;
            return;
        }
        Ok(Err(HeadError::Malformed)) => {
            shared.metrics.count_rejection(Rejection::BadRequest);
            let _ = http::respond(&mut stream, 400, "text/plain", "malformed request\n", &[]).await;
            return;
        }
        Ok(Err(HeadError::Eof | HeadError::Io(_))) | Err(_) => {
            shared.metrics.count_rejection(Rejection::BadRequest);
            return;
        }
    };
    let answer = match (request.method.as_str(), request.path.as_str()) {
        (_, "/ws") => return upgrade(shared, stream, request, rest, deadline, shutdown).await,
        ("GET", "/healthz") => {
            let (healthy, body) = health(&shared).await;
            (if healthy { 200 } else { 503 }, "application/json", body)
        }
        ("GET", "/metrics") => (200, "text/plain; version=0.0.4", metrics(&shared).await),
        (_, "/healthz" | "/metrics") => (405, "text/plain", "method not allowed\n".to_string()),
        _ => (
            404,
            "text/plain",
            "not found; the WebSocket endpoint is /ws\n".to_string(),
        ),
    };
    shared.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::time::timeout(
        shared.config.write_timeout,
        http::respond(&mut stream, answer.0, answer.1, &answer.2, &[]),
    )
    .await;
}

/// Checks auth, switches protocols and serves the WebSocket connection.
async fn upgrade<S>(
    shared: Arc<Shared>,
    mut stream: S,
    request: Request,
    rest: Vec<u8>,
    deadline: tokio::time::Instant,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + IntoWire + Unpin + Send + 'static,
{
    let refuse = |why: Rejection| shared.metrics.count_rejection(why);
    let key = match handshake::websocket_key(&request) {
        Ok(key) => key.to_string(),
        Err(why) => {
            refuse(Rejection::BadRequest);
            let _ = http::respond(
                &mut stream,
                426,
                "text/plain",
                &format!("{why}\n"),
                &[("Upgrade", "websocket")],
            )
            .await;
            return;
        }
    };
    let grant = match shared.auth.admit(handshake::token(&request).as_deref()) {
        Ok(grant) => grant,
        Err(Refusal::Unauthorized) => {
            refuse(Rejection::Unauthorized);
            let body = "a valid token is required (Authorization: Bearer, or ?token=)\n";
            let _ = http::respond(
                &mut stream,
                401,
                "text/plain",
                body,
                &[("WWW-Authenticate", "Bearer")],
            )
            .await;
            return;
        }
        Err(Refusal::AtCapacity) => {
            refuse(Rejection::TokenCap);
            let body = "this token has reached its connection limit\n";
            let _ = http::respond(&mut stream, 429, "text/plain", body, &[]).await;
            return;
        }
    };
    let tap = match grant.entitlement {
        Entitlement::Realtime => shared.realtime.clone(),
        Entitlement::Delayed => match &shared.delayed {
            Some(tap) => tap.clone(),
            None => {
                // Unreachable by construction: a delayed token means a delayed tier.
                let _ =
                    http::respond(&mut stream, 503, "text/plain", "no delayed tier\n", &[]).await;
                return;
            }
        },
    };
    if !matches!(
        tokio::time::timeout_at(deadline, handshake::switch_protocols(&mut stream, &key)).await,
        Ok(Ok(()))
    ) {
        refuse(Rejection::BadRequest);
        return;
    }
    if let Some(name) = &grant.name {
        tracing::debug!(token = %name, "client connected");
    }
    // The request's head is done with; it must not live as long as the connection.
    drop(request);
    drop(key);
    let (read, side) = stream.into_wire();
    let ws = WebSocketStream::from_partially_read(
        ReadOnly(read),
        rest,
        Role::Server,
        Some(shared.ws_config),
    )
    .await;
    let ctx = session::Context {
        bus: shared.bus.clone(),
        config: shared.config.clone(),
        metrics: shared.metrics.clone(),
        memory: shared.memory.clone(),
        tap,
        entitlement: grant.entitlement,
        feed: shared.feed.clone(),
        day: shared.day.clone(),
        archive: shared.archive.clone(),
    };
    session::serve(ws, side, ctx, shutdown).await;
    drop(grant);
}

/// `/metrics`: the gateway's families, the other roles', and every role's verdict.
async fn metrics(shared: &Shared) -> String {
    let mut out = Exposition::default();
    shared.metrics.render_into(&mut out);
    shared.roles.render(&mut out);
    let gateway = own_health(shared).await.problems.is_empty();
    let roles = shared.roles.health();
    render_healthy(
        &mut out,
        std::iter::once(("gateway", gateway)).chain(roles.iter().map(|(r, h)| (*r, h.is_ok()))),
    );
    out.into_text()
}

/// What `/healthz` reports of the gateway itself.
struct OwnHealth {
    redis: bool,
    lag_ms: Option<u64>,
    /// Why it should not receive traffic; empty when it should.
    problems: Vec<String>,
}

async fn own_health(shared: &Shared) -> OwnHealth {
    let bounds = tokio::time::timeout(HEALTH_TIMEOUT, shared.bus.flow_bounds()).await;
    let (redis, lag_ms) = match bounds {
        Ok(Ok(b)) => (
            true,
            Some(
                b.last
                    .map_or(0, |last| last.ms.saturating_sub(shared.realtime.last().ms)),
            ),
        ),
        _ => {
            shared.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
            (false, None)
        }
    };
    let max_lag = shared.config.max_healthy_lag.as_millis() as u64;
    let mut problems = Vec::new();
    if !redis {
        problems.push(format!(
            "redis: no answer within {}s",
            HEALTH_TIMEOUT.as_secs()
        ));
    }
    if !shared.health.is_ok() {
        problems.push("the reader of the flow stream is failing".to_string());
    }
    if let Some(lag) = lag_ms.filter(|l| *l > max_lag) {
        problems.push(format!("lag {lag} ms > {max_lag} ms"));
    }
    OwnHealth {
        redis,
        lag_ms,
        problems,
    }
}

/// `/healthz`: whether this gateway should receive traffic, and the JSON body.
/// With other roles in the node, it is healthy only when they all are.
async fn health(shared: &Shared) -> (bool, String) {
    let own = own_health(shared).await;
    let roles = shared.roles.health();
    // The feed's own health is reported, not judged here: a gateway keeps
    // serving history and resumes while the feed is down.
    let feed = shared.feed.borrow().clone();
    let healthy = own.problems.is_empty() && roles.iter().all(|(_, h)| h.is_ok());
    let mut body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "redis": own.redis,
        "lag_ms": own.lag_ms,
        "feed": feed,
        "connections": shared.metrics.connections.load(Ordering::Relaxed),
        "protocol": flowtape_core::protocol::PROTOCOL_VERSION,
        "problems": own.problems,
    });
    if !roles.is_empty() {
        body["roles"] = health_json(&roles);
    }
    (healthy, format!("{body}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Writes without waiting until the socket takes no more.
    fn fill(socket: &TcpStream) -> usize {
        let chunk = vec![b'x'; 64 * 1024];
        let mut total = 0;
        loop {
            match socket.try_write(&chunk) {
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return total,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// A client socket holds at most the unsent limit beyond what the
    /// reader's window takes, and once a reader that stopped reads again, a
    /// little reading is enough for it to take more: the kernel's send
    /// buffer, however large it has grown, does not have to drain by a third
    /// first. Without the limit, the first fill below takes megabytes and
    /// reading 256 KiB of them makes no room.
    #[tokio::test]
    async fn a_client_socket_holds_little_unsent_and_makes_room_as_the_reader_reads() {
        const LIMIT: usize = 64 * 1024;
        let listener = ok(TcpListener::bind("127.0.0.1:0").await);
        let addr = ok(listener.local_addr());
        let reader = ok(tokio::net::TcpSocket::new_v4());
        ok(reader.set_recv_buffer_size(64 * 1024));
        let mut reader = ok(reader.connect(addr).await);
        let (socket, _) = ok(listener.accept().await);
        // As large as Linux's autotuning lets a busy socket's buffer grow.
        ok(socket2::SockRef::from(&socket).set_send_buffer_size(4 * 1024 * 1024));
        client_socket(&socket, LIMIT);

        let held = fill(&socket);
        assert!(
            held < 1024 * 1024,
            "the socket took {held} bytes while nobody read"
        );
        // The reader's window plus a few times the limit, not a third of
        // the send buffer.
        let target = held.min(256 * 1024);
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < target {
            let n = ok(reader.read(&mut buf).await);
            assert!(n > 0, "the connection closed");
            read += n;
        }
        ok(ok(tokio::time::timeout(
            Duration::from_secs(5),
            socket.writable(),
        )
        .await));
        assert!(fill(&socket) > 0, "no room after reading {read} bytes");
    }
}
