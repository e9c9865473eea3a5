//! A tiny in-test gateway speaking the wire protocol, for client and tail tests.
//!
//! It holds a fixed history of events (cursor `i-0` for the i-th, from 1),
//! answers each `subscribe` with a `status` carrying `retention`, then a
//! backfill, a `since` replay or the whole history, then `status live`; it
//! records every client message, can require a bearer token, can cut the
//! first connection after a number of events, and can answer as a gateway
//! whose event store is unavailable. It answers `history` requests going
//! forward (`after`) with pages of the history (up to a live edge, with a
//! scan cap and a notice if asked), or with scripted errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_core::protocol::{
    event_frame, page_frame, ClientMessage, ErrorCode, HistoryRequest, PageHead, Retention,
    ServerMessage, MAX_BACKFILL,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

/// How the gateway behaves.
#[derive(Clone, Debug, Default)]
pub struct Script {
    pub events: Vec<FlowEvent>,
    /// Reject handshakes without `Authorization: Bearer <token>` (HTTP 401).
    pub token: Option<String>,
    /// Drop the first connection (no close frame) after this many events,
    /// before the next event or the next subscribe's answer.
    pub cut_first_after: Option<usize>,
    /// Answer the first this many subscribes (over all connections) with an
    /// `unavailable` error, as a gateway whose event store is down.
    pub refuse_first: usize,
    /// Break the replay of the first subscribe served off after this many
    /// events with an `unavailable` error (the connection stays).
    pub break_first_replay_after: Option<usize>,
    /// Answer the first history requests (over all connections) with these
    /// errors, in order.
    pub history_errors: Vec<ErrorCode>,
    /// History pages reach up to this many events (the live edge); the
    /// rest come only to a `subscribe`, as if written after the pages.
    pub history_upto: Option<usize>,
    /// A page scans at most this many events (a sparse filter's page then
    /// says `more`, with `next`).
    pub page_scan_cap: Option<usize>,
    /// Every page carries this notice.
    pub page_notice: Option<String>,
}

/// A running fake gateway.
pub struct FakeGateway {
    pub url: String,
    pub received: Arc<Mutex<Vec<ClientMessage>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The JSON text of event `i` (1-based) exactly as the gateway sends it.
pub fn event_json(events: &[FlowEvent], i: usize) -> String {
    let frame = event_frame(
        &Cursor::new(i as u64, 0).to_string(),
        &events[i - 1].to_stored_json(),
    );
    let v: serde_json::Value = serde_json::from_str(&frame).unwrap_or_default();
    // Re-cut the event object out of the frame text, byte for byte.
    let start = frame.find("\"event\":").map_or(0, |p| p + 8);
    let text = &frame[start..frame.len() - 1];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .as_ref(),
        v.get("event")
    );
    text.to_string()
}

impl FakeGateway {
    pub async fn start(script: Script) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "ws://{}/ws",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let subscribes = Arc::new(AtomicUsize::new(0));
        let pages = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            let mut n = 0;
            while let Ok((stream, _)) = listener.accept().await {
                let cut = if n == 0 { script.cut_first_after } else { None };
                n += 1;
                tokio::spawn(serve(
                    stream,
                    script.clone(),
                    cut,
                    log.clone(),
                    subscribes.clone(),
                    pages.clone(),
                ));
            }
        });
        FakeGateway {
            url,
            received,
            task,
        }
    }

    pub fn messages(&self) -> Vec<ClientMessage> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

async fn serve(
    stream: TcpStream,
    script: Script,
    cut: Option<usize>,
    log: Arc<Mutex<Vec<ClientMessage>>>,
    subscribes: Arc<AtomicUsize>,
    pages: Arc<AtomicUsize>,
) {
    let unavailable = Message::text(
        serde_json::to_string(&ServerMessage::Error {
            code: ErrorCode::Unavailable,
            message: "the event store is unavailable; subscribe again shortly".into(),
            id: None,
        })
        .unwrap_or_default(),
    );
    let want = script.token.clone();
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let got = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match &want {
            Some(t) if got != Some(format!("Bearer {t}").as_str()) => {
                let mut r = ErrorResponse::new(Some("unauthorized".into()));
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                Err(r)
            }
            _ => Ok(resp),
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    let mut sent = 0;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(m) = serde_json::from_str::<ClientMessage>(text.as_str()) else {
            continue;
        };
        if let Ok(mut l) = log.lock() {
            l.push(m.clone());
        }
        match m {
            ClientMessage::Subscribe {
                filter,
                backfill,
                since,
            } => {
                let nth = subscribes.fetch_add(1, Ordering::SeqCst);
                if nth < script.refuse_first {
                    if ws.send(unavailable.clone()).await.is_err() {
                        return;
                    }
                    continue;
                }
                let break_after = script
                    .break_first_replay_after
                    .filter(|_| nth == script.refuse_first);
                let f = Filter::parse(&filter).unwrap_or_default();
                let retention = ServerMessage::Status {
                    feed: None,
                    retention: Some(Retention {
                        max_events: script.events.len() as u64,
                        max_age_s: 0,
                        oldest: (!script.events.is_empty()).then(|| Cursor::new(1, 0)),
                        max_backfill: MAX_BACKFILL,
                    }),
                    notice: None,
                    lost: None,
                    live: false,
                };
                if cut == Some(sent)
                    || ws
                        .send(Message::text(
                            serde_json::to_string(&retention).unwrap_or_default(),
                        ))
                        .await
                        .is_err()
                {
                    return;
                }
                let matching: Vec<(usize, &FlowEvent)> = script
                    .events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (i + 1, e))
                    .filter(|(_, e)| f.matches(e))
                    .collect();
                let start = match (since, backfill) {
                    (Some(c), _) => matching
                        .iter()
                        .position(|(i, _)| Cursor::new(*i as u64, 0) > c)
                        .unwrap_or(matching.len()),
                    (None, Some(n)) => matching.len().saturating_sub(n as usize),
                    (None, None) => 0,
                };
                for (n, (i, e)) in matching[start..].iter().enumerate() {
                    if break_after == Some(n) {
                        break;
                    }
                    if cut == Some(sent) {
                        // Drop the TCP connection without a close frame.
                        return;
                    }
                    let frame =
                        event_frame(&Cursor::new(*i as u64, 0).to_string(), &e.to_stored_json());
                    if ws.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                if break_after.is_some_and(|k| k < matching.len() - start) {
                    if ws.send(unavailable.clone()).await.is_err() {
                        return;
                    }
                    continue;
                }
                let live = ServerMessage::Status {
                    feed: None,
                    retention: None,
                    notice: None,
                    lost: None,
                    live: true,
                };
                let _ = ws
                    .send(Message::text(
                        serde_json::to_string(&live).unwrap_or_default(),
                    ))
                    .await;
            }
            ClientMessage::Ping => {
                let _ = ws
                    .send(Message::text(
                        serde_json::to_string(&ServerMessage::Pong).unwrap_or_default(),
                    ))
                    .await;
            }
            ClientMessage::History(req) => {
                let nth = pages.fetch_add(1, Ordering::SeqCst);
                let answer = match script.history_errors.get(nth) {
                    Some(code) => serde_json::to_string(&ServerMessage::Error {
                        code: *code,
                        message: format!("scripted {code:?}"),
                        id: None,
                    })
                    .unwrap_or_default(),
                    None => page(&script, &req),
                };
                if ws.send(Message::text(answer)).await.is_err() {
                    return;
                }
            }
            ClientMessage::Filter { .. } => {}
            // A gateway older than the `day` op.
            ClientMessage::Day { .. } => {
                let refused = ServerMessage::Error {
                    code: ErrorCode::UnknownOp,
                    message: "unknown op \"day\"; the ops are subscribe, filter and ping".into(),
                    id: None,
                };
                let _ = ws
                    .send(Message::text(
                        serde_json::to_string(&refused).unwrap_or_default(),
                    ))
                    .await;
            }
        }
    }
}

/// The `page` frame answering `req` (only `after` pages; `before` gets an
/// empty one).
fn page(script: &Script, req: &HistoryRequest) -> String {
    let filter = Filter::parse(req.filter.as_deref().unwrap_or("")).unwrap_or_default();
    let limit = req.limit.unwrap_or(200) as usize;
    let edge = script
        .history_upto
        .unwrap_or(script.events.len())
        .min(script.events.len());
    let after = req.after.unwrap_or(Cursor::new(u64::MAX, 0));
    let first = (1..=edge)
        .find(|i| Cursor::new(*i as u64, 0) > after)
        .unwrap_or(edge + 1);
    let scan_cap = script.page_scan_cap.unwrap_or(usize::MAX);
    let mut frames = Vec::new();
    let mut last = None;
    for (scanned, i) in (first..=edge).enumerate() {
        if frames.len() >= limit || scanned >= scan_cap {
            break;
        }
        last = Some(i);
        let e = &script.events[i - 1];
        if filter.matches(e) {
            frames.push(event_frame(
                &Cursor::new(i as u64, 0).to_string(),
                &e.to_stored_json(),
            ));
        }
    }
    let more = last.is_some_and(|l| l < edge);
    let head = PageHead {
        id: req.id.as_deref(),
        more,
        next: last.filter(|_| more).map(|l| Cursor::new(l as u64, 0)),
        notice: script.page_notice.as_deref(),
    };
    page_frame(&head, frames.iter().map(String::as_str))
}
