//! Whole simulated trading days of flow, as the flow stream would carry
//! them: the simulated market ([`SimMarket`]: 443 tickers, Zipf-like, SPY,
//! QQQ, SPX, TSLA and NVDA heaviest, U-shaped intraday rate) from 09:30 to
//! 16:00 New York, run through the real detector, each event stored as the
//! processor stores it and given the stream id it would get when published
//! (the feed time of the print that completed it, Redis-style `<ms>-<seq>`).
//! The archive benches fill PostgreSQL with these.

use flowtape_core::conditions::ConditionTable;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_core::detect::{Detected, DetectionConfig, Detector};
use flowtape_core::event::Print;
use flowtape_server::bus::FlowEntry;
use flowtape_server::feed::{PrintSource, SimConfig, SimConfigError, SimMarket};

/// Seconds from the open (09:30) to the close (16:00).
const SESSION_S: f64 = 23_400.0;
/// Prints the calibration run pushes through the detector.
const CALIBRATION_PRINTS: u64 = 200_000;

/// The `count` trading days (Monday to Friday) ending with `last`, oldest first.
pub fn trading_days(last: Date, count: usize) -> Vec<Date> {
    let mut days: Vec<Date> = std::iter::successors(Some(last), |d| Some(d.add_days(-1)))
        .filter(|d| d.weekday() < 5)
        .take(count)
        .collect();
    days.reverse();
    days
}

/// The sim's print rate (prints/s) at which a session yields about
/// `events` flow events: how many prints make one event is measured on
/// the sim's first [`CALIBRATION_PRINTS`] prints of `day`.
pub fn rate_for(day: Date, events: u64) -> Result<f64, SimConfigError> {
    let probe = 2_000.0;
    let mut emitted = 0u64;
    let mut day_run = DayRun::new(day, probe, 0)?;
    let mut pushed = 0;
    while pushed < CALIBRATION_PRINTS {
        let Some(print) = day_run.next_print() else {
            break;
        };
        pushed += 1;
        day_run.push(print, &mut |_| emitted += 1);
    }
    let events_per_print = emitted.max(1) as f64 / pushed.max(1) as f64;
    Ok(events as f64 / SESSION_S / events_per_print)
}

/// Every flow event of `day`'s session (seeded by `seed`) from the sim at
/// `rate` prints/s, in stream order, ids after `after` (so consecutive days
/// keep the stream's ids increasing).
pub fn session(
    day: Date,
    rate: f64,
    seed: u64,
    after: Cursor,
) -> Result<Vec<FlowEntry>, SimConfigError> {
    let mut run = DayRun::new(day, rate, seed)?;
    let mut entries = Vec::with_capacity((rate * SESSION_S) as usize);
    let mut last = after;
    let mut publish = |emitted_ms: i64, json: String| {
        let ms = u64::try_from(emitted_ms).unwrap_or(0);
        last = if ms > last.ms {
            Cursor::new(ms, 0)
        } else {
            last.successor()
        };
        entries.push(FlowEntry {
            id: last,
            json: json.into(),
        });
    };
    while let Some(print) = run.next_print() {
        let now_ms = print.ts_ns.div_euclid(1_000_000);
        run.push(print, &mut |json| publish(now_ms, json));
    }
    let close_ms = run.close_ns.div_euclid(1_000_000);
    run.flush_all(&mut |json| publish(close_ms, json));
    Ok(entries)
}

/// The sim and the detector over one session.
struct DayRun {
    sim: SimMarket,
    detector: Detector,
    close_ns: i64,
    /// Entry ids for the detector (it only needs them distinct and rising).
    pushed: u64,
    out: Vec<Detected>,
}

impl DayRun {
    fn new(day: Date, rate: f64, seed: u64) -> Result<DayRun, SimConfigError> {
        let open_ns = market_instant_ms(day, 9, 30).saturating_mul(1_000_000);
        let sim = SimMarket::new(SimConfig {
            seed,
            rate,
            start_ns: open_ns,
            session_offset_ms: 0,
        })?;
        Ok(DayRun {
            sim,
            detector: Detector::new(DetectionConfig::default(), ConditionTable::default()),
            close_ns: market_instant_ms(day, 16, 0).saturating_mul(1_000_000),
            pushed: 0,
            out: Vec::new(),
        })
    }

    /// The session's next print; `None` at the close.
    fn next_print(&mut self) -> Option<Print> {
        loop {
            match self.sim.next_print()? {
                Ok(print) if print.ts_ns >= self.close_ns => return None,
                Ok(print) => return Some(print),
                Err(_) => continue,
            }
        }
    }

    /// Pushes `print` and hands the stored JSON of each event it completes
    /// (and of the sweeps whose window it closes) to `emit`.
    fn push(&mut self, print: Print, emit: &mut impl FnMut(String)) {
        let now_ns = print.ts_ns;
        self.pushed += 1;
        self.detector
            .push(Cursor::new(self.pushed, 0), print, &mut self.out);
        self.detector.flush_due(now_ns, &mut self.out);
        self.emit(emit);
    }

    fn flush_all(&mut self, emit: &mut impl FnMut(String)) {
        self.detector.flush_all(&mut self.out);
        self.emit(emit);
    }

    fn emit(&mut self, emit: &mut impl FnMut(String)) {
        for event in self.out.drain(..).filter_map(|d| d.event) {
            emit(event.to_stored_json());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trading_days_skip_weekends() {
        let friday = Date::from_ymd(2026, 5, 15).unwrap_or_else(|e| panic!("{e}"));
        let days = trading_days(friday, 6);
        assert_eq!(days.len(), 6);
        assert_eq!(
            days[0],
            Date::from_ymd(2026, 5, 8).unwrap_or_else(|e| panic!("{e}"))
        );
        assert!(days.iter().all(|d| d.weekday() < 5));
        assert_eq!(days.last(), Some(&friday));
    }
}
