//! A log-linear latency histogram in microseconds.
//!
//! Values are bucketed by their power of two and, within it, into
//! [`SUB_BUCKETS`] equal steps, so every bucket is at most 1/32 (about 3 %)
//! wide relative to its values, from 1 µs up to [`MAX_MICROS`]. Values below
//! 32 µs get a bucket each. Recording is one index computation and one plain
//! add: no allocation, no atomics. The exact maximum is kept beside the
//! buckets.
//!
//! [`LocalHistogram`] is the recorder. It has one owner at a time (the bench
//! clients keep one set per worker thread, see
//! [`clients`](super::clients)), and recorders merge with
//! [`LocalHistogram::merge`]. [`Histogram`] is its snapshot, which travels
//! between processes as sparse `(bucket, count)` pairs, merges, and answers
//! quantiles with the upper edge of the bucket holding them (a conservative
//! figure, at most 3 % high).

use serde::{Deserialize, Serialize};

/// Linear steps per power of two, as a power of two.
const SUB_BITS: u32 = 5;
/// Linear steps per power of two.
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// The largest value told apart; larger values count as this (about 12 days).
pub const MAX_MICROS: u64 = 1 << 40;
/// Buckets needed to cover `0 ..= MAX_MICROS`.
const BUCKETS: usize = ((40 - SUB_BITS as usize) + 2) * SUB_BUCKETS as usize;

/// The bucket of a value in µs.
fn index(micros: u64) -> usize {
    let v = micros.min(MAX_MICROS);
    if v < SUB_BUCKETS {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = (v >> (exp - SUB_BITS)) & (SUB_BUCKETS - 1);
    ((exp - SUB_BITS + 1) as u64 * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in bucket `i`.
fn upper_edge(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB_BUCKETS {
        return i;
    }
    let exp = i / SUB_BUCKETS + u64::from(SUB_BITS) - 1;
    let sub = i % SUB_BUCKETS;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    (1u64 << exp) + (sub + 1) * width - 1
}

/// A histogram one owner records into.
#[derive(Clone, Debug)]
pub struct LocalHistogram {
    counts: Box<[u64]>,
    max: u64,
}

impl Default for LocalHistogram {
    fn default() -> Self {
        LocalHistogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            max: 0,
        }
    }
}

impl LocalHistogram {
    /// Records one value, in µs.
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.max = self.max.max(micros);
    }

    /// Adds another recorder's counts to this one.
    pub fn merge(&mut self, other: &LocalHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    /// What has been recorded so far.
    pub fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter_map(|(i, &n)| (n > 0).then_some((i as u32, n)))
                .collect(),
            max: self.max,
        }
    }

    /// Forgets everything recorded.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.max = 0;
    }
}

/// A snapshot: the non-empty buckets, ascending, and the exact maximum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    buckets: Vec<(u32, u64)>,
    max: u64,
}

/// The usual latency summary, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

impl Histogram {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        let (a, b) = (&self.buckets, &other.buckets);
        let mut merged = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let take_a = j == b.len() || (i < a.len() && a[i].0 <= b[j].0);
            let take_b = i == a.len() || (j < b.len() && b[j].0 <= a[i].0);
            let bucket = if take_a { a[i].0 } else { b[j].0 };
            let count = if take_a { a[i].1 } else { 0 } + if take_b { b[j].1 } else { 0 };
            merged.push((bucket, count));
            i += usize::from(take_a);
            j += usize::from(take_b);
        }
        self.buckets = merged;
        self.max = self.max.max(other.max);
    }

    /// The value (µs, a bucket's upper edge) at or below which a fraction
    /// `q` of the recorded values lie; 0 when empty.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return upper_edge(*i as usize).min(self.max);
            }
        }
        self.max
    }

    /// The mean, from bucket midpoints (µs).
    fn mean_micros(&self) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .buckets
            .iter()
            .map(|(i, n)| {
                let hi = upper_edge(*i as usize) as f64;
                let lo = if *i == 0 {
                    0.0
                } else {
                    upper_edge(*i as usize - 1) as f64 + 1.0
                };
                (lo + hi) / 2.0 * *n as f64
            })
            .sum();
        sum / total as f64
    }

    /// p50, p99, p99.9, max and mean in milliseconds.
    pub fn quantiles(&self) -> Quantiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Quantiles {
            p50: ms(self.quantile_micros(0.50)),
            p99: ms(self.quantile_micros(0.99)),
            p999: ms(self.quantile_micros(0.999)),
            max: ms(self.max),
            mean: self.mean_micros() / 1000.0,
            count: self.count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        for i in 1..BUCKETS {
            assert_eq!(upper_edge(i - 1) + 1, lower(i), "bucket {i}");
        }
        for v in [
            0, 1, 31, 32, 33, 63, 64, 100, 999, 1000, 1_234_567, MAX_MICROS,
        ] {
            let i = index(v);
            assert!(lower(i) <= v && v <= upper_edge(i), "{v} in bucket {i}");
            assert!(upper_edge(i) - lower(i) <= v / 32, "{v}: bucket too wide");
        }
        assert_eq!(index(MAX_MICROS * 4), index(MAX_MICROS));
        assert!(index(MAX_MICROS) < BUCKETS);
    }

    fn lower(i: usize) -> u64 {
        if i == 0 {
            0
        } else {
            upper_edge(i - 1) + 1
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = LocalHistogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 10_000);
        for (q, truth) in [(0.5, 5_000u64), (0.99, 9_900), (0.999, 9_990)] {
            let got = s.quantile_micros(q);
            assert!(
                got >= truth && got <= truth + truth / 32,
                "q{q}: {got} vs {truth}"
            );
        }
        let q = s.quantiles();
        assert_eq!(q.max, 10.0);
        assert!((q.mean - 5.0005).abs() < 0.1, "{}", q.mean);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_max() {
        let (mut a, mut b) = (LocalHistogram::default(), LocalHistogram::default());
        a.record(10);
        a.record(5_000);
        b.record(10);
        b.record(70_000);
        let mut m = a.snapshot();
        m.merge(&b.snapshot());
        assert_eq!(m.count(), 4);
        assert_eq!(m.quantile_micros(0.5), 10);
        assert_eq!(m.quantiles().max, 70.0);
        let mut recorders = a.clone();
        recorders.merge(&b);
        assert_eq!(recorders.snapshot(), m, "recorders merge as snapshots do");
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Histogram>(&json).ok(), Some(m));
        a.reset();
        assert_eq!(a.snapshot(), Histogram::default());
    }
}
