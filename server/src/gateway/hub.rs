//! The hubs: one reader of the bus per gateway tier, fanning events out to
//! every client task of that tier.
//!
//! A [`Tap`] is a broadcast channel plus the cursor of the newest event sent
//! on it. Both change under one lock, and a client subscribes under the same
//! lock, so a subscriber learns exactly where its live feed starts: every
//! event after the returned cursor will arrive on the receiver, and every
//! event up to it is in the flow stream. That is the seam the client's
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
//! Each event is parsed once (for the clients' filters) and its frame text
//! built once per tier; clients share it through an `Arc`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::metrics::GatewayMetrics;
use crate::bus::{Bus, BusError, FlowEntry, Live, LiveFeed};
use crate::cursor::Cursor;
use crate::event::FlowEvent;
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

/// A tier's broadcast channel and the cursor of the newest event sent on it.
pub(crate) struct Tap {
    inner: Mutex<TapInner>,
}

struct TapInner {
    last: Cursor,
    tx: broadcast::Sender<Arc<Delivery>>,
}

impl Tap {
    pub(crate) fn new(start: Cursor, capacity: usize) -> Tap {
        Tap {
            inner: Mutex::new(TapInner {
                last: start,
                tx: broadcast::channel(capacity).0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TapInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every event after the returned cursor.
    pub(crate) fn subscribe(&self) -> (broadcast::Receiver<Arc<Delivery>>, Cursor) {
        let inner = self.lock();
        (inner.tx.subscribe(), inner.last)
    }

    /// The cursor of the newest event sent (or skipped).
    pub(crate) fn last(&self) -> Cursor {
        self.lock().last
    }

    fn publish(&self, d: Arc<Delivery>) {
        let mut inner = self.lock();
        inner.last = d.cursor;
        // No receivers is fine: nobody is subscribed to this tier right now.
        let _ = inner.tx.send(d);
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
