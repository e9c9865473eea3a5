//! A raw WebSocket client of the gateway's protocol, for tests that send
//! requests and read the frames: answers (pages, the day's totals, error
//! frames) come back from [`Client::ask`]; the live events that arrive
//! meanwhile are kept, as cursors, in [`Client::events`].

use std::time::Duration;

use flowtape_core::cursor::Cursor;
use flowtape_core::day::DayReport;
use flowtape_core::event::FlowEvent;
use flowtape_core::protocol::{ErrorCode, FrameBody, Page, ServerFrame, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a frame may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Cursors of the live (and replayed) events received, in order.
    pub events: Vec<Cursor>,
}

/// What a request was answered with.
#[derive(Debug)]
pub enum Answer {
    Page(Page),
    Day(DayReport),
    /// The code, the message, and the refused request's id if it had one.
    Error(ErrorCode, String, Option<String>),
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        Client {
            ws,
            events: Vec::new(),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The next frame that is not events (those are kept): an answer, or
    /// another message (a status, a notice).
    pub async fn next_message(&mut self) -> Result<Answer, ServerMessage> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing from the gateway for {PATIENCE:?}"));
            let text = match frame {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            };
            let body = ServerFrame::<FlowEvent>::parse(text.as_str())
                .map(ServerFrame::into_body)
                .unwrap_or_else(|e| panic!("{e}: {text}"))
                .unwrap_or_else(|e| panic!("{e}: {text}"));
            match body {
                FrameBody::Events(items) => self.events.extend(items.iter().map(|i| i.cursor)),
                FrameBody::Page(page) => return Ok(Answer::Page(page)),
                FrameBody::Message(m) => match *m {
                    ServerMessage::Error { code, message, id } => {
                        return Ok(Answer::Error(code, message, id))
                    }
                    ServerMessage::Day(report) => return Ok(Answer::Day(report)),
                    other => return Err(other),
                },
            }
        }
    }

    /// Subscribes with `filter` and waits for the backfill's end.
    pub async fn subscribe(&mut self, filter: &str) {
        let text = serde_json::json!({"op": "subscribe", "filter": filter}).to_string();
        self.send(&text).await;
        loop {
            match self.next_message().await {
                Err(ServerMessage::Status { live: true, .. }) => return,
                Err(_) => {}
                Ok(other) => panic!("subscribe answered with {other:?}"),
            }
        }
    }

    /// Sends `request` and returns its answer (other messages are skipped).
    pub async fn ask(&mut self, request: &str) -> Answer {
        self.send(request).await;
        loop {
            if let Ok(answer) = self.next_message().await {
                return answer;
            }
        }
    }

    /// The page `request` asks for, asking again when over the page rate.
    pub async fn page(&mut self, request: &str) -> Page {
        loop {
            match self.ask(request).await {
                Answer::Page(p) => return p,
                Answer::Error(ErrorCode::RateLimited, ..) => {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                other => panic!("{request}: {other:?}"),
            }
        }
    }

    /// Every page walked `before` from now (`forwards` false) or `after`
    /// the start, 37 at a time, with `filter`: the cursors in stream order,
    /// and the notices seen.
    pub async fn walk(&mut self, forwards: bool, filter: &str) -> (Vec<Cursor>, Vec<String>) {
        let mut at = if forwards {
            Cursor::ZERO
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Cursor::new(now, 0)
        };
        let (mut pages, mut notices) = (Vec::new(), Vec::new());
        for n in 0.. {
            assert!(n < 500, "the walk does not end");
            let side = if forwards { "after" } else { "before" };
            let req = serde_json::json!({
                "op": "history", side: at.to_string(), "limit": 37, "filter": filter,
            });
            let page = self.page(&req.to_string()).await;
            assert!(page.events.len() <= 37);
            pages.push(page.events.iter().map(|i| i.cursor).collect::<Vec<_>>());
            notices.extend(page.notice.clone());
            match (page.more, page.next) {
                (true, Some(next)) => {
                    assert!(if forwards { next > at } else { next < at });
                    at = next;
                }
                (false, None) => break,
                other => panic!("more and next disagree: {other:?}"),
            }
        }
        if !forwards {
            pages.reverse();
        }
        (pages.concat(), notices)
    }

    /// Reads frames for `d`, keeping the events.
    pub async fn listen(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout_at(until, self.ws.next()).await
        {
            if let Ok(Ok(FrameBody::Events(items))) =
                ServerFrame::<FlowEvent>::parse(text.as_str()).map(ServerFrame::into_body)
            {
                self.events.extend(items.iter().map(|i| i.cursor));
            }
        }
    }
}
