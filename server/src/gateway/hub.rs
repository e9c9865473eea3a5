//! The hubs: one reader of the bus per gateway tier, fanning events out to
//! every client task of that tier.
//!
//! A [`Tap`] is a tier's set of subscribers plus the cursor of the newest
//! event sent. Both change under one lock, and a client subscribes under the
//! same lock, so a subscriber learns exactly where its live feed starts: every
//! matching event after the returned cursor will arrive on its receiver, and
//! every event up to it is in the flow stream. That is the seam the client's
//! backfill / `since` replay joins to ([`super::session`]).
//!
//! - The [`LiveHub`] (realtime tier) reads the bus's live fan-out. It keeps
//!   the stream order and never silently misses an event: on a
//!   [`Live::Gap`], and whenever the stream has held an event for a whole
//!   check interval that the live channel did not bring, it repairs from the
//!   stream by cursor (`flow_after`) before it sends anything newer; live
//!   entries at or below its cursor are duplicates and dropped. While Redis
//!   is unreachable it retries with backoff and reports unhealthy.
//! - The [`DelayedHub`] (delayed entitlement) tails the flow stream and
//!   releases each event, in stream order, once its trade time is older than
//!   the delay; memory stays at one page however long the delay.
//!
//! Each event is parsed once, its frame text built once per tier, and each
//! client's filter applied once in the hub; only matching clients are woken,
//! and they share the event through an `Arc`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::metrics::GatewayMetrics;
use crate::bus::{Bus, BusError, FlowEntry, Live, LiveFeed};
use crate::cursor::Cursor;
use crate::event::FlowEvent;
use crate::filter::Filter;
use crate::protocol::event_frame;
use crate::shutdown::Shutdown;

/// A bus call that takes longer than this counts as failed.
pub(crate) const BUS_TIMEOUT: Duration = Duration::from_secs(5);

/// One event ready to send: parsed for filters, framed once.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub cursor: Cursor,
    pub event: FlowEvent,
    /// The `event` frame text.
    pub frame: Utf8Bytes,
    /// When the gateway had it ready.
    pub at: Instant,
}

impl Delivery {
    pub(crate) fn from_entry(entry: &FlowEntry) -> Result<Delivery, serde_json::Error> {
        let cursor = entry.id.to_string();
        let frame = event_frame(&cursor, &entry.json);
        let mut event: FlowEvent = serde_json::from_str(&entry.json)?;
        event.id = cursor;
        Ok(Delivery {
            cursor: entry.id,
            event,
            frame: frame.into(),
            at: Instant::now(),
        })
    }
}

/// Runs a bus call with [`BUS_TIMEOUT`].
pub(crate) async fn bus_call<T>(
    fut: impl std::future::Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    tokio::time::timeout(BUS_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(BusError::Protocol(format!(
                "no answer within {}s",
                BUS_TIMEOUT.as_secs()
            )))
        })
}

/// A tier's live fan-out: its subscribers, each with a filter and a bounded
/// channel, and the cursor of the newest event sent.
///
/// The hub evaluates every subscriber's filter once per event and sends the
/// event only to the subscribers it matches, so an event wakes the clients
/// that want it and no others. A subscriber whose channel is full is marked
/// lagged (and gets nothing more until it resubscribes): it then resumes from
/// the stream by its own cursor, so nothing is silently skipped.
pub(crate) struct Tap {
    inner: Mutex<TapInner>,
    capacity: usize,
    metrics: Arc<GatewayMetrics>,
}

struct TapInner {
    last: Cursor,
    next_id: u64,
    subs: Vec<Subscriber>,
}

struct Subscriber {
    id: u64,
    filter: SharedFilter,
    tx: mpsc::Sender<Arc<Delivery>>,
    lagged: Arc<AtomicBool>,
}

/// A client's filter, shared between its session (which changes it) and the
/// hub (which applies it to every event).
pub(crate) type SharedFilter = Arc<RwLock<Filter>>;

/// Why a live receiver has nothing more to give.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LiveEnd {
    /// Events were dropped for this subscriber: resume from the stream.
    Lagged,
    /// The tier's hub stopped.
    Closed,
}

/// One subscriber's end of a [`Tap`]; unsubscribes when dropped.
pub(crate) struct LiveRx {
    id: u64,
    rx: mpsc::Receiver<Arc<Delivery>>,
    lagged: Arc<AtomicBool>,
    tap: Arc<Tap>,
}

impl LiveRx {
    /// The next matching event, in stream order.
    pub(crate) async fn recv(&mut self) -> Result<Arc<Delivery>, LiveEnd> {
        if self.lagged.load(Ordering::Acquire) {
            return Err(LiveEnd::Lagged);
        }
        match self.rx.recv().await {
            Some(d) => Ok(d),
            None if self.lagged.load(Ordering::Acquire) => Err(LiveEnd::Lagged),
            None => Err(LiveEnd::Closed),
        }
    }
}

impl Drop for LiveRx {
    fn drop(&mut self) {
        let id = self.id;
        self.tap.lock().subs.retain(|s| s.id != id);
    }
}

impl Tap {
    pub(crate) fn new(start: Cursor, capacity: usize, metrics: Arc<GatewayMetrics>) -> Tap {
        Tap {
            inner: Mutex::new(TapInner {
                last: start,
                next_id: 0,
                subs: Vec::new(),
            }),
            capacity: capacity.max(1),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TapInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every event matching `filter` after the returned cursor.
    pub(crate) fn subscribe(self: &Arc<Self>, filter: SharedFilter) -> (LiveRx, Cursor) {
        let (tx, rx) = mpsc::channel(self.capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subs.push(Subscriber {
            id,
            filter,
            tx,
            lagged: lagged.clone(),
        });
        let last = inner.last;
        drop(inner);
        let live = LiveRx {
            id,
            rx,
            lagged,
            tap: self.clone(),
        };
        (live, last)
    }

    /// The cursor of the newest event sent (or skipped).
    pub(crate) fn last(&self) -> Cursor {
        self.lock().last
    }

    fn publish(&self, d: Arc<Delivery>) {
        let mut inner = self.lock();
        inner.last = d.cursor;
        let mut filtered = 0u64;
        for sub in &inner.subs {
            if sub.lagged.load(Ordering::Relaxed) {
                continue;
            }
            let matches = sub.filter.read().map_or(true, |f| f.matches(&d.event));
            if !matches {
                filtered += 1;
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = sub.tx.try_send(d.clone()) {
                sub.lagged.store(true, Ordering::Release);
            }
        }
        drop(inner);
        self.metrics
            .events_filtered
            .fetch_add(filtered, Ordering::Relaxed);
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
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                msg = self.live.recv() => match msg {
                    Some(Live::Entry(entry)) => {
                        if entry.id > self.tap.last() {
                            self.take(&entry, false);
                        }
                    }
                    Some(Live::Gap) => {
                        tracing::info!(after = %self.tap.last(), "live gap; repairing from the stream");
                        self.repair(&shutdown).await;
                    }
                    None => {
                        if !self.resubscribe(&shutdown).await {
                            return;
                        }
                        self.repair(&shutdown).await;
                    }
                },
                _ = check.tick() => match bus_call(self.bus.flow_bounds()).await {
                    Ok(bounds) => {
                        self.health.set(true);
                        if probe.is_some_and(|p| p > self.tap.last()) {
                            tracing::warn!(after = %self.tap.last(), "live channel missed events; repairing");
                            self.repair(&shutdown).await;
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

    /// Sends every stream entry after the tap's cursor, page by page, until
    /// caught up; retries with backoff while the bus is unreachable.
    async fn repair(&mut self, shutdown: &Shutdown) {
        self.metrics.gap_repairs.fetch_add(1, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_triggered() {
            match bus_call(self.bus.flow_after(self.tap.last(), self.page_size)).await {
                Ok(page) => {
                    self.health.set(true);
                    backoff = Duration::from_millis(50);
                    let full = page.len() >= self.page_size;
                    for entry in &page {
                        self.take(entry, true);
                    }
                    if !full {
                        return;
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    if !pause(backoff, shutdown).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
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

    fn take(&self, entry: &FlowEntry, repaired: bool) {
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
        self.tap.publish(Arc::new(d));
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
                            self.tap.publish(Arc::new(d))
                        }
                        Ok(_) => {
                            held = true;
                            break;
                        }
                        // The live hub counts and logs malformed entries once.
                        Err(_) => self.tap.skip(entry.id),
                    }
                }
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

    fn delivery(ms: u64, sym: &str) -> Arc<Delivery> {
        let event = FlowEvent {
            sym: sym.into(),
            ..crate::event::sample_event()
        };
        let entry = FlowEntry {
            id: Cursor::new(ms, 0),
            json: event.to_stored_json().into(),
        };
        Arc::new(Delivery::from_entry(&entry).unwrap_or_else(|e| panic!("{e}")))
    }

    fn filter(text: &str) -> SharedFilter {
        Arc::new(RwLock::new(
            Filter::parse(text).unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    #[tokio::test]
    async fn only_matching_subscribers_get_an_event_and_a_full_one_is_told_it_lagged() {
        let metrics = Arc::new(GatewayMetrics::default());
        let tap = Arc::new(Tap::new(Cursor::ZERO, 2, metrics.clone()));
        let (mut aapl, start) = tap.subscribe(filter("AAPL"));
        let (mut tsla, _) = tap.subscribe(filter("TSLA"));
        assert_eq!(start, Cursor::ZERO);
        for ms in 1..=2 {
            tap.publish(delivery(ms, "AAPL"));
        }
        tap.publish(delivery(3, "TSLA"));
        assert_eq!(tap.last(), Cursor::new(3, 0));
        assert_eq!(metrics.events_filtered.load(Ordering::Relaxed), 3);
        assert_eq!(tsla.recv().await.map(|d| d.cursor), Ok(Cursor::new(3, 0)));
        // AAPL's channel holds two: a third AAPL event overflows it.
        tap.publish(delivery(4, "AAPL"));
        assert_eq!(aapl.recv().await.err(), Some(LiveEnd::Lagged));
        // Lagging is this subscriber's alone, and a new subscription starts clean.
        tap.publish(delivery(5, "TSLA"));
        assert_eq!(tsla.recv().await.map(|d| d.cursor), Ok(Cursor::new(5, 0)));
        drop(aapl);
        let (mut again, from) = tap.subscribe(filter("AAPL"));
        assert_eq!(from, Cursor::new(5, 0));
        tap.publish(delivery(6, "AAPL"));
        assert_eq!(again.recv().await.map(|d| d.cursor), Ok(Cursor::new(6, 0)));
    }

    #[tokio::test]
    async fn a_filter_change_applies_from_the_next_event_and_dropping_unsubscribes() {
        let tap = Arc::new(Tap::new(
            Cursor::ZERO,
            8,
            Arc::new(GatewayMetrics::default()),
        ));
        let shared = filter("AAPL");
        let (mut rx, _) = tap.subscribe(shared.clone());
        tap.publish(delivery(1, "TSLA"));
        if let Ok(mut f) = shared.write() {
            *f = Filter::parse("TSLA").unwrap_or_default();
        }
        tap.publish(delivery(2, "TSLA"));
        assert_eq!(rx.recv().await.map(|d| d.cursor), Ok(Cursor::new(2, 0)));
        drop(rx);
        assert!(tap.lock().subs.is_empty());
    }
}
