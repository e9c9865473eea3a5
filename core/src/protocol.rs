//! The client wire protocol, version [`PROTOCOL_VERSION`] (`docs/protocol.md`).
//!
//! Every message either way is one JSON object in a WebSocket text frame.
//! Clients send [`ClientMessage`]s (tagged by `op`); the server sends
//! [`ServerMessage`]s (tagged by `type`). The gateway writes event frames
//! itself, serializing each event once for all clients ([`event_frame`]);
//! clients parse them back as [`ServerMessage::Event`], or, cheaper, as a
//! [`ServerFrame`] (one pass, no intermediate tree). No I/O happens here.

use serde::{Deserialize, Serialize};

use crate::cursor::Cursor;
use crate::date::Date;
use crate::day::{ContractPremium, DayReport, DaySummary, TickerPremium};
use crate::event::FlowEvent;

pub const PROTOCOL_VERSION: u32 = 1;

/// The most events a `backfill` may ask for.
pub const MAX_BACKFILL: u32 = 5_000;

/// Events in a `history` page when the request gives no `limit`.
pub const HISTORY_PAGE_DEFAULT: u32 = 200;
/// The most events a `history` page may ask for.
pub const MAX_HISTORY_PAGE: u32 = 1_000;

/// Close code and reason for a client that fell too far behind.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_SLOW_CONSUMER_REASON: &str = "slow consumer, resume with your cursor";
/// The reason sent with [`CLOSE_SLOW_CONSUMER`] when the gateway closes the
/// clients furthest behind because the bytes queued for all its clients
/// exceeded its memory budget.
pub const CLOSE_MEMORY_BUDGET_REASON: &str =
    "slow consumer: gateway memory budget exceeded, resume with your cursor";

/// Close code and reason for a client that did not answer the server's pings in time.
pub const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4009;
pub const CLOSE_HEARTBEAT_TIMEOUT_REASON: &str = "heartbeat timeout";

/// Reason sent with close code 1001 when the server shuts down.
pub const CLOSE_GOING_AWAY_REASON: &str = "going away";

/// A message from client to server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Start (or restart) the stream: optionally replay history, then go live.
    Subscribe {
        #[serde(default)]
        filter: String,
        /// The last N matching events, then live.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backfill: Option<u32>,
        /// Every matching event after this cursor, then live.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Cursor>,
    },
    /// Change the filter without reconnecting.
    Filter {
        filter: String,
    },
    /// One page of the flow stream's history next to a cursor, answered with
    /// a [`ServerMessage::Page`]; live delivery goes on meanwhile.
    History(HistoryRequest),
    Ping,
    /// The day's premium totals ([`ServerMessage::Day`]): for `date` (the
    /// current New York trading day when absent), with the top `top`
    /// tickers and contracts ([`crate::day::DEFAULT_DAY_TOP`] when absent,
    /// at most [`crate::day::MAX_DAY_TOP`]).
    Day {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<Date>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        top: Option<u32>,
    },
}

/// A `history` request: exactly one of `before` and `after`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// The newest matching events strictly before this cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Cursor>,
    /// The oldest matching events strictly after this cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Cursor>,
    /// At most this many events ([`HISTORY_PAGE_DEFAULT`] when absent, at
    /// most [`MAX_HISTORY_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The filter; the subscription's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Echoed in the page, to tell pages apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Health of the upstream market feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedHealth {
    Ok,
    Degraded,
    Down,
}

/// Feed status as the server reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    pub state: FeedHealth,
    #[serde(default)]
    pub reason: String,
    /// Since when (ms since the epoch) the feed has been in this state.
    pub since: i64,
}

impl FeedStatus {
    /// What a gateway reports when no ingest publishes a status (none is
    /// running, or it died and its last status expired), as of `now_ms`
    /// (ms since the epoch).
    pub fn unknown(now_ms: i64) -> FeedStatus {
        FeedStatus {
            state: FeedHealth::Down,
            reason: "no feed status reported: is an ingest running?".into(),
            since: now_ms,
        }
    }
}

/// What the stream keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Approximate maximum number of events kept.
    pub max_events: u64,
    /// Maximum age of events kept, in seconds (0 = no age limit).
    pub max_age_s: u64,
    /// The oldest cursor still kept, if any.
    #[serde(default)]
    pub oldest: Option<Cursor>,
    /// The most a backfill may ask for.
    pub max_backfill: u32,
}

/// A stretch of the flow stream that the event store lost: events with
/// cursors strictly after `after` (and strictly before `before`, when given)
/// may have existed and cannot be replayed. Lost is not trimmed: retention
/// removes the oldest events on purpose and is reported as "cursor too old";
/// a loss is history that vanished (Redis restarted without persistence, or
/// a failover lost the tail). See `docs/protocol.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRange {
    pub after: Cursor,
    /// The oldest event kept after the loss; absent while none has been
    /// written since (the loss reaches up to now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Cursor>,
}

impl LostRange {
    /// The human-readable notice sent with it.
    pub fn notice(&self) -> String {
        let upto = match self.before {
            Some(before) => format!(" and before {before}"),
            None => String::new(),
        };
        format!(
            "history lost: the event store lost the events after {}{upto} \
             (Redis restarted or failed over without them); they cannot be replayed",
            self.after
        )
    }

    /// Whether a client whose stream covers `cursor` misses part of this
    /// range: whether the range reaches past the cursor.
    pub fn reaches_past(&self, cursor: Cursor) -> bool {
        self.before.is_none_or(|before| cursor < before)
    }
}

/// Machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    NotUtf8,
    UnknownOp,
    BadField,
    BadFilter,
    BadCursor,
    RateLimited,
    Unauthorized,
    /// `filter` before any `subscribe`.
    NotSubscribed,
    /// The event store cannot be read right now; retry shortly.
    Unavailable,
    Internal,
    /// A `history` request that cannot be answered as asked.
    BadHistory,
    /// A `history` page could not be read from the event store; ask again shortly.
    HistoryUnavailable,
}

/// A message from server to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// One flow event and its cursor.
    Event {
        cursor: Cursor,
        event: FlowEvent,
    },
    /// Several events in one frame (used at peaks), oldest first.
    Events {
        events: Vec<EventItem>,
    },
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<FeedStatus>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention: Option<Retention>,
        /// Informational notice, e.g. "cursor too old, resuming from the oldest event kept".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
        /// History the event store lost (not trimmed), with a notice saying so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lost: Option<LostRange>,
        /// Set once a backfill or `since` replay is complete and live delivery begins.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// The `id` of the request refused, when it had one (a `history`
        /// request's), so a client with several in flight knows which.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    Pong,
    /// The answer to a `day` request.
    Day(DayReport),
    /// The answer to a `history` request: matching events, oldest first.
    Page {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        events: Vec<EventItem>,
        /// Whether the stream may hold more matching history in the
        /// request's direction: ask again from `next`.
        more: bool,
        /// Where the next page in the same direction starts (its `before` or
        /// `after`): past every entry this page scanned, so a sparse filter
        /// never rescans.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<Cursor>,
        /// E.g. that the request reached back past what the stream keeps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
}

/// One element of an [`ServerMessage::Events`] batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    pub cursor: Cursor,
    pub event: FlowEvent,
}

/// The `type` of a server frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameKind {
    Event,
    Events,
    Status,
    Error,
    Pong,
    Day,
    Page,
}

/// A server frame decoded in one pass, for clients.
///
/// [`ServerMessage`] is an internally tagged enum, which serde decodes by
/// first buffering the whole frame into a generic tree and then decoding
/// that tree again; for event frames that is most of a client's decoding
/// cost. `ServerFrame` reads every field any frame type has straight into a
/// flat struct, so an event is decoded once, directly from the text. Parse
/// a frame with [`ServerFrame::parse`], then take its content with
/// [`ServerFrame::into_body`] (events, or any other message) or
/// [`ServerFrame::into_message`].
///
/// The event type is a parameter so that a client can keep each event's
/// JSON text as received (`ServerFrame<Box<serde_json::value::RawValue>>`,
/// with serde_json's `raw_value` feature) and decode it apart.
///
/// It accepts what [`ServerMessage`] accepts; fields that do not belong to
/// the frame's type are ignored, as unknown fields are.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ServerFrame<E = FlowEvent> {
    #[serde(rename = "type")]
    pub kind: FrameKind,
    /// `event`: its cursor.
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// `event`: the event.
    #[serde(default = "Option::default")]
    pub event: Option<E>,
    /// `events`: the batch, oldest first.
    #[serde(default = "Vec::new")]
    pub events: Vec<FrameItem<E>>,
    /// `status` fields.
    #[serde(default)]
    pub feed: Option<FeedStatus>,
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub notice: Option<String>,
    #[serde(default)]
    pub lost: Option<LostRange>,
    #[serde(default)]
    pub live: bool,
    /// `error` fields.
    #[serde(default)]
    pub code: Option<ErrorCode>,
    #[serde(default)]
    pub message: Option<String>,
    /// `day` fields.
    #[serde(default)]
    pub date: Option<Date>,
    #[serde(default)]
    pub as_of: Option<i64>,
    #[serde(default)]
    pub totals: Option<DaySummary>,
    #[serde(default)]
    pub tickers: Vec<TickerPremium>,
    #[serde(default)]
    pub contracts: Vec<ContractPremium>,
    /// `page` fields (with `events` and `notice`); `id` is an `error`
    /// frame's too.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub more: bool,
    #[serde(default)]
    pub next: Option<Cursor>,
}

/// One event of a [`ServerFrame`]: what [`EventItem`] is for [`ServerMessage`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FrameItem<E = FlowEvent> {
    pub cursor: Cursor,
    pub event: E,
}

/// What a [`ServerFrame`] carries.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameBody<E = FlowEvent> {
    /// An `event` or `events` frame: its events, oldest first (an `events`
    /// frame may carry none).
    Events(Vec<FrameItem<E>>),
    /// Any other frame: a [`ServerMessage::Status`], [`ServerMessage::Error`],
    /// [`ServerMessage::Pong`] or [`ServerMessage::Day`].
    Message(Box<ServerMessage>),
    /// A `page` of history: not part of the live stream.
    Page(Page<E>),
}

/// A history page as a [`ServerFrame`] carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<E = FlowEvent> {
    pub id: Option<String>,
    /// Oldest first.
    pub events: Vec<FrameItem<E>>,
    pub more: bool,
    pub next: Option<Cursor>,
    pub notice: Option<String>,
}

/// Why a frame that is valid JSON is not a valid server frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an event frame without its cursor or event")]
    EventIncomplete,
    #[error("an error frame without its code or message")]
    ErrorIncomplete,
    #[error("a day frame without its date, as_of or totals")]
    DayIncomplete,
}

impl<'de, E: Deserialize<'de>> ServerFrame<E> {
    /// Decodes one frame's text. Never panics; anything that is not a
    /// server frame is an error.
    pub fn parse(text: &'de str) -> Result<ServerFrame<E>, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl<E> ServerFrame<E> {
    /// The frame's events, or the message it is.
    pub fn into_body(self) -> Result<FrameBody<E>, FrameError> {
        Ok(match self.kind {
            FrameKind::Event => match (self.cursor, self.event) {
                (Some(cursor), Some(event)) => FrameBody::Events(vec![FrameItem { cursor, event }]),
                _ => return Err(FrameError::EventIncomplete),
            },
            FrameKind::Events => FrameBody::Events(self.events),
            FrameKind::Status => FrameBody::Message(Box::new(ServerMessage::Status {
                feed: self.feed,
                retention: self.retention,
                notice: self.notice,
                lost: self.lost,
                live: self.live,
            })),
            FrameKind::Error => match (self.code, self.message) {
                (Some(code), Some(message)) => FrameBody::Message(Box::new(ServerMessage::Error {
                    code,
                    message,
                    id: self.id,
                })),
                _ => return Err(FrameError::ErrorIncomplete),
            },
            FrameKind::Pong => FrameBody::Message(Box::new(ServerMessage::Pong)),
            FrameKind::Day => match (self.date, self.as_of, self.totals) {
                (Some(date), Some(as_of), Some(totals)) => {
                    FrameBody::Message(Box::new(ServerMessage::Day(DayReport {
                        date,
                        as_of,
                        totals,
                        tickers: self.tickers,
                        contracts: self.contracts,
                    })))
                }
                _ => return Err(FrameError::DayIncomplete),
            },
            FrameKind::Page => FrameBody::Page(Page {
                id: self.id,
                events: self.events,
                more: self.more,
                next: self.next,
                notice: self.notice,
            }),
        })
    }
}

impl ServerFrame {
    /// The frame as the [`ServerMessage`] it encodes.
    pub fn into_message(self) -> Result<ServerMessage, FrameError> {
        let kind = self.kind;
        Ok(match self.into_body()? {
            FrameBody::Message(m) => *m,
            FrameBody::Events(mut items) if kind == FrameKind::Event => match items.pop() {
                Some(FrameItem { cursor, event }) => ServerMessage::Event { cursor, event },
                None => return Err(FrameError::EventIncomplete),
            },
            FrameBody::Events(items) => ServerMessage::Events {
                events: event_items(items),
            },
            FrameBody::Page(page) => page.into_message(),
        })
    }
}

fn event_items(items: Vec<FrameItem>) -> Vec<EventItem> {
    items
        .into_iter()
        .map(|FrameItem { cursor, event }| EventItem { cursor, event })
        .collect()
}

impl Page {
    /// The page as the [`ServerMessage::Page`] it encodes.
    pub fn into_message(self) -> ServerMessage {
        ServerMessage::Page {
            id: self.id,
            events: event_items(self.events),
            more: self.more,
            next: self.next,
            notice: self.notice,
        }
    }
}

/// What a `page` frame says besides its events.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PageHead<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Cursor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'a str>,
}

/// The text of one `page` frame built from event frames (as made by
/// [`event_frame`]), oldest first, without re-serializing them:
/// `{"type":"page","id":…,"more":…,"next":…,"events":[…]}`.
pub fn page_frame<'a>(
    head: &PageHead<'_>,
    event_frames: impl IntoIterator<Item = &'a str>,
) -> String {
    let head = serde_json::to_string(head).unwrap_or_default();
    let fields = head
        .strip_prefix('{')
        .and_then(|h| h.strip_suffix('}'))
        .unwrap_or("");
    let mut out = Vec::new();
    write_events_frame(&mut out, event_frames);
    // `{"type":"events","events":[…]}` becomes `{"type":"page",<head>,"events":[…]}`.
    let events = out
        .strip_prefix(b"{\"type\":\"events\",".as_slice())
        .unwrap_or(&out);
    let mut text = String::with_capacity(out.len() + head.len() + 16);
    text.push_str("{\"type\":\"page\",");
    text.push_str(fields);
    text.push(',');
    text.push_str(std::str::from_utf8(events).unwrap_or(""));
    text
}

/// The text of one event frame, built from the stored event JSON without
/// re-serializing it: `{"type":"event","cursor":"…","event":{"id":"…",…}}`.
pub fn event_frame(cursor: &str, stored_json: &str) -> String {
    let body = stored_json.strip_prefix('{').unwrap_or(stored_json);
    let mut out = String::with_capacity(stored_json.len() + 2 * cursor.len() + 48);
    out.push_str(EVENT_FRAME_HEAD);
    out.push_str("\"cursor\":\"");
    out.push_str(cursor);
    out.push_str("\",\"event\":{\"id\":\"");
    out.push_str(cursor);
    out.push_str("\",");
    out.push_str(body);
    out.push('}');
    out
}

/// The start of every [`event_frame`], up to the cursor.
const EVENT_FRAME_HEAD: &str = "{\"type\":\"event\",";

/// The text of one `events` batch frame built from event frames (as made by
/// [`event_frame`]), oldest first, without re-serializing them:
/// `{"type":"events","events":[{"cursor":"…","event":{…}},…]}`.
pub fn events_frame<'a>(event_frames: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = Vec::new();
    write_events_frame(&mut out, event_frames);
    // Built only from `str`s.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the text of [`events_frame`] to `out`.
pub fn write_events_frame<'a>(out: &mut Vec<u8>, event_frames: impl IntoIterator<Item = &'a str>) {
    out.extend_from_slice(b"{\"type\":\"events\",\"events\":[");
    for (i, frame) in event_frames.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        out.extend_from_slice(
            frame
                .strip_prefix(EVENT_FRAME_HEAD)
                .unwrap_or(frame)
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"op":"subscribe","filter":"AAPL premium>=250k","backfill":100}"#,
        )
        .unwrap_or(ClientMessage::Ping);
        assert_eq!(
            m,
            ClientMessage::Subscribe {
                filter: "AAPL premium>=250k".into(),
                backfill: Some(100),
                since: None
            }
        );
        let m: Result<ClientMessage, _> =
            serde_json::from_str(r#"{"op":"subscribe","since":"17-2"}"#);
        assert!(
            matches!(m, Ok(ClientMessage::Subscribe { since: Some(c), .. }) if c == Cursor::new(17, 2))
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"op":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"op":"filter","filter":7}"#).is_err());
        assert_eq!(
            serde_json::to_string(&ClientMessage::Ping).unwrap_or_default(),
            r#"{"op":"ping"}"#
        );
    }

    #[test]
    fn event_frame_parses_as_server_message() {
        let stored = r#"{"ts":1,"sym":"SPY","occ":"SPY261218P00500000","expiry":"2026-12-18","strike":500.0,"right":"P","side":"B","size":10,"price":1.5,"premium":1500.0,"kind":"single","legs":1,"exchanges":[4],"spot":null,"otm":null,"dte":20,"oi":null,"vol":10,"iv":null,"bid":1.5,"ask":1.6,"tags":[],"sentiment":"bull","score":3}"#;
        let frame = event_frame("5-1", stored);
        let m: ServerMessage = serde_json::from_str(&frame).unwrap_or(ServerMessage::Pong);
        match m {
            ServerMessage::Event { cursor, event } => {
                assert_eq!(cursor, Cursor::new(5, 1));
                assert_eq!(event.id, "5-1");
                assert_eq!(event.sym, "SPY");
            }
            other => panic!("not an event: {other:?}"),
        }
        let batch = events_frame([frame.as_str(), event_frame("5-2", stored).as_str()]);
        match serde_json::from_str::<ServerMessage>(&batch) {
            Ok(ServerMessage::Events { events }) => {
                let cursors: Vec<Cursor> = events.iter().map(|e| e.cursor).collect();
                assert_eq!(cursors, [Cursor::new(5, 1), Cursor::new(5, 2)]);
                assert_eq!(events[1].event.id, "5-2");
            }
            other => panic!("not an events batch: {other:?}"),
        }
        let pong = serde_json::to_string(&ServerMessage::Pong).unwrap_or_default();
        assert_eq!(pong, r#"{"type":"pong"}"#);
    }

    const STORED: &str = r#"{"ts":1,"sym":"SPY","occ":"SPY261218P00500000","expiry":"2026-12-18","strike":500.0,"right":"P","side":"B","size":10,"price":1.5,"premium":1500.0,"kind":"sweep","legs":2,"exchanges":[4,7],"spot":null,"otm":null,"dte":20,"oi":null,"vol":10,"iv":null,"bid":1.5,"ask":1.6,"tags":["golden"],"sentiment":"bull","score":3}"#;

    /// Both decoders agree on `text`, and the frame's body is returned.
    fn both(text: &str) -> FrameBody {
        let message = serde_json::from_str::<ServerMessage>(text)
            .unwrap_or_else(|e| panic!("{text} is no ServerMessage: {e}"));
        let frame = ServerFrame::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(frame.clone().into_message(), Ok(message));
        frame.into_body().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The message `text` is, by both decoders.
    fn message(text: &str) -> ServerMessage {
        match both(text) {
            FrameBody::Message(m) => *m,
            other => panic!("{text} is not a message: {other:?}"),
        }
    }

    #[test]
    fn server_frame_decodes_an_event() {
        let frame = event_frame("5-1", STORED);
        let FrameBody::Events(items) = both(&frame) else {
            panic!("not events")
        };
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].cursor, Cursor::new(5, 1));
        assert_eq!(items[0].event.id, "5-1");
        assert_eq!(items[0].event.sym, "SPY");
        // Any event type: here a generic JSON value instead of a FlowEvent.
        let generic = ServerFrame::<serde_json::Value>::parse(&frame).map(|f| f.into_body());
        match generic {
            Ok(Ok(FrameBody::Events(items))) => assert_eq!(items[0].event["id"], "5-1"),
            other => panic!("generic decode: {other:?}"),
        }
    }

    #[test]
    fn server_frame_decodes_a_batch_in_order() {
        let (a, b) = (event_frame("5-1", STORED), event_frame("5-2", STORED));
        let FrameBody::Events(items) = both(&events_frame([a.as_str(), b.as_str()])) else {
            panic!("not events")
        };
        let cursors: Vec<Cursor> = items.iter().map(|i| i.cursor).collect();
        assert_eq!(cursors, [Cursor::new(5, 1), Cursor::new(5, 2)]);
        assert_eq!(items[1].event.id, "5-2");
        assert_eq!(
            both(&events_frame(std::iter::empty())),
            FrameBody::Events(Vec::new())
        );
    }

    #[test]
    fn server_frame_decodes_status_error_and_pong() {
        let status = r#"{"type":"status","feed":{"state":"degraded","reason":"slow","since":7},"retention":{"max_events":1,"max_age_s":0,"max_backfill":5},"notice":"cursor too old","live":true}"#;
        match message(status) {
            ServerMessage::Status {
                feed: Some(feed),
                retention: Some(r),
                notice: Some(n),
                lost: None,
                live: true,
            } => {
                assert_eq!(feed.state, FeedHealth::Degraded);
                assert_eq!(r.max_backfill, 5);
                assert_eq!(n, "cursor too old");
            }
            other => panic!("not the status: {other:?}"),
        }
        assert!(matches!(
            message(r#"{"type":"status"}"#),
            ServerMessage::Status {
                feed: None,
                live: false,
                ..
            }
        ));
        let error = r#"{"type":"error","code":"bad_filter","message":"unknown field"}"#;
        assert_eq!(
            message(error),
            ServerMessage::Error {
                code: ErrorCode::BadFilter,
                message: "unknown field".into(),
                id: None,
            }
        );
        assert_eq!(message(r#"{"type":"pong"}"#), ServerMessage::Pong);
    }

    #[test]
    fn a_loss_travels_in_a_status_and_is_left_out_when_there_is_none() {
        let lost = LostRange {
            after: Cursor::new(1_795_891_463_830, 4),
            before: Some(Cursor::new(1_795_891_467_002, 0)),
        };
        let status = ServerMessage::Status {
            feed: None,
            retention: None,
            notice: Some(lost.notice()),
            lost: Some(lost),
            live: false,
        };
        let text = serde_json::to_string(&status).unwrap_or_default();
        assert!(
            text.contains(r#""lost":{"after":"1795891463830-4","before":"1795891467002-0"}"#),
            "{text}"
        );
        assert_eq!(message(&text), status);
        // An open loss (nothing written since) has no `before`.
        let open = LostRange {
            before: None,
            ..lost
        };
        let text = serde_json::to_string(&open).unwrap_or_default();
        assert_eq!(text, r#"{"after":"1795891463830-4"}"#);
        assert!(
            open.notice().starts_with("history lost: "),
            "{}",
            open.notice()
        );
        assert!(open.reaches_past(Cursor::new(u64::MAX, 0)));
        assert!(lost.reaches_past(Cursor::new(1_795_891_467_001, 9)));
        assert!(!lost.reaches_past(Cursor::new(1_795_891_467_002, 0)));
        // A status without a loss reads as before, and writes no `lost`.
        let plain = serde_json::to_string(&ServerMessage::Status {
            feed: None,
            retention: None,
            notice: None,
            lost: None,
            live: true,
        })
        .unwrap_or_default();
        assert_eq!(plain, r#"{"type":"status","live":true}"#);
    }

    #[test]
    fn day_requests_parse_and_bad_ones_do_not() {
        let parse = |t: &str| serde_json::from_str::<ClientMessage>(t);
        assert!(matches!(
            parse(r#"{"op":"day"}"#),
            Ok(ClientMessage::Day {
                date: None,
                top: None
            })
        ));
        let day = Date::from_ymd(2026, 12, 7).ok();
        let asked = ClientMessage::Day {
            date: day,
            top: Some(20),
        };
        let text = serde_json::to_string(&asked).unwrap_or_default();
        assert_eq!(text, r#"{"op":"day","date":"2026-12-07","top":20}"#);
        assert_eq!(parse(&text).ok(), Some(asked));
        for bad in [
            r#"{"op":"day","date":"2026-13-01"}"#,
            r#"{"op":"day","date":"yesterday"}"#,
            r#"{"op":"day","date":20261207}"#,
            r#"{"op":"day","top":-1}"#,
            r#"{"op":"day","top":"ten"}"#,
            r#"{"op":"day","extra":1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
        let e = parse(r#"{"op":"day","date":"2026-02-30"}"#)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("2026-02-30 is not a calendar date")),
            "{e:?}"
        );
    }

    #[test]
    fn a_day_frame_round_trips_through_both_decoders() {
        let mut totals = crate::day::DayTotals::default();
        for (field, cents) in [
            ("SPY:call", 120_000),
            ("SPY:bull", 120_000),
            ("SPY261218C00500000", 120_000),
            ("AAPL:put", 50_000),
            ("AAPL261218P00150000", 50_000),
        ] {
            totals.add(field, cents);
        }
        let date = Date::from_ymd(2026, 12, 7).unwrap_or_else(|e| panic!("{e}"));
        let day = ServerMessage::Day(totals.report(date, 1_796_000_000_000, 10));
        let text = serde_json::to_string(&day).unwrap_or_default();
        assert!(
            text.starts_with(r#"{"type":"day","date":"2026-12-07","as_of":1796000000000,"#),
            "{text}"
        );
        assert_eq!(message(&text), day);
        let incomplete = ServerFrame::<FlowEvent>::parse(r#"{"type":"day","date":"2026-12-07"}"#)
            .map(ServerFrame::into_body);
        assert_eq!(incomplete.ok(), Some(Err(FrameError::DayIncomplete)));
        assert!(ServerFrame::<FlowEvent>::parse(r#"{"type":"day","date":"12/07"}"#).is_err());
    }

    #[test]
    fn malformed_server_frames_are_errors() {
        for text in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":"dance"}"#,
            r#"{"type":"event","cursor":"nope","event":{}}"#,
            r#"{"type":"event","cursor":"5-1","event":{"sym":"SPY"}}"#,
            r#"{"type":"events","events":[{"cursor":"5-1"}]}"#,
            r#"{"type":"error","code":"no_such_code","message":"x"}"#,
            r#"{"type":"event""#,
        ] {
            assert!(
                ServerFrame::<FlowEvent>::parse(text).is_err(),
                "{text:?} parsed"
            );
        }
        let incomplete = ServerFrame::<FlowEvent>::parse(r#"{"type":"event","cursor":"5-1"}"#)
            .map(ServerFrame::into_body);
        assert_eq!(incomplete.ok(), Some(Err(FrameError::EventIncomplete)));
        let incomplete = ServerFrame::<FlowEvent>::parse(r#"{"type":"error","message":"x"}"#)
            .map(|f| f.into_message());
        assert_eq!(incomplete.ok(), Some(Err(FrameError::ErrorIncomplete)));
    }

    #[test]
    fn history_requests_parse_and_round_trip() {
        let text = r#"{"op":"history","before":"17-2","limit":50,"filter":"AAPL","id":"p1"}"#;
        let m: Result<ClientMessage, _> = serde_json::from_str(text);
        let want = ClientMessage::History(HistoryRequest {
            before: Some(Cursor::new(17, 2)),
            after: None,
            limit: Some(50),
            filter: Some("AAPL".into()),
            id: Some("p1".into()),
        });
        assert_eq!(m.ok(), Some(want.clone()));
        let back = serde_json::to_string(&want).unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<ClientMessage>(&back).ok(),
            Some(want)
        );
        let bare = ClientMessage::History(HistoryRequest {
            after: Some(Cursor::new(5, 0)),
            ..HistoryRequest::default()
        });
        assert_eq!(
            serde_json::to_string(&bare).unwrap_or_default(),
            r#"{"op":"history","after":"5-0"}"#
        );
        for bad in [
            r#"{"op":"history","before":"x"}"#,
            r#"{"op":"history","limit":-1}"#,
            r#"{"op":"history","after":"5-0","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_frame_decodes_in_one_pass_and_as_a_message() {
        let (a, b) = (event_frame("5-1", STORED), event_frame("5-2", STORED));
        let head = PageHead {
            id: Some("p\"1"),
            more: true,
            next: Some(Cursor::new(5, 1)),
            notice: Some("older than the stream keeps"),
        };
        let text = page_frame(&head, [a.as_str(), b.as_str()]);
        let FrameBody::Page(page) = both(&text) else {
            panic!("not a page: {text}")
        };
        assert_eq!(page.id.as_deref(), Some("p\"1"));
        assert!(page.more);
        assert_eq!(page.next, Some(Cursor::new(5, 1)));
        assert_eq!(page.notice.as_deref(), Some("older than the stream keeps"));
        let cursors: Vec<Cursor> = page.events.iter().map(|i| i.cursor).collect();
        assert_eq!(cursors, [Cursor::new(5, 1), Cursor::new(5, 2)]);
        assert_eq!(page.events[1].event.id, "5-2");
        // The message writes what the frame reads.
        let message = page.clone().into_message();
        let written = serde_json::to_string(&message).unwrap_or_default();
        assert_eq!(both(&written), FrameBody::Page(page));
        // An empty last page: no id, no next, no events.
        let last = page_frame(&PageHead::default(), std::iter::empty());
        assert_eq!(last, r#"{"type":"page","more":false,"events":[]}"#);
        assert_eq!(
            message_of_page(&last),
            ServerMessage::Page {
                id: None,
                events: Vec::new(),
                more: false,
                next: None,
                notice: None
            }
        );
        // A page's events are never taken for the live stream's.
        let generic = ServerFrame::<serde_json::Value>::parse(&text).map(|f| f.into_body());
        assert!(matches!(generic, Ok(Ok(FrameBody::Page(p))) if p.events.len() == 2));
    }

    fn message_of_page(text: &str) -> ServerMessage {
        match both(text) {
            FrameBody::Page(p) => p.into_message(),
            other => panic!("{text} is not a page: {other:?}"),
        }
    }

    #[test]
    fn history_error_codes_have_wire_names() {
        let e = ServerMessage::Error {
            code: ErrorCode::BadHistory,
            message: "x".into(),
            id: None,
        };
        let text = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"type":"error","code":"bad_history","message":"x"}"#
        );
        assert_eq!(message(&text), e);
        // A refused request's id comes back with the error.
        let e = ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            id: Some("p7".into()),
        };
        let text = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"type":"error","code":"rate_limited","message":"slow down","id":"p7"}"#
        );
        assert_eq!(message(&text), e);
        assert_eq!(
            serde_json::to_string(&ErrorCode::HistoryUnavailable).unwrap_or_default(),
            r#""history_unavailable""#
        );
    }
}
