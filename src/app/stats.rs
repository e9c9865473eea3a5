//! Numbers for the status line and the flow panel.
//!
//! [`Aggregates`] sum premium over the filtered view, updated as events enter
//! and leave it. [`RateMeter`] counts arrivals per wall-clock second for
//! events/s and the flow-rate sparkline.

use std::collections::{HashMap, VecDeque};

use flowtape_core::event::{FlowEvent, Sentiment};
use flowtape_core::occ::Right;

/// Premium per ticker, signed by sentiment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TickerFlow {
    pub events: u64,
    /// Bullish premium minus bearish premium.
    pub net: f64,
}

/// Premium sums over the events in view.
#[derive(Clone, Debug, Default)]
pub struct Aggregates {
    count: u64,
    pub call_premium: f64,
    pub put_premium: f64,
    pub bull_premium: f64,
    pub bear_premium: f64,
    tickers: HashMap<String, TickerFlow>,
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

impl Aggregates {
    fn apply(&mut self, e: &FlowEvent, sign: f64) {
        let p = finite(e.premium) * sign;
        match e.right {
            Right::Call => self.call_premium += p,
            Right::Put => self.put_premium += p,
        }
        let directed = match e.sentiment {
            Sentiment::Bull => {
                self.bull_premium += p;
                p
            }
            Sentiment::Bear => {
                self.bear_premium += p;
                -p
            }
            Sentiment::Neutral => 0.0,
        };
        if sign > 0.0 {
            self.count += 1;
            let t = self.tickers.entry(e.sym.clone()).or_default();
            t.events += 1;
            t.net += directed;
        } else {
            self.count = self.count.saturating_sub(1);
            if let Some(t) = self.tickers.get_mut(&e.sym) {
                t.events = t.events.saturating_sub(1);
                t.net += directed;
                if t.events == 0 {
                    self.tickers.remove(&e.sym);
                }
            }
        }
    }

    pub fn add(&mut self, e: &FlowEvent) {
        self.apply(e, 1.0);
    }

    pub fn remove(&mut self, e: &FlowEvent) {
        self.apply(e, -1.0);
    }

    /// Events counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Call premium over put premium, if there is put premium.
    pub fn call_put_ratio(&self) -> Option<f64> {
        (self.put_premium > 0.5).then(|| self.call_premium.max(0.0) / self.put_premium)
    }

    /// Bullish share of directional premium, 0–1.
    pub fn bull_share(&self) -> Option<f64> {
        let total = self.bull_premium.max(0.0) + self.bear_premium.max(0.0);
        (total > 0.5).then(|| self.bull_premium.max(0.0) / total)
    }

    /// The `n` tickers with the largest absolute net premium, largest first
    /// (ties by name, so the order is stable between frames).
    pub fn top_tickers(&self, n: usize) -> Vec<(&str, TickerFlow)> {
        let mut v: Vec<(&str, TickerFlow)> =
            self.tickers.iter().map(|(k, t)| (k.as_str(), *t)).collect();
        v.sort_by(|a, b| {
            b.1.net
                .abs()
                .total_cmp(&a.1.net.abs())
                .then_with(|| a.0.cmp(b.0))
        });
        v.truncate(n);
        v
    }
}

/// Seconds of history the rate meter keeps (the sparkline's span at most).
pub const RATE_WINDOW_S: usize = 300;

/// Arrivals per wall-clock second.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    /// (second, arrivals), oldest first, one entry per second with arrivals.
    buckets: VecDeque<(i64, u64)>,
}

impl RateMeter {
    pub fn record(&mut self, now_ms: i64, n: u64) {
        let sec = now_ms.div_euclid(1000);
        match self.buckets.back_mut() {
            Some((s, c)) if *s == sec => *c += n,
            _ => self.buckets.push_back((sec, n)),
        }
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| *s <= sec - RATE_WINDOW_S as i64)
        {
            self.buckets.pop_front();
        }
    }

    /// Mean arrivals per second over the last 5 complete seconds.
    pub fn per_second(&self, now_ms: i64) -> f64 {
        let sec = now_ms.div_euclid(1000);
        let sum: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| (sec - 5..sec).contains(s))
            .map(|(_, c)| c)
            .sum();
        sum as f64 / 5.0
    }

    /// Arrivals in each of the last `n` complete spans of `step_s`
    /// seconds (clock-aligned), oldest first.
    pub fn series(&self, now_ms: i64, n: usize, step_s: i64) -> Vec<u64> {
        let step_s = step_s.max(1);
        let now = now_ms.div_euclid(1000).div_euclid(step_s);
        let first = now - n as i64;
        let mut out = vec![0; n];
        for (s, c) in &self.buckets {
            let step = s.div_euclid(step_s);
            if (first..now).contains(&step) {
                if let Some(slot) = out.get_mut((step - first) as usize) {
                    *slot += *c;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::event;

    #[test]
    fn aggregates_follow_adds_and_removes() {
        let mut a = Aggregates::default();
        let mut bull = event("AAPL", 0);
        bull.premium = 300_000.0;
        let mut bear = event("TSLA", 0);
        bear.right = Right::Put;
        bear.sentiment = Sentiment::Bear;
        bear.premium = 100_000.0;
        a.add(&bull);
        a.add(&bear);
        assert_eq!(a.call_put_ratio(), Some(3.0));
        assert_eq!(a.bull_share(), Some(0.75));
        let top = a.top_tickers(5);
        assert_eq!(top[0].0, "AAPL");
        assert_eq!(
            top[1],
            (
                "TSLA",
                TickerFlow {
                    events: 1,
                    net: -100_000.0
                }
            )
        );
        a.remove(&bear);
        assert_eq!(a.top_tickers(5).len(), 1);
        assert_eq!(a.call_put_ratio(), None);
    }

    #[test]
    fn rate_meter_counts_complete_seconds() {
        let mut r = RateMeter::default();
        for s in 0..10 {
            r.record(s * 1000 + 10, 100);
        }
        assert_eq!(r.per_second(10_000), 100.0);
        assert_eq!(r.series(10_000, 3, 1), vec![100, 100, 100]);
        assert_eq!(r.series(12_000, 3, 1), vec![100, 0, 0]);
        assert_eq!(
            r.series(14_999, 3, 5),
            vec![0, 500, 500],
            "5-second spans: 0-4 and 5-9 complete, 10-14 not yet"
        );
        r.record(299_000, 1);
        assert_eq!(r.series(300_000, 60, 5)[0..2], [500, 500], "5 minutes kept");
        r.record(700_000, 1);
        assert_eq!(r.buckets.len(), 1, "old seconds are dropped");
    }
}
