//! The simulated session's rhythm: how busy the tape is at each moment.
//!
//! A session is the 6.5 hours from 09:30 to 16:00 New York. The print rate
//! follows a U-shape over it (busiest at the open, quiet at lunch, busy again
//! into the close), and a few times per session one name has a news burst: for
//! [`BURST_NS`] its own rate jumps by [`BURST_GAIN`] times the market's mean
//! rate. Bursts are placed one per equal slot of the session so they never
//! overlap, which makes the total burst time per session fixed, and the whole
//! intensity is normalised so that its mean over a session is exactly 1: the
//! simulator's mean rate over a session is then exactly its configured rate.

use crate::feed::rng::Rng;

/// Nanoseconds in a session (09:30–16:00).
pub const SESSION_NS: i64 = 23_400 * 1_000_000_000;
/// Length of one news burst.
pub const BURST_NS: i64 = 90 * 1_000_000_000;
/// News bursts per session.
pub const BURSTS_PER_SESSION: i64 = 6;
/// A bursting name's extra rate, as a multiple of the market's mean rate.
pub const BURST_GAIN: f64 = 0.6;

const MINUTES: usize = 390;
const MINUTE_NS: i64 = 60_000_000_000;

/// One news burst: a window of the session and the name it concentrates on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    pub start_ns: i64,
    pub end_ns: i64,
    pub underlying: usize,
}

/// The intensity at one moment, as multiples of the configured rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intensity {
    /// The whole market's intensity, including any burst.
    pub total: f64,
    /// The bursting name and its share of `total`, during a burst.
    pub burst: Option<(usize, f64)>,
}

/// The per-minute U-shape and this session's bursts.
#[derive(Clone, Debug)]
pub struct Session {
    /// Relative activity per minute, mean 1.
    shape: Vec<f64>,
    /// Scales shape plus bursts down so that the session mean is 1.
    norm: f64,
    pub(super) bursts: Vec<Burst>,
    /// The names news can strike.
    newsworthy: Vec<usize>,
}

impl Session {
    /// A session with freshly drawn bursts on names from `newsworthy` (which must not be empty).
    pub fn new(rng: &mut Rng, newsworthy: Vec<usize>) -> Session {
        let raw: Vec<f64> = (0..MINUTES)
            .map(|m| {
                let since_open = m as f64;
                let to_close = (MINUTES - 1 - m) as f64;
                1.0 + 2.2 * (-since_open / 18.0).exp() + 1.3 * (-to_close / 25.0).exp()
            })
            .collect();
        let mean = raw.iter().sum::<f64>() / MINUTES as f64;
        let burst_fraction = (BURSTS_PER_SESSION * BURST_NS) as f64 / SESSION_NS as f64;
        let mut session = Session {
            shape: raw.iter().map(|r| r / mean).collect(),
            norm: 1.0 / (1.0 + BURST_GAIN * burst_fraction),
            bursts: Vec::new(),
            newsworthy,
        };
        session.draw_bursts(rng);
        session
    }

    /// Draws the bursts of the next session.
    pub fn draw_bursts(&mut self, rng: &mut Rng) {
        let slot = SESSION_NS / BURSTS_PER_SESSION;
        self.bursts = (0..BURSTS_PER_SESSION)
            .map(|i| {
                let start_ns = i * slot + (rng.unit() * (slot - BURST_NS) as f64) as i64;
                Burst {
                    start_ns,
                    end_ns: start_ns + BURST_NS,
                    underlying: self.newsworthy[rng.below(self.newsworthy.len() as u64) as usize],
                }
            })
            .collect();
    }

    /// The intensity `into_ns` after the open (`0..SESSION_NS`).
    pub fn intensity(&self, into_ns: i64) -> Intensity {
        let minute = (into_ns / MINUTE_NS).clamp(0, MINUTES as i64 - 1) as usize;
        let base = self.shape[minute];
        let burst = self
            .bursts
            .iter()
            .find(|b| (b.start_ns..b.end_ns).contains(&into_ns));
        match burst {
            Some(b) => {
                let total = base + BURST_GAIN;
                Intensity {
                    total: total * self.norm,
                    burst: Some((b.underlying, BURST_GAIN / total)),
                }
            }
            None => Intensity {
                total: base * self.norm,
                burst: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_mean_is_one_and_the_shape_is_a_u() {
        let s = Session::new(&mut Rng::new(11), vec![7]);
        let step = 1_000_000_000;
        let n = SESSION_NS / step;
        let mean = (0..n).map(|i| s.intensity(i * step).total).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 1e-3, "{mean}");
        // Minute 1 is three times as busy as lunch; the last minute over twice.
        assert!(
            s.shape[1] > 2.5 * s.shape[195],
            "{:?}",
            (s.shape[1], s.shape[195])
        );
        assert!(s.shape[389] > 2.0 * s.shape[195]);
    }

    #[test]
    fn bursts_do_not_overlap_and_spike_one_name() {
        let s = Session::new(&mut Rng::new(12), vec![7, 8]);
        assert_eq!(s.bursts.len() as i64, BURSTS_PER_SESSION);
        for w in s.bursts.windows(2) {
            assert!(w[0].end_ns <= w[1].start_ns);
        }
        let b = s.bursts[2];
        let during = s.intensity(b.start_ns + 1);
        assert_eq!(during.burst.map(|(u, _)| u), Some(b.underlying));
        assert!(during.total > s.intensity(b.end_ns + 1).total);
    }
}
