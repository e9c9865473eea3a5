//! A fixed-bucket latency histogram that many threads observe into at once.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`LATENCY_BUCKETS`] in whole microseconds, for finding an observation's
/// bucket without floating point.
const LATENCY_BUCKETS_US: [u64; 14] = {
    let mut us = [0u64; 14];
    let mut i = 0;
    while i < us.len() {
        us[i] = (LATENCY_BUCKETS[i] * 1e6 + 0.5) as u64;
        i += 1;
    }
    us
};

/// A fixed-bucket latency histogram (relaxed atomics: observers only add,
/// a scrape reads a consistent-enough snapshot).
#[derive(Debug)]
pub struct Histogram {
    /// Cumulative counts are computed at render time; these are per bucket,
    /// the last one being `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.observe_all(std::iter::once(d));
    }

    /// Observes several durations with one atomic add per bucket they fall
    /// in, not three per duration: the gateway's hub and writers observe
    /// every event of a batch from several threads at once.
    pub fn observe_all(&self, ds: impl IntoIterator<Item = Duration>) {
        let mut counts = [0u64; LATENCY_BUCKETS.len() + 1];
        let (mut sum_us, mut count) = (0u64, 0u64);
        for d in ds {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            // The first bucket whose bound is at least `us`, or `+Inf`.
            counts[LATENCY_BUCKETS_US.partition_point(|&b| b < us)] += 1;
            sum_us = sum_us.saturating_add(us);
            count += 1;
        }
        for (bucket, n) in self.buckets.iter().zip(counts) {
            if n > 0 {
                bucket.fetch_add(n, Ordering::Relaxed);
            }
        }
        if count > 0 {
            self.sum_us.fetch_add(sum_us, Ordering::Relaxed);
            self.count.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The samples of the family `name` (its `# HELP`/`# TYPE` lines are the caller's).
    pub(super) fn render_samples(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match LATENCY_BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", self.count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(h: &Histogram) -> String {
        let mut out = String::new();
        h.render_samples(&mut out, "x");
        out
    }

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let out = rendered(&h);
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        // A bound is inclusive.
        let edge = Histogram::default();
        edge.observe(Duration::from_micros(2_500));
        let at_edge = rendered(&edge);
        assert!(at_edge.contains("x_bucket{le=\"0.0025\"} 1\n"), "{at_edge}");
        // A batch counts as the same observations one by one.
        let batch = Histogram::default();
        batch.observe_all([300, 3_000, 60_000_000].map(Duration::from_micros));
        assert_eq!(rendered(&batch), out);
    }
}
