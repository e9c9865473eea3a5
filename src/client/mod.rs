//! The gateway connection: subscribe, stream, reconnect, resume, fail over.
//!
//! [`run`] owns one WebSocket at a time. It sends `subscribe` (with the
//! filter and a backfill on the first connect, or `since` = the last cursor
//! it delivered after a reconnect), forwards events and server messages as
//! [`ClientEvent`]s, subscribes again with a new filter and a backfill when
//! told to ([`ClientCommand`]), and pings to notice a dead link. When the
//! link drops it tries the servers in order, with exponential backoff and
//! jitter between passes, and resumes from the last cursor its current
//! subscription delivered, dropping anything at or before it, so no event is
//! lost or shown twice. A token travels as `Authorization: Bearer` at the
//! handshake; HTTP 401/403 there is reported as a rejected token. If asked
//! to ([`ClientOptions::day_every`]), it also asks for the day's totals
//! (`day`): today's, or a past day's once told to ([`ClientCommand::Day`]).
//!
//! Connections go through the shared [`flowtape_server::wsclient`], so
//! `wss://` gateways work: they are trusted by the system's CA bundle, or by
//! the PEM file given as `--ca-file` ([`ClientOptions::trust`]). The URLs,
//! the token and the trust roots are checked once, before the first connect;
//! a problem there is a [`ClientEvent::Failed`] at once, never retried.

mod day;
mod subscription;

use std::time::Duration;

use day::DayAsker;
pub use day::{DAY_ERROR_PREFIX, DAY_EVERY, DAY_TOP};
use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_core::event::FlowEvent;
use flowtape_core::protocol::{
    ClientMessage, EventItem, FrameBody, HistoryRequest, ServerFrame, ServerMessage,
};
use flowtape_server::wsclient::{self, Connector, SetupError, Socket, TlsClient, TrustRoots};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::value::RawValue;
use subscription::{Answer, Answers};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long a handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to ping the gateway.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Silence after which the link is taken for dead.
const DEAD_AFTER: Duration = Duration::from_secs(45);
/// The largest frame or message accepted from a gateway (its batches are far
/// smaller), so a broken server cannot make the client buffer without bound.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The most frames read in one burst before the events are handed over.
const BURST_FRAMES: usize = 1_024;

/// Exponential backoff with jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// The wait before pass `pass` (1-based): `initial × 2^(pass-1)`, capped
    /// at `max`, then a uniformly random point in its upper half, so that
    /// many clients cut off together do not return together.
    pub fn delay(&self, pass: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << pass.saturating_sub(1).min(16));
        let full = exp.min(self.max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// What to connect to and how.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Tried in order; the first is the primary.
    pub servers: Vec<String>,
    pub token: Option<String>,
    pub filter: String,
    /// Events replayed on the first connect (when `since` is not set), and
    /// on every [`ClientCommand::Resubscribe`].
    pub backfill: Option<u32>,
    /// Resume after this cursor on the first connect.
    pub since: Option<Cursor>,
    pub backoff: Backoff,
    /// Give up after this many failed connects in a row (`None`: never).
    pub max_failures: Option<u32>,
    /// Give up if no server can be reached on the first pass, and at once on
    /// a rejected token (for scripts; the TUI keeps trying).
    pub fail_fast: bool,
    /// Keep each event's JSON exactly as received (for `tail`).
    pub keep_raw: bool,
    /// Whom `wss://` servers are checked against (`--ca-file`).
    pub trust: TrustRoots,
    /// Ask for the day's totals (`day` op) on connect, after each
    /// re-subscribe and this often; the answers come as
    /// [`ServerMessage::Day`]. `None`: never.
    pub day_every: Option<Duration>,
}

/// One event as delivered.
#[derive(Clone, Debug)]
pub struct Received {
    pub cursor: Cursor,
    pub event: FlowEvent,
    /// The event object's JSON text as the server sent it, if asked for.
    pub raw: Option<Box<RawValue>>,
}

/// What the client tells its owner.
#[derive(Clone, Debug)]
pub enum ClientEvent {
    Connecting {
        server: String,
    },
    Connected {
        server: String,
    },
    Disconnected {
        server: String,
        reason: String,
    },
    /// The client gave up; it sends nothing more.
    Failed {
        reason: String,
    },
    /// The gateway began answering the client's newest `subscribe`, with
    /// this filter: the events that follow are its stream, its replay first
    /// (until a `status` with `live`). `resumed`: it resumes after the last
    /// cursor delivered; otherwise it starts afresh with a backfill, older
    /// events than those delivered before.
    Subscribed {
        filter: String,
        resumed: bool,
    },
    /// New events, oldest first, each after the previous cursor.
    Events(Vec<Received>),
    /// Any other server message (status, error, pong, day).
    Server(Box<ServerMessage>),
}

/// What the owner tells the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// Subscribe again with this filter and the backfill: the stream starts
    /// over with the filter's recent events, then live. Every later
    /// reconnect resumes with this filter.
    Resubscribe(String),
    /// Ask for one page of history (answered by a
    /// [`ServerMessage::Page`] in a [`ClientEvent::Server`], or an error).
    /// Dropped while disconnected: a new `Subscribed` or `Disconnected` tells
    /// the owner to ask again.
    History(HistoryRequest),
    /// Ask for this day's totals (`None`: today's) from now on, at once
    /// and on every later connection.
    Day(Option<Date>),
}

/// Why a connect failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{server}: {source}")]
    Setup { server: String, source: SetupError },
    #[error("{server} rejected the token (HTTP {status})")]
    Unauthorized { server: String, status: u16 },
    #[error("cannot connect to {server}: {reason}")]
    Unreachable { server: String, reason: String },
}

/// How a session ended.
enum End {
    /// The link dropped; reconnect.
    Dropped(String),
    /// The owner is gone; stop.
    OwnerGone,
}

/// Runs until the owner drops its receiver, or until giving up (after
/// sending [`ClientEvent::Failed`]). Events are handed over as they arrive:
/// every frame that is already readable goes into one
/// [`ClientEvent::Events`].
pub async fn run(
    opts: ClientOptions,
    cmds: mpsc::Receiver<ClientCommand>,
    out: mpsc::Sender<ClientEvent>,
) {
    run_paced(opts, Duration::ZERO, cmds, out).await
}

/// [`run`], reading the socket at most once per `pace`: after each burst of
/// frames the client waits out `pace` before it reads again, and the
/// frames that arrived meanwhile (queued by the kernel) become the next
/// burst, so the owner gets one batch per `pace` rather than one per frame,
/// and neither task wakes for every event. For a screen that redraws at
/// most every `pace`, this costs no visible latency. Pings, commands and
/// the dead-link check are not delayed.
pub async fn run_paced(
    mut opts: ClientOptions,
    pace: Duration,
    mut cmds: mpsc::Receiver<ClientCommand>,
    out: mpsc::Sender<ClientEvent>,
) {
    let connectors = match connectors(&opts) {
        Ok(c) if !c.is_empty() => c,
        failed => {
            let reason = failed
                .err()
                .map_or_else(|| "no server to connect to".to_string(), |e| e.to_string());
            let _ = out.send(ClientEvent::Failed { reason }).await;
            return;
        }
    };
    let mut cursor = opts.since;
    // The day whose totals are asked for (`None`: today).
    let mut day_date: Option<Date> = None;
    let mut failures: u32 = 0;
    let mut pass: u32 = 0;
    let mut idx = 0;
    let mut ever_connected = false;
    let mut cmds_open = true;
    loop {
        let connector = &connectors[idx];
        let server = connector.url().to_string();
        if out
            .send(ClientEvent::Connecting {
                server: server.clone(),
            })
            .await
            .is_err()
        {
            return;
        }
        match connect(connector).await {
            Ok(ws) => {
                ever_connected = true;
                failures = 0;
                pass = 0;
                if out
                    .send(ClientEvent::Connected {
                        server: server.clone(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let subscribe = ClientMessage::Subscribe {
                    filter: opts.filter.clone(),
                    backfill: if cursor.is_none() {
                        opts.backfill
                    } else {
                        None
                    },
                    since: cursor,
                };
                let mut answers = Answers::default();
                let end = session(
                    ws,
                    subscribe,
                    pace,
                    &mut opts,
                    &mut cursor,
                    &mut answers,
                    &mut day_date,
                    &mut cmds,
                    &mut cmds_open,
                    &out,
                )
                .await;
                // A new filter the gateway never answered: the next
                // connect starts it afresh.
                if answers.awaiting_fresh() {
                    cursor = None;
                }
                match end {
                    End::OwnerGone => return,
                    End::Dropped(reason) => {
                        tracing::info!(%server, %reason, ?cursor, "connection lost");
                        if out
                            .send(ClientEvent::Disconnected { server, reason })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        // Start over from the primary.
                        idx = 0;
                        continue;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "connect failed");
                failures += 1;
                let unauthorized = matches!(e, ConnectError::Unauthorized { .. });
                let give_up = (opts.fail_fast && unauthorized)
                    || (opts.fail_fast && !ever_connected && failures as usize >= connectors.len())
                    || opts.max_failures.is_some_and(|m| failures >= m);
                if give_up {
                    let _ = out
                        .send(ClientEvent::Failed {
                            reason: e.to_string(),
                        })
                        .await;
                    return;
                }
                if out
                    .send(ClientEvent::Disconnected {
                        server,
                        reason: e.to_string(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        idx = (idx + 1) % connectors.len();
        if idx == 0 {
            pass += 1;
            let wait = opts.backoff.delay(pass);
            if !wait_applying_commands(
                wait,
                &mut opts,
                &mut cursor,
                &mut day_date,
                &mut cmds,
                &mut cmds_open,
                &out,
            )
            .await
            {
                return;
            }
        }
    }
}

/// Sleeps for `wait`, keeping a new filter for the next subscribe (afresh,
/// with a backfill). Returns false if the owner went away.
async fn wait_applying_commands(
    wait: Duration,
    opts: &mut ClientOptions,
    cursor: &mut Option<Cursor>,
    day_date: &mut Option<Date>,
    cmds: &mut mpsc::Receiver<ClientCommand>,
    cmds_open: &mut bool,
    out: &mpsc::Sender<ClientEvent>,
) -> bool {
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return true,
            _ = out.closed() => return false,
            cmd = cmds.recv(), if *cmds_open => match cmd {
                Some(ClientCommand::Resubscribe(f)) => {
                    opts.filter = f;
                    *cursor = None;
                }
                Some(ClientCommand::History(_)) => {}
                Some(ClientCommand::Day(date)) => *day_date = date,
                None => *cmds_open = false,
            },
        }
    }
}

/// One connector per server, in order, sharing one TLS client. Fails on a
/// bad URL, an unusable CA file or a token no header can carry.
pub(crate) fn connectors(opts: &ClientOptions) -> Result<Vec<Connector>, ConnectError> {
    let mut tls = TlsClient::new(opts.trust.clone());
    // A modest read buffer: tungstenite prepares the whole buffer on every
    // read, and events come as many small frames.
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    opts.servers
        .iter()
        .map(|server| {
            let setup = |source| ConnectError::Setup {
                server: server.clone(),
                source,
            };
            let connector = Connector::new(server, &mut tls)
                .map_err(setup)?
                .with_config(config);
            match &opts.token {
                Some(t) => connector.with_bearer(t).map_err(setup),
                None => Ok(connector),
            }
        })
        .collect()
}

/// Opens the WebSocket, with the bearer token if there is one.
pub async fn connect(connector: &Connector) -> Result<Socket, ConnectError> {
    let server = connector.url();
    let unreachable = |reason: String| ConnectError::Unreachable {
        server: server.to_string(),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(&HeaderMap::new())).await {
        Err(_) => Err(unreachable(format!(
            "no handshake within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok(ws)) => Ok(ws),
        Ok(Err(wsclient::ConnectError::Http { status }))
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
        {
            Err(ConnectError::Unauthorized {
                server: server.to_string(),
                status: status.as_u16(),
            })
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    mut ws: Socket,
    subscribe: ClientMessage,
    pace: Duration,
    opts: &mut ClientOptions,
    cursor: &mut Option<Cursor>,
    answers: &mut Answers,
    day_date: &mut Option<Date>,
    cmds: &mut mpsc::Receiver<ClientCommand>,
    cmds_open: &mut bool,
    out: &mpsc::Sender<ClientEvent>,
) -> End {
    let resumes = matches!(subscribe, ClientMessage::Subscribe { since: Some(_), .. });
    answers.sent(!resumes);
    if let Err(e) = send(&mut ws, &subscribe).await {
        return End::Dropped(e);
    }
    // The subscribe to send again, and when, after the gateway could not
    // serve it (its event store was unavailable): with backoff, until it is
    // answered or superseded.
    let mut newest = subscribe;
    let mut retry: Option<Instant> = None;
    let mut refusals: u32 = 0;
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut day = DayAsker::new(opts.day_every, *day_date);
    let mut last_heard = Instant::now();
    // Reading waits until then (see `run_paced`).
    let mut resume_at: Option<Instant> = None;
    let mut batch: Vec<Received> = Vec::new();
    loop {
        tokio::select! {
            frame = ws.next(), if resume_at.is_none() => {
                last_heard = Instant::now();
                // This frame, then every frame already readable, in order.
                let mut frame = frame;
                let mut frames = 0;
                let dropped = loop {
                    frames += 1;
                    match take(frame, cursor, opts.keep_raw, &mut batch) {
                        Err(why) => break Some(why),
                        // An error about `day`: not the subscription's.
                        Ok(Some(message)) if day.swallow(&message) => {}
                        Ok(Some(message)) => {
                            // Events before the message go first.
                            if !flush(&mut batch, out).await {
                                return End::OwnerGone;
                            }
                            let answer = answers.on_message(&message);
                            if let Answer::Unavailable { began } = answer {
                                if began {
                                    // Resume after what the broken replay delivered.
                                    newest = ClientMessage::Subscribe {
                                        filter: opts.filter.clone(),
                                        backfill: cursor.is_none().then_some(opts.backfill).flatten(),
                                        since: *cursor,
                                    };
                                }
                                refusals += 1;
                                let wait = opts.backoff.delay(refusals);
                                tracing::info!(?wait, "event store unavailable; subscribing again");
                                retry = Some(Instant::now() + wait);
                            }
                            if let Answer::Began { fresh } = answer {
                                refusals = 0;
                                if fresh {
                                    // A backfill goes back before what the
                                    // previous subscription delivered.
                                    *cursor = None;
                                }
                                let began = ClientEvent::Subscribed {
                                    filter: opts.filter.clone(),
                                    resumed: !fresh,
                                };
                                if out.send(began).await.is_err() {
                                    return End::OwnerGone;
                                }
                            }
                            if out.send(ClientEvent::Server(message)).await.is_err() {
                                return End::OwnerGone;
                            }
                        }
                        Ok(None) => {}
                    }
                    if frames >= BURST_FRAMES {
                        break None;
                    }
                    match ws.next().now_or_never() {
                        Some(next) => frame = next,
                        None => break None,
                    }
                };
                // Hand over what arrived before the link dropped: the
                // cursor already counts it as delivered.
                if !flush(&mut batch, out).await {
                    return End::OwnerGone;
                }
                if let Some(why) = dropped {
                    return End::Dropped(why);
                }
                if !pace.is_zero() {
                    resume_at = Some(Instant::now() + pace);
                }
            }
            _ = tokio::time::sleep_until(resume_at.unwrap_or_else(Instant::now)), if resume_at.is_some() => {
                resume_at = None;
            }
            _ = tokio::time::sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                retry = None;
                answers.sent(!matches!(newest, ClientMessage::Subscribe { since: Some(_), .. }));
                if let Err(e) = send(&mut ws, &newest).await {
                    return End::Dropped(e);
                }
            }
            cmd = cmds.recv(), if *cmds_open => match cmd {
                Some(ClientCommand::Resubscribe(filter)) => {
                    opts.filter = filter.clone();
                    newest = ClientMessage::Subscribe {
                        filter,
                        backfill: opts.backfill,
                        since: None,
                    };
                    retry = None;
                    answers.sent(true);
                    if let Err(e) = send(&mut ws, &newest).await {
                        return End::Dropped(e);
                    }
                    day.now();
                }
                Some(ClientCommand::History(request)) => {
                    if let Err(e) = send(&mut ws, &ClientMessage::History(request)).await {
                        return End::Dropped(e);
                    }
                }
                Some(ClientCommand::Day(date)) => {
                    *day_date = date;
                    day.ask_for(date);
                }
                None => *cmds_open = false,
            },
            request = day.due() => {
                if let Err(e) = send(&mut ws, &request).await {
                    return End::Dropped(e);
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= DEAD_AFTER {
                    return End::Dropped(format!("nothing heard for {}s", DEAD_AFTER.as_secs()));
                }
                if let Err(e) = send(&mut ws, &ClientMessage::Ping).await {
                    return End::Dropped(e);
                }
            }
            _ = out.closed() => {
                let _ = ws.close(None).await;
                return End::OwnerGone;
            }
        }
    }
}

/// Takes one frame off the socket: events go into `batch`; another server
/// message is returned; a close or an error is why the link dropped.
fn take(
    frame: Option<Result<Message, tungstenite::Error>>,
    cursor: &mut Option<Cursor>,
    keep_raw: bool,
    batch: &mut Vec<Received>,
) -> Result<Option<Box<ServerMessage>>, String> {
    match frame {
        Some(Ok(Message::Text(t))) => Ok(decode(t.as_str(), cursor, keep_raw, batch)),
        Some(Ok(Message::Close(f))) => Err(f.map_or_else(
            || "closed by the server".to_string(),
            |f| format!("closed by the server: {} {}", u16::from(f.code), f.reason),
        )),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("connection closed".into()),
    }
}

/// Sends the batched events, if any, as one [`ClientEvent::Events`].
/// Returns false if the owner is gone.
async fn flush(batch: &mut Vec<Received>, out: &mpsc::Sender<ClientEvent>) -> bool {
    if batch.is_empty() {
        return true;
    }
    out.send(ClientEvent::Events(std::mem::take(batch)))
        .await
        .is_ok()
}

async fn send(ws: &mut Socket, msg: &ClientMessage) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

/// Decodes one text frame: its events, after `cursor` and in order, are
/// appended to `batch` (advancing `cursor`); any other server message is
/// returned. A frame that does not parse is logged and skipped.
///
/// Each frame is decoded in one pass ([`ServerFrame`]). Only if that fails,
/// or to keep each event's JSON text as received (`keep_raw`), are the
/// events taken as raw JSON and decoded one by one, so that an event that
/// does not match the schema costs only itself.
fn decode(
    text: &str,
    cursor: &mut Option<Cursor>,
    keep_raw: bool,
    batch: &mut Vec<Received>,
) -> Option<Box<ServerMessage>> {
    if keep_raw {
        return decode_raw(text, cursor, true, batch);
    }
    let Ok(frame) = ServerFrame::<FlowEvent>::parse(text) else {
        return decode_raw(text, cursor, false, batch);
    };
    match frame.into_body() {
        Ok(FrameBody::Events(items)) => {
            for item in items {
                if cursor.is_some_and(|last| item.cursor <= last) {
                    continue;
                }
                *cursor = Some(item.cursor);
                batch.push(Received {
                    cursor: item.cursor,
                    event: item.event,
                    raw: None,
                });
            }
            None
        }
        Ok(FrameBody::Message(m)) => Some(m),
        // History, not the stream: the cursor stays.
        Ok(FrameBody::Page(page)) => Some(Box::new(page.into_message())),
        Err(e) => {
            tracing::warn!(error = %e, "unusable frame");
            None
        }
    }
}

/// [`decode`] with each event taken as raw JSON first.
fn decode_raw(
    text: &str,
    cursor: &mut Option<Cursor>,
    keep_raw: bool,
    batch: &mut Vec<Received>,
) -> Option<Box<ServerMessage>> {
    let body = match ServerFrame::<Box<RawValue>>::parse(text).map(ServerFrame::into_body) {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "unusable frame");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "unreadable frame");
            return None;
        }
    };
    let items = match body {
        FrameBody::Events(items) => items,
        FrameBody::Message(m) => return Some(m),
        FrameBody::Page(page) => {
            // History, not the stream: the cursor stays.
            let events = page
                .events
                .into_iter()
                .filter_map(|item| match serde_json::from_str(item.event.get()) {
                    Ok(event) => Some(EventItem {
                        cursor: item.cursor,
                        event,
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, cursor = %item.cursor, "event does not match the schema");
                        None
                    }
                })
                .collect();
            return Some(Box::new(ServerMessage::Page {
                id: page.id,
                events,
                more: page.more,
                next: page.next,
                notice: page.notice,
            }));
        }
    };
    for item in items {
        let c = item.cursor;
        if cursor.is_some_and(|last| c <= last) {
            continue;
        }
        match serde_json::from_str::<FlowEvent>(item.event.get()) {
            Ok(event) => {
                *cursor = Some(c);
                batch.push(Received {
                    cursor: c,
                    event,
                    raw: keep_raw.then_some(item.event),
                });
            }
            Err(e) => tracing::warn!(error = %e, %c, "event does not match the schema"),
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod fake_gateway;
#[cfg(test)]
mod tests;
