//! One client connection after the upgrade: its reader, its session and its
//! writer ([`super::outbox`]), and how they end together.
//!
//! - The reader reads client frames, applies the rate limit, answers `ping`
//!   and every kind of bad input with a `pong` or an `error` frame, and
//!   passes `subscribe`, `filter` and `history` to the session (which
//!   answers `history` with a page, [`super::history`]).
//! - The session owns the filter and the cursor (the newest stream id the
//!   client's stream has covered). On `subscribe` it sends the history the
//!   client asked for ([`super::replay`]), then catches up from its cursor to
//!   live: from the tier's [`Tap`] window of recent events, or the flow
//!   stream before that, until the tap attaches it at the seam. From then on
//!   the hub queues live events straight into the client's send queue and
//!   the session sleeps. A client whose queue fills is detached by the hub
//!   and catches up the same way from its own cursor; one whose queue stays
//!   full for `catch_up_patience` is closed with 4008. No gap, no duplicate.
//! - A client resuming from a cursor is told when history after it is gone:
//!   "cursor too old" when retention trimmed it, a `lost` status for each
//!   range the event store lost (judged from the stream, and the losses the
//!   hub found), so a loss is never silent.
//!
//! When any of the three ends, the others are wound down.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::auth::Entitlement;
use super::budget::MemoryBudget;
use super::config::GatewayConfig;
use super::day::{self, DayCache};
use super::delivery::bus_call;
use super::history::Pages;
use super::hub::{loss_status, CatchUp, LiveEnd, LiveRx, Tap};
use super::mailbox;
use super::metrics::GatewayMetrics;
use super::outbox::{
    self, LastHeard, Outbox, SlowConsumer, WriterConfig, CLOSE_INTERNAL, CLOSE_INVALID_PAYLOAD,
    CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG,
};
use super::ratelimit::{TokenBucket, Verdict};
use super::replay::{Replay, ReplayError};
use super::wire::{ReadOnly, WriteSide};
use crate::archive::ArchiveReader;
use crate::bus::{history, Bus};
use crate::shutdown::Shutdown;
use flowtape_core::cursor::Cursor;
use flowtape_core::filter::Filter;
use flowtape_core::protocol::{
    ClientMessage, ErrorCode, FeedStatus, LostRange, Retention, ServerMessage,
};

/// What a connection needs from its gateway.
pub(crate) struct Context {
    pub bus: Bus,
    pub config: Arc<GatewayConfig>,
    pub metrics: Arc<GatewayMetrics>,
    /// The bytes queued for all the gateway's clients.
    pub memory: Arc<MemoryBudget>,
    pub tap: Arc<Tap>,
    pub entitlement: Entitlement,
    /// The feed status; a change is pushed to the client once subscribed.
    pub feed: watch::Receiver<Option<FeedStatus>>,
    /// The day's totals, shared by the gateway's connections.
    pub day: Arc<DayCache>,
    /// The archive, for history past the stream and past days.
    pub archive: Option<Arc<ArchiveReader>>,
}

/// Serves one upgraded connection until it closes.
pub(crate) async fn serve<R>(
    ws: WebSocketStream<ReadOnly<R>>,
    side: WriteSide,
    ctx: Context,
    shutdown: Shutdown,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    let metrics = ctx.metrics.clone();
    metrics.connections.fetch_add(1, Ordering::Relaxed);
    metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    let heard = Arc::new(LastHeard::new());
    let writer_config = WriterConfig {
        ping_interval: ctx.config.ping_interval,
        pong_timeout: ctx.config.pong_timeout,
        write_timeout: ctx.config.write_timeout,
        max_batch_bytes: ctx.config.max_batch_bytes,
        coalesce: ctx.config.coalesce,
    };
    let (out, inbox) = outbox::channel(
        ctx.config.send_queue_bytes,
        &ctx.memory,
        &writer_config,
        side.wire(),
        metrics.clone(),
    );
    let write_timeout = writer_config.write_timeout;
    let mut writer = tokio::spawn(outbox::run_writer(
        side,
        inbox,
        writer_config,
        heard.clone(),
        shutdown,
        metrics.clone(),
    ));
    {
        let (commands, inbox) = mailbox::mailbox(16);
        let reader = Reader {
            out: out.clone(),
            commands,
            bucket: TokenBucket::new(&ctx.config.rate_limit, Instant::now()),
            heard,
        };
        let session = Session::new(ctx, out);
        // One task for both: live events bypass the session (the hub queues
        // them for the writer), so it wakes only for the client's commands,
        // a lag or a feed change, and the reader keeps reading while the
        // session replays.
        tokio::select! {
            _ = reader.run(ws) => {}
            _ = session.run(inbox) => {}
            _ = &mut writer => {}
        }
        // Dropping the reader and session drops every producer: the writer
        // sends what is queued and finishes the closing handshake.
    }
    if !writer.is_finished()
        && tokio::time::timeout(write_timeout * 2, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

struct Reader {
    out: Outbox,
    commands: mailbox::Sender<ClientMessage>,
    bucket: TokenBucket,
    heard: Arc<LastHeard>,
}

/// What the rate limit says about one client message.
enum Admit {
    Process,
    /// Refused with a `rate_limited` error; read on.
    Skip,
    /// Close the connection.
    Stop,
}

impl Reader {
    async fn run<R>(mut self, mut stream: WebSocketStream<ReadOnly<R>>)
    where
        R: AsyncRead + Unpin,
    {
        while let Some(frame) = stream.next().await {
            self.heard.touch();
            let text = match frame {
                Ok(Message::Text(text)) => Some(text),
                Ok(Message::Binary(_)) => None,
                Ok(Message::Close(frame)) => {
                    // Answer with the client's own code (RFC 6455 §5.5.1).
                    let code = frame.map_or(CLOSE_NORMAL, |f| u16::from(f.code));
                    return self.out.close(code, "");
                }
                Ok(Message::Ping(payload)) => match self.out.pong(payload) {
                    Ok(()) => continue,
                    Err(SlowConsumer) => return self.out.close_slow_consumer(),
                },
                Ok(_) => continue, // pong, raw frame: heard
                Err(WsError::Capacity(e)) => {
                    tracing::debug!("client frame too large: {e}");
                    return self.out.close(CLOSE_TOO_BIG, "message too big");
                }
                Err(WsError::Utf8(_)) => {
                    // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection.
                    let _ = self
                        .out
                        .error(ErrorCode::NotUtf8, "a text frame was not valid UTF-8");
                    return self
                        .out
                        .close(CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in a text frame");
                }
                Err(e) => {
                    tracing::debug!("client connection ended: {e}");
                    return;
                }
            };
            match self.admit() {
                Admit::Process => {}
                Admit::Skip => continue,
                Admit::Stop => return,
            }
            let parsed = match &text {
                Some(text) => parse_command(text),
                None => Err(Refused {
                    code: ErrorCode::NotUtf8,
                    message: "messages must be JSON text frames; got a binary frame".into(),
                    id: None,
                }),
            };
            let sent = match parsed {
                Ok(ClientMessage::Ping) => self.out.message(&ServerMessage::Pong),
                Ok(command) => {
                    if self.commands.send(command).await.is_err() {
                        return;
                    }
                    Ok(())
                }
                Err(r) => self.out.refuse(r.id.as_deref(), r.code, r.message),
            };
            if sent.is_err() {
                return self.out.close_slow_consumer();
            }
        }
    }

    fn admit(&mut self) -> Admit {
        match self.bucket.take(Instant::now()) {
            Verdict::Allow => Admit::Process,
            Verdict::Refuse => match self
                .out
                .error(ErrorCode::RateLimited, "too many messages; slow down")
            {
                Ok(()) => Admit::Skip,
                Err(SlowConsumer) => {
                    self.out.close_slow_consumer();
                    Admit::Stop
                }
            },
            Verdict::Close => {
                self.out.close(CLOSE_POLICY, "rate limit exceeded");
                Admit::Stop
            }
        }
    }
}

/// A client message refused: why, and the request's `id` if it had one.
#[derive(Debug)]
struct Refused {
    code: ErrorCode,
    message: String,
    id: Option<String>,
}

/// Parses one client message, classifying what is wrong with a bad one.
fn parse_command(text: &str) -> Result<ClientMessage, Refused> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Refused {
        code: ErrorCode::InvalidJson,
        message: format!("invalid JSON: {e}"),
        id: None,
    })?;
    let Some(object) = value.as_object() else {
        return Err(Refused {
            code: ErrorCode::BadField,
            message: "a message must be a JSON object with an \"op\"".into(),
            id: None,
        });
    };
    let id = object
        .get("id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let refuse = |code, message: String| Refused {
        code,
        message,
        id: id.clone(),
    };
    let op = match object.get("op") {
        Some(serde_json::Value::String(op)) => op.clone(),
        Some(_) => {
            return Err(refuse(
                ErrorCode::BadField,
                "\"op\" must be a string".into(),
            ))
        }
        None => return Err(refuse(ErrorCode::BadField, "missing \"op\"".into())),
    };
    if !matches!(
        op.as_str(),
        "subscribe" | "filter" | "ping" | "history" | "day"
    ) {
        return Err(refuse(
            ErrorCode::UnknownOp,
            format!("unknown op {op:?}; the ops are subscribe, filter, history, day and ping"),
        ));
    }
    for field in ["since", "before", "after"] {
        if let Some(serde_json::Value::String(cursor)) = object.get(field) {
            if let Err(e) = cursor.parse::<Cursor>() {
                return Err(refuse(ErrorCode::BadCursor, format!("{field}: {e}")));
            }
        }
    }
    serde_json::from_value(value).map_err(|e| refuse(ErrorCode::BadField, format!("{op}: {e}")))
}

/// Events taken from the tap per step of catching up.
const CATCH_UP_BATCH: usize = 256;

const CURSOR_TOO_OLD: &str = "cursor too old, resuming from the oldest event kept";

/// Where a subscription starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Live only.
    Now,
    /// The last N matching events first.
    Backfill(u32),
    /// Every matching event after this cursor first.
    Since(Cursor),
}

/// The connection must end (the reason has been queued for the client).
pub(super) struct End;

impl From<SlowConsumer> for End {
    fn from(_: SlowConsumer) -> End {
        End
    }
}

pub(super) struct Session {
    pub(super) ctx: Context,
    pub(super) out: Outbox,
    pub(super) filter: Filter,
    /// The newest stream id this client's stream has covered.
    pub(super) cursor: Cursor,
    /// How many of the losses the hub found this client has been told of.
    told: u64,
    live: Option<LiveRx>,
    /// Its `history` requests' rate limit.
    pub(super) pages: Pages,
}

impl Session {
    fn new(ctx: Context, out: Outbox) -> Session {
        let pages = Pages::new(&ctx.config, Instant::now());
        Session {
            ctx,
            out,
            filter: Filter::default(),
            cursor: Cursor::ZERO,
            told: 0,
            live: None,
            pages,
        }
    }

    async fn run(mut self, mut commands: mailbox::Receiver<ClientMessage>) {
        let mut feed_open = true;
        loop {
            let step = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => return,
                },
                ended = ended(&mut self.live) => self.live_ended(ended).await,
                changed = self.ctx.feed.changed(), if feed_open => {
                    feed_open = changed.is_ok();
                    self.feed_changed()
                }
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// Tells a subscribed client that the feed's status changed.
    fn feed_changed(&mut self) -> Result<(), End> {
        let feed = self.ctx.feed.borrow_and_update().clone();
        if self.live.is_none() {
            return Ok(());
        }
        Ok(self.out.message(&ServerMessage::Status {
            feed: Some(feed.unwrap_or_else(|| FeedStatus::unknown(crate::bus::now_ms() as i64))),
            retention: None,
            notice: None,
            lost: None,
            live: false,
        })?)
    }

    async fn command(&mut self, command: ClientMessage) -> Result<(), End> {
        match command {
            ClientMessage::Subscribe {
                filter,
                backfill,
                since,
            } => {
                let filter = match Filter::parse(&filter) {
                    Ok(f) => f,
                    Err(e) => return Ok(self.out.error(ErrorCode::BadFilter, e.to_string())?),
                };
                let start = match (backfill, since) {
                    (Some(_), Some(_)) => {
                        return Ok(self
                            .out
                            .error(ErrorCode::BadField, "give backfill or since, not both")?);
                    }
                    (Some(n), None) if n > self.ctx.config.max_backfill => {
                        let message = format!(
                            "backfill {n} is over the cap of {}",
                            self.ctx.config.max_backfill
                        );
                        return Ok(self.out.error(ErrorCode::BadField, message)?);
                    }
                    (Some(n), None) => Start::Backfill(n),
                    (None, Some(c)) => Start::Since(c),
                    (None, None) => Start::Now,
                };
                self.filter = filter;
                Box::pin(self.start(start)).await
            }
            ClientMessage::Filter { filter } => {
                if self.live.is_none() {
                    return Ok(self.out.error(
                        ErrorCode::NotSubscribed,
                        "subscribe before changing the filter",
                    )?);
                }
                match Filter::parse(&filter) {
                    Ok(f) => self.set_filter(f),
                    Err(e) => self.out.error(ErrorCode::BadFilter, e.to_string())?,
                }
                Ok(())
            }
            ClientMessage::History(request) => self.history(request).await,
            // The reader answers pings itself.
            ClientMessage::Ping => Ok(()),
            ClientMessage::Day { date, top } => day::answer(&self.ctx, &self.out, date, top).await,
        }
    }

    /// Changes the filter, for this session's own checks and the hub's.
    fn set_filter(&mut self, filter: Filter) {
        if let Some(live) = &self.live {
            live.set_filter(&filter);
        }
        self.filter = filter;
    }

    async fn live_ended(&mut self, end: LiveEnd) -> Result<(), End> {
        self.live = None;
        if self.out.is_closing() {
            // Closed ahead of its queue (which the hub then found refusing
            // everything): the writer is sending the close.
            return Err(End);
        }
        match end {
            LiveEnd::Lagged(cursor, told) => {
                tracing::debug!(%cursor, "client's send queue filled; catching up");
                let metrics = self.ctx.metrics.clone();
                metrics.lag_resumes.fetch_add(1, Ordering::Relaxed);
                metrics.catching_up.fetch_add(1, Ordering::Relaxed);
                self.cursor = cursor;
                self.told = told;
                let caught_up = Box::pin(self.go_live()).await;
                metrics.catching_up.fetch_sub(1, Ordering::Relaxed);
                caught_up
            }
            LiveEnd::Closed => {
                self.out.close(CLOSE_INTERNAL, "the gateway stopped");
                Err(End)
            }
        }
    }

    /// Starts a subscription: status, the history asked for, then live.
    async fn start(&mut self, start: Start) -> Result<(), End> {
        self.live = None;
        let upto = self.ctx.tap.last();
        let bounds = match bus_call(self.ctx.bus.flow_bounds()).await {
            Ok(b) => b,
            Err(e) => return self.unavailable(true, &e.to_string()),
        };
        let mut notices = Vec::new();
        if self.ctx.entitlement == Entitlement::Delayed {
            notices.push(format!(
                "delayed data: events are released {} s after their trade time",
                self.ctx.config.delay.as_secs()
            ));
        }
        // What became of the history a `since` resumes across: trimmed by
        // retention, or lost (judged from the stream, and the losses the
        // hub found).
        let (tap_lost, found) = self.ctx.tap.losses_for(match start {
            Start::Since(since) => since,
            Start::Now | Start::Backfill(_) => upto,
        });
        self.told = found;
        let mut lost = Vec::new();
        if let Start::Since(since) = start {
            let continuity = match bus_call(self.ctx.bus.flow_continuity(since, false)).await {
                Ok(c) => c,
                Err(e) => return self.unavailable(true, &e.to_string()),
            };
            if continuity.trimmed {
                notices.push(CURSOR_TOO_OLD.to_string());
            }
            lost = history::merge(continuity.lost.into_iter().chain(tap_lost));
        }
        let config = self.ctx.bus.config();
        let feed = self
            .ctx
            .feed
            .borrow_and_update()
            .clone()
            .unwrap_or_else(|| FeedStatus::unknown(crate::bus::now_ms() as i64));
        self.out.message(&ServerMessage::Status {
            feed: Some(feed),
            retention: Some(Retention {
                max_events: config.flow_max_len,
                max_age_s: config.flow_max_age.as_secs(),
                oldest: bounds.first,
                max_backfill: self.ctx.config.max_backfill,
            }),
            notice: (!notices.is_empty()).then(|| notices.join("; ")),
            lost: None,
            live: false,
        })?;
        self.tell_lost(lost)?;
        // The history asked for ends at the tap's cursor when the subscribe
        // came; `live: true` follows it, and what comes after is live.
        let replayed = match start {
            Start::Now => Ok(upto),
            Start::Backfill(n) => self.replay().backfill(n, upto).await.map(|()| upto),
            Start::Since(since) => self.replay().since(since, upto).await,
        };
        match replayed {
            Ok(cursor) => self.cursor = cursor,
            Err(e) => return self.replay_failed(e, true),
        }
        self.out.message(&ServerMessage::Status {
            feed: None,
            retention: None,
            notice: None,
            lost: None,
            live: true,
        })?;
        self.go_live().await
    }

    /// Brings the client from its cursor to live: the tap's recent events
    /// while they cover the cursor, the flow stream before that, and then the
    /// tap attaches it at the seam. The client has been told it is live, so
    /// a failure closes the connection, for the client to resume by cursor.
    async fn go_live(&mut self) -> Result<(), End> {
        loop {
            let step = self.ctx.tap.catch_up(
                self.cursor,
                self.told,
                &self.filter,
                &self.out,
                CATCH_UP_BATCH,
            );
            match step {
                CatchUp::Lost { ranges, found } => {
                    self.tell_lost(ranges)?;
                    self.told = found;
                }
                CatchUp::Live(rx) => {
                    self.live = Some(rx);
                    return Ok(());
                }
                CatchUp::Recent(batch) => {
                    for d in batch {
                        let cursor = d.cursor;
                        if self.replay().wanted(&d) {
                            if let Err(e) = self.replay().send(d).await {
                                return self.replay_failed(e, false);
                            }
                        }
                        self.cursor = cursor;
                    }
                }
                CatchUp::Stream(upto) => {
                    self.notice_history().await?;
                    match self.replay().since(self.cursor, upto).await {
                        Ok(cursor) => self.cursor = cursor,
                        Err(e) => return self.replay_failed(e, false),
                    }
                }
            }
        }
    }

    /// Tells a client catching up from the stream that its cursor is older
    /// than the oldest event kept, or that history after it was lost (a
    /// `subscribe` says so in its first statuses; this is for a client that
    /// fell that far behind since).
    async fn notice_history(&mut self) -> Result<(), End> {
        let continuity = match bus_call(self.ctx.bus.flow_continuity(self.cursor, false)).await {
            Ok(continuity) => continuity,
            // The replay that follows meets the same failure and reports it.
            Err(_) => return Ok(()),
        };
        if continuity.trimmed {
            self.out.message(&ServerMessage::Status {
                feed: None,
                retention: None,
                notice: Some(CURSOR_TOO_OLD.to_string()),
                lost: None,
                live: false,
            })?;
        }
        self.tell_lost(continuity.lost.into_iter().collect())
    }

    /// Tells the client of losses of history its stream crosses, a status
    /// each, oldest first.
    fn tell_lost(&mut self, ranges: Vec<LostRange>) -> Result<(), End> {
        for lost in ranges {
            self.ctx
                .metrics
                .history_lost_resume
                .fetch_add(1, Ordering::Relaxed);
            self.out.message(&loss_status(lost))?;
        }
        Ok(())
    }

    fn replay_failed(&mut self, e: ReplayError, announce: bool) -> Result<(), End> {
        match e {
            ReplayError::Slow => {
                self.out.close_slow_consumer();
                Err(End)
            }
            ReplayError::Bus(e) => self.unavailable(announce, &e),
        }
    }

    /// The stream could not be read. A client's own `subscribe` gets an
    /// error and may retry; a resume after lagging cannot be completed, so
    /// the connection closes and the client resumes by cursor elsewhere.
    fn unavailable(&mut self, announce: bool, why: &str) -> Result<(), End> {
        self.ctx
            .metrics
            .redis_errors
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!("cannot replay for a client: {why}");
        if announce {
            self.out.error(
                ErrorCode::Unavailable,
                "the event store is unavailable; subscribe again shortly",
            )?;
            return Ok(());
        }
        self.out.close(
            CLOSE_INTERNAL,
            "event store unavailable, resume with your cursor",
        );
        Err(End)
    }

    /// This client's replays from the flow stream.
    fn replay(&self) -> Replay<'_> {
        Replay {
            bus: &self.ctx.bus,
            config: &self.ctx.config,
            metrics: &self.ctx.metrics,
            out: &self.out,
            filter: &self.filter,
        }
    }
}

/// The end of the live subscription, or never when not subscribed.
async fn ended(live: &mut Option<LiveRx>) -> LiveEnd {
    match live {
        Some(rx) => rx.ended().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_messages_get_the_right_code() {
        let code = |text: &str| parse_command(text).err().map(|r| r.code);
        assert_eq!(code("{"), Some(ErrorCode::InvalidJson));
        assert_eq!(code("[1]"), Some(ErrorCode::BadField));
        assert_eq!(code(r#"{"filter":"x"}"#), Some(ErrorCode::BadField));
        assert_eq!(code(r#"{"op":7}"#), Some(ErrorCode::BadField));
        assert_eq!(code(r#"{"op":"dance"}"#), Some(ErrorCode::UnknownOp));
        assert_eq!(
            code(r#"{"op":"subscribe","backfill":"ten"}"#),
            Some(ErrorCode::BadField)
        );
        assert_eq!(
            code(r#"{"op":"subscribe","since":"yesterday"}"#),
            Some(ErrorCode::BadCursor)
        );
        assert_eq!(
            code(r#"{"op":"filter","filter":"x","extra":1}"#),
            Some(ErrorCode::BadField)
        );
        assert_eq!(code(r#"{"op":"ping"}"#), None);
        assert_eq!(code(r#"{"op":"day"}"#), None);
        assert_eq!(
            code(r#"{"op":"day","date":"2026-02-30"}"#),
            Some(ErrorCode::BadField)
        );
        assert_eq!(code(r#"{"op":"day","top":1.5}"#), Some(ErrorCode::BadField));
        // A refused request's id comes back with the error.
        let refused = parse_command(r#"{"op":"history","before":"x","id":"p3"}"#).err();
        assert_eq!(
            refused.map(|r| (r.code, r.id)),
            Some((ErrorCode::BadCursor, Some("p3".to_string())))
        );
        assert!(matches!(
            parse_command(r#"{"op":"subscribe","filter":"AAPL","since":"5-1"}"#),
            Ok(ClientMessage::Subscribe { since: Some(c), .. }) if c == Cursor::new(5, 1)
        ));
    }
}
