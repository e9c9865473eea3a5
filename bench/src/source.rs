//! The bench's feed: the simulated market, stamped so latency can be read
//! off the events to well under a millisecond, and held to a set rate.
//!
//! **Timestamps.** A flow event carries `ts`, its first print's time in whole
//! milliseconds, and the pacing driver hands a print to ingest when its
//! `ts_ns` is due. [`Aligned`] stamps the first print with the wall-clock
//! time at which the driver pulls it (the driver's time origin) and rounds
//! every later print's time *up* to the next whole millisecond, so each is
//! handed over at, or just after, the instant its `ts` names. `now − ts` at
//! the client is then the true end-to-end latency, exact up to the driver's
//! wake-up lag, which is real latency and rightly counted. (Only the very
//! first print is not on a millisecond boundary: its event reads up to 1 ms
//! high.) Rounding keeps the order of prints, so detection sees the same tape.
//!
//! **Rate.** The sim's rate follows a session shape (about three times the
//! mean at the open, less at lunch) plus news bursts. The bench starts the
//! session clock at [`SESSION_OFFSET_MS`] (12:30, the flat part of the day)
//! and [`calibrate`]s the configured rate on the tape itself, so a run at
//! `--rate 1000` really hands over about 1,000 prints per second.

use std::time::Duration;

use flowtape_core::event::Print;
use flowtape_server::feed::{PrintSource, SimConfig, SimConfigError, SimMarket, SourceError};

/// Where the bench starts the sim's session clock: three hours after the open.
pub const SESSION_OFFSET_MS: i64 = 3 * 3_600_000;

/// Most prints generated to calibrate one rate.
const CALIBRATION_PRINTS: f64 = 400_000.0;

/// When a bench feed ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// After this much feed time since the first print.
    Duration(Duration),
    /// After this many prints.
    Prints(u64),
}

/// A [`PrintSource`] adapter: millisecond-aligned timestamps, and an end.
pub struct Aligned<S> {
    inner: S,
    limit: Limit,
    /// Added to every inner timestamp; set when the first print is pulled.
    shift_ns: Option<i64>,
    first_ns: i64,
    emitted: u64,
}

impl<S: PrintSource> Aligned<S> {
    pub fn new(inner: S, limit: Limit) -> Aligned<S> {
        Aligned {
            inner,
            limit,
            shift_ns: None,
            first_ns: 0,
            emitted: 0,
        }
    }
}

/// Wall-clock nanoseconds since the epoch.
pub fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `ns` rounded up to a whole millisecond.
fn ceil_ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000)
        .saturating_add(i64::from(ns.rem_euclid(1_000_000) != 0))
        * 1_000_000
}

impl<S: PrintSource> PrintSource for Aligned<S> {
    fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
        if let Limit::Prints(n) = self.limit {
            if self.emitted >= n {
                return None;
            }
        }
        let mut print = match self.inner.next_print()? {
            Ok(print) => print,
            Err(e) => return Some(Err(e)),
        };
        match self.shift_ns {
            None => {
                let now = wall_ns();
                self.shift_ns = Some(now.saturating_sub(print.ts_ns));
                self.first_ns = now;
                print.ts_ns = now;
            }
            Some(shift) => print.ts_ns = ceil_ms(print.ts_ns.saturating_add(shift)),
        }
        if let Limit::Duration(d) = self.limit {
            if print.ts_ns.saturating_sub(self.first_ns) >= d.as_nanos() as i64 {
                return None;
            }
        }
        self.emitted += 1;
        Some(Ok(print))
    }
}

/// A sim config for the bench: `seed`, the session clock at
/// [`SESSION_OFFSET_MS`], and a rate calibrated so the tape averages `target`
/// prints/s over (up to) the first `window` of feed time.
pub fn calibrated_sim(
    seed: u64,
    target: f64,
    window: Duration,
) -> Result<SimConfig, SimConfigError> {
    let mut config = SimConfig {
        seed,
        rate: target,
        session_offset_ms: SESSION_OFFSET_MS,
        ..SimConfig::default()
    };
    // Long enough to average out, short enough to generate in well under a second.
    let secs = window
        .as_secs_f64()
        .min(CALIBRATION_PRINTS / target)
        .max(1.0);
    for _ in 0..2 {
        let realized = realized_rate(&config, secs)?;
        if realized > 0.0 {
            config.rate =
                (config.rate * target / realized).min(flowtape_server::feed::sim::MAX_RATE);
        }
    }
    Ok(config)
}

/// Prints per second the sim produces over its first `secs` of feed time.
fn realized_rate(config: &SimConfig, secs: f64) -> Result<f64, SimConfigError> {
    let mut sim = SimMarket::new(config.clone())?;
    let end = config.start_ns.saturating_add((secs * 1e9) as i64);
    let mut count = 0u64;
    while let Some(Ok(p)) = sim.next_print() {
        if p.ts_ns >= end {
            break;
        }
        count += 1;
    }
    Ok(count as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_whole_milliseconds_after_the_first_and_keep_order() {
        let sim = SimMarket::new(SimConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let before = wall_ns();
        let mut src = Aligned::new(sim, Limit::Prints(2_000));
        let mut ts = Vec::new();
        while let Some(Ok(p)) = src.next_print() {
            ts.push(p.ts_ns);
        }
        assert_eq!(ts.len(), 2_000);
        assert!(
            ts[0] >= before && ts[0] <= wall_ns(),
            "first print is stamped now"
        );
        assert!(ts[1..].iter().all(|t| t % 1_000_000 == 0));
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_duration_limit_ends_the_feed_on_feed_time() {
        let config = SimConfig {
            rate: 2_000.0,
            ..SimConfig::default()
        };
        let sim = SimMarket::new(config).unwrap_or_else(|e| panic!("{e}"));
        let mut src = Aligned::new(sim, Limit::Duration(Duration::from_millis(500)));
        let mut n = 0;
        let mut last = 0;
        let mut first = None;
        while let Some(Ok(p)) = src.next_print() {
            first.get_or_insert(p.ts_ns);
            last = p.ts_ns;
            n += 1;
        }
        assert!(n > 0 && last - first.unwrap_or(last) < 500_000_000);
    }

    #[test]
    fn calibration_hits_the_target_rate() {
        let config =
            calibrated_sim(7, 1_000.0, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
        let realized = realized_rate(&config, 20.0).unwrap_or(0.0);
        assert!((realized - 1_000.0).abs() < 50.0, "{realized} prints/s");
    }
}
