//! One client's send side: a queue bounded in bytes, and the writer task that
//! drains it to the socket, pings, and closes.
//!
//! Producers (the hub for live events, the client's session and reader for
//! the rest) push frames into an [`Outbox`]; the bytes queued and not yet
//! written are counted, and a push that would exceed the budget fails, so the
//! gateway's memory per client is bounded and a client that stops reading is
//! found out. The hub then detaches the client, which catches up at its own
//! pace: replays wait for room, and a queue that stays full for the catch-up
//! patience closes the client as a slow consumer (4008). The same bytes
//! count against the gateway's memory budget for all clients
//! ([`super::budget`]), which may close the client (4008, dropping its
//! queue) to make room for another's.
//!
//! Events go out coalesced: the events at the front of the queue are written
//! as one frame, an `event` frame for one and an `events` frame for several
//! (at most `max_batch_bytes`), each event's text framed once for all
//! clients. The hub queues a batch of live events for every matching client
//! first and then flushes each client once ([`Outbox::flush`]): on a plain
//! TCP connection that nobody is writing to, it writes the client's events
//! itself with one non-blocking `send` ([`super::wire`]); otherwise it wakes
//! the writer task. So at peaks each client gets one write per hub batch,
//! and a quiet client gets each event at once without a task switch.
//!
//! The writer task writes everything else (control messages, replays, what
//! the socket did not take at once) in queue order. At peaks it writes to a
//! client at most once per `coalesce` interval: once one of its writes has
//! carried several events, the next waits out the rest of the interval with
//! whatever else arrives meanwhile. It pings every `ping_interval` and closes
//! a client that has sent nothing within `pong_timeout` of a ping (4009). On
//! shutdown it sends 1001 "going away".

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::budget::{ClientId, Evictable, MemoryBudget};
use super::delivery::Delivery;
use super::mailbox::{self, Queue, Receiver, Sender, TrySendError};
use super::metrics::GatewayMetrics;
use super::wire::{FrameBuf, Opcode, Wire, WriteError, WriteSide};
use crate::shutdown::Shutdown;
use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::{
    write_events_frame, ErrorCode, ServerMessage, CLOSE_GOING_AWAY_REASON, CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_HEARTBEAT_TIMEOUT_REASON, CLOSE_MEMORY_BUDGET_REASON, CLOSE_SLOW_CONSUMER,
    CLOSE_SLOW_CONSUMER_REASON,
};

/// Close code for a message larger than `max_message_size`.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a policy violation (sustained rate-limit abuse).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code for a text frame that is not UTF-8 (RFC 6455 §8.1).
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a server-side failure (the event store stayed unreachable).
pub(crate) const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;

/// One frame waiting for the socket. Two words: the queue allocates its
/// slots in blocks up front, in every connection, and events are the common case.
pub(crate) enum Out {
    Event(Arc<Delivery>),
    Text(Box<Utf8Bytes>),
    /// The answer to a client's ping, with its payload.
    Pong(Box<Bytes>),
    /// Close after everything queued before it.
    Close(Box<(u16, &'static str)>),
}

const _: () = assert!(std::mem::size_of::<Out>() == 16);

impl Out {
    fn bytes(&self) -> usize {
        match self {
            Out::Event(d) => d.frame.len(),
            Out::Text(t) => t.len(),
            Out::Pong(p) => p.len(),
            Out::Close(..) => 0,
        }
    }
}

/// What [`Outbox::queue_live`] queued.
pub(crate) struct Queued {
    /// The newest event queued, if any.
    pub last: Option<Cursor>,
    /// This was the first since the last [`Outbox::flush`]: the caller must
    /// flush the client once it has queued the batch.
    pub flush: bool,
}

/// The queue would exceed its byte budget: the client is not keeping up.
#[derive(Debug)]
pub(crate) struct SlowConsumer;

struct Shared {
    queued: AtomicUsize,
    budget: usize,
    /// The gateway's budget for all clients, which counts these bytes too.
    memory: Arc<MemoryBudget>,
    room: Notify,
    /// A close that jumps the queue (slow consumer, memory budget).
    urgent: Mutex<Option<(u16, &'static str)>>,
    urgent_set: Notify,
    /// `urgent` is set: nothing more is queued, and nothing taken off the
    /// queue from now on is written.
    closing: AtomicBool,
    coalesce: Duration,
    /// After a write that carried several events (the client is busy), the
    /// next write waits until then, whoever makes it.
    busy_until: Mutex<Option<tokio::time::Instant>>,
}

impl Shared {
    /// A batch of `events` was written: a busy client's next write waits
    /// out the coalescing interval.
    fn wrote(&self, events: usize) {
        let until = (events > 1 && !self.coalesce.is_zero())
            .then(|| tokio::time::Instant::now() + self.coalesce);
        *self.busy_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// When the next write of events may go out, if that is later than now.
    fn next_write(&self) -> Option<tokio::time::Instant> {
        let until = *self.busy_until.lock().unwrap_or_else(|p| p.into_inner());
        until.filter(|&at| at > tokio::time::Instant::now())
    }

    /// Counts `n` more bytes queued, unless that exceeds the budget.
    fn reserve(&self, n: usize) -> Result<(), SlowConsumer> {
        match self.reserve_front(std::iter::once(n)) {
            (1, _) => Ok(()),
            _ => Err(SlowConsumer),
        }
    }

    /// Counts the longest prefix of items of these sizes that fits the
    /// budget (at least one into an empty queue) as queued, here and in the
    /// gateway's memory budget; how many and their bytes. Nothing once the
    /// client is closing.
    fn reserve_front(&self, sizes: impl Iterator<Item = usize> + Clone) -> (usize, usize) {
        if self.is_closing() {
            return (0, 0);
        }
        let (n, bytes) = self.reserve_own(sizes);
        if bytes == 0 {
            return (n, bytes);
        }
        if !self.memory.reserve(bytes) {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return (0, 0);
        }
        // Making room in the memory budget may have closed this very client.
        if self.is_closing() {
            self.release(bytes);
            return (0, 0);
        }
        (n, bytes)
    }

    /// [`Shared::reserve_front`] within this client's own budget.
    fn reserve_own(&self, sizes: impl Iterator<Item = usize> + Clone) -> (usize, usize) {
        let mut before = self.queued.load(Ordering::Acquire);
        loop {
            let (mut n, mut bytes) = (0, 0);
            for size in sizes.clone() {
                if before + bytes + size > self.budget && before + bytes > 0 {
                    break;
                }
                n += 1;
                bytes += size;
            }
            match self.queued.compare_exchange_weak(
                before,
                before + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return (n, bytes),
                Err(now) => before = now,
            }
        }
    }

    /// `n` queued bytes have left the queue.
    fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        self.memory.release(n);
        self.room.notify_waiters();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The close that jumps the queue, once one is set.
    fn urgent_close(&self) -> Option<(u16, &'static str)> {
        if !self.is_closing() {
            return None;
        }
        *self.urgent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch of events (`bytes` of the queue) was written, by the hub or
    /// the writer: frees its room, starts the coalescing interval if it was
    /// several, and counts it.
    fn sent(&self, metrics: &GatewayMetrics, batch: &[Arc<Delivery>], bytes: usize) {
        self.release(bytes);
        self.wrote(batch.len());
        if batch.len() > 1 {
            metrics.batches_out.fetch_add(1, Ordering::Relaxed);
        }
        metrics
            .events_out
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        metrics
            .gateway_to_socket
            .observe_all(batch.iter().map(|d| now.saturating_duration_since(d.at)));
    }
}

impl Drop for Shared {
    /// What is left in the queue is dropped with it.
    fn drop(&mut self) {
        self.memory.release(*self.queued.get_mut());
    }
}

/// The producer side of a client's send queue; cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox {
    inner: Arc<OutboxInner>,
}

struct OutboxInner {
    tx: Sender<Out>,
    shared: Arc<Shared>,
    metrics: Arc<GatewayMetrics>,
    /// Plain TCP: the hub may write queued events itself.
    wire: Option<Arc<Wire>>,
    max_batch_bytes: usize,
    /// The hub has queued events since it last flushed this client.
    dirty: AtomicBool,
    /// Its place among the clients the memory budget may close.
    budget_id: ClientId,
}

impl OutboxInner {
    /// Closes the client ahead of anything queued, and drops what is
    /// queued: none of it is written (the client resumes by its cursor,
    /// from the last event it got). False if it was already closing.
    fn close_urgently(&self, code: u16, reason: &'static str) -> bool {
        let shared = &*self.shared;
        {
            let mut urgent = shared.urgent.lock().unwrap_or_else(|p| p.into_inner());
            if urgent.is_some() {
                return false;
            }
            *urgent = Some((code, reason));
            shared.closing.store(true, Ordering::Release);
        }
        shared.urgent_set.notify_one();
        // Whoever takes anything off the queue after this sees `closing`
        // and writes none of it, so the client gets a prefix of its stream.
        let mut dropped = Vec::new();
        let mut bytes = 0;
        self.tx.pop_front_while(
            |_| true,
            |out| {
                bytes += out.bytes();
                dropped.push(out);
            },
        );
        drop(dropped);
        shared.release(bytes);
        true
    }
}

impl Evictable for OutboxInner {
    fn evictable_bytes(&self) -> usize {
        // A client whose writer is gone is ending anyway.
        if self.shared.is_closing() || self.tx.is_closed() {
            0
        } else {
            self.shared.queued.load(Ordering::Acquire)
        }
    }

    fn evict(&self) -> bool {
        self.close_urgently(CLOSE_SLOW_CONSUMER, CLOSE_MEMORY_BUDGET_REASON)
    }
}

impl Drop for OutboxInner {
    fn drop(&mut self) {
        self.shared.memory.deregister(&self.budget_id);
    }
}

/// The writer's end of the queue.
pub(crate) struct Inbox {
    rx: Receiver<Out>,
    shared: Arc<Shared>,
}

impl Drop for Inbox {
    /// The writer is done: what it leaves in the queue will never be
    /// written, and no longer counts.
    fn drop(&mut self) {
        while let Some(out) = self.rx.try_recv() {
            self.shared.release(out.bytes());
        }
    }
}

/// A client's send queue: `budget` bytes at most (and its share of the
/// gateway's `memory`), events written as `config` says, and the wire the
/// hub may write to itself.
pub(crate) fn channel(
    budget: usize,
    memory: &Arc<MemoryBudget>,
    config: &WriterConfig,
    wire: Option<Arc<Wire>>,
    metrics: Arc<GatewayMetrics>,
) -> (Outbox, Inbox) {
    let (tx, rx) = mailbox::mailbox(usize::MAX);
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        budget,
        memory: memory.clone(),
        room: Notify::new(),
        urgent: Mutex::new(None),
        urgent_set: Notify::new(),
        closing: AtomicBool::new(false),
        coalesce: config.coalesce,
        busy_until: Mutex::new(None),
    });
    let inner = Arc::new_cyclic(|me: &std::sync::Weak<OutboxInner>| OutboxInner {
        tx,
        shared: shared.clone(),
        metrics,
        wire,
        max_batch_bytes: config.max_batch_bytes,
        dirty: AtomicBool::new(false),
        budget_id: memory.register(me.clone()),
    });
    (Outbox { inner }, Inbox { rx, shared })
}

/// The hub's scratch space for writing clients' events itself.
#[derive(Default)]
pub(crate) struct Flusher {
    frame: FrameBuf,
    batch: Vec<Arc<Delivery>>,
}

/// Takes the events at the front of `queue` into `batch` (which holds
/// `bytes` of frames already), while they fit in `max_bytes`; at least one
/// into an empty batch. The bytes the batch then holds.
fn take_events(
    queue: &impl Queue<Out>,
    max_bytes: usize,
    batch: &mut Vec<Arc<Delivery>>,
    bytes: usize,
) -> usize {
    let mut empty = batch.is_empty();
    let mut total = bytes;
    let fits = |out: &Out| match out {
        Out::Event(d) if empty || total + d.frame.len() <= max_bytes => {
            empty = false;
            total += d.frame.len();
            true
        }
        _ => false,
    };
    queue.pop_front_while(fits, |out| {
        if let Out::Event(d) = out {
            batch.push(d);
        }
    });
    total
}

/// One frame for `batch`: an `event` frame for one event, an `events`
/// frame for several.
fn encode_events<'f>(frame: &'f mut FrameBuf, batch: &[Arc<Delivery>]) -> &'f [u8] {
    frame.build(Opcode::Text, |payload| match batch {
        [one] => payload.extend_from_slice(one.frame.as_bytes()),
        many => write_events_frame(payload, many.iter().map(|d| d.frame.as_str())),
    })
}

impl Outbox {
    fn try_push(&self, out: Out) -> Result<(), SlowConsumer> {
        let n = out.bytes();
        self.inner.shared.reserve(n)?;
        if let Err(TrySendError::Closed(_) | TrySendError::Full(_)) = self.inner.tx.try_send(out) {
            // The writer is gone; the connection is ending anyway.
            self.inner.shared.release(n);
        }
        Ok(())
    }

    /// Queues the live events due to this client (oldest first) without
    /// waking the writer, as many as its budget allows: what is left in
    /// `due` did not fit, and the client is too far behind.
    pub(crate) fn queue_live(&self, due: &mut Vec<Arc<Delivery>>) -> Queued {
        let inner = &*self.inner;
        let (n, bytes) = inner
            .shared
            .reserve_front(due.iter().map(|d| d.frame.len()));
        if n == 0 {
            return Queued {
                last: None,
                flush: false,
            };
        }
        let last = Some(due[n - 1].cursor);
        if !inner.tx.push_quiet(due.drain(..n).map(Out::Event)) {
            // The writer is gone; the connection is ending anyway.
            inner.shared.release(bytes);
            due.clear();
            return Queued { last, flush: false };
        }
        Queued {
            last,
            flush: !inner.dirty.swap(true, Ordering::AcqRel),
        }
    }

    /// Sends what the hub has queued: writes it now if this is a plain TCP
    /// connection that nobody is writing to and that is not waiting out its
    /// coalescing interval, and otherwise (or for what is left) wakes the
    /// writer.
    pub(crate) fn flush(&self, f: &mut Flusher) {
        let inner = &*self.inner;
        inner.dirty.store(false, Ordering::Release);
        let idle = match &inner.wire {
            Some(wire) if inner.shared.next_write().is_none() => {
                wire.try_idle().map(|state| (wire, state))
            }
            _ => None,
        };
        if let Some((wire, mut state)) = idle {
            let bytes = take_events(&inner.tx, inner.max_batch_bytes, &mut f.batch, 0);
            if inner.shared.is_closing() {
                // Closed meanwhile: the writer sends the close instead.
                drop(state);
                f.batch.clear();
                inner.shared.release(bytes);
            } else if !f.batch.is_empty() {
                let done = wire.write_now(&mut state, encode_events(&mut f.frame, &f.batch));
                drop(state);
                inner.shared.sent(&inner.metrics, &f.batch, bytes);
                f.batch.clear();
                if matches!(done, Ok(true)) && inner.tx.is_empty() {
                    return;
                }
            }
        }
        inner.tx.wake();
    }

    /// Queues a replayed event, waiting up to `patience` for room.
    pub(crate) async fn replay(
        &self,
        d: Arc<Delivery>,
        patience: Duration,
    ) -> Result<(), SlowConsumer> {
        self.push_patiently(|| Out::Event(d.clone()), patience)
            .await
    }

    /// Queues a frame's text (a history page), waiting up to `patience`
    /// for room.
    pub(crate) async fn text_patiently(
        &self,
        text: String,
        patience: Duration,
    ) -> Result<(), SlowConsumer> {
        let text: Utf8Bytes = text.into();
        self.push_patiently(|| Out::Text(Box::new(text.clone())), patience)
            .await
    }

    async fn push_patiently(
        &self,
        out: impl Fn() -> Out,
        patience: Duration,
    ) -> Result<(), SlowConsumer> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let room = self.inner.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_push(out()).is_ok() {
                return Ok(());
            }
            if self.inner.tx.is_closed()
                || self.inner.shared.is_closing()
                || tokio::time::timeout_at(deadline, room).await.is_err()
            {
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
        self.refuse(None, code, message)
    }

    /// Queues an error frame refusing the request `id`, when it had one.
    pub(crate) fn refuse(
        &self,
        id: Option<&str>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), SlowConsumer> {
        self.inner.metrics.count_error(code);
        self.message(&ServerMessage::Error {
            code,
            message: message.into(),
            id: id.map(str::to_string),
        })
    }

    /// Queues the answer to a client's WebSocket ping.
    pub(crate) fn pong(&self, payload: Bytes) -> Result<(), SlowConsumer> {
        self.try_push(Out::Pong(Box::new(payload)))
    }

    /// Closes after what is already queued.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.inner.tx.try_send(Out::Close(Box::new((code, reason))));
    }

    /// Closes the client as a slow consumer, ahead of anything queued
    /// (which is dropped); counted once, and not at all if it was already
    /// closing (for the memory budget).
    pub(crate) fn close_slow_consumer(&self) {
        if self
            .inner
            .close_urgently(CLOSE_SLOW_CONSUMER, CLOSE_SLOW_CONSUMER_REASON)
        {
            self.inner
                .metrics
                .slow_consumer_disconnects
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the client is being closed ahead of its queue (slow
    /// consumer, memory budget): nothing more can be queued for it.
    pub(crate) fn is_closing(&self) -> bool {
        self.inner.shared.is_closing()
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

impl From<WriteError> for Stop {
    fn from(e: WriteError) -> Stop {
        match e {
            WriteError::Broken => Stop::Broken,
            WriteError::Stalled => Stop::Stalled,
        }
    }
}

#[cfg(test)]
impl Inbox {
    /// Everything queued so far, taken off the queue.
    fn take_all(&mut self) -> Vec<Out> {
        let mut taken = Vec::new();
        while let Some(out) = self.rx.try_recv() {
            self.shared.release(out.bytes());
            taken.push(out);
        }
        taken
    }

    /// The cursors of the events queued so far, taken off the queue.
    pub(crate) fn take_cursors(&mut self) -> Vec<flowtape_core::cursor::Cursor> {
        let cursors = self.take_all().into_iter();
        cursors
            .filter_map(|out| match out {
                Out::Event(d) => Some(d.cursor),
                _ => None,
            })
            .collect()
    }

    /// The text frames (statuses, errors) queued so far, taken off the queue.
    pub(crate) fn take_texts(&mut self) -> Vec<String> {
        let texts = self.take_all().into_iter();
        texts
            .filter_map(|out| match out {
                Out::Text(t) => Some(t.as_str().to_string()),
                _ => None,
            })
            .collect()
    }
}

/// The writer task's state between wake-ups.
struct Writer {
    side: WriteSide,
    inbox: Inbox,
    config: WriterConfig,
    metrics: Arc<GatewayMetrics>,
}

impl Writer {
    /// Writes what is queued, in order, until the queue is empty; first a
    /// ping if `ping`. The hub writes nothing meanwhile.
    async fn drain(&mut self, ping: bool) -> Result<(), Stop> {
        self.side.set_active(true);
        let result = self.drain_active(ping).await;
        self.side.set_active(false);
        result
    }

    /// Writes one control or text frame taken off the queue (`n` bytes of it).
    async fn write_one(
        &mut self,
        frame: &mut FrameBuf,
        opcode: Opcode,
        payload: &[u8],
        n: usize,
    ) -> Result<(), Stop> {
        let bytes = frame.build(opcode, |b| b.extend_from_slice(payload));
        self.side.write(bytes, self.config.write_timeout).await?;
        self.inbox.shared.release(n);
        Ok(())
    }

    async fn drain_active(&mut self, ping: bool) -> Result<(), Stop> {
        let timeout = self.config.write_timeout;
        // What the hub could not write at once goes first.
        self.side.flush(timeout).await?;
        let mut frame = FrameBuf::default();
        if ping {
            self.side
                .write(frame.build(Opcode::Ping, |_| {}), timeout)
                .await?;
        }
        let mut batch = Vec::new();
        while let Some(next) = self.inbox.rx.try_recv() {
            let n = next.bytes();
            // Closed ahead of the queue: what is taken off it now is dropped.
            if let Some((code, reason)) = self.inbox.shared.urgent_close() {
                self.inbox.shared.release(n);
                return Err(Stop::Close(code, reason));
            }
            match next {
                Out::Close(close) => return Err(Stop::Close(close.0, close.1)),
                Out::Text(text) => {
                    self.write_one(&mut frame, Opcode::Text, text.as_bytes(), n)
                        .await?
                }
                Out::Pong(payload) => {
                    self.write_one(&mut frame, Opcode::Pong, &payload, n)
                        .await?
                }
                Out::Event(first) => {
                    if let Some(due) = self.inbox.shared.next_write() {
                        tokio::time::sleep_until(due).await;
                    }
                    batch.push(first);
                    let bytes =
                        take_events(&self.inbox.rx, self.config.max_batch_bytes, &mut batch, n);
                    if let Some((code, reason)) = self.inbox.shared.urgent_close() {
                        self.inbox.shared.release(bytes);
                        return Err(Stop::Close(code, reason));
                    }
                    self.side
                        .write(encode_events(&mut frame, &batch), timeout)
                        .await?;
                    self.inbox.shared.sent(&self.metrics, &batch, bytes);
                    batch.clear();
                }
            }
        }
        Ok(())
    }
}

/// Drains the queue to the socket until the connection ends.
pub(crate) async fn run_writer(
    side: WriteSide,
    inbox: Inbox,
    config: WriterConfig,
    heard: Arc<LastHeard>,
    shutdown: Shutdown,
    metrics: Arc<GatewayMetrics>,
) {
    let start = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(start + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A ping awaiting an answer: when it was sent, and the answer deadline.
    let mut awaiting: Option<(u64, tokio::time::Instant)> = None;
    let mut w = Writer {
        side,
        inbox,
        config,
        metrics,
    };
    let stop = loop {
        let pong_deadline = awaiting.map(|(_, deadline)| deadline);
        let ping_now = tokio::select! {
            biased;
            _ = w.inbox.shared.urgent_set.notified() => {
                let urgent = *w.inbox.shared.urgent.lock().unwrap_or_else(|p| p.into_inner());
                match urgent {
                    Some((code, reason)) => break Stop::Close(code, reason),
                    None => continue,
                }
            }
            _ = shutdown.wait() => break Stop::Close(CLOSE_GOING_AWAY, CLOSE_GOING_AWAY_REASON),
            _ = sleep_until_opt(pong_deadline) => {
                match awaiting {
                    Some((sent_ms, _)) if !heard.heard_since(sent_ms) => {
                        w.metrics.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
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
                    awaiting = Some((heard.now_ms(), tokio::time::Instant::now() + w.config.pong_timeout));
                }
                true
            }
            more = w.inbox.rx.wait() => {
                if !more {
                    break Stop::Drained;
                }
                false
            }
        };
        // Boxed: its state (write futures and their timers) exists only while
        // draining, so an idle connection's task stays small.
        if let Err(stop) = Box::pin(w.drain(ping_now)).await {
            break stop;
        }
    };
    let timeout = w.config.write_timeout;
    let mut frame = FrameBuf::default();
    let last = match stop {
        Stop::Close(code, reason) => Some(frame.close(code, reason)),
        // A close frame with no status: the conversation simply ended.
        Stop::Drained => Some(frame.build(Opcode::Close, |_| {})),
        Stop::Stalled => {
            // A client already closed ahead of its queue was counted then.
            if !w.inbox.shared.is_closing() {
                w.metrics
                    .slow_consumer_disconnects
                    .fetch_add(1, Ordering::Relaxed);
            }
            None
        }
        Stop::Broken => None,
    };
    if let Some(last) = last {
        w.side.set_active(true);
        let _ = w.side.write(last, timeout).await;
    }
    w.side.finish(timeout).await;
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bus::FlowEntry;
    use flowtape_core::cursor::Cursor;
    use flowtape_core::protocol::{FrameBody, ServerFrame};
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    use super::super::wire::IntoWire;

    /// No pings and no coalescing within a test.
    pub(crate) fn test_config() -> WriterConfig {
        WriterConfig {
            ping_interval: Duration::from_secs(3600),
            pong_timeout: Duration::from_secs(3600),
            write_timeout: Duration::from_secs(10),
            max_batch_bytes: 1 << 16,
            coalesce: Duration::ZERO,
        }
    }

    /// A memory budget that never closes anyone.
    pub(crate) fn unlimited(metrics: &Arc<GatewayMetrics>) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget::new(usize::MAX, metrics.clone()))
    }

    fn delivery(ms: u64, pad: usize) -> Arc<Delivery> {
        let event = flowtape_core::event::FlowEvent {
            // A larger event: more exchanges.
            exchanges: vec![300; pad],
            ..flowtape_core::event::sample_event()
        };
        let entry = FlowEntry {
            id: Cursor::new(ms, 0),
            json: event.to_stored_json().into(),
        };
        Arc::new(Delivery::from_entry(&entry).unwrap_or_else(|e| panic!("{e}")))
    }

    /// A gateway-side write side and a tungstenite client over loopback.
    async fn connected() -> (WriteSide, WebSocketStream<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (socket, _) = accepted.unwrap_or_else(|e| panic!("{e}"));
        let client = client.unwrap_or_else(|e| panic!("{e}"));
        let (_read, side) = socket.into_wire();
        let ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (side, ws)
    }

    /// The next frame's cursors, or its text if it is not events.
    async fn next_frame(
        ws: &mut WebSocketStream<tokio::net::TcpStream>,
    ) -> Result<Vec<u64>, String> {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            panic!("expected a text frame, got {next:?}");
        };
        match ServerFrame::<serde_json::Value>::parse(text.as_str()).map(ServerFrame::into_body) {
            Ok(Ok(FrameBody::Events(items))) => Ok(items.iter().map(|i| i.cursor.ms).collect()),
            _ => Err(text.to_string()),
        }
    }

    #[tokio::test]
    async fn the_hub_writes_a_batch_as_one_frame_without_the_writer() {
        let (side, mut ws) = connected().await;
        let metrics = Arc::new(GatewayMetrics::default());
        // No writer task runs: only the hub's own write can deliver.
        let (out, _inbox) = channel(
            1 << 20,
            &unlimited(&metrics),
            &test_config(),
            side.wire(),
            metrics.clone(),
        );
        let mut f = Flusher::default();
        assert!(
            out.queue_live(&mut vec![delivery(1, 0), delivery(2, 0)])
                .flush
        );
        assert!(!out.queue_live(&mut vec![delivery(3, 0)]).flush);
        out.flush(&mut f);
        assert_eq!(next_frame(&mut ws).await, Ok(vec![1, 2, 3]));
        assert!(out.queue_live(&mut vec![delivery(4, 0)]).flush);
        out.flush(&mut f);
        assert_eq!(next_frame(&mut ws).await, Ok(vec![4]));
        assert_eq!(metrics.events_out.load(Ordering::Relaxed), 4);
        assert_eq!(metrics.batches_out.load(Ordering::Relaxed), 1);
    }

    /// A client's share of a batch is queued up to its budget; what does
    /// not fit is left to the caller, which lags the client from the last
    /// event queued.
    #[tokio::test]
    async fn live_events_queue_up_to_the_budget_and_the_rest_is_left() {
        let metrics = Arc::new(GatewayMetrics::default());
        let size = delivery(1, 0).frame.len();
        let (out, mut inbox) = channel(
            2 * size + size / 2,
            &unlimited(&metrics),
            &test_config(),
            None,
            metrics.clone(),
        );
        let mut due: Vec<_> = (1..=5).map(|ms| delivery(ms, 0)).collect();
        let queued = out.queue_live(&mut due);
        assert_eq!(queued.last, Some(Cursor::new(2, 0)));
        assert!(queued.flush);
        let left: Vec<_> = due.iter().map(|d| d.cursor.ms).collect();
        assert_eq!(left, vec![3, 4, 5]);
        // Full: nothing more is queued until the writer takes some.
        let queued = out.queue_live(&mut due);
        assert_eq!((queued.last, queued.flush), (None, false));
        assert_eq!(due.len(), 3);
        assert!(matches!(inbox.rx.try_recv(), Some(Out::Event(d)) if d.cursor.ms == 1));
        inbox.shared.release(size);
        due.truncate(1);
        assert_eq!(out.queue_live(&mut due).last, Some(Cursor::new(3, 0)));
        assert!(due.is_empty());
    }

    /// Over the memory budget, the client with the most queued is closed
    /// ahead of its queue, which is dropped and freed at once: it takes
    /// nothing more, and its client gets the close and none of the events.
    #[tokio::test]
    async fn over_the_memory_budget_the_fullest_queue_is_dropped_and_its_client_closed() {
        let (side, mut ws) = connected().await;
        let metrics = Arc::new(GatewayMetrics::default());
        // Cursors of one width: frames of one size.
        let size = delivery(100, 0).frame.len();
        let memory = Arc::new(MemoryBudget::new(16 * size, metrics.clone()));
        let (full, inbox) = channel(
            1 << 20,
            &memory,
            &test_config(),
            side.wire(),
            metrics.clone(),
        );
        let (other, mut other_inbox) =
            channel(1 << 20, &memory, &test_config(), None, metrics.clone());
        let mut due: Vec<_> = (101..=110).map(|ms| delivery(ms, 0)).collect();
        assert_eq!(full.queue_live(&mut due).last, Some(Cursor::new(110, 0)));
        let mut due: Vec<_> = (111..=116).map(|ms| delivery(ms, 0)).collect();
        assert_eq!(other.queue_live(&mut due).last, Some(Cursor::new(116, 0)));
        assert_eq!(memory.queued(), 16 * size);
        // One more event for the other client: the full one goes.
        let mut due = vec![delivery(117, 0)];
        assert_eq!(other.queue_live(&mut due).last, Some(Cursor::new(117, 0)));
        assert!(full.is_closing() && !other.is_closing());
        assert_eq!(metrics.budget_disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(memory.queued(), 7 * size);
        let mut due = vec![delivery(118, 0)];
        assert_eq!(
            full.queue_live(&mut due).last,
            None,
            "a closing client takes nothing"
        );
        assert!(full.message(&ServerMessage::Pong).is_err());
        assert_eq!(other_inbox.take_cursors().len(), 7);
        assert_eq!(memory.queued(), 0);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let writer = tokio::spawn(run_writer(
            side,
            inbox,
            test_config(),
            Arc::new(LastHeard::new()),
            shutdown,
            metrics.clone(),
        ));
        let close = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        let Ok(Some(Ok(Message::Close(Some(frame))))) = close else {
            panic!("expected the close first, got {close:?}");
        };
        assert_eq!(u16::from(frame.code), CLOSE_SLOW_CONSUMER);
        assert_eq!(frame.reason.as_str(), CLOSE_MEMORY_BUDGET_REASON);
        assert!(writer.await.is_ok());
        assert_eq!(metrics.slow_consumer_disconnects.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_the_writer_sends_in_order() {
        let (side, mut ws) = connected().await;
        let metrics = Arc::new(GatewayMetrics::default());
        let (out, inbox) = channel(
            64 << 20,
            &unlimited(&metrics),
            &test_config(),
            side.wire(),
            metrics.clone(),
        );
        let mut f = Flusher::default();
        // The client reads nothing yet: the hub fills the socket, and then
        // leaves the rest (and a control message behind it) to the writer.
        let mut sent = 0u64;
        for ms in 1..=2_000 {
            let mut due = vec![delivery(ms, 2_000)];
            out.queue_live(&mut due);
            assert!(due.is_empty(), "the budget is large enough");
            out.flush(&mut f);
            sent = ms;
        }
        out.message(&ServerMessage::Pong)
            .unwrap_or_else(|_| panic!("room"));
        let config = test_config();
        let (_trigger, shutdown) = crate::shutdown::channel();
        let writer = tokio::spawn(run_writer(
            side,
            inbox,
            config,
            Arc::new(LastHeard::new()),
            shutdown,
            metrics.clone(),
        ));
        let mut got = Vec::new();
        let last = loop {
            match next_frame(&mut ws).await {
                Ok(cursors) => got.extend(cursors),
                Err(text) => break text,
            }
        };
        assert_eq!(
            got,
            (1..=sent).collect::<Vec<_>>(),
            "every event, once, in order"
        );
        assert!(last.contains("pong"), "then the control message: {last}");
        drop(out);
        // Every producer gone: the writer closes.
        let close = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        assert!(
            matches!(close, Ok(Some(Ok(Message::Close(_))))),
            "{close:?}"
        );
        assert!(writer.await.is_ok());
        assert_eq!(metrics.events_out.load(Ordering::Relaxed), sent);
    }
}
