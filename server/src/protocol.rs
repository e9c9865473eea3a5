//! The client wire protocol, version [`PROTOCOL_VERSION`] (`docs/protocol.md`).
//!
//! Every message either way is one JSON object in a WebSocket text frame.
//! Clients send [`ClientMessage`]s (tagged by `op`); the server sends
//! [`ServerMessage`]s (tagged by `type`). The gateway writes event frames
//! itself, serializing each event once for all clients ([`event_frame`]);
//! clients parse them back as [`ServerMessage::Event`]. No I/O happens here.

use serde::{Deserialize, Serialize};

use crate::cursor::Cursor;
use crate::event::FlowEvent;

pub const PROTOCOL_VERSION: u32 = 1;

/// The most events a `backfill` may ask for.
pub const MAX_BACKFILL: u32 = 5_000;

/// Close code and reason for a client that fell too far behind.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_SLOW_CONSUMER_REASON: &str = "slow consumer, resume with your cursor";

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
    Ping,
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
    /// running, or it died and its last status expired).
    pub fn unknown() -> FeedStatus {
        FeedStatus {
            state: FeedHealth::Down,
            reason: "no feed status reported: is an ingest running?".into(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
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
        /// Set once a backfill or `since` replay is complete and live delivery begins.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
}

/// One element of an [`ServerMessage::Events`] batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    pub cursor: Cursor,
    pub event: FlowEvent,
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
    let mut out = String::from("{\"type\":\"events\",\"events\":[");
    for (i, frame) in event_frames.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        out.push_str(frame.strip_prefix(EVENT_FRAME_HEAD).unwrap_or(frame));
    }
    out.push_str("]}");
    out
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
}
