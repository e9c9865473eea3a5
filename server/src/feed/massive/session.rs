//! One upstream connection, kept alive: the protocol, stalls and reconnects.
//!
//! [`supervise`] asks the [`Breaker`] when it may connect, runs one session,
//! reports how it ended, and goes round again until shutdown. A session:
//!
//! 1. opens the socket (bounded by the connect timeout);
//! 2. on the server's `connected` status sends `auth`; on `auth_success` sends
//!    `subscribe`; on `auth_failed` ends with [`SessionError::AuthFailed`];
//! 3. is established at the first `success` status (or the first data
//!    message), which closes the breaker;
//! 4. hands trades and quotes to its [`Handler`] and sends the prints of each
//!    frame to the sink as one batch.
//!
//! Any frame (data, status, pong) proves the connection alive. The session
//! pings every third of the stall timeout, so a quiet market is not a stall,
//! while a silent socket is. Malformed frames and messages, and unknown `ev`
//! types, are counted and skipped.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::Sender;
use tokio::time::{interval_at, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::conn::{Socket, Upstream};
use super::stats::{worth_logging, SocketStats};
use super::wire::{self, Message, Quote, Trade};
use crate::feed::breaker::Breaker;
use crate::feed::{FeedEnd, FeedStats};
use flowtape_core::event::Print;

/// How long a close frame may take to go out on shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What one socket connects to and how. (No `Debug`: it holds the API key.)
pub struct Setup<'a> {
    /// Log name: `massive` or `massive-stocks`.
    pub name: &'static str,
    pub upstream: &'a Upstream,
    pub api_key: &'a str,
    pub subscribe: &'a str,
    pub connect_timeout: Duration,
    /// How long the breaker stays open after an authentication failure.
    pub auth_retry: Duration,
}

/// What a socket does with its data.
pub trait Handler {
    /// A new connection starts: forget per-connection state.
    fn on_connect(&mut self);
    /// A trade; prints for the sink go to `out`. `Err` is a malformed record.
    fn on_trade(
        &mut self,
        trade: Trade<'_>,
        out: &mut Vec<Print>,
        stats: &SocketStats,
    ) -> Result<(), String>;
    /// A quote. `Err` is a malformed record.
    fn on_quote(&mut self, quote: Quote<'_>, stats: &SocketStats) -> Result<(), String>;
}

/// Why a session ended, other than shutdown or a closed sink.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    AuthFailed(String),
    #[error("stalled")]
    Stalled,
    #[error("{0}")]
    Closed(String),
}

/// Where the protocol stands on this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitGreeting,
    Authenticating,
    Subscribing,
    Serving,
}

/// Connects, serves and reconnects through `breaker` until `shutdown`
/// completes or the sink is closed.
pub async fn supervise<H: Handler, S: Future<Output = ()> + Unpin>(
    setup: &Setup<'_>,
    handler: &mut H,
    breaker: &mut Breaker,
    sink: Option<&Sender<Vec<Print>>>,
    stats: &SocketStats,
    feed: &mut FeedStats,
    shutdown: &mut S,
) -> FeedEnd {
    loop {
        while let Err(at) = breaker.begin_attempt(Instant::now()) {
            tokio::select! {
                biased;
                () = &mut *shutdown => return FeedEnd::Shutdown,
                () = sleep_until(at) => {}
            }
        }
        if SocketStats::bump(&stats.connection_attempts) > 1 {
            SocketStats::bump(&stats.reconnects);
        }
        handler.on_connect();
        let err = match run_session(setup, handler, breaker, sink, stats, feed, shutdown).await {
            Ok(end) => return end,
            Err(e) => e,
        };
        let now = Instant::now();
        match err {
            SessionError::AuthFailed(message) => {
                SocketStats::bump(&stats.auth_failures);
                let reason = format!("authentication failed: {message}");
                tracing::error!(feed = setup.name, "{reason}; check the API key");
                breaker.hold_open(now, reason, setup.auth_retry);
            }
            SessionError::Stalled => {
                SocketStats::bump(&stats.stalls);
                breaker.on_stall(now);
            }
            other => {
                breaker.on_failure(now, &other.to_string());
            }
        }
    }
}

async fn run_session<H: Handler, S: Future<Output = ()> + Unpin>(
    setup: &Setup<'_>,
    handler: &mut H,
    breaker: &mut Breaker,
    sink: Option<&Sender<Vec<Print>>>,
    stats: &SocketStats,
    feed: &mut FeedStats,
    shutdown: &mut S,
) -> Result<FeedEnd, SessionError> {
    let connecting = tokio::select! {
        biased;
        () = &mut *shutdown => return Ok(FeedEnd::Shutdown),
        r = timeout(setup.connect_timeout, setup.upstream.connect()) => r,
    };
    let mut ws = match connecting {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return Err(SessionError::Connect(e)),
        Err(_) => {
            let secs = setup.connect_timeout.as_secs_f64();
            return Err(SessionError::Connect(format!(
                "no connection to {} within {secs}s",
                setup.upstream.url()
            )));
        }
    };
    tracing::info!(feed = setup.name, url = setup.upstream.url(), "connected");
    let stall = breaker.config().stall_timeout;
    let ping_every = (stall / 3).max(Duration::from_millis(10));
    let mut ping = interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut phase = Phase::AwaitGreeting;
    // The last status the upstream sent that we did not expect, to explain a close.
    let mut notice: Option<String> = None;
    loop {
        let frame = tokio::select! {
            biased;
            () = &mut *shutdown => {
                close(&mut ws).await;
                return Ok(FeedEnd::Shutdown);
            }
            () = sleep_until(last_heard + stall) => return Err(SessionError::Stalled),
            _ = ping.tick() => {
                ws.send(WsMessage::Ping(Vec::new().into())).await.map_err(|e| closed(&notice, &e.to_string()))?;
                continue;
            }
            frame = ws.next() => frame,
        };
        last_heard = Instant::now();
        let text = match frame {
            None => return Err(closed(&notice, "connection closed by upstream")),
            Some(Err(e)) => return Err(closed(&notice, &e.to_string())),
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Binary(bytes))) => {
                malformed(
                    setup,
                    stats,
                    &wire::FrameError::Binary(bytes.len()).to_string(),
                );
                continue;
            }
            Some(Ok(WsMessage::Close(frame))) => {
                let why = frame.map_or_else(String::new, |f| format!(" ({} {})", f.code, f.reason));
                return Err(closed(
                    &notice,
                    &format!("upstream closed the connection{why}"),
                ));
            }
            // Pings (answered by the library), pongs: liveness only.
            Some(Ok(_)) => continue,
        };
        SocketStats::bump(&stats.frames);
        let messages = match wire::decode_frame(text.as_str()) {
            Ok(messages) => messages,
            Err(e) => {
                malformed(setup, stats, &e.to_string());
                continue;
            }
        };
        let mut batch = Vec::new();
        let mut data = false;
        for message in messages {
            let result = match message {
                Err(e) => Err(e.to_string()),
                Ok(Message::Status { status, message }) => {
                    match (status.as_ref(), phase) {
                        ("connected", Phase::AwaitGreeting) => {
                            send(&mut ws, wire::auth_action(setup.api_key), &notice).await?;
                            phase = Phase::Authenticating;
                        }
                        ("auth_success", Phase::Authenticating) => {
                            send(&mut ws, wire::subscribe_action(setup.subscribe), &notice).await?;
                            phase = Phase::Subscribing;
                        }
                        ("auth_failed", _) => {
                            return Err(SessionError::AuthFailed(message.into_owned()))
                        }
                        ("success", _) => {
                            tracing::info!(feed = setup.name, "{message}");
                            if phase == Phase::Subscribing {
                                phase = Phase::Serving;
                                breaker.on_success(Instant::now());
                            }
                        }
                        (other, _) => {
                            tracing::warn!(
                                feed = setup.name,
                                status = other,
                                "upstream status: {message}"
                            );
                            notice = Some(format!("{other}: {message}"));
                        }
                    }
                    Ok(())
                }
                Ok(Message::Trade(trade)) => {
                    data = true;
                    SocketStats::bump(&stats.trades);
                    handler.on_trade(trade, &mut batch, stats)
                }
                Ok(Message::Quote(quote)) => {
                    data = true;
                    SocketStats::bump(&stats.quotes);
                    handler.on_quote(quote, stats)
                }
                Ok(Message::Other { ev }) => {
                    let n = SocketStats::bump(&stats.unknown_events);
                    if worth_logging(n) {
                        tracing::debug!(
                            feed = setup.name,
                            ev = ev.as_ref(),
                            unknown_so_far = n,
                            "skipping unknown event type"
                        );
                    }
                    Ok(())
                }
            };
            if let Err(reason) = result {
                malformed(setup, stats, &reason);
            }
        }
        // Data before the subscription is acknowledged also proves the session.
        if data && phase == Phase::Subscribing {
            phase = Phase::Serving;
            breaker.on_success(Instant::now());
        }
        if let (Some(sink), false) = (sink, batch.is_empty()) {
            let len = batch.len() as u64;
            tokio::select! {
                biased;
                () = &mut *shutdown => {
                    close(&mut ws).await;
                    return Ok(FeedEnd::Shutdown);
                }
                sent = sink.send(batch) => {
                    if sent.is_err() {
                        close(&mut ws).await;
                        return Ok(FeedEnd::SinkClosed);
                    }
                    feed.prints += len;
                    feed.batches += 1;
                }
            }
            // Time spent waiting on our own sink is not the upstream's silence.
            last_heard = Instant::now();
        }
    }
}

async fn send(ws: &mut Socket, text: String, notice: &Option<String>) -> Result<(), SessionError> {
    ws.send(WsMessage::Text(text.into()))
        .await
        .map_err(|e| closed(notice, &e.to_string()))
}

/// A closed connection, explained by the last unexpected status if there was one.
fn closed(notice: &Option<String>, what: &str) -> SessionError {
    SessionError::Closed(match notice {
        Some(n) => format!("{what} (upstream said {n})"),
        None => what.to_string(),
    })
}

/// Sends a close frame, waiting at most [`CLOSE_TIMEOUT`].
async fn close(ws: &mut Socket) {
    let _ = timeout(CLOSE_TIMEOUT, ws.close(None)).await;
}

fn malformed(setup: &Setup<'_>, stats: &SocketStats, reason: &str) {
    let n = SocketStats::bump(&stats.malformed);
    if worth_logging(n) {
        tracing::warn!(
            feed = setup.name,
            malformed_so_far = n,
            "skipping malformed data: {reason}"
        );
    }
}
