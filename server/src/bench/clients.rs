//! The clients half (`bench --clients-only`): N real WebSocket clients of
//! one gateway, in their own process so their CPU is counted apart.
//!
//! Each client connects to `ws://…/ws`, subscribes live with its filter from
//! the [`Mix`], and decodes every frame in full — each event into a
//! [`FlowEvent`] — as a real client does (in one pass, see
//! [`ServerFrame`]). The
//! moment an event is decoded it records:
//! - end to end: now − the event's `ts` (the feed's hand-over time, see
//!   [`source`](super::source)), overall and split by kind;
//! - feed → stream: the event's cursor time − `ts` (whole milliseconds);
//! - stream → client: now − the cursor time;
//! - decode: frame received → decoded (per frame);
//!
//! and adds the event to its [`Tally`] for the exact loss check. Recording
//! is a few relaxed atomic adds into shared log-linear histograms: no
//! allocation and no lock per event.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::control::{self, ClientsCommand, ClientsReply, ClientsReport};
use super::hist::SharedHistogram;
use super::mix::Mix;
use super::tally::{cursor_hash, Tally};
use super::BenchError;
use crate::cursor::Cursor;
use crate::event::{FlowEvent, Kind};
use crate::protocol::{ClientMessage, FrameBody, ServerFrame, ServerMessage};

/// Connections being opened at once.
const CONNECTING_AT_ONCE: usize = 128;
/// Attempts to open one connection before the client counts as failed.
const CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A window is over once nothing has arrived for this long.
const QUIET: Duration = Duration::from_millis(300);
/// The longest a report waits for the clients to go quiet.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the clients half runs.
#[derive(Clone, Debug)]
pub struct ClientsOptions {
    /// `ws://host:port/ws`.
    pub connect: String,
    pub mix: Mix,
}

/// One client's counters.
#[derive(Default)]
struct Slot {
    received: AtomicU64,
    digest: AtomicU64,
    disorder: AtomicU64,
    closed: Mutex<Option<String>>,
}

/// Everything the clients record, shared by their tasks.
#[derive(Default)]
struct Recorder {
    slots: Vec<Slot>,
    frames: AtomicU64,
    e2e: SharedHistogram,
    e2e_single_block: SharedHistogram,
    e2e_sweep_split: SharedHistogram,
    feed_to_stream: SharedHistogram,
    stream_to_client: SharedHistogram,
    decode: SharedHistogram,
    /// Clients subscribed and live, and clients that gave up.
    live: AtomicUsize,
    failed: AtomicUsize,
    settled: Notify,
}

/// Wall-clock microseconds since the epoch.
fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn micros(d: i64) -> u64 {
    d.max(0) as u64
}

impl Recorder {
    fn event(
        &self,
        slot: &Slot,
        last: &mut Option<Cursor>,
        cursor: Cursor,
        e: &FlowEvent,
        now_us: i64,
    ) {
        slot.received.fetch_add(1, Ordering::Relaxed);
        slot.digest
            .fetch_add(cursor_hash(cursor), Ordering::Relaxed);
        match *last {
            Some(l) if cursor <= l => {
                slot.disorder.fetch_add(1, Ordering::Relaxed);
            }
            _ => *last = Some(cursor),
        }
        let ts_us = e.ts.saturating_mul(1000);
        let e2e = micros(now_us - ts_us);
        self.e2e.record(e2e);
        match e.kind {
            Kind::Single | Kind::Block => self.e2e_single_block.record(e2e),
            Kind::Sweep | Kind::Split => self.e2e_sweep_split.record(e2e),
        }
        let commit_us = (cursor.ms as i64).saturating_mul(1000);
        self.feed_to_stream.record(micros(commit_us - ts_us));
        self.stream_to_client.record(micros(now_us - commit_us));
    }

    fn settle(&self, live: bool) {
        let counter = if live { &self.live } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        self.settled.notify_one();
    }

    fn reset(&self) {
        self.frames.store(0, Ordering::Relaxed);
        for s in &self.slots {
            s.received.store(0, Ordering::Relaxed);
            s.digest.store(0, Ordering::Relaxed);
            s.disorder.store(0, Ordering::Relaxed);
        }
        for h in self.histograms() {
            h.reset();
        }
    }

    fn histograms(&self) -> [&SharedHistogram; 6] {
        [
            &self.e2e,
            &self.e2e_single_block,
            &self.e2e_sweep_split,
            &self.feed_to_stream,
            &self.stream_to_client,
            &self.decode,
        ]
    }

    fn report(&self) -> ClientsReport {
        ClientsReport {
            tallies: self
                .slots
                .iter()
                .map(|s| Tally {
                    received: s.received.load(Ordering::Relaxed),
                    digest: s.digest.load(Ordering::Relaxed),
                    disorder: s.disorder.load(Ordering::Relaxed),
                    closed: s.closed.lock().ok().and_then(|c| c.clone()),
                })
                .collect(),
            frames: self.frames.load(Ordering::Relaxed),
            e2e: self.e2e.snapshot(),
            e2e_single_block: self.e2e_single_block.snapshot(),
            e2e_sweep_split: self.e2e_sweep_split.snapshot(),
            feed_to_stream: self.feed_to_stream.snapshot(),
            stream_to_client: self.stream_to_client.snapshot(),
            decode: self.decode.snapshot(),
        }
    }

    /// Waits until no frame has arrived for [`QUIET`].
    async fn quiet(&self) {
        let deadline = Instant::now() + REPORT_TIMEOUT;
        let mut seen = self.frames.load(Ordering::Relaxed);
        while Instant::now() < deadline {
            tokio::time::sleep(QUIET).await;
            let now = self.frames.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    }
}

/// Connects every client, reports `ready`, then serves the harness's commands.
pub async fn run(opts: ClientsOptions) -> Result<(), BenchError> {
    super::check_open_files(opts.mix.clients as u64 + 64)?;
    let filters = opts.mix.filters()?;
    let rec = Arc::new(Recorder {
        slots: (0..filters.len()).map(|_| Slot::default()).collect(),
        ..Recorder::default()
    });
    let permits = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = JoinSet::new();
    for (i, filter) in filters.iter().enumerate() {
        tasks.spawn(client(
            i,
            opts.connect.clone(),
            filter.clone(),
            rec.clone(),
            permits.clone(),
        ));
    }
    let ready = async {
        while rec.live.load(Ordering::Relaxed) + rec.failed.load(Ordering::Relaxed) < filters.len()
        {
            rec.settled.notified().await;
        }
    };
    tokio::select! {
        _ = ready => {}
        _ = crate::shutdown::signal() => return Ok(()),
    }
    control::reply(&ClientsReply::Ready {
        pid: std::process::id(),
        live: rec.live.load(Ordering::Relaxed),
        filters,
    })?;
    let result = tokio::select! {
        r = command_loop(&rec) => r,
        _ = crate::shutdown::signal() => Ok(()),
    };
    tasks.abort_all();
    result
}

async fn command_loop(rec: &Recorder) -> Result<(), BenchError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = control::next_command::<ClientsCommand>(&mut lines).await? {
        let answer = match command {
            Ok(ClientsCommand::Quit) => return Ok(()),
            Ok(ClientsCommand::Begin) => {
                rec.reset();
                ClientsReply::Begun
            }
            Ok(ClientsCommand::Report) => {
                rec.quiet().await;
                ClientsReply::Report(Box::new(rec.report()))
            }
            Err(e) => ClientsReply::Error {
                message: format!("unreadable command: {e}"),
            },
        };
        control::reply(&answer)?;
    }
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, permits: &Semaphore) -> Result<Ws, String> {
    let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let mut last_error = String::new();
    for attempt in 0..CONNECT_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((ws, _))) => return Ok(ws),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "handshake timed out".into(),
        }
    }
    Err(last_error)
}

/// One client: connect, subscribe, read until the connection ends.
async fn client(
    i: usize,
    url: String,
    filter: String,
    rec: Arc<Recorder>,
    permits: Arc<Semaphore>,
) {
    let slot = &rec.slots[i];
    let note = |why: String| {
        if let Ok(mut c) = slot.closed.lock() {
            c.get_or_insert(why);
        }
    };
    let mut ws = match open(&url, &permits).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::warn!(client = i, "cannot connect to {url}: {e}");
            note(format!("connect failed: {e}"));
            rec.settle(false);
            return;
        }
    };
    let subscribe = ClientMessage::Subscribe {
        filter,
        backfill: None,
        since: None,
    };
    let text = serde_json::to_string(&subscribe).unwrap_or_default();
    if let Err(e) = ws.send(Message::text(text)).await {
        note(format!("subscribe failed: {e}"));
        rec.settle(false);
        return;
    }
    let mut live = false;
    let mut last = None;
    let ended = loop {
        let Some(frame) = ws.next().await else {
            break "connection ended".to_string();
        };
        match frame {
            Ok(Message::Text(text)) => {
                let received = wall_us();
                // One pass: each event straight from the text into a FlowEvent.
                let body = match ServerFrame::parse(text.as_str()).map(ServerFrame::into_body) {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => break format!("undecodable frame: {e}"),
                    Err(e) => break format!("undecodable frame: {e}"),
                };
                let now = wall_us();
                rec.decode.record(micros(now - received));
                rec.frames.fetch_add(1, Ordering::Relaxed);
                match body {
                    FrameBody::Events(items) => {
                        for item in &items {
                            rec.event(slot, &mut last, item.cursor, &item.event, now);
                        }
                    }
                    FrameBody::Message(m) => match *m {
                        ServerMessage::Status { live: true, .. } if !live => {
                            live = true;
                            rec.settle(true);
                        }
                        ServerMessage::Error { code, message } => {
                            tracing::warn!(client = i, ?code, "server error: {message}");
                        }
                        _ => {}
                    },
                }
            }
            Ok(Message::Close(frame)) => {
                break frame.map_or("closed".into(), |f| {
                    format!("closed {}: {}", u16::from(f.code), f.reason)
                })
            }
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    note(ended);
    if !live {
        rec.settle(false);
    }
}
