//! A connection that reads the flow's history by `after` pages, for `tail`
//! windows: one request in flight at a time, with the subscription-less
//! connection's own filter on every request, so no live stream competes with
//! the pages.
//!
//! [`Pager::after`] returns the page after a position or a typed failure.
//! Over the gateway's page rate (`rate_limited`) it slows down and asks
//! again, as often as it takes (a [`Pacer`] spaces requests out, so it soon
//! asks no faster than the gateway allows); `history_unavailable` is asked
//! again with backoff, at most `max_failures` times in a row; a dropped link
//! is reconnected (servers in order, with backoff) and the page asked for
//! again, giving up after `max_failures` failed connects in a row (at once
//! on a rejected token, or if no server answers the first pass). Any other
//! refusal is the request's fault: a [`TailError::Server`].

use std::time::Duration;

use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::{
    ClientMessage, ErrorCode, FrameBody, HistoryRequest, Page, ServerFrame, ServerMessage,
    MAX_HISTORY_PAGE,
};
use flowtape_server::wsclient::{Connector, Socket};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::TailError;
use crate::client::{self, Backoff, ClientOptions, ConnectError};

/// A page with each event's JSON text as the gateway sent it.
pub(super) type RawPage = Page<Box<RawValue>>;

/// Silence while waiting for a page after which the link is taken for dead.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(45);

/// Spaces page requests out after the gateway refused one for the rate:
/// each refusal doubles the gap between requests, each page served shrinks
/// it by an eighth, so the requests settle near the rate the gateway allows.
#[derive(Debug, Default)]
pub(super) struct Pacer {
    gap: Duration,
    last: Option<Instant>,
}

impl Pacer {
    const MIN_GAP: Duration = Duration::from_millis(25);
    const MAX_GAP: Duration = Duration::from_secs(2);

    /// Waits until the next request may go.
    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.gap).await;
        }
        self.last = Some(Instant::now());
    }

    fn refused(&mut self) {
        self.gap = (self.gap * 2).clamp(Self::MIN_GAP, Self::MAX_GAP);
    }

    fn served(&mut self) {
        self.gap -= self.gap / 8;
    }

    /// The gap between requests now.
    #[cfg(test)]
    fn gap(&self) -> Duration {
        self.gap
    }
}

/// What the gateway answered a page request with.
enum Answer {
    Page(RawPage),
    Refused(ErrorCode, String),
}

/// Reads history pages; see the module docs.
pub(super) struct Pager {
    connectors: Vec<Connector>,
    /// The server to try next, when not connected.
    next_server: usize,
    socket: Option<Socket>,
    ever_connected: bool,
    filter: String,
    backoff: Backoff,
    max_failures: u32,
    pacer: Pacer,
}

impl Pager {
    /// A pager for `opts`' servers and filter (canonical); not yet connected.
    pub(super) fn new(opts: &ClientOptions) -> Result<Pager, TailError> {
        let connectors =
            client::connectors(opts).map_err(|e| TailError::Connection(e.to_string()))?;
        if connectors.is_empty() {
            return Err(TailError::Connection("no server to connect to".into()));
        }
        Ok(Pager {
            connectors,
            next_server: 0,
            socket: None,
            ever_connected: false,
            filter: opts.filter.clone(),
            backoff: opts.backoff,
            max_failures: opts.max_failures.unwrap_or(u32::MAX).max(1),
            pacer: Pacer::default(),
        })
    }

    /// The page of matching events just after `after`.
    pub(super) async fn after(&mut self, after: Cursor) -> Result<RawPage, TailError> {
        let request = ClientMessage::History(HistoryRequest {
            after: Some(after),
            limit: Some(MAX_HISTORY_PAGE),
            filter: Some(self.filter.clone()),
            ..HistoryRequest::default()
        });
        let mut unavailable = 0;
        loop {
            self.connect().await?;
            self.pacer.wait().await;
            let Some(ws) = self.socket.as_mut() else {
                continue;
            };
            match ask(ws, &request).await {
                Ok(Answer::Page(page)) => {
                    self.pacer.served();
                    return Ok(page);
                }
                Ok(Answer::Refused(ErrorCode::RateLimited, _)) => self.pacer.refused(),
                Ok(Answer::Refused(ErrorCode::HistoryUnavailable, message)) => {
                    unavailable += 1;
                    if unavailable >= self.max_failures {
                        return Err(TailError::Server(format!(
                            "{message} (history_unavailable {unavailable} times in a row; giving up)"
                        )));
                    }
                    eprintln!("flowtape tail: server: {message}; asking again");
                    tokio::time::sleep(self.backoff.delay(unavailable)).await;
                }
                Ok(Answer::Refused(code, message)) => {
                    return Err(TailError::Server(format!("{message} ({code:?})")));
                }
                Err(why) => {
                    let server = self.connectors[self.next_server].url();
                    eprintln!("flowtape tail: {server}: {why}; retrying");
                    self.socket = None;
                }
            }
        }
    }

    /// Connects if not connected: servers in order from the last good one,
    /// with backoff between passes.
    async fn connect(&mut self) -> Result<(), TailError> {
        let mut failures: u32 = 0;
        while self.socket.is_none() {
            let connector = &self.connectors[self.next_server];
            match client::connect(connector).await {
                Ok(ws) => {
                    self.socket = Some(ws);
                    self.ever_connected = true;
                }
                Err(e) => {
                    failures += 1;
                    let servers = self.connectors.len() as u32;
                    let give_up = matches!(e, ConnectError::Unauthorized { .. })
                        || (!self.ever_connected && failures >= servers)
                        || failures >= self.max_failures;
                    if give_up {
                        return Err(TailError::Connection(e.to_string()));
                    }
                    eprintln!("flowtape tail: {e}; retrying");
                    self.next_server = (self.next_server + 1) % self.connectors.len();
                    if self.next_server == 0 {
                        tokio::time::sleep(self.backoff.delay(failures.div_ceil(servers))).await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sends one request and reads until its answer: a page or an error frame
/// (the connection has no subscription, so nothing else answers). `Err`:
/// the link dropped.
async fn ask(ws: &mut Socket, request: &ClientMessage) -> Result<Answer, String> {
    let text = serde_json::to_string(request).map_err(|e| e.to_string())?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .map_err(|_| format!("no answer for {}s", ANSWER_TIMEOUT.as_secs()))?;
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => {
                return Err(f.map_or_else(
                    || "closed by the server".to_string(),
                    |f| format!("closed by the server: {} {}", u16::from(f.code), f.reason),
                ))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection closed".into()),
        };
        match ServerFrame::<Box<RawValue>>::parse(text.as_str()).map(ServerFrame::into_body) {
            Ok(Ok(FrameBody::Page(page))) => return Ok(Answer::Page(page)),
            Ok(Ok(FrameBody::Message(m))) => {
                if let ServerMessage::Error { code, message, .. } = *m {
                    return Ok(Answer::Refused(code, message));
                }
            }
            Ok(Ok(FrameBody::Events(_))) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "unusable frame"),
            Err(e) => tracing::warn!(error = %e, "unreadable frame"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_slows_down_on_refusals_and_speeds_up_on_pages() {
        let mut p = Pacer::default();
        assert_eq!(p.gap(), Duration::ZERO);
        p.refused();
        assert_eq!(p.gap(), Pacer::MIN_GAP);
        p.refused();
        p.refused();
        assert_eq!(p.gap(), Pacer::MIN_GAP * 4);
        p.served();
        assert_eq!(p.gap(), Pacer::MIN_GAP * 4 * 7 / 8);
        for _ in 0..20 {
            p.refused();
        }
        assert_eq!(p.gap(), Pacer::MAX_GAP);
    }
}
