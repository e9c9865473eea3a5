//! Repeated hits on one contract.
//!
//! Traders watch for someone working an order: several directional events on
//! the same contract, in the same direction, within a few minutes.
//! [`RepeatTracker`] counts them over a sliding window of feed time. It keeps
//! one entry per hit still inside the window and evicts the rest as time moves
//! on, so its memory is bounded by the number of hits in one window.

use std::collections::{HashMap, VecDeque};

use crate::event::Sentiment;
use crate::occ::Contract;

type Key = (Contract, Sentiment);

/// Directional hits per contract within a sliding feed-time window.
#[derive(Debug)]
pub struct RepeatTracker {
    window_ms: i64,
    newest_ms: i64,
    /// Hits in the order they were recorded, with their time (ms).
    hits: VecDeque<(i64, Key)>,
    counts: HashMap<Key, u32>,
}

impl RepeatTracker {
    pub fn new(window_ms: i64) -> RepeatTracker {
        RepeatTracker {
            window_ms: window_ms.max(0),
            newest_ms: i64::MIN,
            hits: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    /// Records a hit on `contract` at `ts_ms` and returns how many hits in the
    /// same direction that contract has had within the window, this one
    /// included. Neutral events are not hits: they return 0 and are not kept.
    ///
    /// The window ends at the newest time recorded, so an event that arrives
    /// slightly out of order (a sweep closing after a later single) is counted
    /// against the same window.
    pub fn record(&mut self, contract: Contract, sentiment: Sentiment, ts_ms: i64) -> u32 {
        if sentiment == Sentiment::Neutral {
            return 0;
        }
        self.newest_ms = self.newest_ms.max(ts_ms);
        self.evict();
        let key = (contract, sentiment);
        self.hits.push_back((ts_ms, key));
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        *count
    }

    /// Drops hits older than the window. Hits are recorded in nearly
    /// ascending time, so the oldest are at the front.
    fn evict(&mut self) {
        let cutoff = self.newest_ms.saturating_sub(self.window_ms);
        while let Some(&(ts, key)) = self.hits.front() {
            if ts >= cutoff {
                break;
            }
            self.hits.pop_front();
            if let Some(count) = self.counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::Date;
    use crate::occ::Right;

    fn contract(strike: u32) -> Contract {
        let expiry = Date::from_ymd(2026, 3, 20).unwrap_or_else(|e| panic!("{e}"));
        Contract::new("NVDA", expiry, Right::Call, strike).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn counts_same_contract_same_direction_within_the_window() {
        let mut r = RepeatTracker::new(300_000);
        let c = contract(150_000);
        assert_eq!(r.record(c, Sentiment::Bull, 0), 1);
        assert_eq!(r.record(c, Sentiment::Bear, 1_000), 1, "other direction");
        assert_eq!(
            r.record(contract(155_000), Sentiment::Bull, 2_000),
            1,
            "other contract"
        );
        assert_eq!(r.record(c, Sentiment::Neutral, 2_500), 0);
        assert_eq!(r.record(c, Sentiment::Bull, 3_000), 2);
        assert_eq!(
            r.record(c, Sentiment::Bull, 300_000),
            3,
            "the first hit is exactly 5 minutes old"
        );
        assert_eq!(
            r.record(c, Sentiment::Bull, 303_001),
            2,
            "hits at 0 and 3000 left the window"
        );
    }

    #[test]
    fn memory_is_bounded_by_one_window() {
        let mut r = RepeatTracker::new(1_000);
        for i in 0..10_000u32 {
            r.record(contract(i), Sentiment::Bull, i64::from(i) * 10);
        }
        assert!(r.hits.len() <= 101, "{}", r.hits.len());
        assert!(r.counts.len() <= 101, "{}", r.counts.len());
    }
}
