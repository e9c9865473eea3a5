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
//! and adds the event to its [`Tally`] for the exact loss check.
//!
//! The clients are the load generator and share the machine with the
//! server, so they are kept cheap per frame:
//! - the WebSocket is the bench's own small client ([`ws`](super::ws)):
//!   one reusable read buffer per connection, never zero-filled, every
//!   complete frame parsed per read;
//! - recording goes to one `Shard` per worker thread: plain counters,
//!   per-client tallies and [`LocalHistogram`]s behind a mutex that only
//!   that thread takes, but for a `begin` or a report. No atomic and no
//!   cache line is shared between cores per event. A report adds the shards
//!   up (a tally's count, digest and disorder are sums, so a client's tally
//!   may be spread over several shards). Nothing allocates per event.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::control::{self, ClientsCommand, ClientsReply, ClientsReport};
use super::hist::LocalHistogram;
use super::mix::Mix;
use super::tally::{cursor_hash, Tally};
use super::ws::{Connection, Target};
use super::BenchError;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Kind};
use flowtape_core::protocol::{ClientMessage, FrameBody, ServerFrame, ServerMessage};

/// Connections being opened at once.
const CONNECTING_AT_ONCE: usize = 128;
/// Attempts to open one connection before the client counts as failed.
const CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A window is over once nothing has arrived for this long.
const QUIET: Duration = Duration::from_millis(1000);
/// The longest a report waits for the clients to go quiet.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the clients half runs.
#[derive(Clone, Debug)]
pub struct ClientsOptions {
    /// `ws://host:port/ws`.
    pub connect: String,
    pub mix: Mix,
}

/// One client's share of its [`Tally`] in one shard.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    received: u64,
    digest: u64,
    disorder: u64,
}

/// What one thread's clients recorded: frames, tallies and latency
/// histograms.
struct Shard {
    frames: u64,
    /// Indexed by client.
    counts: Vec<Counts>,
    e2e: LocalHistogram,
    e2e_single_block: LocalHistogram,
    e2e_sweep_split: LocalHistogram,
    feed_to_stream: LocalHistogram,
    stream_to_client: LocalHistogram,
    decode: LocalHistogram,
}

impl Shard {
    fn new(clients: usize) -> Shard {
        Shard {
            frames: 0,
            counts: vec![Counts::default(); clients],
            e2e: LocalHistogram::default(),
            e2e_single_block: LocalHistogram::default(),
            e2e_sweep_split: LocalHistogram::default(),
            feed_to_stream: LocalHistogram::default(),
            stream_to_client: LocalHistogram::default(),
            decode: LocalHistogram::default(),
        }
    }

    /// Records one decoded frame, decoded `decode_us` after it was received.
    fn frame(&mut self, decode_us: u64) {
        self.frames += 1;
        self.decode.record(decode_us);
    }

    /// Records one event `client` decoded at `now_us`: its tally (`last`
    /// is the client's last cursor) and its latencies.
    fn event(
        &mut self,
        client: usize,
        last: &mut Option<Cursor>,
        cursor: Cursor,
        e: &FlowEvent,
        now_us: i64,
    ) {
        let counts = &mut self.counts[client];
        counts.received += 1;
        counts.digest = counts.digest.wrapping_add(cursor_hash(cursor));
        match *last {
            Some(l) if cursor <= l => counts.disorder += 1,
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

    fn merge(&mut self, other: &Shard) {
        self.frames += other.frames;
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            mine.received += theirs.received;
            mine.digest = mine.digest.wrapping_add(theirs.digest);
            mine.disorder += theirs.disorder;
        }
        for (mine, theirs) in self.histograms_mut().into_iter().zip(other.histograms()) {
            mine.merge(theirs);
        }
    }

    fn reset(&mut self) {
        self.frames = 0;
        self.counts.fill(Counts::default());
        for h in self.histograms_mut() {
            h.reset();
        }
    }

    fn histograms(&self) -> [&LocalHistogram; 6] {
        [
            &self.e2e,
            &self.e2e_single_block,
            &self.e2e_sweep_split,
            &self.feed_to_stream,
            &self.stream_to_client,
            &self.decode,
        ]
    }

    fn histograms_mut(&mut self) -> [&mut LocalHistogram; 6] {
        [
            &mut self.e2e,
            &mut self.e2e_single_block,
            &mut self.e2e_sweep_split,
            &mut self.feed_to_stream,
            &mut self.stream_to_client,
            &mut self.decode,
        ]
    }
}

/// Locks a mutex; nothing panics while holding these, so a poisoned one
/// still holds sound data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Numbers the threads that record, in turn.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number, taken on first use.
    static THREAD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The calling thread's number: 0, 1, … in the order threads first record.
pub(crate) fn thread_number() -> usize {
    THREAD.with(|number| {
        number.get().unwrap_or_else(|| {
            let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            number.set(Some(n));
            n
        })
    })
}

/// Everything the clients record, shared by their tasks.
struct Recorder {
    /// Per client: why its connection ended, if it did.
    closed: Vec<Mutex<Option<String>>>,
    shards: Vec<Mutex<Shard>>,
    /// Clients subscribed and live, and clients that gave up.
    live: AtomicUsize,
    failed: AtomicUsize,
    settled: Notify,
}

/// Wall-clock microseconds since the epoch.
pub(crate) fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A difference in µs, never below 0.
pub(crate) fn micros(d: i64) -> u64 {
    d.max(0) as u64
}

impl Recorder {
    fn new(clients: usize) -> Recorder {
        Recorder {
            closed: (0..clients).map(|_| Mutex::default()).collect(),
            // One per core, as tokio has worker threads; more threads share.
            shards: (0..std::thread::available_parallelism().map_or(1, usize::from))
                .map(|_| Mutex::new(Shard::new(clients)))
                .collect(),
            live: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            settled: Notify::new(),
        }
    }

    /// The calling thread's shard. Hold it only between awaits.
    fn shard(&self) -> MutexGuard<'_, Shard> {
        lock(&self.shards[thread_number() % self.shards.len()])
    }

    /// Notes why a client's connection ended (the first reason only).
    fn note(&self, client: usize, why: String) {
        lock(&self.closed[client]).get_or_insert(why);
    }

    fn settle(&self, live: bool) {
        let counter = if live { &self.live } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        self.settled.notify_one();
    }

    fn reset(&self) {
        for shard in &self.shards {
            lock(shard).reset();
        }
    }

    /// Frames decoded so far, over all shards.
    fn frames(&self) -> u64 {
        self.shards.iter().map(|shard| lock(shard).frames).sum()
    }

    fn report(&self) -> ClientsReport {
        let mut all = Shard::new(self.closed.len());
        for shard in &self.shards {
            all.merge(&lock(shard));
        }
        ClientsReport {
            tallies: all
                .counts
                .iter()
                .zip(&self.closed)
                .map(|(counts, closed)| Tally {
                    received: counts.received,
                    digest: counts.digest,
                    disorder: counts.disorder,
                    closed: lock(closed).clone(),
                })
                .collect(),
            frames: all.frames,
            e2e: all.e2e.snapshot(),
            e2e_single_block: all.e2e_single_block.snapshot(),
            e2e_sweep_split: all.e2e_sweep_split.snapshot(),
            feed_to_stream: all.feed_to_stream.snapshot(),
            stream_to_client: all.stream_to_client.snapshot(),
            decode: all.decode.snapshot(),
        }
    }

    /// Waits until no frame has arrived for [`QUIET`].
    async fn quiet(&self) {
        let deadline = Instant::now() + REPORT_TIMEOUT;
        let mut seen = self.frames();
        while Instant::now() < deadline {
            tokio::time::sleep(QUIET).await;
            let now = self.frames();
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
    let target = Arc::new(Target::parse(&opts.connect).map_err(BenchError::Config)?);
    let filters = opts.mix.filters()?;
    let rec = Arc::new(Recorder::new(filters.len()));
    let permits = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = JoinSet::new();
    for (i, filter) in filters.iter().enumerate() {
        tasks.spawn(client(
            i,
            target.clone(),
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
        _ = flowtape_server::shutdown::signal() => return Ok(()),
    }
    control::reply(&ClientsReply::Ready {
        pid: std::process::id(),
        live: rec.live.load(Ordering::Relaxed),
        filters,
    })?;
    let result = tokio::select! {
        r = command_loop(&rec) => r,
        _ = flowtape_server::shutdown::signal() => Ok(()),
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

/// Opens one connection, within the limit of connections opened at once,
/// retrying with backoff.
async fn open(target: &Target, permits: &Semaphore) -> Result<Connection, String> {
    let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
    let mut last_error = String::new();
    for attempt in 0..CONNECT_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::open(target)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = "handshake timed out".into(),
        }
    }
    Err(last_error)
}

/// One client: connect, subscribe, read until the connection ends.
async fn client(
    i: usize,
    target: Arc<Target>,
    filter: String,
    rec: Arc<Recorder>,
    permits: Arc<Semaphore>,
) {
    let mut conn = match open(&target, &permits).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(client = i, "cannot connect: {e}");
            rec.note(i, format!("connect failed: {e}"));
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
    if let Err(e) = conn.send_text(&text).await {
        rec.note(i, format!("subscribe failed: {e}"));
        rec.settle(false);
        return;
    }
    let mut live = false;
    let mut last = None;
    let ended = loop {
        let text = match conn.next_text().await {
            Ok(text) => text,
            Err(ended) => break ended.to_string(),
        };
        let received = wall_us();
        // One pass: each event straight from the text into a FlowEvent.
        let body = match ServerFrame::parse(text).map(ServerFrame::into_body) {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => break format!("undecodable frame: {e}"),
            Err(e) => break format!("undecodable frame: {e}"),
        };
        let now = wall_us();
        let decoded = {
            let mut shard = rec.shard();
            shard.frame(micros(now - received));
            match body {
                FrameBody::Events(items) => {
                    for item in &items {
                        shard.event(i, &mut last, item.cursor, &item.event, now);
                    }
                    items.len()
                }
                FrameBody::Message(m) => {
                    match *m {
                        ServerMessage::Status { live: true, .. } if !live => {
                            live = true;
                            rec.settle(true);
                        }
                        ServerMessage::Error { code, message, .. } => {
                            tracing::warn!(client = i, ?code, "server error: {message}");
                        }
                        _ => {}
                    }
                    0
                }
                // Bench clients ask for no history.
                FrameBody::Page(_) => 0,
            }
        };
        // Each decoded event spends a unit of the task's scheduling budget.
        // A client whose socket always has more to read would otherwise keep
        // its thread for thousands of events while the other clients on it
        // read nothing; on their own machines, clients do not wait for one
        // another.
        for _ in 0..decoded {
            tokio::task::consume_budget().await;
        }
    };
    if live {
        tracing::warn!(client = i, "connection ended: {ended}");
    }
    rec.note(i, ended);
    if !live {
        rec.settle(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::event::sample_event;

    /// Records one frame of one event for `client`, as its task does.
    fn record(rec: &Recorder, client: usize, last: &mut Option<Cursor>, seq: u64) {
        let e = sample_event();
        let cursor = Cursor::new(e.ts as u64 + 4, seq);
        let now_us = (e.ts + 10) * 1000;
        let mut shard = rec.shard();
        shard.frame(7);
        shard.event(client, last, cursor, &e, now_us);
    }

    #[test]
    fn shards_merge_into_one_report_and_begin_clears_them() {
        let rec = Arc::new(Recorder::new(2));
        let mut last = None;
        record(&rec, 0, &mut last, 1);
        record(&rec, 0, &mut last, 1);
        // Client 0's task moves to another thread, beside client 1.
        let other = rec.clone();
        let thread = std::thread::spawn(move || {
            record(&other, 0, &mut last, 3);
            record(&other, 1, &mut None, 2);
        });
        assert!(thread.join().is_ok());

        let report = rec.report();
        assert_eq!(report.frames, 4);
        assert_eq!(rec.frames(), 4);
        assert_eq!(report.decode.count(), 4);
        assert_eq!(report.decode.quantiles().max, 0.007);
        // The sample event is a sweep, 10 ms old, committed 4 ms after its ts.
        assert_eq!(report.e2e.count(), 4);
        assert_eq!(report.e2e_sweep_split.count(), 4);
        assert_eq!(report.e2e_single_block.count(), 0);
        assert_eq!(report.e2e.quantiles().max, 10.0);
        assert_eq!(report.feed_to_stream.quantiles().max, 4.0);
        assert_eq!(report.stream_to_client.quantiles().max, 6.0);
        let hash = |seq| cursor_hash(Cursor::new(sample_event().ts as u64 + 4, seq));
        assert_eq!(report.tallies[0].received, 3);
        assert_eq!(report.tallies[0].disorder, 1, "the same cursor twice");
        assert_eq!(
            report.tallies[0].digest,
            hash(1).wrapping_mul(2).wrapping_add(hash(3))
        );
        assert_eq!(report.tallies[1].received, 1);
        assert_eq!(report.tallies[1].digest, hash(2));

        rec.note(1, "closed 4008: slow".into());
        rec.note(1, "connection ended".into());
        rec.reset();
        let report = rec.report();
        assert_eq!(report.frames, 0);
        assert_eq!(report.e2e.count() + report.decode.count(), 0);
        assert_eq!(report.tallies[0], Tally::default());
        assert_eq!(
            report.tallies[1].closed.as_deref(),
            Some("closed 4008: slow"),
            "the first reason is kept, and a window does not forget it"
        );
    }
}
