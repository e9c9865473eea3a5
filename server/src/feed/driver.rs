//! The pacing driver: turns a [`PrintSource`] into a feed task.
//!
//! [`run_paced`] pulls prints from the source and sends them to the sink in
//! batches. With [`Pace::RealTime`] a print is due `(ts - first_ts) / speed`
//! after the driver started; at every wake-up the driver sends everything
//! already due as one `Vec<Print>` and then sleeps until the next print is due,
//! but never wakes more often than once per [`MIN_WAKE_INTERVAL`], so a
//! 50,000 prints/s tape costs about a thousand sends a second, not fifty
//! thousand. With [`Pace::AsFastAsPossible`] it sends batches of up to
//! [`MAX_BATCH`] as fast as the sink accepts them. A full sink is awaited
//! (backpressure, nothing is dropped); a late driver catches up at full speed.
//!
//! The driver runs on a thread of its own and sleeps with the operating
//! system's timer, so a print is handed over within tens of microseconds of
//! being due. On a tokio runtime it would wake on the timer's millisecond
//! ticks (half a millisecond late on average), behind whatever else that
//! runtime runs: in a one-process node, the gateway's fan-out.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;
use tokio::sync::{oneshot, Notify};

use super::{PrintSource, SourceError};
use flowtape_core::event::Print;

/// The most prints sent in one batch; a backlog is split into batches this big.
pub const MAX_BATCH: usize = 4096;

/// The driver sleeps at least this long between wake-ups in real-time mode.
pub const MIN_WAKE_INTERVAL: Duration = Duration::from_millis(1);

/// Malformed records beyond this many are logged only at powers of two.
const MALFORMED_LOGGED_EACH: u64 = 20;

/// The longest the driver will wait for one print, whatever its timestamp says:
/// a print dated years ahead does not stall it forever, it just waits a day.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// How fast to replay a source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// At the recorded pace times `speed`, measured from the first print's
    /// timestamp: 1.0 is real time, 10.0 is ten times faster.
    RealTime { speed: f64 },
    /// As fast as the sink accepts batches.
    AsFastAsPossible,
}

/// An unusable `--replay-speed`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("replay speed must be 0 (as fast as possible) or a positive number, got {0}")]
pub struct PaceError(pub f64);

impl Pace {
    /// The pace for a `--replay-speed` value: 0 means as fast as possible, a
    /// positive finite number is a multiple of real time.
    pub fn from_speed(speed: f64) -> Result<Pace, PaceError> {
        if speed == 0.0 {
            Ok(Pace::AsFastAsPossible)
        } else if speed.is_finite() && speed > 0.0 {
            Ok(Pace::RealTime { speed })
        } else {
            Err(PaceError(speed))
        }
    }
}

/// Why a feed stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeedEnd {
    /// The source ran out of prints (end of a replay file).
    #[default]
    Exhausted,
    /// Shutdown was signalled.
    Shutdown,
    /// The receiving end of the sink was dropped.
    SinkClosed,
    /// The feed could not start (no thread or runtime for it).
    Failed,
}

/// What a feed did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Prints delivered to the sink.
    pub prints: u64,
    /// Records skipped because they could not be read.
    pub malformed: u64,
    /// Batches delivered to the sink.
    pub batches: u64,
    /// Why the feed stopped.
    pub end: FeedEnd,
}

/// Runs `source` as a feed: sends its prints to `sink` in batches, paced by
/// `pace`, until the source is exhausted, the sink is closed, or `shutdown`
/// completes. Malformed records are logged with their line number, counted in
/// [`FeedStats::malformed`] and skipped. A batch interrupted by shutdown is not
/// delivered and not counted.
///
/// A [`Pace::RealTime`] with a speed that is not a positive finite number is
/// treated as [`Pace::AsFastAsPossible`]; use [`Pace::from_speed`] to reject
/// such values up front.
pub async fn run_paced<S: PrintSource + 'static>(
    source: S,
    pace: Pace,
    sink: Sender<Vec<Print>>,
    shutdown: impl Future<Output = ()>,
) -> FeedStats {
    let stop = Arc::new(Stop::default());
    let (done_tx, mut done) = oneshot::channel();
    let driver_stop = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("flowtape-feed".into())
        .spawn(move || {
            // Only to await the sink: no timers, no I/O.
            let stats = match tokio::runtime::Builder::new_current_thread().build() {
                Ok(rt) => rt.block_on(drive(source, pace, &sink, &driver_stop)),
                Err(e) => {
                    tracing::error!("the feed cannot start: {e}");
                    FeedStats::default().ended(FeedEnd::Failed)
                }
            };
            let _ = done_tx.send(stats);
        });
    if let Err(e) = spawned {
        tracing::error!("the feed cannot start a thread: {e}");
        return FeedStats::default().ended(FeedEnd::Failed);
    }
    tokio::pin!(shutdown);
    let stats = tokio::select! {
        stats = &mut done => stats,
        () = &mut shutdown => {
            stop.set();
            done.await
        }
    };
    stats.unwrap_or_else(|_| FeedStats::default().ended(FeedEnd::Failed))
}

/// Tells the driver's thread to stop, whether it is sleeping or waiting for
/// room in the sink.
#[derive(Default)]
struct Stop {
    set: AtomicBool,
    notify: Notify,
}

/// The longest the driver sleeps before it looks at [`Stop`] again.
const STOP_CHECK: Duration = Duration::from_millis(10);

impl Stop {
    fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Blocks the thread until `wake`; false if stopped meanwhile.
    fn sleep_until(&self, wake: Instant) -> bool {
        loop {
            if self.is_set() {
                return false;
            }
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(STOP_CHECK));
        }
    }
}

/// The driver loop, on its own thread: blocks the thread to sleep, and
/// awaits only the sink.
async fn drive<S: PrintSource>(
    mut source: S,
    pace: Pace,
    sink: &Sender<Vec<Print>>,
    stop: &Stop,
) -> FeedStats {
    let speed = match pace {
        Pace::RealTime { speed } if speed.is_finite() && speed > 0.0 => Some(speed),
        _ => None,
    };
    let mut stats = FeedStats::default();
    let mut clock: Option<(Instant, i64)> = None;
    let mut pending: Option<Print> = None;
    let mut exhausted = false;
    loop {
        if stop.is_set() {
            return stats.ended(FeedEnd::Shutdown);
        }
        let now = Instant::now();
        let mut batch = Vec::new();
        let mut next_due = None;
        while batch.len() < MAX_BATCH {
            let print = match pending.take() {
                Some(p) => p,
                None => match next_valid(&mut source, &mut stats) {
                    Some(p) => p,
                    None => {
                        exhausted = true;
                        break;
                    }
                },
            };
            if let Some(speed) = speed {
                let (start, first_ts) = *clock.get_or_insert((now, print.ts_ns));
                let due = due_at(start, first_ts, print.ts_ns, speed);
                if due > now {
                    next_due = Some(due);
                    pending = Some(print);
                    break;
                }
            }
            batch.push(print);
        }
        if !batch.is_empty() {
            let len = batch.len() as u64;
            tokio::select! {
                biased;
                () = stop.notify.notified() => return stats.ended(FeedEnd::Shutdown),
                sent = sink.send(batch) => match sent {
                    Ok(()) => {
                        stats.prints += len;
                        stats.batches += 1;
                    }
                    Err(_) => return stats.ended(FeedEnd::SinkClosed),
                },
            }
        }
        if exhausted {
            return stats.ended(FeedEnd::Exhausted);
        }
        if let Some(due) = next_due {
            if !stop.sleep_until(due.max(now + MIN_WAKE_INTERVAL)) {
                return stats.ended(FeedEnd::Shutdown);
            }
        }
    }
}

impl FeedStats {
    fn ended(mut self, end: FeedEnd) -> FeedStats {
        self.end = end;
        self
    }
}

/// The next print the source can read, counting and logging the ones it cannot.
fn next_valid<S: PrintSource>(source: &mut S, stats: &mut FeedStats) -> Option<Print> {
    loop {
        match source.next_print()? {
            Ok(print) => return Some(print),
            Err(e) => note_malformed(&e, stats),
        }
    }
}

fn note_malformed(e: &SourceError, stats: &mut FeedStats) {
    stats.malformed += 1;
    let n = stats.malformed;
    if n <= MALFORMED_LOGGED_EACH || n.is_power_of_two() {
        tracing::warn!(
            line = e.line,
            malformed_so_far = n,
            "skipping malformed record: {}",
            e.reason
        );
    }
}

/// When a print stamped `ts_ns` is due, if the first print (`first_ts`) was due at `start`.
fn due_at(start: Instant, first_ts: i64, ts_ns: i64, speed: f64) -> Instant {
    let offset_ns = ts_ns.saturating_sub(first_ts).max(0) as f64 / speed;
    let wait = Duration::try_from_secs_f64(offset_ns / 1e9).map_or(MAX_WAIT, |d| d.min(MAX_WAIT));
    start.checked_add(wait).unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::SourceError;
    use flowtape_core::occ::Contract;
    use std::collections::VecDeque;
    use tokio::sync::mpsc;

    fn print(seq: u64, ts_ns: i64) -> Print {
        Print {
            contract: Contract::parse("SPY261218C00600000").unwrap_or_else(|e| panic!("{e}")),
            price: 1.25,
            size: 3,
            exchange: 302,
            conditions: vec![],
            ts_ns,
            seq,
            bid: Some(1.2),
            ask: Some(1.25),
            spot: Some(600.0),
            oi: None,
        }
    }

    struct Scripted(VecDeque<Result<Print, SourceError>>);

    impl PrintSource for Scripted {
        fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
            self.0.pop_front()
        }
    }

    /// An endless source, one print per millisecond of recorded time.
    struct Endless(u64);

    impl PrintSource for Endless {
        fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
            self.0 += 1;
            Some(Ok(print(self.0, self.0 as i64 * 1_000_000)))
        }
    }

    #[test]
    fn speed_zero_is_as_fast_as_possible_and_nonsense_is_refused() {
        assert_eq!(Pace::from_speed(0.0), Ok(Pace::AsFastAsPossible));
        assert_eq!(Pace::from_speed(2.5), Ok(Pace::RealTime { speed: 2.5 }));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(Pace::from_speed(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn skips_malformed_records_and_delivers_the_rest_in_order() {
        let bad = SourceError {
            line: 2,
            reason: "expected value".into(),
        };
        let script = VecDeque::from([
            Ok(print(1, 10)),
            Err(bad),
            Ok(print(2, 20)),
            Ok(print(3, 30)),
        ]);
        let (tx, mut rx) = mpsc::channel(4);
        let stats = run_paced(
            Scripted(script),
            Pace::AsFastAsPossible,
            tx,
            std::future::pending(),
        )
        .await;
        assert_eq!(
            (stats.prints, stats.malformed, stats.end),
            (3, 1, FeedEnd::Exhausted)
        );
        let mut seqs = Vec::new();
        while let Some(batch) = rx.recv().await {
            seqs.extend(batch.iter().map(|p| p.seq));
        }
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[tokio::test]
    async fn real_time_batches_prints_by_due_time() {
        // 3 seconds of tape at one print per millisecond, replayed at 10x.
        let script = (0..3000)
            .map(|i| Ok(print(i, 5_000_000_000 + i as i64 * 1_000_000)))
            .collect();
        let (tx, mut rx) = mpsc::channel(16);
        let started = Instant::now();
        let feed = tokio::spawn(run_paced(
            Scripted(script),
            Pace::RealTime { speed: 10.0 },
            tx,
            std::future::pending(),
        ));
        let mut batches = 0;
        let mut prints = 0;
        while let Some(batch) = rx.recv().await {
            batches += 1;
            prints += batch.len();
            // Nothing is sent before it is due.
            let last = batch.last().map_or(0, |p| p.ts_ns - 5_000_000_000);
            assert!(started.elapsed() >= Duration::from_nanos(last as u64 / 10));
        }
        let stats = feed.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prints, 3000);
        assert_eq!(stats.batches, batches);
        // 10 prints per millisecond of replay, at most one wake-up per millisecond.
        assert!((2..=310).contains(&batches), "{batches} batches");
        assert!(started.elapsed() >= Duration::from_millis(299));
    }

    #[tokio::test]
    async fn stops_promptly_on_shutdown() {
        let (tx, mut rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let source: Box<dyn PrintSource> = Box::new(Endless(0));
        let feed = tokio::spawn(run_paced(
            source,
            Pace::RealTime { speed: 1.0 },
            tx,
            async {
                let _ = stop_rx.await;
            },
        ));
        let mut received = 0;
        while received < 100 {
            received += rx.recv().await.map_or(0, |b| b.len());
        }
        let _ = stop_tx.send(());
        let stats = feed.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.end, FeedEnd::Shutdown);
        assert!(stats.prints >= 100);
    }

    /// The feed keeps handing prints over while the runtime that started it
    /// is busy (in a one-process node: the gateway's fan-out).
    #[tokio::test]
    async fn prints_are_handed_over_while_the_callers_runtime_is_blocked() {
        let (tx, mut rx) = mpsc::channel(100_000);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let feed = tokio::spawn(run_paced(
            Endless(0),
            Pace::RealTime { speed: 1.0 },
            tx,
            async {
                let _ = stop_rx.await;
            },
        ));
        // Let it start, then take what it has sent so far.
        while rx.recv().await.is_none_or(|b| b.is_empty()) {}
        while rx.try_recv().is_ok() {}
        // This runtime has one thread: block it.
        std::thread::sleep(Duration::from_millis(300));
        let mut during = 0;
        while let Ok(batch) = rx.try_recv() {
            during += batch.len();
        }
        assert!(
            during >= 10,
            "{during} prints while the runtime was blocked"
        );
        let _ = stop_tx.send(());
        let stats = feed.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.end, FeedEnd::Shutdown);
    }

    #[tokio::test]
    async fn full_sink_applies_backpressure_without_loss_and_closed_sink_stops() {
        let (tx, mut rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let feed = tokio::spawn(run_paced(Endless(0), Pace::AsFastAsPossible, tx, async {
            let _ = stop_rx.await;
        }));
        let mut seqs = Vec::new();
        while seqs.len() < 3 * MAX_BATCH {
            seqs.extend(rx.recv().await.unwrap_or_default().iter().map(|p| p.seq));
        }
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gaps");
        drop(rx);
        let stats = feed.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.end, FeedEnd::SinkClosed);
        drop(stop_tx);
    }
}
