//! The hubs: one reader of the bus per gateway tier, fanning events out to
//! the send queues of that tier's live clients.
//!
//! A [`Tap`] is a tier's set of live subscribers, a window of its most recent
//! events, and the cursor of the newest event sent. They change under one
//! lock, and a client goes live under the same lock ([`Tap::catch_up`]), so
//! it goes live exactly where what it was given ends: every matching event
//! after its cursor is queued for it, and every event up to it came from the
//! recent window or the flow stream. That is the seam the client's backfill,
//! `since` replay and lag recovery join to ([`super::session`]).
//!
//! - The [`LiveHub`] (realtime tier) reads the bus's live fan-out. It keeps
//!   the stream order and never silently misses an event: on a
//!   [`Live::Gap`], and whenever the stream has held an event for a whole
//!   check interval that the live channel did not bring, it repairs from the
//!   stream by cursor (`flow_after`) before it sends anything newer; live
//!   entries at or below its cursor are duplicates and dropped. While Redis
//!   is unreachable it retries with backoff and reports unhealthy. Before
//!   each repair, and when the stream's end falls behind its cursor, it
//!   checks that the stream still holds what it has delivered: a stream
//!   recreated or cut short under it (Redis restarted without persistence,
//!   a failover lost the tail) is a loss of history, which it counts, logs
//!   and records in the tap ([`Tap::lost`]), which tells the live clients
//!   at once and every client catching up or resuming across it later.
//! - The [`DelayedHub`] (delayed entitlement) tails the flow stream and
//!   releases each event, in stream order, once its trade time is older than
//!   the delay; memory stays at one page however long the delay.
//!
//! Each event is parsed once, its frame text built once per tier, and each
//! client's filter applied once in the hub. The hub deals the events that
//! arrived together as one batch and then writes each matching client's
//! share itself, in one write, unless that client's writer is busy
//! ([`super::outbox`]); clients share each event through an `Arc`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::delivery::{bus_call, Delivery};
use super::metrics::GatewayMetrics;
use super::outbox::{Flusher, Outbox};
use crate::bus::{Bus, BusError, FlowEntry, Live, LiveFeed};
use crate::shutdown::Shutdown;
use flowtape_core::cursor::Cursor;
use flowtape_core::filter::{Filter, Ticker};
use flowtape_core::protocol::{LostRange, ServerMessage};

/// The most live entries dealt as one batch.
const MAX_BATCH: usize = 1024;

/// Losses of history a tap remembers, for clients that resume across them.
const LOSSES_KEPT: usize = 16;

/// A tier's live fan-out: its live subscribers, the recent events, and the
/// cursor of the newest event sent.
///
/// Subscribers are grouped by filter (by its canonical form), and the groups
/// are indexed by the tickers their filters name. For each event the hub
/// evaluates only the groups that can match it (those naming its ticker, and
/// those naming none), each once however many clients share it, and queues
/// the event straight into the matching clients' send queues ([`Outbox`]).
/// So an event wakes only the writers of the clients that want it, and no
/// per-client task sits between the hub and the socket.
///
/// A subscriber whose send queue is full is detached (it lagged): its
/// session is told the cursor of the last event queued for it and catches up
/// by itself, from [`Tap::catch_up`]'s in-memory window of recent events
/// while they cover its cursor, and from the flow stream before that. So a
/// burst costs a lagging client no Redis reads, and nothing is skipped.
pub(crate) struct Tap {
    inner: Mutex<TapInner>,
    /// How many recent events the tap keeps for catching up.
    recent_cap: usize,
    metrics: Arc<GatewayMetrics>,
}

struct TapInner {
    last: Cursor,
    /// Every event after `floor` is in `recent`.
    floor: Cursor,
    recent: VecDeque<Arc<Delivery>>,
    /// The latest losses of history the hub found, oldest first.
    losses: VecDeque<LostRange>,
    /// Losses found ever: loss `k` (1-based) is told to every live
    /// subscriber when found, and a client that has been told the first
    /// `n` is told the others when it catches up ([`Tap::catch_up`]).
    losses_found: u64,
    next_id: u64,
    subscribers: usize,
    /// Slots; a group with no subscribers is removed and its slot reused.
    groups: Vec<Option<Group>>,
    free: Vec<usize>,
    /// Canonical filter → its group.
    by_filter: HashMap<String, usize>,
    /// Ticker → the groups whose filters name it.
    by_ticker: HashMap<Ticker, Vec<usize>>,
    /// Groups whose filters name no ticker.
    any_ticker: Vec<usize>,
    /// Subscriber id → its group.
    group_of: HashMap<u64, usize>,
}

struct Group {
    filter: Filter,
    canonical: String,
    subs: Vec<Subscriber>,
}

struct Subscriber {
    id: u64,
    out: Outbox,
    /// The newest event queued for this subscriber (or the cursor it
    /// attached or changed filter at). Every event between it and the
    /// tap's cursor was filtered out.
    cursor: Cursor,
    /// Told the cursor to resume from when the subscriber lags, and how
    /// many losses it has been told of.
    lagged: Option<oneshot::Sender<(Cursor, u64)>>,
    /// The events of the batch being dealt that are due to it; empty
    /// between batches.
    due: Vec<Arc<Delivery>>,
}

/// A hub's scratch space for dealing batches, reused from batch to batch.
#[derive(Default)]
pub(crate) struct FanOut {
    /// The subscribers (group, index) dealt an event in this batch.
    dealt: Vec<(usize, usize)>,
    /// The subscribers with events queued in this batch, to flush once.
    touched: Vec<Outbox>,
    lagged: Vec<u64>,
    flusher: Flusher,
    /// A second thread that flushes half of a large batch's clients.
    helper: Option<std::sync::mpsc::Sender<Vec<Outbox>>>,
}

/// Batches that touch at least this many clients are flushed by two threads.
const SPLIT_AT: usize = 32;

impl FanOut {
    /// Flushes every touched client once: half of them on the helper thread
    /// when there are many and a second core, so an event for hundreds of
    /// clients reaches them about twice as fast; the rest here.
    fn flush(&mut self) {
        let n = self.touched.len();
        if n >= SPLIT_AT && self.helper().is_some() {
            let half = self.touched.split_off(n / 2);
            if let Some(Err(back)) = self.helper.as_ref().map(|h| h.send(half)) {
                self.touched.extend(back.0);
                self.helper = None;
            }
        }
        for out in self.touched.drain(..) {
            out.flush(&mut self.flusher);
        }
    }

    fn helper(&mut self) -> Option<&std::sync::mpsc::Sender<Vec<Outbox>>> {
        if self.helper.is_none() && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
        {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Outbox>>();
            let spawned = std::thread::Builder::new()
                .name("flowtape-fanout".into())
                .spawn(move || {
                    let mut flusher = Flusher::default();
                    // Ends when the hub drops its FanOut.
                    while let Ok(batch) = rx.recv() {
                        for out in batch {
                            out.flush(&mut flusher);
                        }
                    }
                });
            self.helper = spawned.is_ok().then_some(tx);
        }
        self.helper.as_ref()
    }
}

/// Why a live subscription ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LiveEnd {
    /// The send queue was full: catch up from this cursor, having been
    /// told of this many losses.
    Lagged(Cursor, u64),
    /// The tier's hub stopped.
    Closed,
}

/// One live subscription; unsubscribes when dropped.
pub(crate) struct LiveRx {
    id: u64,
    lagged: oneshot::Receiver<(Cursor, u64)>,
    tap: Arc<Tap>,
}

impl LiveRx {
    /// Waits until the subscription ends.
    pub(crate) async fn ended(&mut self) -> LiveEnd {
        match (&mut self.lagged).await {
            Ok((cursor, told)) => LiveEnd::Lagged(cursor, told),
            Err(_) => LiveEnd::Closed,
        }
    }

    /// Applies `filter` from the next event on.
    pub(crate) fn set_filter(&self, filter: &Filter) {
        let mut inner = self.tap.lock();
        let last = inner.last;
        if let Some(mut sub) = inner.remove(self.id) {
            sub.cursor = sub.cursor.max(last);
            inner.add(filter, sub);
        }
    }
}

impl Drop for LiveRx {
    fn drop(&mut self) {
        self.tap.lock().remove(self.id);
    }
}

/// The next step of a client catching up to live ([`Tap::catch_up`]).
pub(crate) enum CatchUp {
    /// Caught up: live events now go straight to the client's send queue.
    Live(LiveRx),
    /// The next events after the cursor, oldest first, unfiltered.
    Recent(Vec<Arc<Delivery>>),
    /// The cursor is older than the recent events: read the stream up to
    /// this cursor first.
    Stream(Cursor),
    /// Losses found since the client was last told: tell it those that
    /// reach past its cursor (oldest first), which makes it told of `found`.
    Lost { ranges: Vec<LostRange>, found: u64 },
}

/// The status that tells a client of a loss.
pub(crate) fn loss_status(lost: LostRange) -> ServerMessage {
    ServerMessage::Status {
        feed: None,
        retention: None,
        notice: Some(lost.notice()),
        lost: Some(lost),
        live: false,
    }
}

impl TapInner {
    /// Adds a subscriber to its filter's group, creating the group if needed.
    fn add(&mut self, filter: &Filter, sub: Subscriber) {
        let canonical = filter.canonical();
        let g = match self.by_filter.get(&canonical) {
            Some(&g) => g,
            None => {
                let group = Group {
                    filter: filter.clone(),
                    canonical: canonical.clone(),
                    subs: Vec::new(),
                };
                let g = match self.free.pop() {
                    Some(g) => {
                        self.groups[g] = Some(group);
                        g
                    }
                    None => {
                        self.groups.push(Some(group));
                        self.groups.len() - 1
                    }
                };
                if filter.tickers().is_empty() {
                    self.any_ticker.push(g);
                }
                for t in filter.tickers() {
                    self.by_ticker.entry(*t).or_default().push(g);
                }
                self.by_filter.insert(canonical, g);
                g
            }
        };
        self.group_of.insert(sub.id, g);
        self.subscribers += 1;
        if let Some(group) = self.groups[g].as_mut() {
            group.subs.push(sub);
        }
    }

    /// The kept losses after the first `told` found that reach past `cursor`.
    fn losses_since(&self, told: u64, cursor: Cursor) -> Vec<LostRange> {
        let unseen = self.losses_found.saturating_sub(told);
        let skip = self
            .losses
            .len()
            .saturating_sub(usize::try_from(unseen).unwrap_or(usize::MAX));
        self.losses
            .iter()
            .skip(skip)
            .filter(|l| l.reaches_past(cursor))
            .copied()
            .collect()
    }

    /// Takes a subscriber out, dropping its group if it was the last.
    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let g = self.group_of.remove(&id)?;
        let group = self.groups[g].as_mut()?;
        let at = group.subs.iter().position(|s| s.id == id)?;
        let sub = group.subs.swap_remove(at);
        self.subscribers -= 1;
        if group.subs.is_empty() {
            self.drop_group(g);
        }
        Some(sub)
    }

    fn drop_group(&mut self, g: usize) {
        let Some(group) = self.groups[g].take() else {
            return;
        };
        self.by_filter.remove(&group.canonical);
        self.any_ticker.retain(|&x| x != g);
        for t in group.filter.tickers() {
            if let Some(groups) = self.by_ticker.get_mut(t) {
                groups.retain(|&x| x != g);
                if groups.is_empty() {
                    self.by_ticker.remove(t);
                }
            }
        }
        self.free.push(g);
    }
}

impl Tap {
    pub(crate) fn new(start: Cursor, recent_cap: usize, metrics: Arc<GatewayMetrics>) -> Tap {
        Tap {
            inner: Mutex::new(TapInner {
                last: start,
                floor: start,
                recent: VecDeque::new(),
                losses: VecDeque::new(),
                losses_found: 0,
                next_id: 0,
                subscribers: 0,
                groups: Vec::new(),
                free: Vec::new(),
                by_filter: HashMap::new(),
                by_ticker: HashMap::new(),
                any_ticker: Vec::new(),
                group_of: HashMap::new(),
            }),
            recent_cap,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TapInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One step of bringing a client whose stream covers `cursor`, and who
    /// has been told of the first `told` losses found, to live. Either the
    /// client is subscribed, atomically with the tap's cursor (so no event
    /// falls between what it was given and what arrives live), or it gets
    /// the losses it has not been told of, or the next `max` events to send
    /// first, or it is told to read the stream.
    pub(crate) fn catch_up(
        self: &Arc<Self>,
        cursor: Cursor,
        told: u64,
        filter: &Filter,
        out: &Outbox,
        max: usize,
    ) -> CatchUp {
        let mut inner = self.lock();
        if told < inner.losses_found {
            return CatchUp::Lost {
                ranges: inner.losses_since(told, cursor),
                found: inner.losses_found,
            };
        }
        if cursor < inner.floor {
            return CatchUp::Stream(inner.last);
        }
        let after = inner.recent.partition_point(|d| d.cursor <= cursor);
        if after < inner.recent.len() {
            let end = inner.recent.len().min(after + max.max(1));
            return CatchUp::Recent(inner.recent.range(after..end).cloned().collect());
        }
        let (tx, rx) = oneshot::channel();
        let id = inner.next_id;
        inner.next_id += 1;
        let sub = Subscriber {
            id,
            out: out.clone(),
            cursor,
            lagged: Some(tx),
            due: Vec::new(),
        };
        inner.add(filter, sub);
        drop(inner);
        CatchUp::Live(LiveRx {
            id,
            lagged: rx,
            tap: self.clone(),
        })
    }

    /// The cursor of the newest event sent (or skipped).
    pub(crate) fn last(&self) -> Cursor {
        self.lock().last
    }

    /// The kept losses that reach past `cursor`, and how many were found:
    /// what a client resuming from `cursor` is told.
    pub(crate) fn losses_for(&self, cursor: Cursor) -> (Vec<LostRange>, u64) {
        let inner = self.lock();
        (inner.losses_since(0, cursor), inner.losses_found)
    }

    /// Records a loss of history the hub found, and tells every live
    /// subscriber. A loss already recorded (the same `after`) is not
    /// counted again; its end is filled in if it was open. Returns whether
    /// it is new.
    pub(crate) fn lost(&self, lost: LostRange) -> bool {
        let mut inner = self.lock();
        if let Some(known) = inner.losses.iter_mut().find(|l| l.after == lost.after) {
            if known.before.is_none() {
                if let Some(before) = lost.before {
                    known.before = Some(before);
                    self.count_span(lost.after, before);
                }
            }
            return false;
        }
        inner.losses.push_back(lost);
        if inner.losses.len() > LOSSES_KEPT {
            inner.losses.pop_front();
        }
        inner.losses_found += 1;
        self.metrics
            .history_lost_live
            .fetch_add(1, Ordering::Relaxed);
        if let Some(before) = lost.before {
            self.count_span(lost.after, before);
        }
        let status = loss_status(lost);
        let mut full = Vec::new();
        for group in inner.groups.iter().flatten() {
            for sub in &group.subs {
                if sub.out.message(&status).is_err() {
                    full.push(sub.id);
                }
            }
        }
        // A subscriber whose queue is full catches up, and is told then.
        let told = inner.losses_found - 1;
        for id in full {
            if let Some(mut sub) = inner.remove(id) {
                if let Some(tell) = sub.lagged.take() {
                    let _ = tell.send((sub.cursor, told));
                }
            }
        }
        true
    }

    fn count_span(&self, after: Cursor, before: Cursor) {
        self.metrics
            .history_lost_ms
            .fetch_add(before.ms.saturating_sub(after.ms), Ordering::Relaxed);
    }

    /// Deals a batch of events, oldest first, to the matching subscribers'
    /// send queues, then flushes each subscriber that got any, once: at
    /// peaks a client gets its share of a whole batch in one write. Each
    /// filter is evaluated once per event for all the clients that share
    /// it, and each client's share is queued at once.
    fn publish(&self, batch: &[Arc<Delivery>], fan: &mut FanOut) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(open) = inner.losses.back_mut().filter(|l| l.before.is_none()) {
            // The first event after a loss that reached up to now ends it.
            if let Some(d) = batch.iter().find(|d| d.cursor > open.after) {
                open.before = Some(d.cursor);
                self.count_span(open.after, d.cursor);
            }
        }
        let mut filtered = 0usize;
        for d in batch {
            inner.last = inner.last.max(d.cursor);
            inner.recent.push_back(d.clone());
            while inner.recent.len() > self.recent_cap {
                if let Some(old) = inner.recent.pop_front() {
                    inner.floor = old.cursor;
                }
            }
            let named = Ticker::parse(&d.event.sym)
                .and_then(|t| inner.by_ticker.get(&t))
                .map_or(&[][..], Vec::as_slice);
            let mut dealt = 0usize;
            // Groups found by the event's ticker are known to list it.
            let groups = named.iter().map(|&g| (g, true));
            for (g, listed) in groups.chain(inner.any_ticker.iter().map(|&g| (g, false))) {
                let Some(group) = inner.groups[g].as_mut() else {
                    continue;
                };
                let wanted = if listed {
                    group.filter.matches_listed(&d.event)
                } else {
                    group.filter.matches(&d.event)
                };
                if !wanted {
                    continue;
                }
                for (i, sub) in group.subs.iter_mut().enumerate() {
                    if d.cursor <= sub.cursor {
                        continue;
                    }
                    dealt += 1;
                    if sub.due.is_empty() {
                        fan.dealt.push((g, i));
                    }
                    sub.due.push(d.clone());
                }
            }
            filtered += inner.subscribers - dealt;
        }
        for (g, i) in fan.dealt.drain(..) {
            let Some(sub) = inner.groups[g].as_mut().and_then(|g| g.subs.get_mut(i)) else {
                continue;
            };
            let queued = sub.out.queue_live(&mut sub.due);
            if let Some(last) = queued.last {
                sub.cursor = last;
            }
            if queued.flush {
                fan.touched.push(sub.out.clone());
            }
            if !sub.due.is_empty() {
                sub.due.clear();
                fan.lagged.push(sub.id);
            }
        }
        for id in fan.lagged.drain(..) {
            if let Some(mut sub) = inner.remove(id) {
                if let Some(tell) = sub.lagged.take() {
                    let _ = tell.send((sub.cursor, inner.losses_found));
                }
            }
        }
        drop(guard);
        self.metrics
            .events_filtered
            .fetch_add(filtered as u64, Ordering::Relaxed);
        fan.flush();
    }

    /// Moves past an entry that is not a flow event.
    fn skip(&self, cursor: Cursor) {
        let mut inner = self.lock();
        inner.last = inner.last.max(cursor);
    }
}

/// Whether the hubs can reach the bus, for `/healthz`.
#[derive(Debug)]
pub(crate) struct HubHealth {
    ok: AtomicBool,
}

impl HubHealth {
    pub(crate) fn new() -> HubHealth {
        HubHealth {
            ok: AtomicBool::new(true),
        }
    }

    pub(crate) fn is_ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    fn set(&self, ok: bool) {
        self.ok.store(ok, Ordering::Relaxed);
    }
}

/// Sleeps for `d`, or less if shutdown comes first; false on shutdown.
async fn pause(d: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.wait() => false,
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The realtime tier's reader of the bus.
pub(crate) struct LiveHub {
    pub bus: Bus,
    pub live: LiveFeed,
    pub tap: Arc<Tap>,
    pub metrics: Arc<GatewayMetrics>,
    pub health: Arc<HubHealth>,
    pub repair_check: Duration,
    pub page_size: usize,
}

impl LiveHub {
    pub(crate) async fn run(mut self, shutdown: Shutdown) {
        let mut check = tokio::time::interval(self.repair_check);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The stream's newest id at the previous check, if we had not delivered it then.
        let mut probe: Option<Cursor> = None;
        // The cursor last checked for a loss because the stream ended before it.
        let mut judged: Option<Cursor> = None;
        let mut batch = Vec::new();
        let mut fan = FanOut::default();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                msg = self.live.recv() => match msg {
                    Some(Live::Entry(entry)) => {
                        // What is already waiting goes out with it, as one batch.
                        let mut next = Some(entry);
                        let mut after = None;
                        while let Some(entry) = next.take() {
                            self.take(&entry, false, &mut batch);
                            if batch.len() >= MAX_BATCH {
                                break;
                            }
                            match self.live.try_recv() {
                                Some(Live::Entry(entry)) => next = Some(entry),
                                other => after = other,
                            }
                        }
                        self.tap.publish(&batch, &mut fan);
                        batch.clear();
                        if let Some(Live::Gap) = after {
                            tracing::info!(after = %self.tap.last(), "live gap; repairing from the stream");
                            self.repair(&shutdown, &mut fan).await;
                        }
                    }
                    Some(Live::Gap) => {
                        tracing::info!(after = %self.tap.last(), "live gap; repairing from the stream");
                        self.repair(&shutdown, &mut fan).await;
                    }
                    None => {
                        if !self.resubscribe(&shutdown).await {
                            return;
                        }
                        self.repair(&shutdown, &mut fan).await;
                    }
                },
                _ = check.tick() => match bus_call(self.bus.flow_bounds()).await {
                    Ok(bounds) => {
                        self.health.set(true);
                        let last = self.tap.last();
                        // The stream ends before what was delivered: it was
                        // recreated or cut short under the hub.
                        if bounds.last.map_or(last > Cursor::ZERO, |l| l < last)
                            && judged != Some(last)
                        {
                            judged = Some(last);
                            self.judge().await;
                        }
                        if probe.is_some_and(|p| p > last) {
                            tracing::warn!(after = %self.tap.last(), "live channel missed events; repairing");
                            self.repair(&shutdown, &mut fan).await;
                        }
                        probe = bounds.last.filter(|l| *l > self.tap.last());
                    }
                    Err(e) => self.failed(&e),
                },
            }
        }
    }

    fn failed(&self, e: &BusError) {
        self.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
        if self.health.is_ok() {
            tracing::warn!("gateway hub cannot reach the bus: {e}");
        }
        self.health.set(false);
    }

    /// Checks that the stream still holds the history up to the tap's
    /// cursor; a loss is recorded in the tap, which tells the live clients.
    /// False if the bus could not be asked.
    async fn judge(&self) -> bool {
        let last = self.tap.last();
        match bus_call(self.bus.flow_continuity(last, true)).await {
            Ok(continuity) => {
                if let Some(lost) = continuity.lost.filter(|lost| self.tap.lost(*lost)) {
                    let before = lost.before.map(|b| b.to_string());
                    tracing::warn!(
                        after = %lost.after,
                        before = before.as_deref().unwrap_or("none yet"),
                        delivered = %last,
                        "the flow stream lost history (Redis restarted without persistence, or a failover lost the tail); telling the clients"
                    );
                }
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    /// Sends every stream entry after the tap's cursor, page by page, until
    /// caught up; retries with backoff while the bus is unreachable. First
    /// checks that the stream did not lose what was delivered.
    async fn repair(&mut self, shutdown: &Shutdown, fan: &mut FanOut) {
        self.metrics.gap_repairs.fetch_add(1, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(50);
        let mut judged = false;
        while !shutdown.is_triggered() {
            judged = judged || self.judge().await;
            if judged {
                match bus_call(self.bus.flow_after(self.tap.last(), self.page_size)).await {
                    Ok(page) => {
                        self.health.set(true);
                        backoff = Duration::from_millis(50);
                        let full = page.len() >= self.page_size;
                        let mut batch = Vec::with_capacity(page.len());
                        for entry in &page {
                            self.take(entry, true, &mut batch);
                        }
                        self.tap.publish(&batch, fan);
                        if !full {
                            return;
                        }
                        continue;
                    }
                    Err(e) => self.failed(&e),
                }
            }
            if !pause(backoff, shutdown).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Subscribes again after the live feed ended; false on shutdown.
    async fn resubscribe(&mut self, shutdown: &Shutdown) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            match bus_call(self.bus.subscribe_live()).await {
                Ok(live) => {
                    self.live = live;
                    return true;
                }
                Err(e) => self.failed(&e),
            }
            if !pause(backoff, shutdown).await {
                return false;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Parses a bus entry into `batch`; counts and skips one that is not a
    /// flow event, and one the tap has already sent.
    fn take(&self, entry: &FlowEntry, repaired: bool, batch: &mut Vec<Arc<Delivery>>) {
        let last = batch.last().map_or_else(|| self.tap.last(), |d| d.cursor);
        if entry.id <= last {
            return;
        }
        let d = match Delivery::from_entry(entry) {
            Ok(d) => d,
            Err(e) => {
                self.metrics
                    .events_malformed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %entry.id, "skipping a flow entry that is not a flow event: {e}");
                self.tap.skip(entry.id);
                return;
            }
        };
        self.metrics.events_in.fetch_add(1, Ordering::Relaxed);
        if repaired {
            self.metrics.events_repaired.fetch_add(1, Ordering::Relaxed);
        }
        let now = crate::bus::now_ms();
        self.metrics
            .stream_to_gateway
            .observe(Duration::from_millis(now.saturating_sub(entry.id.ms)));
        let ts = u64::try_from(d.event.ts).unwrap_or(0);
        self.metrics
            .feed_to_stream
            .observe(Duration::from_millis(entry.id.ms.saturating_sub(ts)));
        batch.push(Arc::new(d));
    }
}

/// The delayed tier: releases stream events once `ts + delay` has passed.
pub(crate) struct DelayedHub {
    pub bus: Bus,
    pub tap: Arc<Tap>,
    pub metrics: Arc<GatewayMetrics>,
    pub health: Arc<HubHealth>,
    pub delay: Duration,
    pub poll: Duration,
    pub page_size: usize,
}

impl DelayedHub {
    /// Where a delayed tier starts: entries committed before `now - delay`
    /// count as released (a trade is committed after it happens).
    pub(crate) fn start_cursor(delay: Duration) -> Cursor {
        let delay_ms = delay.as_millis().min(u128::from(u64::MAX)) as u64;
        Cursor::new(crate::bus::now_ms().saturating_sub(delay_ms), 0)
    }

    pub(crate) async fn run(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let delay_ms = i64::try_from(self.delay.as_millis()).unwrap_or(i64::MAX);
        let mut batch = Vec::new();
        let mut fan = FanOut::default();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            // Release everything due, page by page.
            loop {
                let page =
                    match bus_call(self.bus.flow_after(self.tap.last(), self.page_size)).await {
                        Ok(page) => {
                            self.health.set(true);
                            page
                        }
                        Err(e) => {
                            self.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!("delayed hub: {e}");
                            self.health.set(false);
                            break;
                        }
                    };
                let full = page.len() >= self.page_size;
                let now = i64::try_from(crate::bus::now_ms()).unwrap_or(i64::MAX);
                let mut held = false;
                for entry in &page {
                    match Delivery::from_entry(entry) {
                        Ok(d) if d.event.ts.saturating_add(delay_ms) <= now => {
                            batch.push(Arc::new(d))
                        }
                        Ok(_) => {
                            held = true;
                            break;
                        }
                        // The live hub counts and logs malformed entries once.
                        Err(_) => self.tap.skip(entry.id),
                    }
                }
                self.tap.publish(&batch, &mut fan);
                batch.clear();
                if held || !full || shutdown.is_triggered() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::event::FlowEvent;

    fn delivery(ms: u64, sym: &str) -> Arc<Delivery> {
        let event = FlowEvent {
            sym: sym.into(),
            ..flowtape_core::event::sample_event()
        };
        let entry = FlowEntry {
            id: Cursor::new(ms, 0),
            json: event.to_stored_json().into(),
        };
        Arc::new(Delivery::from_entry(&entry).unwrap_or_else(|e| panic!("{e}")))
    }

    fn filter(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tap(recent: usize) -> (Arc<Tap>, Arc<GatewayMetrics>) {
        let metrics = Arc::new(GatewayMetrics::default());
        (
            Arc::new(Tap::new(Cursor::ZERO, recent, metrics.clone())),
            metrics,
        )
    }

    /// A client's send queue with no socket (the hub only queues to it).
    fn queue(budget: usize, metrics: Arc<GatewayMetrics>) -> (Outbox, super::super::outbox::Inbox) {
        let config = super::super::outbox::tests::test_config();
        let memory = super::super::outbox::tests::unlimited(&metrics);
        super::super::outbox::channel(budget, &memory, &config, None, metrics)
    }

    fn publish(tap: &Tap, d: Arc<Delivery>) {
        tap.publish(&[d], &mut FanOut::default());
    }

    fn c(ms: u64) -> Cursor {
        Cursor::new(ms, 0)
    }

    /// Subscribes at `cursor`, which must be caught up.
    fn live(tap: &Arc<Tap>, cursor: Cursor, f: &Filter, out: &Outbox) -> LiveRx {
        match tap.catch_up(cursor, 0, f, out, 100) {
            CatchUp::Live(rx) => rx,
            _ => panic!("not caught up at {cursor}"),
        }
    }

    #[tokio::test]
    async fn events_go_straight_to_matching_queues_and_a_full_queue_lags_with_its_cursor() {
        let (tap, metrics) = tap(100);
        let frame_len = delivery(1, "AAPL").frame.len();
        // Room for two events.
        let (aapl_out, mut aapl_in) = queue(frame_len * 2, metrics.clone());
        let (tsla_out, mut tsla_in) = queue(1 << 20, metrics.clone());
        let (aapl_f, tsla_f) = (filter("AAPL"), filter("TSLA"));
        let mut aapl = live(&tap, Cursor::ZERO, &aapl_f, &aapl_out);
        let _tsla = live(&tap, Cursor::ZERO, &tsla_f, &tsla_out);
        publish(&tap, delivery(1, "AAPL"));
        publish(&tap, delivery(2, "TSLA"));
        publish(&tap, delivery(3, "AAPL"));
        assert_eq!(tap.last(), c(3));
        assert_eq!(metrics.events_filtered.load(Ordering::Relaxed), 3);
        assert_eq!(tsla_in.take_cursors(), vec![c(2)]);
        // A third AAPL event overflows AAPL's queue: it is detached, told to
        // resume after the last event it was dealt, and gets nothing more.
        publish(&tap, delivery(4, "AAPL"));
        publish(&tap, delivery(5, "AAPL"));
        assert_eq!(aapl.ended().await, LiveEnd::Lagged(c(3), 0));
        assert_eq!(aapl_in.take_cursors(), vec![c(1), c(3)]);
        assert_eq!(tap.lock().subscribers, 1);
        // It catches up from the recent events, then goes live at the seam.
        let CatchUp::Recent(batch) = tap.catch_up(c(3), 0, &aapl_f, &aapl_out, 1) else {
            panic!("expected recent events");
        };
        assert_eq!(
            batch.iter().map(|d| d.cursor).collect::<Vec<_>>(),
            vec![c(4)]
        );
        let CatchUp::Recent(batch) = tap.catch_up(c(4), 0, &aapl_f, &aapl_out, 10) else {
            panic!("expected recent events");
        };
        assert_eq!(
            batch.iter().map(|d| d.cursor).collect::<Vec<_>>(),
            vec![c(5)]
        );
        let _aapl = live(&tap, c(5), &aapl_f, &aapl_out);
        publish(&tap, delivery(6, "AAPL"));
        assert_eq!(aapl_in.take_cursors(), vec![c(6)]);
    }

    #[tokio::test]
    async fn a_cursor_older_than_the_recent_window_reads_the_stream_first() {
        let (tap, metrics) = tap(2);
        let (out, _inbox) = queue(1 << 20, metrics);
        let f = filter("");
        for ms in 1..=4 {
            publish(&tap, delivery(ms, "AAPL"));
        }
        // The window holds 3 and 4: a client at 1 must read (1, 4] from the stream.
        assert!(
            matches!(tap.catch_up(c(1), 0, &f, &out, 10), CatchUp::Stream(upto) if upto == c(4))
        );
        assert!(matches!(tap.catch_up(c(2), 0, &f, &out, 10), CatchUp::Recent(b) if b.len() == 2));
        // A cursor ahead of the tap (from another gateway) goes live and is
        // not sent what it already has.
        let (out, mut inbox) = queue(1 << 20, Arc::new(GatewayMetrics::default()));
        let _rx = live(&tap, c(6), &f, &out);
        publish(&tap, delivery(5, "AAPL"));
        publish(&tap, delivery(7, "AAPL"));
        assert_eq!(inbox.take_cursors(), vec![c(7)]);
    }

    #[tokio::test]
    async fn a_filter_change_applies_from_the_next_event_and_dropping_unsubscribes() {
        let (tap, metrics) = tap(8);
        let (out, mut inbox) = queue(1 << 20, metrics.clone());
        let (other_out, mut other_inbox) = queue(1 << 20, metrics.clone());
        let rx = live(&tap, Cursor::ZERO, &filter("AAPL"), &out);
        // Another client with the same filter, spelled differently, shares its group.
        let other = live(&tap, Cursor::ZERO, &filter("aapl"), &other_out);
        assert_eq!(tap.lock().by_filter.len(), 1);
        publish(&tap, delivery(1, "TSLA"));
        rx.set_filter(&filter("TSLA"));
        assert_eq!(tap.lock().by_filter.len(), 2);
        publish(&tap, delivery(2, "TSLA"));
        publish(&tap, delivery(3, "AAPL"));
        assert_eq!(inbox.take_cursors(), vec![c(2)]);
        assert_eq!(other_inbox.take_cursors(), vec![c(3)]);
        assert_eq!(metrics.events_filtered.load(Ordering::Relaxed), 4);
        drop(rx);
        drop(other);
        let inner = tap.lock();
        assert_eq!(inner.subscribers, 0);
        assert!(
            inner.by_filter.is_empty() && inner.by_ticker.is_empty() && inner.group_of.is_empty()
        );
    }

    #[tokio::test]
    async fn a_batch_for_many_clients_reaches_every_one_with_the_helper_thread() {
        let (tap, metrics) = tap(8);
        let f = filter("AAPL");
        let clients: Vec<_> = (0..2 * SPLIT_AT + 1)
            .map(|_| {
                let (out, inbox) = queue(1 << 20, metrics.clone());
                let rx = live(&tap, Cursor::ZERO, &f, &out);
                (rx, inbox)
            })
            .collect();
        let mut fan = FanOut::default();
        tap.publish(&[delivery(1, "AAPL"), delivery(2, "TSLA")], &mut fan);
        tap.publish(&[delivery(3, "AAPL")], &mut fan);
        for (_rx, mut inbox) in clients {
            assert_eq!(inbox.take_cursors(), vec![c(1), c(3)]);
        }
    }

    #[tokio::test]
    async fn filters_without_tickers_see_every_ticker_and_named_ones_only_theirs() {
        let (tap, metrics) = tap(8);
        let (all_out, mut all_in) = queue(1 << 20, metrics.clone());
        let (big_out, mut big_in) = queue(1 << 20, metrics.clone());
        let (nv_out, mut nv_in) = queue(1 << 20, metrics.clone());
        let _all = live(&tap, Cursor::ZERO, &filter(""), &all_out);
        let _big = live(&tap, Cursor::ZERO, &filter("-TSLA premium>=1"), &big_out);
        let _nv = live(&tap, Cursor::ZERO, &filter("NVDA AMD"), &nv_out);
        publish(&tap, delivery(1, "nvda"));
        publish(&tap, delivery(2, "TSLA"));
        publish(&tap, delivery(3, "AMD"));
        assert_eq!(all_in.take_cursors(), vec![c(1), c(2), c(3)]);
        assert_eq!(big_in.take_cursors(), vec![c(1), c(3)]);
        assert_eq!(nv_in.take_cursors(), vec![c(1), c(3)]);
    }

    #[tokio::test]
    async fn filters_with_or_are_indexed_by_every_alternative_or_by_none() {
        // Every delivery is the sample: an unusual call sweep.
        let (tap, metrics) = tap(8);
        let (two_out, mut two_in) = queue(1 << 20, metrics.clone());
        let (any_out, mut any_in) = queue(1 << 20, metrics.clone());
        let (inner_out, mut inner_in) = queue(1 << 20, metrics.clone());
        let _two = live(&tap, Cursor::ZERO, &filter("AAPL puts or TSLA"), &two_out);
        // Names QQQ, but matches any ticker through its other alternative.
        let _any = live(&tap, Cursor::ZERO, &filter("QQQ or unusual"), &any_out);
        let _inner = live(
            &tap,
            Cursor::ZERO,
            &filter("TSLA (AAPL or sweep)"),
            &inner_out,
        );
        {
            let inner = tap.lock();
            let named = |t: &str| {
                Ticker::parse(t)
                    .and_then(|t| inner.by_ticker.get(&t))
                    .map_or(0, Vec::len)
            };
            assert_eq!((named("AAPL"), named("TSLA"), named("QQQ")), (1, 2, 0));
            assert_eq!(inner.any_ticker.len(), 1);
        }
        publish(&tap, delivery(1, "AAPL"));
        publish(&tap, delivery(2, "TSLA"));
        publish(&tap, delivery(3, "NVDA"));
        assert_eq!(two_in.take_cursors(), vec![c(2)]);
        assert_eq!(any_in.take_cursors(), vec![c(1), c(2), c(3)]);
        assert_eq!(inner_in.take_cursors(), vec![c(2)]);
    }

    /// The statuses in a client's queue, as JSON.
    fn statuses(inbox: &mut super::super::outbox::Inbox) -> Vec<serde_json::Value> {
        inbox
            .take_texts()
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect()
    }

    fn loss(after: u64, before: Option<u64>) -> LostRange {
        LostRange {
            after: c(after),
            before: before.map(c),
        }
    }

    #[tokio::test]
    async fn a_loss_is_told_to_live_clients_once_and_to_others_when_they_catch_up() {
        let (tap, metrics) = tap(8);
        let f = filter("");
        let (out, mut inbox) = queue(1 << 20, metrics.clone());
        let _rx = live(&tap, Cursor::ZERO, &f, &out);
        publish(&tap, delivery(1, "AAPL"));
        publish(&tap, delivery(2, "AAPL"));
        // Found with no event after it yet; found again: counted once.
        assert!(tap.lost(loss(2, None)));
        assert!(!tap.lost(loss(2, None)));
        assert_eq!(metrics.history_lost_live.load(Ordering::Relaxed), 1);
        let told = statuses(&mut inbox);
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["lost"], serde_json::json!({"after": "2-0"}));
        // The next event ends it; its span is counted.
        publish(&tap, delivery(7, "AAPL"));
        assert_eq!(tap.losses_for(c(1)), (vec![loss(2, Some(7))], 1));
        assert_eq!(tap.losses_for(c(7)), (vec![], 1));
        assert_eq!(metrics.history_lost_ms.load(Ordering::Relaxed), 5);
        // A client that has not been told (it was catching up) is told
        // before it goes live, if the loss reaches past its cursor.
        let (other, _other_in) = queue(1 << 20, metrics.clone());
        match tap.catch_up(c(2), 0, &f, &other, 10) {
            CatchUp::Lost { ranges, found } => {
                assert_eq!((ranges, found), (vec![loss(2, Some(7))], 1));
            }
            _ => panic!("expected the loss first"),
        }
        assert!(
            matches!(tap.catch_up(c(7), 0, &f, &other, 10), CatchUp::Lost { ranges, .. } if ranges.is_empty())
        );
        assert!(matches!(
            tap.catch_up(c(7), 1, &f, &other, 10),
            CatchUp::Live(_)
        ));
    }

    #[tokio::test]
    async fn a_client_too_full_to_be_told_of_a_loss_catches_up_and_is_told_then() {
        let (tap, metrics) = tap(8);
        let f = filter("");
        let frame_len = delivery(1, "AAPL").frame.len();
        let (out, _inbox) = queue(frame_len, metrics.clone());
        let mut rx = live(&tap, Cursor::ZERO, &f, &out);
        publish(&tap, delivery(1, "AAPL"));
        assert!(tap.lost(loss(1, None)));
        assert_eq!(rx.ended().await, LiveEnd::Lagged(c(1), 0));
        assert!(matches!(
            tap.catch_up(c(1), 0, &f, &out, 10),
            CatchUp::Lost { found: 1, .. }
        ));
    }
}
