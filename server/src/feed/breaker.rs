//! The circuit breaker every live feed connects through, and the feed status it drives.
//!
//! A live feed keeps one connection to its upstream and reconnects when it is
//! lost. Reconnecting at once, forever, hammers a vendor that is down and can
//! get an account throttled; never reconnecting leaves the tape dead. The
//! [`Breaker`] decides when the next attempt may be made:
//!
//! - **Closed** (status `ok`): a session is established and serving.
//! - **Retrying** (status `degraded`): a connection failed or dropped, fewer
//!   than [`BreakerConfig::failure_threshold`] times in a row; the next attempt
//!   follows a short exponential backoff.
//! - **Open** (status `down`): the threshold was reached, the upstream stalled
//!   (no message for [`BreakerConfig::stall_timeout`]), or it refused us (an
//!   authentication failure). No attempt is made until the backoff has passed;
//!   the backoff keeps doubling, up to [`BreakerConfig::max_backoff`].
//! - **Half-open** (status still `down`): the backoff has passed and exactly one
//!   probe attempt is under way. Success closes the breaker; failure opens it
//!   again with a longer backoff.
//!
//! Every delay is jittered (scaled by a random factor in `[1 - jitter, 1]`) so
//! that many feeds restarting together do not reconnect in lock step.
//!
//! A session that dies within [`BreakerConfig::stable_after`] of being
//! established does not reset the failure count: an upstream that accepts and
//! then drops every connection still opens the breaker instead of being
//! retried at the shortest backoff forever.
//!
//! The breaker owns the feed's `watch::Sender<FeedStatus>` and sends a new
//! status only when the state or the reason changes, stamped with the time of
//! the change; it counts its changes of state in [`Transitions`] (for
//! `/metrics`). Time is passed in by the caller (`tokio::time::Instant`), so the
//! breaker is tested with injected time; randomness comes from a seeded
//! generator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::rng::Rng;
use flowtape_core::protocol::{FeedHealth, FeedStatus};

/// When a feed gives up on a connection and how long it waits before the next.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (1 opens it on the first).
    pub failure_threshold: u32,
    /// A connection that delivers nothing at all (no data, status or pong) for
    /// this long has stalled: it is dropped and the breaker opens.
    pub stall_timeout: Duration,
    /// Delay before the first retry; each further failure doubles it.
    pub initial_backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1]`; 0 disables
    /// jitter, values are clamped to `0..=1`.
    pub jitter: f64,
    /// A session must last this long for its end to count as a fresh failure
    /// rather than one more in a row.
    pub stable_after: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            stall_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(120),
            jitter: 0.5,
            stable_after: Duration::from_secs(30),
        }
    }
}

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Connected and serving.
    Closed,
    /// A few failures; retrying with a short backoff.
    Retrying,
    /// Too many failures, a stall or a refusal: waiting out the backoff.
    Open,
    /// One probe attempt is under way after the backoff.
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 4] = [
        BreakerState::Closed,
        BreakerState::Retrying,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    /// The state's name in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Retrying => "retrying",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// How many times a breaker entered each state (relaxed atomics, readable
/// while it runs). The state it starts in does not count.
#[derive(Debug, Default)]
pub struct Transitions([AtomicU64; 4]);

impl Transitions {
    /// Entries into `state` so far.
    pub fn into_state(&self, state: BreakerState) -> u64 {
        self.0[state as usize].load(Ordering::Relaxed)
    }

    fn count(&self, state: BreakerState) {
        self.0[state as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Decides when a feed may (re)connect and publishes its status. See the module docs.
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    config: BreakerConfig,
    status: watch::Sender<FeedStatus>,
    transitions: Arc<Transitions>,
    rng: Rng,
    state: BreakerState,
    /// Consecutive failures, as the backoff counts them.
    failures: u32,
    /// No attempt before this instant.
    ready_at: Instant,
    /// When the current session was established, and the failure count then.
    session: Option<(Instant, u32)>,
}

impl Breaker {
    /// A breaker for the feed called `name` (used in logs) that may connect at
    /// once. It publishes `degraded: connecting` until the first session is
    /// established, and counts its changes of state in `transitions`. `seed`
    /// drives the jitter.
    pub fn new(
        name: &'static str,
        config: BreakerConfig,
        status: watch::Sender<FeedStatus>,
        transitions: Arc<Transitions>,
        seed: u64,
        now: Instant,
    ) -> Breaker {
        let breaker = Breaker {
            name,
            config,
            status,
            transitions,
            rng: Rng::new(seed),
            state: BreakerState::Retrying,
            failures: 0,
            ready_at: now,
            session: None,
        };
        breaker.publish(FeedHealth::Degraded, "connecting".to_string());
        breaker
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The earliest instant the next connection attempt may start.
    pub fn ready_at(&self) -> Instant {
        self.ready_at
    }

    /// Starts a connection attempt at `now`, or refuses with the instant it
    /// may start. An attempt after the open backoff is the half-open probe;
    /// callers make one attempt at a time, so there is only ever one probe.
    pub fn begin_attempt(&mut self, now: Instant) -> Result<(), Instant> {
        if now < self.ready_at {
            return Err(self.ready_at);
        }
        if self.state == BreakerState::Open {
            self.enter(BreakerState::HalfOpen);
            tracing::info!(feed = self.name, "circuit half-open: probing the upstream");
        }
        Ok(())
    }

    /// A session was established (connected, authenticated, subscribed): the
    /// breaker closes and the status becomes `ok`.
    pub fn on_success(&mut self, now: Instant) {
        if self.state != BreakerState::Closed {
            tracing::info!(
                feed = self.name,
                after_failures = self.failures,
                "circuit closed: upstream serving"
            );
        }
        self.enter(BreakerState::Closed);
        self.session = Some((now, self.failures));
        self.publish(FeedHealth::Ok, String::new());
    }

    /// A connection attempt failed or an established session ended, for
    /// `reason`. Returns how long until the next attempt.
    pub fn on_failure(&mut self, now: Instant, reason: &str) -> Duration {
        self.count_failure(now);
        if self.state == BreakerState::HalfOpen
            || self.failures >= self.config.failure_threshold.max(1)
        {
            let reason = format!("{reason} ({} failures in a row)", self.failures);
            self.open(now, reason, None)
        } else {
            let delay = self.backoff();
            self.enter(BreakerState::Retrying);
            self.ready_at = now + delay;
            tracing::warn!(
                feed = self.name,
                retry_in_ms = delay.as_millis() as u64,
                "reconnecting: {reason}"
            );
            self.publish(FeedHealth::Degraded, format!("reconnecting: {reason}"));
            delay
        }
    }

    /// The connection delivered nothing for [`BreakerConfig::stall_timeout`]:
    /// the breaker opens at once. Returns how long until the next attempt.
    pub fn on_stall(&mut self, now: Instant) -> Duration {
        self.count_failure(now);
        self.failures = self.failures.max(self.config.failure_threshold);
        let secs = self.config.stall_timeout.as_secs_f64();
        self.open(
            now,
            format!("upstream stalled: nothing received for {secs}s"),
            None,
        )
    }

    /// The upstream refused us in a way retrying soon cannot fix (an
    /// authentication failure): the breaker opens with `reason` as the status
    /// reason, verbatim, and waits at least `hold` (jittered upwards, never
    /// shorter) before the next probe. Returns how long until then.
    pub fn hold_open(&mut self, now: Instant, reason: String, hold: Duration) -> Duration {
        self.count_failure(now);
        self.failures = self.failures.max(self.config.failure_threshold);
        self.open(now, reason, Some(hold))
    }

    fn enter(&mut self, state: BreakerState) {
        if self.state != state {
            self.transitions.count(state);
        }
        self.state = state;
    }

    fn count_failure(&mut self, now: Instant) {
        if let Some((since, failures_then)) = self.session.take() {
            let stable = now.saturating_duration_since(since) >= self.config.stable_after;
            self.failures = if stable { 0 } else { failures_then };
        }
        self.failures = self.failures.saturating_add(1);
    }

    fn open(&mut self, now: Instant, reason: String, hold: Option<Duration>) -> Duration {
        let delay = match hold {
            // At least `hold`: a refusal is not retried early because of jitter.
            Some(hold) => hold.mul_f64(2.0 - self.jitter_factor()),
            None => self.backoff(),
        };
        self.enter(BreakerState::Open);
        self.ready_at = now + delay;
        tracing::warn!(
            feed = self.name,
            retry_in_ms = delay.as_millis() as u64,
            "circuit open: {reason}"
        );
        self.publish(FeedHealth::Down, reason);
        delay
    }

    /// `initial × 2^(failures-1)`, capped, jittered.
    fn backoff(&mut self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(32);
        let raw = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << doublings.min(31));
        raw.min(self.config.max_backoff)
            .mul_f64(self.jitter_factor())
    }

    /// A random factor in `[1 - jitter, 1]`.
    fn jitter_factor(&mut self) -> f64 {
        let jitter = if self.config.jitter.is_finite() {
            self.config.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        1.0 - jitter * self.rng.unit()
    }

    /// Sends the status if its state or reason changed.
    fn publish(&self, state: FeedHealth, reason: String) {
        self.status.send_if_modified(|current| {
            if current.state == state && current.reason == reason {
                return false;
            }
            *current = FeedStatus {
                state,
                reason,
                since: crate::bus::now_ms() as i64,
            };
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            stall_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(16),
            jitter: 0.0,
            stable_after: Duration::from_secs(30),
        }
    }

    /// Injected time: the tests move it by hand.
    struct Clock(Instant);

    impl Clock {
        fn now(&self) -> Instant {
            self.0
        }

        fn advance(&mut self, by: Duration) {
            self.0 += by;
        }

        fn until(&mut self, at: Instant) {
            self.0 = self.0.max(at);
        }
    }

    fn breaker(config: BreakerConfig) -> (Breaker, watch::Receiver<FeedStatus>, Clock) {
        let (tx, rx) = watch::channel(FeedStatus {
            state: FeedHealth::Ok,
            reason: String::new(),
            since: 0,
        });
        let clock = Clock(Instant::now());
        let transitions = Arc::default();
        (
            Breaker::new("test", config, tx, transitions, 7, clock.now()),
            rx,
            clock,
        )
    }

    fn health(rx: &watch::Receiver<FeedStatus>) -> (FeedHealth, String) {
        let s = rx.borrow();
        (s.state, s.reason.clone())
    }

    #[test]
    fn starts_connecting_then_closes_on_success() {
        let (mut b, rx, clock) = breaker(config());
        assert_eq!(health(&rx), (FeedHealth::Degraded, "connecting".into()));
        assert_eq!(b.begin_attempt(clock.now()), Ok(()));
        b.on_success(clock.now());
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(health(&rx), (FeedHealth::Ok, String::new()));
    }

    #[test]
    fn retries_with_exponential_backoff_then_opens_and_refuses_early_attempts() {
        let (mut b, rx, mut clock) = breaker(config());
        let t0 = clock.now();
        assert_eq!(
            b.on_failure(t0, "connection refused"),
            Duration::from_secs(1)
        );
        assert_eq!(b.state(), BreakerState::Retrying);
        assert_eq!(
            health(&rx),
            (
                FeedHealth::Degraded,
                "reconnecting: connection refused".into()
            )
        );
        assert_eq!(b.begin_attempt(t0), Err(t0 + Duration::from_secs(1)));

        clock.advance(Duration::from_secs(1));
        assert_eq!(b.begin_attempt(clock.now()), Ok(()));
        assert_eq!(
            b.on_failure(clock.now(), "connection refused"),
            Duration::from_secs(2)
        );
        assert_eq!(b.state(), BreakerState::Retrying);

        clock.advance(Duration::from_secs(2));
        assert_eq!(b.begin_attempt(clock.now()), Ok(()));
        assert_eq!(
            b.on_failure(clock.now(), "connection refused"),
            Duration::from_secs(4)
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            health(&rx),
            (
                FeedHealth::Down,
                "connection refused (3 failures in a row)".into()
            )
        );
        // While open, nothing may connect before the backoff has passed.
        clock.advance(Duration::from_secs(3));
        assert!(b.begin_attempt(clock.now()).is_err());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn half_open_probe_failure_reopens_with_a_longer_backoff_capped_at_max() {
        let (mut b, rx, mut clock) = breaker(config());
        for _ in 0..3 {
            b.on_failure(clock.now(), "refused");
        }
        assert_eq!(b.state(), BreakerState::Open);
        let mut delays = Vec::new();
        for _ in 0..5 {
            clock.until(b.ready_at());
            assert_eq!(b.begin_attempt(clock.now()), Ok(()));
            assert_eq!(b.state(), BreakerState::HalfOpen);
            // Still down while probing: nothing has been fixed yet.
            assert_eq!(rx.borrow().state, FeedHealth::Down);
            delays.push(b.on_failure(clock.now(), "refused").as_secs());
            assert_eq!(b.state(), BreakerState::Open);
        }
        assert_eq!(delays, [8, 16, 16, 16, 16]);
        clock.until(b.ready_at());
        assert_eq!(b.begin_attempt(clock.now()), Ok(()));
        b.on_success(clock.now());
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(rx.borrow().state, FeedHealth::Ok);
        // Retrying (the start) → open, then 6 probes: 6 half-open, 5 open again, 1 closed.
        let counted = BreakerState::ALL.map(|s| b.transitions.into_state(s));
        assert_eq!(counted, [1, 0, 6, 6], "closed, retrying, open, half_open");
    }

    #[test]
    fn a_stall_opens_at_once() {
        let (mut b, rx, mut clock) = breaker(config());
        b.on_success(clock.now());
        clock.advance(Duration::from_secs(60));
        let delay = b.on_stall(clock.now());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(delay, Duration::from_secs(4));
        assert_eq!(
            health(&rx),
            (
                FeedHealth::Down,
                "upstream stalled: nothing received for 10s".into()
            )
        );
    }

    #[test]
    fn a_stable_session_resets_the_count_but_a_flapping_one_does_not() {
        let (mut b, _rx, mut clock) = breaker(config());
        b.on_failure(clock.now(), "refused");
        b.on_failure(clock.now(), "refused");
        // Established, then dropped at once: one more in a row, so it opens.
        b.on_success(clock.now());
        clock.advance(Duration::from_secs(1));
        b.on_failure(clock.now(), "closed by upstream");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.failures(), 3);

        // Established and serving for longer than stable_after: a fresh start.
        clock.until(b.ready_at());
        assert_eq!(b.begin_attempt(clock.now()), Ok(()));
        b.on_success(clock.now());
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            b.on_failure(clock.now(), "closed by upstream"),
            Duration::from_secs(1)
        );
        assert_eq!(b.state(), BreakerState::Retrying);
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn hold_open_waits_at_least_the_hold_and_keeps_the_reason_verbatim() {
        let mut c = config();
        c.jitter = 0.5;
        let (mut b, rx, clock) = breaker(c);
        let hold = Duration::from_secs(300);
        let delay = b.hold_open(clock.now(), "authentication failed: bad key".into(), hold);
        assert!(delay >= hold && delay <= hold.mul_f64(1.5), "{delay:?}");
        assert_eq!(
            health(&rx),
            (FeedHealth::Down, "authentication failed: bad key".into())
        );
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let mut c = config();
        c.jitter = 0.5;
        c.failure_threshold = 100;
        let (mut b, _rx, clock) = breaker(c);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            b.session = Some((clock.now(), 0));
            let d = b.on_failure(clock.now(), "x");
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_secs(1),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 1, "jitter should vary the delay");
    }

    #[test]
    fn status_is_sent_only_on_change() {
        let (mut b, mut rx, clock) = breaker(config());
        rx.borrow_and_update();
        b.on_success(clock.now());
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        b.on_success(clock.now());
        assert!(!rx.has_changed().unwrap_or(true));
    }
}
