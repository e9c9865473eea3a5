//! Replay of a past session: the tape played back at N× real time.
//!
//! A [`Replay`] reads the scope's history forwards from a time with
//! `history` `after` pages (carrying the scope's filter), keeps the events
//! fetched but not yet due in a queue, and moves each onto its own tape when
//! the [`ReplayClock`] reaches its event time (`ts`). Pages are asked for
//! ahead while fewer than [`PREFETCH_BELOW`] events wait, so playback does
//! not stall; the queue holds at most about [`PREFETCH_BELOW`] + one page
//! and the tape its configured size, so memory is bounded. A wait longer
//! than [`clock::IDLE_GAP_MS`] for the next event is skipped (the status
//! line says how much). Playback stops at the end of the day, or at the live
//! edge (the clock never runs past now). The clock holds until the first
//! page comes, so a slow link does not make a burst. A seek starts reading
//! afresh from the new time. The run loop advances it with [`App::tick`], wakes for the
//! next due event ([`App::replay_wake_in_ms`]) and sends what
//! [`App::replay_request`] asks for.

pub mod clock;

use std::collections::VecDeque;

use flowtape_core::clock::{parse_time, position_before};
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, market_instant_ms, Date};
use flowtape_core::protocol::HistoryRequest;

use super::history::{Edge, PageIn, PAGE};
use super::tape::{Entry, Tape};
use super::{App, Effect, INFO_TTL_MS};
use clock::ReplayClock;

/// Fewer events than this waiting: the next page is asked for.
pub const PREFETCH_BELOW: usize = 2 * PAGE as usize;
/// While nothing newer was found, how often (wall ms) to ask again.
const POLL_MS: i64 = 1_000;
/// A seek key moves the replay by this much market time.
pub const SEEK_MS: i64 = 5 * 60_000;

/// Where a replay starts (`--replay`) and how fast (`--speed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayStart {
    pub at_ms: i64,
    pub speed: u32,
}

/// Why playback stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The replayed day is over.
    DayEnd,
    /// The clock reached now.
    LiveEdge,
}

/// A replay in progress.
#[derive(Debug)]
pub struct Replay {
    pub clock: ReplayClock,
    /// The New York trading day being replayed.
    pub date: Date,
    /// The start of the next day: playback stops there.
    end_ms: i64,
    pub tape: Tape,
    /// Fetched, not yet due, in stream order.
    queue: VecDeque<Entry>,
    pub(super) forward: Edge,
    next_after: Cursor,
    /// The last page found nothing newer: ask again at this wall time.
    poll_at: Option<i64>,
    /// No page has come since the start or the last seek: the clock holds.
    waiting: bool,
    pub stop: Option<Stop>,
    /// The last idle skip: market ms skipped, and the wall time it happened.
    pub skipped: Option<(i64, i64)>,
}

impl Replay {
    fn new(at_ms: i64, wall_ms: i64, speed: u32, cap: usize) -> Replay {
        let mut r = Replay {
            clock: ReplayClock::new(at_ms, wall_ms, speed),
            date: market_date(at_ms),
            end_ms: 0,
            tape: Tape::new(cap),
            queue: VecDeque::new(),
            forward: Edge::Idle,
            next_after: Cursor::ZERO,
            poll_at: None,
            waiting: true,
            stop: None,
            skipped: None,
        };
        r.restart(at_ms, wall_ms);
        r
    }

    /// Reads afresh from `at_ms`: the tape, the queue and any page in flight
    /// are dropped.
    fn restart(&mut self, at_ms: i64, wall_ms: i64) {
        let at_ms = at_ms.clamp(0, wall_ms);
        self.clock.seek(wall_ms, at_ms);
        self.date = market_date(at_ms);
        self.end_ms = market_instant_ms(self.date.add_days(1), 0, 0);
        self.tape = Tape::new(self.tape.capacity());
        self.queue.clear();
        self.forward = Edge::Idle;
        self.next_after = position_before(at_ms);
        self.poll_at = None;
        self.waiting = true;
        self.stop = None;
    }

    /// The event time of the next event to play, bounded by the day's end.
    fn next_due(&self) -> Option<i64> {
        self.queue.front().map(|e| e.event.ts.min(self.end_ms))
    }
}

impl App {
    /// Starts replaying the scope from `at_ms` at `speed`×; its pages are
    /// asked for once subscribed.
    pub fn start_replay(&mut self, start: ReplayStart) {
        let cap = self.past.base_cap();
        self.past.replay = Some(Replay::new(start.at_ms, self.now_ms, start.speed, cap));
        self.past.travel = None;
        self.paused_at = None;
        self.sel = 0;
        self.offset = 0;
    }

    /// The replay, if one is on.
    pub fn replay(&self) -> Option<&Replay> {
        self.past.replay.as_ref()
    }

    /// The replay's market time now.
    pub fn replay_time(&self) -> Option<i64> {
        self.replay().map(|r| r.clock.market(self.now_ms))
    }

    /// The market time skipped by an idle skip in the last [`INFO_TTL_MS`].
    pub fn replay_skipped(&self) -> Option<i64> {
        let (gap, at) = self.replay()?.skipped?;
        (self.now_ms - at < INFO_TTL_MS).then_some(gap)
    }

    /// The next page to ask for, if one is due.
    pub fn replay_request(&mut self) -> Option<Effect> {
        let now = self.now_ms;
        let r = self.past.replay.as_ref()?;
        let past_end = r.queue.back().is_some_and(|e| e.event.ts >= r.end_ms);
        if r.stop.is_some()
            || r.forward != Edge::Idle
            || r.queue.len() >= PREFETCH_BELOW
            || past_end
            || r.poll_at.is_some_and(|at| now < at)
        {
            return None;
        }
        let id = self.past.next_id();
        let filter = self.subscribed.clone();
        let r = self.past.replay.as_mut()?;
        r.forward = Edge::Loading(id.clone());
        Some(Effect::History(HistoryRequest {
            after: Some(r.next_after),
            limit: Some(PAGE),
            filter: Some(filter),
            id: Some(id),
            ..HistoryRequest::default()
        }))
    }

    /// Whether the page with `id` is the replay's.
    pub(super) fn replay_awaits(&self, id: Option<&str>) -> bool {
        self.replay()
            .is_some_and(|r| matches!(&r.forward, Edge::Loading(l) if Some(l.as_str()) == id))
    }

    /// Queues a replay page's events; asks for the next if due.
    pub(super) fn on_replay_page(&mut self, page: PageIn) -> Option<Effect> {
        let now = self.now_ms;
        let alerts = &self.alerts;
        let r = self.past.replay.as_mut()?;
        if std::mem::take(&mut r.waiting) {
            // Playing starts now, with events to play.
            r.clock.hold(now);
        }
        r.queue.extend(page.events.into_iter().map(|i| Entry {
            alert: alerts.iter().any(|a| a.filter.matches(&i.event)),
            cursor: i.cursor,
            event: i.event,
        }));
        r.forward = Edge::Idle;
        match (page.more, page.next) {
            (true, Some(next)) => {
                r.next_after = next;
                r.poll_at = None;
            }
            _ => {
                if let Some(last) = r.queue.back() {
                    r.next_after = last.cursor;
                }
                r.poll_at = Some(now + POLL_MS);
            }
        }
        self.replay_request()
    }

    /// Plays what is due at the clock's time. Returns whether the screen changed.
    pub(super) fn advance_replay(&mut self) -> bool {
        let now = self.now_ms;
        let Some(r) = self.past.replay.as_mut() else {
            return false;
        };
        if r.stop.is_some() {
            return false;
        }
        if r.waiting {
            r.clock.hold(now);
            return false;
        }
        if let Some(gap) = r.next_due().and_then(|next| r.clock.skip_idle(now, next)) {
            r.skipped = Some((gap, now));
        }
        let market = r.clock.market(now);
        let mut due = Vec::new();
        while let Some(e) = r
            .queue
            .front()
            .filter(|e| e.event.ts <= market && e.event.ts < r.end_ms)
        {
            due.push(e.clone());
            r.queue.pop_front();
        }
        if market >= r.end_ms {
            r.clock.seek(now, r.end_ms);
            r.stop = Some(Stop::DayEnd);
        } else if market > now {
            // Never past now: what is not yet fetched has not happened.
            r.clock.seek(now, now);
            if r.queue.is_empty() && r.poll_at.is_some() {
                r.stop = Some(Stop::LiveEdge);
            }
        }
        let changed = !due.is_empty() || r.stop.is_some();
        if !due.is_empty() {
            self.keeping_selection(|app| {
                let scope = &app.scope;
                if let Some(r) = app.past.replay.as_mut() {
                    r.tape.insert(due, |e| scope.matches(e));
                }
            });
        }
        changed
    }

    /// Wall ms until the next event is due (for the run loop to wake then).
    pub fn replay_wake_in_ms(&self) -> Option<i64> {
        let r = self.replay().filter(|r| r.stop.is_none() && !r.waiting)?;
        r.clock.wall_until(self.now_ms, r.next_due()?)
    }

    /// The scope changed or the link was re-established: reads on with the
    /// new scope from the last event played.
    pub(super) fn replay_rescoped(&mut self, fresh: bool) -> Option<Effect> {
        let now = self.now_ms;
        let r = self.past.replay.as_mut()?;
        if fresh {
            let market = r.clock.market(now);
            r.queue.clear();
            r.poll_at = None;
            // The tape was refiltered with the new scope already.
            r.next_after = r
                .tape
                .newest_cursor()
                .unwrap_or_else(|| position_before(market));
        }
        self.replay_request()
    }

    /// Pause or resume the replay.
    pub(super) fn replay_pause(&mut self) {
        let now = self.now_ms;
        if let Some(r) = self.past.replay.as_mut() {
            r.clock.toggle_pause(now);
        }
    }

    /// Faster or slower, through [`clock::SPEEDS`].
    pub(super) fn replay_speed(&mut self, faster: bool) {
        let now = self.now_ms;
        match self.past.replay.as_mut() {
            Some(r) => r.clock.step_speed(now, faster),
            None => self.info("speed: only while replaying (flowtape --replay DATE)"),
        }
    }

    /// Plays from `at_ms` (kept within the stream's past).
    pub(super) fn replay_seek_to(&mut self, at_ms: i64) -> Option<Effect> {
        let now = self.now_ms;
        let r = self.past.replay.as_mut()?;
        r.restart(at_ms, now);
        self.sel = 0;
        self.offset = 0;
        self.replay_request()
    }

    /// Seeks by `delta_ms` of market time.
    pub(super) fn replay_seek_by(&mut self, delta_ms: i64) -> Option<Effect> {
        match self.replay_time() {
            Some(t) => self.replay_seek_to(t + delta_ms),
            None => {
                self.info("seek: only while replaying (flowtape --replay DATE)");
                None
            }
        }
    }

    /// A time typed at the `t` prompt while replaying: a time of day means
    /// the replayed day's.
    pub(super) fn replay_parse_time(&self, text: &str) -> Option<Result<i64, String>> {
        let r = self.replay()?;
        let dated = text.contains('-');
        let full = if dated {
            text.to_string()
        } else {
            format!("{} {}", r.date, text.trim())
        };
        Some(parse_time(&full, self.now_ms).map_err(|e| e.to_string()))
    }

    /// Ends the replay (back to live).
    pub(super) fn end_replay(&mut self) {
        self.past.replay = None;
    }
}

#[cfg(test)]
mod tests;
