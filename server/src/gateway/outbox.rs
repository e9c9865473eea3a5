//! One client's send side: a queue bounded in bytes, and the writer task that
//! drains it to the socket, pings, and closes.
//!
//! Producers (the hub for live events, the client's session and reader for
//! the rest) push frames into an [`Outbox`]; the bytes queued and not yet
//! written are counted, and a push that would exceed the budget fails, so the
//! gateway's memory per client is bounded and a client that stops reading is
//! found out. The hub then detaches the client, which catches up at its own
//! pace: replays wait for room, and a queue that stays full for the catch-up
//! patience closes the client as a slow consumer (4008).
//!
//! The writer coalesces queued events: when more than one event frame is
//! waiting it writes them as one `{"type":"events","events":[…]}` frame of at
//! most `max_batch_bytes`. At peaks it writes to a client at most once per
//! `coalesce` interval: once a write has carried several events (events come
//! faster than they are written), the next waits out the rest of the interval
//! with whatever else arrives meanwhile, so a busy client costs one socket
//! write per interval rather than one per event. A client whose events are
//! written one at a time gets each at once. It pings every `ping_interval` and closes a client
//! that has sent nothing within `pong_timeout` of a ping (4009). On shutdown it
//! sends 1001 "going away".

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::hub::Delivery;
use super::mailbox::{self, Receiver, Sender, TrySendError};
use super::metrics::GatewayMetrics;
use crate::protocol::{
    events_frame, ErrorCode, ServerMessage, CLOSE_GOING_AWAY_REASON, CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_HEARTBEAT_TIMEOUT_REASON, CLOSE_SLOW_CONSUMER, CLOSE_SLOW_CONSUMER_REASON,
};
use crate::shutdown::Shutdown;

/// Close code for a message larger than `max_message_size`.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a policy violation (sustained rate-limit abuse).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code for a text frame that is not UTF-8 (RFC 6455 §8.1).
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a server-side failure (the event store stayed unreachable).
pub(crate) const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_GOING_AWAY: u16 = 1001;

/// One frame waiting for the socket. Two words: the queue allocates its
/// slots in blocks up front, in every connection, and events are the common case.
pub(crate) enum Out {
    Event(Arc<Delivery>),
    Text(Box<Utf8Bytes>),
    /// Close after everything queued before it.
    Close(Box<(u16, &'static str)>),
}

const _: () = assert!(std::mem::size_of::<Out>() == 16);

impl Out {
    fn bytes(&self) -> usize {
        match self {
            Out::Event(d) => d.frame.len(),
            Out::Text(t) => t.len(),
            Out::Close(..) => 0,
        }
    }
}

/// The queue would exceed its byte budget: the client is not keeping up.
#[derive(Debug)]
pub(crate) struct SlowConsumer;

struct Shared {
    queued: AtomicUsize,
    budget: usize,
    room: Notify,
    /// A close that jumps the queue (slow consumer).
    urgent: Mutex<Option<(u16, &'static str)>>,
    urgent_set: Notify,
}

/// The producer side of a client's send queue; cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: Sender<Out>,
    shared: Arc<Shared>,
    metrics: Arc<GatewayMetrics>,
}

/// The writer's end of the queue.
pub(crate) struct Inbox {
    rx: Receiver<Out>,
    shared: Arc<Shared>,
}

pub(crate) fn channel(budget: usize, metrics: Arc<GatewayMetrics>) -> (Outbox, Inbox) {
    let (tx, rx) = mailbox::mailbox(usize::MAX);
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        budget,
        room: Notify::new(),
        urgent: Mutex::new(None),
        urgent_set: Notify::new(),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
            metrics,
        },
        Inbox { rx, shared },
    )
}

impl Outbox {
    fn try_push(&self, out: Out) -> Result<(), SlowConsumer> {
        let n = out.bytes();
        let before = self.shared.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.shared.budget && before > 0 {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(SlowConsumer);
        }
        if let Err(TrySendError::Closed(_) | TrySendError::Full(_)) = self.tx.try_send(out) {
            // The writer is gone; the connection is ending anyway.
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Queues a live event, or fails if the client is too far behind.
    pub(crate) fn live(&self, d: Arc<Delivery>) -> Result<(), SlowConsumer> {
        self.try_push(Out::Event(d))
    }

    /// Queues a replayed event, waiting up to `patience` for room.
    pub(crate) async fn replay(
        &self,
        d: Arc<Delivery>,
        patience: Duration,
    ) -> Result<(), SlowConsumer> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_push(Out::Event(d.clone())).is_ok() {
                return Ok(());
            }
            if self.tx.is_closed() || tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(SlowConsumer);
            }
        }
    }

    /// Queues a control message (status, error, pong).
    pub(crate) fn message(&self, m: &ServerMessage) -> Result<(), SlowConsumer> {
        let text = serde_json::to_string(m).unwrap_or_default();
        self.try_push(Out::Text(Box::new(text.into())))
    }

    /// Queues an error frame.
    pub(crate) fn error(
        &self,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), SlowConsumer> {
        self.metrics.count_error(code);
        self.message(&ServerMessage::Error {
            code,
            message: message.into(),
        })
    }

    /// Closes after what is already queued.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.try_send(Out::Close(Box::new((code, reason))));
    }

    /// Closes the client as a slow consumer, ahead of anything queued.
    pub(crate) fn close_slow_consumer(&self) {
        self.metrics
            .slow_consumer_disconnects
            .fetch_add(1, Ordering::Relaxed);
        let mut urgent = self.shared.urgent.lock().unwrap_or_else(|p| p.into_inner());
        if urgent.is_none() {
            *urgent = Some((CLOSE_SLOW_CONSUMER, CLOSE_SLOW_CONSUMER_REASON));
            self.shared.urgent_set.notify_one();
        }
    }
}

/// How the writer paces and bounds its work.
#[derive(Clone, Debug)]
pub(crate) struct WriterConfig {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub write_timeout: Duration,
    pub max_batch_bytes: usize,
    pub coalesce: Duration,
}

/// When the client was last heard from (any frame), for heartbeats.
#[derive(Debug)]
pub(crate) struct LastHeard {
    origin: Instant,
    ms: AtomicU64,
}

impl LastHeard {
    pub(crate) fn new() -> LastHeard {
        LastHeard {
            origin: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the connection started.
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub(crate) fn touch(&self) {
        self.ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether anything was heard at or after `since_ms` (same millisecond
    /// resolution on both sides, so a prompt answer is never missed).
    fn heard_since(&self, since_ms: u64) -> bool {
        self.ms.load(Ordering::Relaxed) >= since_ms
    }
}

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Why the writer stopped.
enum Stop {
    /// Send this close frame, then stop.
    Close(u16, &'static str),
    /// Every producer is gone: finish the closing handshake politely.
    Drained,
    /// The socket failed: just drop it.
    Broken,
    /// A write did not complete in time (the client stopped reading): drop it.
    Stalled,
}

#[cfg(test)]
impl Inbox {
    /// The cursors of the events queued so far, taken off the queue.
    pub(crate) fn take_cursors(&mut self) -> Vec<crate::cursor::Cursor> {
        let mut cursors = Vec::new();
        while let Some(out) = self.rx.try_recv() {
            self.shared.queued.fetch_sub(out.bytes(), Ordering::AcqRel);
            if let Out::Event(d) = out {
                cursors.push(d.cursor);
            }
        }
        cursors
    }
}

/// Drains the queue to the socket until the connection ends.
pub(crate) async fn run_writer<S>(
    mut sink: Sink<S>,
    mut inbox: Inbox,
    config: WriterConfig,
    heard: Arc<LastHeard>,
    shutdown: Shutdown,
    metrics: Arc<GatewayMetrics>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(start + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A ping awaiting an answer: when it was sent, and the answer deadline.
    let mut awaiting: Option<(u64, tokio::time::Instant)> = None;
    let mut carried: Option<Out> = None;
    // When several events were last written in one frame (the client is
    // busy): the next write waits out the coalescing interval from then.
    let mut busy_since: Option<tokio::time::Instant> = None;
    let stop = loop {
        let pong_deadline = awaiting.map(|(_, deadline)| deadline);
        let next = match carried.take() {
            Some(out) => out,
            None => tokio::select! {
                biased;
                _ = inbox.shared.urgent_set.notified() => {
                    let urgent = *inbox.shared.urgent.lock().unwrap_or_else(|p| p.into_inner());
                    match urgent {
                        Some((code, reason)) => break Stop::Close(code, reason),
                        None => continue,
                    }
                }
                _ = shutdown.wait() => break Stop::Close(CLOSE_GOING_AWAY, CLOSE_GOING_AWAY_REASON),
                _ = sleep_until_opt(pong_deadline) => {
                    match awaiting {
                        Some((sent_ms, _)) if !heard.heard_since(sent_ms) => {
                            metrics.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
                            break Stop::Close(CLOSE_HEARTBEAT_TIMEOUT, CLOSE_HEARTBEAT_TIMEOUT_REASON);
                        }
                        _ => {
                            awaiting = None;
                            continue;
                        }
                    }
                }
                _ = ping.tick() => {
                    if awaiting.is_none() {
                        awaiting = Some((heard.now_ms(), tokio::time::Instant::now() + config.pong_timeout));
                    }
                    match write(&mut sink, Message::Ping(Default::default()), &config).await {
                        Ok(()) => continue,
                        Err(stop) => break stop,
                    }
                }
                out = inbox.rx.recv() => match out {
                    Some(out) => out,
                    None => break Stop::Drained,
                },
            },
        };
        let (message, written, events) = match next {
            Out::Close(close) => break Stop::Close(close.0, close.1),
            Out::Text(text) => {
                let text = *text;
                let n = text.len();
                (Message::Text(text), n, Vec::new())
            }
            Out::Event(first) => {
                if let Some(due) = busy_since.map(|at| at + config.coalesce) {
                    if due > tokio::time::Instant::now() {
                        tokio::time::sleep_until(due).await;
                    }
                }
                let mut batch = vec![first];
                let mut bytes = batch[0].frame.len();
                while let Some(more) = inbox.rx.try_recv() {
                    match more {
                        Out::Event(d) if bytes + d.frame.len() <= config.max_batch_bytes => {
                            bytes += d.frame.len();
                            batch.push(d);
                        }
                        other => {
                            carried = Some(other);
                            break;
                        }
                    }
                }
                let message = if batch.len() == 1 {
                    Message::Text(batch[0].frame.clone())
                } else {
                    metrics.batches_out.fetch_add(1, Ordering::Relaxed);
                    Message::text(events_frame(batch.iter().map(|d| d.frame.as_str())))
                };
                (message, bytes, batch)
            }
        };
        let result = write(&mut sink, message, &config).await;
        inbox.shared.queued.fetch_sub(written, Ordering::AcqRel);
        inbox.shared.room.notify_waiters();
        if let Err(stop) = result {
            break stop;
        }
        if !events.is_empty() {
            busy_since = (events.len() > 1).then(tokio::time::Instant::now);
            metrics
                .events_out
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            for d in &events {
                metrics.gateway_to_socket.observe(d.at.elapsed());
            }
        }
    };
    match stop {
        Stop::Close(code, reason) => {
            let _ = write(&mut sink, close_message(code, reason), &config).await;
        }
        Stop::Drained => {
            let _ = tokio::time::timeout(config.write_timeout, sink.close()).await;
        }
        Stop::Stalled => {
            metrics
                .slow_consumer_disconnects
                .fetch_add(1, Ordering::Relaxed);
        }
        Stop::Broken => {}
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Writes and flushes one message within the write timeout. A stalled write
/// means the client is not reading: a slow consumer, whose socket is dropped.
async fn write<S>(sink: &mut Sink<S>, message: Message, config: &WriterConfig) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(config.write_timeout, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Stop::Broken),
        Err(_) => Err(Stop::Stalled),
    }
}
