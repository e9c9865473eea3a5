//! The replay clock: market time as a function of wall time.
//!
//! Market time is `anchor + speed × (wall − anchor_wall)` while playing and
//! stands still while paused; every change (pause, resume, speed, seek)
//! re-anchors at the current market time, so paused time is never counted
//! and a speed change never jumps; [`ReplayClock::hold`] counts no time
//! either (while the first page is on its way). Idle gaps (no event for longer than
//! [`IDLE_GAP_MS`] of market time: overnight, lunch) are skipped to the next
//! event. Pure: the wall time (ms) is passed in, so tests drive it exactly.

/// Speeds offered by faster/slower, in order.
pub const SPEEDS: &[u32] = &[1, 2, 5, 10, 30, 60, 120];
/// The fastest speed `--speed` accepts.
pub const MAX_SPEED: u32 = 120;
/// A wait for the next event longer than this (market ms) is skipped.
pub const IDLE_GAP_MS: i64 = 60_000;

/// Market time driven by wall time at a speed, with pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayClock {
    anchor_market: i64,
    anchor_wall: i64,
    speed: u32,
    paused: bool,
}

impl ReplayClock {
    /// Playing from `market_ms` at wall time `wall_ms`, `speed` times real time.
    pub fn new(market_ms: i64, wall_ms: i64, speed: u32) -> ReplayClock {
        ReplayClock {
            anchor_market: market_ms,
            anchor_wall: wall_ms,
            speed: speed.max(1),
            paused: false,
        }
    }

    /// The market time at wall time `wall_ms`.
    pub fn market(&self, wall_ms: i64) -> i64 {
        if self.paused {
            return self.anchor_market;
        }
        let elapsed = (wall_ms - self.anchor_wall).max(0);
        self.anchor_market
            .saturating_add(elapsed.saturating_mul(i64::from(self.speed)))
    }

    pub fn speed(&self) -> u32 {
        self.speed
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn anchor(&mut self, wall_ms: i64) {
        self.anchor_market = self.market(wall_ms);
        self.anchor_wall = wall_ms;
    }

    /// Pauses, or resumes where it stood.
    pub fn toggle_pause(&mut self, wall_ms: i64) {
        self.anchor(wall_ms);
        self.paused = !self.paused;
    }

    /// Plays on at `speed` (at least 1) from the current market time.
    pub fn set_speed(&mut self, wall_ms: i64, speed: u32) {
        self.anchor(wall_ms);
        self.speed = speed.max(1);
    }

    /// The next speed of [`SPEEDS`] up (`faster`) or down; the end one stays.
    pub fn step_speed(&mut self, wall_ms: i64, faster: bool) {
        let next = if faster {
            SPEEDS.iter().copied().find(|s| *s > self.speed)
        } else {
            SPEEDS.iter().rev().copied().find(|s| *s < self.speed)
        };
        if let Some(s) = next {
            self.set_speed(wall_ms, s);
        }
    }

    /// Moves the market time to `market_ms`, paused or not.
    pub fn seek(&mut self, wall_ms: i64, market_ms: i64) {
        self.anchor_market = market_ms;
        self.anchor_wall = wall_ms;
    }

    /// Counts no time up to `wall_ms` (waiting for the first page): the
    /// market time stays where it was.
    pub fn hold(&mut self, wall_ms: i64) {
        self.anchor_wall = wall_ms;
    }

    /// If the next event, at `next_ms`, is more than [`IDLE_GAP_MS`] ahead
    /// while playing, jumps to it and returns how much market time was
    /// skipped.
    pub fn skip_idle(&mut self, wall_ms: i64, next_ms: i64) -> Option<i64> {
        let gap = next_ms - self.market(wall_ms);
        if self.paused || gap <= IDLE_GAP_MS {
            return None;
        }
        self.seek(wall_ms, next_ms);
        Some(gap)
    }

    /// Wall ms from `wall_ms` until the market time reaches `market_ms`
    /// (0 if it has); `None` while paused.
    pub fn wall_until(&self, wall_ms: i64, market_ms: i64) -> Option<i64> {
        if self.paused {
            return None;
        }
        let ahead = (market_ms - self.market(wall_ms)).max(0);
        let speed = i64::from(self.speed);
        Some((ahead + speed - 1) / speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 1_000_000;
    const M: i64 = 1_800_000_000_000;

    #[test]
    fn market_time_runs_at_the_speed() {
        let c = ReplayClock::new(M, W, 10);
        assert_eq!(c.market(W), M);
        assert_eq!(c.market(W + 1_500), M + 15_000);
        assert_eq!(c.market(W - 5), M, "never before the start");
        assert_eq!(c.wall_until(W, M + 15_000), Some(1_500));
        assert_eq!(c.wall_until(W, M + 15_001), Some(1_501), "rounded up");
        assert_eq!(c.wall_until(W + 2_000, M + 15_000), Some(0));
    }

    #[test]
    fn paused_time_is_not_counted() {
        let mut c = ReplayClock::new(M, W, 10);
        c.toggle_pause(W + 1_000);
        assert!(c.is_paused());
        assert_eq!(c.market(W + 60_000), M + 10_000, "stands still");
        assert_eq!(c.wall_until(W + 60_000, M + 20_000), None);
        c.toggle_pause(W + 60_000);
        assert_eq!(c.market(W + 61_000), M + 20_000, "on from where it stood");
    }

    #[test]
    fn a_speed_change_keeps_the_market_time() {
        let mut c = ReplayClock::new(M, W, 10);
        c.step_speed(W + 1_000, true);
        assert_eq!(c.speed(), 30);
        assert_eq!(c.market(W + 1_000), M + 10_000, "no jump");
        assert_eq!(c.market(W + 2_000), M + 40_000);
        c.set_speed(W + 2_000, 1);
        c.step_speed(W + 2_000, false);
        assert_eq!(c.speed(), 1, "the slowest stays");
        c.set_speed(W + 2_000, 120);
        c.step_speed(W + 2_000, true);
        assert_eq!(c.speed(), 120, "the fastest stays");
        c.set_speed(W + 2_000, 7);
        c.step_speed(W + 2_000, false);
        assert_eq!(c.speed(), 5, "off the list: the next one down");
        assert_eq!(c.market(W + 3_000), M + 45_000);
    }

    #[test]
    fn held_time_is_not_counted() {
        let mut c = ReplayClock::new(M, W, 10);
        c.hold(W + 5_000);
        assert_eq!(c.market(W + 5_000), M);
        assert_eq!(c.market(W + 5_100), M + 1_000);
    }

    #[test]
    fn a_seek_moves_the_market_time_paused_or_not() {
        let mut c = ReplayClock::new(M, W, 10);
        c.seek(W + 1_000, M - 300_000);
        assert_eq!(c.market(W + 2_000), M - 290_000);
        c.toggle_pause(W + 2_000);
        c.seek(W + 3_000, M + 300_000);
        assert_eq!(c.market(W + 9_000), M + 300_000, "still paused");
    }

    #[test]
    fn idle_gaps_are_skipped_to_the_next_event() {
        let mut c = ReplayClock::new(M, W, 10);
        assert_eq!(c.skip_idle(W, M + IDLE_GAP_MS), None, "not longer");
        assert_eq!(c.skip_idle(W, M + 3_600_000), Some(3_600_000));
        assert_eq!(c.market(W), M + 3_600_000);
        assert_eq!(c.market(W + 100), M + 3_601_000, "plays on from there");
        c.toggle_pause(W + 100);
        assert_eq!(
            c.skip_idle(W + 100, M + 9_000_000),
            None,
            "not while paused"
        );
    }
}
