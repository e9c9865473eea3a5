//! History for one client, read from the flow stream up to the seam.
//!
//! Both replays stop at `upto`, the cursor of the client's tap at the moment
//! it subscribed: everything after it arrives on the live receiver, so the
//! client's stream is every event, once, in stream order.
//!
//! - `since`: every matching event in `(since, upto]`, oldest first, read
//!   forwards a page at a time. The client's cursor becomes `max(since, upto)`.
//! - `backfill: N`: the newest N matching events at or before `upto`, read
//!   backwards until N are found, `backfill_scan_cap` entries have been
//!   scanned, or the stream's start is reached; sent oldest first. The
//!   cursor becomes `upto`: the newest id scanned, not the newest match.
//!
//! `history` pages ([`super::history`]) read with the same steps
//! ([`Replay::forwards`], [`Replay::backwards`]), collected into one frame.
//!
//! Replayed events wait for room in the client's send queue (a replay reads
//! at the client's pace), up to the write timeout.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::config::GatewayConfig;
use super::delivery::{bus_call, Delivery};
use super::metrics::GatewayMetrics;
use super::outbox::Outbox;
use crate::bus::{Bus, FlowEntry};
use flowtape_core::cursor::Cursor;
use flowtape_core::filter::Filter;

pub(crate) enum ReplayError {
    /// The client did not take the events in time.
    Slow,
    /// The stream could not be read.
    Bus(String),
}

/// One client's replays: what they read from, and where they send.
pub(super) struct Replay<'a> {
    pub bus: &'a Bus,
    pub config: &'a GatewayConfig,
    pub metrics: &'a GatewayMetrics,
    pub out: &'a Outbox,
    pub filter: &'a Filter,
}

impl Replay<'_> {
    /// Whether the client's filter wants an event; counts it if not.
    pub(super) fn wanted(&self, d: &Delivery) -> bool {
        let wanted = self.filter.matches(&d.event);
        if !wanted {
            self.metrics.events_filtered.fetch_add(1, Ordering::Relaxed);
        }
        wanted
    }

    /// Parses an entry and applies the filter; `None` if it is skipped.
    fn replayable(&self, entry: &FlowEntry) -> Option<Arc<Delivery>> {
        // Not a flow event: the hub logs and counts these.
        let d = Delivery::from_entry(entry).ok()?;
        self.wanted(&d).then(|| Arc::new(d))
    }

    /// Queues one replayed event, waiting for room in the send queue up to
    /// the catch-up patience; past it the client is a slow consumer.
    pub(super) async fn send(&self, d: Arc<Delivery>) -> Result<(), ReplayError> {
        self.out
            .replay(d, self.config.catch_up_patience)
            .await
            .map_err(|_| ReplayError::Slow)
    }

    /// Sends every matching event in `(since, upto]`; returns the new cursor.
    pub(super) async fn since(&self, since: Cursor, upto: Cursor) -> Result<Cursor, ReplayError> {
        let mut pos = since;
        while pos < upto {
            let step = self.forwards(pos, upto, usize::MAX).await?;
            for d in step.found {
                self.send(d).await?;
            }
            pos = step.last;
            if step.end {
                break;
            }
        }
        Ok(since.max(upto))
    }

    /// One round trip forwards: the matching events after `after` and at or
    /// before `upto`, at most `want` of them.
    pub(super) async fn forwards(
        &self,
        after: Cursor,
        upto: Cursor,
        want: usize,
    ) -> Result<Forwards, ReplayError> {
        let page_size = self.config.page_size;
        let page = bus_call(self.bus.flow_after(after, page_size))
            .await
            .map_err(|e| ReplayError::Bus(e.to_string()))?;
        let mut step = Forwards {
            found: Vec::new(),
            last: after,
            scanned: 0,
            end: page.len() < page_size,
        };
        for entry in &page {
            if entry.id > upto {
                step.end = true;
                break;
            }
            step.last = entry.id;
            step.scanned += 1;
            if let Some(d) = self.replayable(entry) {
                step.found.push(d);
                if step.found.len() >= want {
                    // Entries after this one are left for the next step.
                    step.end = false;
                    break;
                }
            }
        }
        Ok(step)
    }

    /// Sends the newest `n` matching events at or before `upto`, oldest first.
    pub(super) async fn backfill(&self, n: u32, upto: Cursor) -> Result<(), ReplayError> {
        let found = self
            .backwards(n as usize, upto, self.config.backfill_scan_cap)
            .await?;
        for d in found.found.into_iter().rev() {
            self.send(d).await?;
        }
        Ok(())
    }

    /// The newest `want` matching events at or before `upto`, newest first:
    /// read backwards until `want` are found, `scan_cap` entries have been
    /// scanned (checked per round trip), or the stream's start is reached.
    pub(super) async fn backwards(
        &self,
        want: usize,
        upto: Cursor,
        scan_cap: usize,
    ) -> Result<Backwards, ReplayError> {
        let page_size = self.config.page_size;
        let mut found: Vec<Arc<Delivery>> = Vec::with_capacity(want.min(1024));
        let mut before = Some(upto);
        let mut scanned = 0usize;
        let mut oldest = None;
        let mut start = false;
        while found.len() < want && scanned < scan_cap {
            let Some(b) = before else {
                start = true;
                break;
            };
            let page = bus_call(self.bus.flow_before(Some(b), page_size))
                .await
                .map_err(|e| ReplayError::Bus(e.to_string()))?;
            let mut taken = 0;
            for entry in page.iter().rev() {
                scanned += 1;
                taken += 1;
                oldest = Some(entry.id);
                if let Some(d) = self.replayable(entry) {
                    found.push(d);
                    if found.len() == want {
                        break;
                    }
                }
            }
            before = match page.first() {
                Some(first) if page.len() >= page_size => first.id.predecessor(),
                _ => None, // the stream's start
            };
            if before.is_none() && taken == page.len() {
                start = true;
                break;
            }
        }
        Ok(Backwards {
            found,
            oldest,
            start,
        })
    }
}

/// One step of [`Replay::forwards`].
pub(super) struct Forwards {
    /// The matching events, oldest first.
    pub found: Vec<Arc<Delivery>>,
    /// The newest id read (the step's `after` if none).
    pub last: Cursor,
    /// Entries read.
    pub scanned: usize,
    /// The stream (or `upto`) ends at `last`.
    pub end: bool,
}

/// What [`Replay::backwards`] found.
pub(super) struct Backwards {
    /// The matching events, newest first.
    pub found: Vec<Arc<Delivery>>,
    /// The oldest id scanned.
    pub oldest: Option<Cursor>,
    /// Every entry down to the stream's start was scanned.
    pub start: bool,
}
