//! The soak's clients half (`flowtape-bench --soak-clients`): a steady base
//! of clients that stay connected and a churning population that comes and
//! goes, spread over the gateways given, each keeping a [`Ledger`].
//!
//! - Base clients connect at the start (client `i` to gateway `i mod n`),
//!   subscribe with `since` = the run's start cursor and stay, changing
//!   their filter with a `filter` op every [`BASE_CHANGE_S`] or so.
//! - Churn clients start within [`CHURN_RAMP_S`] and then cycle: connect to
//!   a gateway drawn at random, subscribe with `since` (their start, then
//!   the last cursor they got), stay [`CHURN_STAY_S`], changing their filter
//!   every [`CHURN_CHANGE_S`] or so, leave (a close handshake, or one time
//!   in four by dropping the connection) and come back [`CHURN_AWAY_S`] later.
//! - A client whose connection the server ends (a restarting gateway sends
//!   1001) reconnects to the same gateway and resumes by cursor, and one
//!   told the event store is `unavailable` subscribes again, both after a
//!   [`Backoff`] as the TUI's client waits. The time from the close to live
//!   again is recorded.
//! - A `filter` op is sent only while live and right after an event, so the
//!   switch it opens starts at a fresh cursor. A switch still unproven after
//!   [`SWITCH_PATIENCE`] is ended by reconnecting (see [`Ledger`]).
//!
//! The harness asks for each epoch's reports over stdin ([`ChurnCommand`]).
//! A report waits (up to [`SETTLE_PATIENCE`]) until every client has
//! settled: it is live, or it was live until well after the epoch ended.
//! The latency of live events (not of replays) and the clients' activity are
//! counted per report.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ledger::{Epochs, Ledger, Watch};
use super::SETTLE;
use crate::clients::{lock, micros, thread_number, wall_us};
use crate::control::{self, Activity, ChurnCommand, ChurnEpoch, ChurnReply};
use crate::hist::LocalHistogram;
use crate::mix::{Draw, Mix};
use crate::tally::mix64;
use crate::ws::{Connection, Ended, Target};
use crate::BenchError;
use flowtape_core::cursor::Cursor;
use flowtape_core::filter::Filter;
use flowtape_core::protocol::{ClientMessage, ErrorCode, FrameBody, ServerFrame, ServerMessage};

/// Connections being opened at once.
const CONNECTING_AT_ONCE: usize = 128;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Seconds between a base client's filter changes (uniform).
pub const BASE_CHANGE_S: (f64, f64) = (120.0, 600.0);
/// Churn clients first connect this many seconds after the start (uniform),
/// once the feed has begun: a `since` past the stream's newest entry would
/// read as lost history.
pub const CHURN_RAMP_S: (f64, f64) = (5.0, 35.0);
/// Seconds a churn client stays connected, and between its filter changes.
pub const CHURN_STAY_S: (f64, f64) = (10.0, 60.0);
pub const CHURN_CHANGE_S: (f64, f64) = (5.0, 40.0);
/// Seconds a churn client stays away.
pub const CHURN_AWAY_S: (f64, f64) = (1.0, 5.0);
/// A switch no event has proven within this long is ended by reconnecting.
pub const SWITCH_PATIENCE: Duration = Duration::from_secs(30);
/// The longest a report waits for the clients to settle.
pub const SETTLE_PATIENCE: Duration = Duration::from_secs(60);
/// Filters a changing client draws from.
const POOL: usize = 1_000;
/// A leaving client waits this long for the server's close.
const CLOSE_PATIENCE: Duration = Duration::from_secs(1);
/// Attempts at a base client's first connection before it counts as failed.
const FIRST_ATTEMPTS: u32 = 5;

/// How the soak's clients half runs.
#[derive(Clone, Debug)]
pub struct ChurnOptions {
    /// `ws://host:port/ws` of each gateway.
    pub gateways: Vec<String>,
    /// The base clients' mix (its `clients` are the base).
    pub mix: Mix,
    pub churn: usize,
    pub epochs: Epochs,
    /// Base clients subscribe with this `since`.
    pub since: Cursor,
}

/// Exponential backoff with jitter, as the TUI's client waits: pass `n`
/// waits a random point in the upper half of `initial × 2^(n-1)`, capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// The TUI's backoff (`flowtape::client::Backoff::default`).
pub const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(250),
    max: Duration::from_secs(15),
};

impl Backoff {
    /// The wait before pass `pass` (1-based), with `unit` in `[0, 1)`.
    pub fn delay(&self, pass: u32, unit: f64) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << pass.saturating_sub(1).min(16))
            .min(self.max);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Whether a client is live, for the reports to wait on.
#[derive(Default)]
struct Presence {
    live: AtomicBool,
    /// Wall ms when the client last stopped being live; 0 while it never was.
    left_ms: AtomicU64,
    /// The client gave up (its first connection failed): never waited for.
    gone: AtomicBool,
}

/// What every client task shares.
struct Shared {
    gateways: Vec<Target>,
    epochs: Epochs,
    pool: Vec<Watch>,
    ledgers: Vec<Mutex<Option<Ledger>>>,
    presence: Vec<Presence>,
    activity: Mutex<Activity>,
    /// Per thread (see `clients::thread_number`).
    e2e: Vec<Mutex<LocalHistogram>>,
    permits: Semaphore,
    /// Set by `finish`: no more filter changes.
    finished: AtomicBool,
    /// Base clients live, or given up on, for `ready`.
    base_live: AtomicUsize,
    base_failed: AtomicUsize,
    settled: Notify,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut Activity)) {
        f(&mut lock(&self.activity));
    }

    /// The `subscribe` that resumes client `i` where its ledger stands
    /// (`None` before it has one).
    fn subscribe(&self, i: usize) -> Option<String> {
        let mut ledger = lock(&self.ledgers[i]);
        let l = ledger.as_mut()?;
        l.resubscribed(&self.epochs);
        let message = ClientMessage::Subscribe {
            filter: l.filter().to_string(),
            backfill: None,
            since: Some(l.resume_from()),
        };
        serde_json::to_string(&message).ok()
    }

    /// Clients not settled for an epoch that ended at `end_ms`: not live,
    /// and not live until [`SETTLE`] after it.
    fn unsettled(&self, end_ms: u64) -> u64 {
        let settled_after = end_ms + SETTLE.as_millis() as u64;
        self.presence
            .iter()
            .filter(|p| {
                !p.gone.load(Ordering::Relaxed)
                    && !p.live.load(Ordering::Relaxed)
                    && p.left_ms.load(Ordering::Relaxed) < settled_after
            })
            .count() as u64
    }
}

/// A seeded uniform draw in `[lo, hi)`.
fn between(draw: &mut Draw, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * draw.unit()
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn now_ms() -> u64 {
    (wall_us() / 1000).max(0) as u64
}

/// Parses filters the mix made.
fn watches(texts: Vec<String>) -> Result<Vec<Watch>, BenchError> {
    texts
        .into_iter()
        .map(|text| {
            Filter::parse(&text)
                .map(|filter| Watch {
                    text: text.clone(),
                    filter,
                })
                .map_err(|e| BenchError::Config(format!("filter {text:?}: {e}")))
        })
        .collect()
}

/// Connects every base client, reports `ready`, starts the churn, then
/// serves the harness's commands.
pub async fn run(opts: ChurnOptions) -> Result<(), BenchError> {
    let base = opts.mix.clients;
    let clients = base + opts.churn;
    crate::check_open_files(clients as u64 + 64)?;
    let gateways = opts
        .gateways
        .iter()
        .map(|g| Target::parse(g).map_err(BenchError::Config))
        .collect::<Result<Vec<_>, _>>()?;
    if gateways.is_empty() {
        return Err(BenchError::Config("the soak clients need a gateway".into()));
    }
    let base_watches = watches(opts.mix.filters()?)?;
    let pool_mix = Mix {
        clients: POOL,
        premium: POOL / 10,
        client_seed: opts.mix.client_seed.wrapping_add(1),
        ..opts.mix.clone()
    };
    let shared = Arc::new(Shared {
        gateways,
        epochs: opts.epochs,
        pool: watches(pool_mix.filters()?)?,
        ledgers: (0..clients).map(|_| Mutex::new(None)).collect(),
        presence: (0..clients).map(|_| Presence::default()).collect(),
        activity: Mutex::default(),
        e2e: (0..std::thread::available_parallelism().map_or(1, usize::from))
            .map(|_| Mutex::default())
            .collect(),
        permits: Semaphore::new(CONNECTING_AT_ONCE),
        finished: AtomicBool::new(false),
        base_live: AtomicUsize::new(0),
        base_failed: AtomicUsize::new(0),
        settled: Notify::new(),
    });
    let mut tasks = JoinSet::new();
    for (i, watch) in base_watches.into_iter().enumerate() {
        let role = Role::Base {
            gateway: i % shared.gateways.len(),
        };
        tasks.spawn(client(i, role, watch, Some(opts.since), shared.clone()));
    }
    let ready = async {
        while shared.base_live.load(Ordering::Relaxed) + shared.base_failed.load(Ordering::Relaxed)
            < base
        {
            shared.settled.notified().await;
        }
    };
    tokio::select! {
        _ = ready => {}
        _ = flowtape_server::shutdown::signal() => return Ok(()),
    }
    let mut draw = Draw(mix64(opts.mix.client_seed ^ 0x50A4));
    for i in base..clients {
        let watch = shared.pool[(draw.unit() * POOL as f64) as usize % POOL].clone();
        tasks.spawn(client(i, Role::Churn, watch, None, shared.clone()));
    }
    control::reply(&ChurnReply::Ready {
        pid: std::process::id(),
        live: shared.base_live.load(Ordering::Relaxed),
    })?;
    let result = tokio::select! {
        r = command_loop(&shared) => r,
        _ = flowtape_server::shutdown::signal() => Ok(()),
    };
    tasks.abort_all();
    result
}

async fn command_loop(shared: &Shared) -> Result<(), BenchError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = control::next_command::<ChurnCommand>(&mut lines).await? {
        let answer = match command {
            Ok(ChurnCommand::Quit) => return Ok(()),
            Ok(ChurnCommand::Epoch { epoch }) => {
                ChurnReply::Epoch(Box::new(report(shared, epoch).await))
            }
            Ok(ChurnCommand::Finish { through }) => {
                shared.finished.store(true, Ordering::Relaxed);
                for ledger in &shared.ledgers {
                    if let Some(l) = lock(ledger).as_mut() {
                        l.finish(through, &shared.epochs);
                    }
                }
                ChurnReply::Finished
            }
            Err(e) => ChurnReply::Error {
                message: format!("unreadable command: {e}"),
            },
        };
        control::reply(&answer)?;
    }
    Ok(())
}

/// Every client's report for `epoch`, once they have settled, with the
/// activity and latency since the last one.
async fn report(shared: &Shared, epoch: u32) -> ChurnEpoch {
    let end_ms = shared.epochs.start(epoch.saturating_add(1)).ms;
    let patience = Instant::now() + SETTLE_PATIENCE;
    let mut unsettled = shared.unsettled(end_ms);
    while unsettled > 0 && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(250)).await;
        unsettled = shared.unsettled(end_ms);
    }
    if unsettled > 0 {
        tracing::warn!(epoch, unsettled, "reporting with clients not live again");
    }
    let clients = shared
        .ledgers
        .iter()
        .map(|ledger| {
            lock(ledger)
                .as_mut()
                .map(|l| l.report(epoch, &shared.epochs))
                .unwrap_or_default()
        })
        .collect();
    let mut e2e = LocalHistogram::default();
    for shard in &shared.e2e {
        let mut shard = lock(shard);
        e2e.merge(&shard);
        shard.reset();
    }
    let mut activity = std::mem::take(&mut *lock(&shared.activity));
    activity.connected = shared
        .presence
        .iter()
        .filter(|p| p.live.load(Ordering::Relaxed))
        .count() as u64;
    ChurnEpoch {
        clients,
        activity,
        unsettled,
        e2e: e2e.snapshot(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Stays connected to this gateway.
    Base { gateway: usize },
    /// Comes and goes.
    Churn,
}

/// Why a session ended.
enum End {
    /// The client leaves for a while (churn).
    Leave,
    /// The client reconnects at once to end a switch nobody proved.
    Refresh,
    /// The server ended the connection: reconnect to the same gateway.
    Server(String),
}

/// What a client carries from one connection to the next.
struct Client {
    i: usize,
    role: Role,
    draw: Draw,
    /// A base client that has not been live yet (`ready` waits for it).
    first: bool,
    /// When the server ended the last connection, for the resume time.
    server_closed: Option<Instant>,
    /// Failed passes in a row (connects, or subscribes the store refused).
    failures: u32,
}

impl Client {
    async fn back_off(&mut self) {
        self.failures += 1;
        let wait = BACKOFF.delay(self.failures, self.draw.unit());
        tokio::time::sleep(wait).await;
    }

    fn gateway_at_random(&mut self, shared: &Shared) -> usize {
        (self.draw.unit() * shared.gateways.len() as f64) as usize % shared.gateways.len()
    }
}

/// One client, from its first connection to the end of the run.
async fn client(i: usize, role: Role, watch: Watch, since: Option<Cursor>, shared: Arc<Shared>) {
    let mut c = Client {
        i,
        role,
        draw: Draw(mix64(i as u64 ^ 0xC11E_47C1)),
        first: role != Role::Churn,
        server_closed: None,
        failures: 0,
    };
    let mut gateway = match role {
        Role::Base { gateway } => gateway,
        Role::Churn => {
            tokio::time::sleep(seconds(between(&mut c.draw, CHURN_RAMP_S))).await;
            c.gateway_at_random(&shared)
        }
    };
    // A churn client starts a second back: a cursor the stream has passed,
    // so its start is exact.
    let start = since.unwrap_or_else(|| Cursor::new(now_ms().saturating_sub(1_000), 0));
    *lock(&shared.ledgers[i]) = Some(Ledger::new(start, watch));
    loop {
        let mut conn = match connect(&shared, gateway).await {
            Ok(conn) => conn,
            Err(e) => {
                shared.count(|a| a.connect_failures += 1);
                if c.first && c.failures + 1 >= FIRST_ATTEMPTS {
                    tracing::warn!(client = i, "cannot connect: {e}");
                    shared.presence[i].gone.store(true, Ordering::Relaxed);
                    shared.base_failed.fetch_add(1, Ordering::Relaxed);
                    shared.settled.notify_one();
                    return;
                }
                c.back_off().await;
                continue;
            }
        };
        shared.count(|a| a.connects += 1);
        let Some(subscribe) = shared.subscribe(i) else {
            return;
        };
        if let Err(e) = conn.send_text(&subscribe).await {
            c.server_closed.get_or_insert_with(Instant::now);
            tracing::debug!(client = i, "subscribe failed: {e}");
            c.back_off().await;
            continue;
        }
        let stay = match role {
            Role::Base { .. } => None,
            Role::Churn => Some(Instant::now() + seconds(between(&mut c.draw, CHURN_STAY_S))),
        };
        match session(&mut c, &mut conn, stay, &shared).await {
            End::Leave => {
                if c.draw.unit() < 0.25 {
                    shared.count(|a| a.drops += 1);
                    drop(conn);
                } else {
                    shared.count(|a| a.leaves += 1);
                    conn.close(1000, CLOSE_PATIENCE).await;
                }
                tokio::time::sleep(seconds(between(&mut c.draw, CHURN_AWAY_S))).await;
                gateway = c.gateway_at_random(&shared);
            }
            End::Refresh => {
                shared.count(|a| a.refreshes += 1);
                conn.close(1000, CLOSE_PATIENCE).await;
            }
            End::Server(why) => {
                c.server_closed.get_or_insert_with(Instant::now);
                shared.count(|a| *a.server_closes.entry(why).or_default() += 1);
                c.back_off().await;
            }
        }
    }
}

/// Opens one connection to gateway `g`, within the limit of connections opened at once.
async fn connect(shared: &Shared, g: usize) -> Result<Connection, String> {
    let _permit = shared.permits.acquire().await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::open(&shared.gateways[g])).await {
        Ok(r) => r,
        Err(_) => Err("handshake timed out".into()),
    }
}

/// A short name for why the server ended a connection.
fn close_reason(ended: &Ended) -> String {
    match ended {
        Ended::Closed(Some((code, _))) => format!("close {code}"),
        Ended::Closed(None) => "close".into(),
        Ended::Eof => "eof".into(),
        Ended::Io(_) => "io error".into(),
        Ended::Protocol(_) => "protocol error".into(),
    }
}

/// Reads one connection until the client leaves or the server ends it.
async fn session(
    c: &mut Client,
    conn: &mut Connection,
    stay: Option<Instant>,
    shared: &Shared,
) -> End {
    let i = c.i;
    let change_every = match c.role {
        Role::Base { .. } => BASE_CHANGE_S,
        Role::Churn => CHURN_CHANGE_S,
    };
    let mut next_change = Instant::now() + seconds(between(&mut c.draw, change_every));
    let mut switch_began: Option<Instant> = None;
    let mut live = false;
    let ended = loop {
        let frame = match stay {
            Some(at) => tokio::select! {
                r = conn.next_text() => r.map(decode),
                _ = tokio::time::sleep_until(at) => break End::Leave,
            },
            None => conn.next_text().await.map(decode),
        };
        let body = match frame {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                tracing::warn!(client = i, "undecodable frame: {e}");
                break End::Server("undecodable frame".into());
            }
            Err(ended) => break End::Server(close_reason(&ended)),
        };
        let now_us = wall_us();
        let events = match body {
            FrameBody::Events(items) => items,
            FrameBody::Message(m) => {
                match *m {
                    ServerMessage::Status { live: true, .. } if !live => {
                        live = true;
                        c.failures = 0;
                        shared.presence[i].live.store(true, Ordering::Relaxed);
                        if std::mem::take(&mut c.first) {
                            shared.base_live.fetch_add(1, Ordering::Relaxed);
                            shared.settled.notify_one();
                        }
                        if let Some(at) = c.server_closed.take() {
                            let ms = at.elapsed().as_millis() as u64;
                            shared.count(|a| {
                                a.resumes += 1;
                                a.resume_ms_max = a.resume_ms_max.max(ms);
                                a.resume_ms_total += ms;
                            });
                        }
                    }
                    ServerMessage::Status { lost: Some(_), .. } => {
                        shared.count(|a| a.history_lost += 1);
                    }
                    ServerMessage::Error {
                        code: ErrorCode::Unavailable,
                        ..
                    } => {
                        // Not subscribed: the store could not be read. Again, shortly.
                        shared.count(|a| a.resubscribes += 1);
                        c.server_closed.get_or_insert_with(Instant::now);
                        c.back_off().await;
                        let Some(subscribe) = shared.subscribe(i) else {
                            break End::Server("no ledger".into());
                        };
                        if conn.send_text(&subscribe).await.is_err() {
                            break End::Server("send failed".into());
                        }
                    }
                    ServerMessage::Error { code, message, .. } => {
                        tracing::warn!(client = i, ?code, "server error: {message}");
                        shared.count(|a| a.errors += 1);
                    }
                    _ => {}
                }
                continue;
            }
            // Soak clients ask for no history.
            FrameBody::Page(_) => continue,
        };
        let change = {
            let mut e2e = lock(&shared.e2e[thread_number() % shared.e2e.len()]);
            let mut ledger = lock(&shared.ledgers[i]);
            let Some(ledger) = ledger.as_mut() else {
                continue;
            };
            for item in &events {
                ledger.record(item.cursor, &item.event, &shared.epochs);
                // Replayed events are as old as the client's absence: only live ones count.
                if live {
                    e2e.record(micros(now_us - item.event.ts.saturating_mul(1000)));
                }
            }
            if ledger.switching() {
                if switch_began.is_some_and(|at| at.elapsed() > SWITCH_PATIENCE) {
                    break End::Refresh;
                }
                None
            } else if live
                && Instant::now() >= next_change
                && !shared.finished.load(Ordering::Relaxed)
            {
                let new = pick(&shared.pool, ledger.watch(), &mut c.draw);
                ledger.begin_switch(new.clone(), &shared.epochs);
                Some(new.text)
            } else {
                None
            }
        };
        // Each decoded event spends a unit of the task's budget, as in `clients`.
        for _ in 0..events.len() {
            tokio::task::consume_budget().await;
        }
        if let Some(filter) = change {
            next_change = Instant::now() + seconds(between(&mut c.draw, change_every));
            switch_began = Some(Instant::now());
            shared.count(|a| a.filter_ops += 1);
            let op = serde_json::to_string(&ClientMessage::Filter { filter }).unwrap_or_default();
            if conn.send_text(&op).await.is_err() {
                break End::Server("send failed".into());
            }
        }
    };
    if live {
        let p = &shared.presence[i];
        p.left_ms.store(now_ms(), Ordering::Relaxed);
        p.live.store(false, Ordering::Relaxed);
    }
    ended
}

/// A frame's content, owned.
fn decode(text: &str) -> Result<FrameBody, String> {
    ServerFrame::parse(text)
        .map_err(|e| e.to_string())?
        .into_body()
        .map_err(|e| e.to_string())
}

/// A filter from the pool that selects differently from `now`.
fn pick(pool: &[Watch], now: &Watch, draw: &mut Draw) -> Watch {
    let canonical = now.filter.canonical();
    for _ in 0..16 {
        let w = &pool[(draw.unit() * pool.len() as f64) as usize % pool.len()];
        if w.filter.canonical() != canonical {
            return w.clone();
        }
    }
    pool.iter()
        .find(|w| w.filter.canonical() != canonical)
        .unwrap_or(now)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let ms = |pass, unit| BACKOFF.delay(pass, unit).as_millis();
        assert_eq!((ms(1, 0.0), ms(1, 1.0)), (125, 250));
        assert_eq!((ms(3, 0.0), ms(3, 1.0)), (500, 1_000));
        assert_eq!((ms(10, 0.0), ms(40, 1.0)), (7_500, 15_000));
    }
}
