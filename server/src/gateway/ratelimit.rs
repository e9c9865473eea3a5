//! A token bucket for one connection's client messages.

use std::time::Instant;

use super::config::RateLimit;

pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Messages refused since the last one allowed.
    refused_in_a_row: u32,
    abuse_after: u32,
}

/// What to do with one client message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Refuse it with a `rate_limited` error.
    Refuse,
    /// Sustained abuse: close the connection (1008).
    Close,
}

impl TokenBucket {
    pub(crate) fn new(limit: &RateLimit, now: Instant) -> TokenBucket {
        TokenBucket {
            per_second: limit.per_second,
            burst: f64::from(limit.burst),
            tokens: f64::from(limit.burst),
            last: now,
            refused_in_a_row: 0,
            abuse_after: limit.abuse_after,
        }
    }

    pub(crate) fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
        if self.refused_in_a_row > self.abuse_after {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bursts_refill_and_abuse_closes() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 10.0,
            burst: 3,
            abuse_after: 2,
        };
        let mut b = TokenBucket::new(&limit, t0);
        assert_eq!([b.take(t0), b.take(t0), b.take(t0)], [Verdict::Allow; 3]);
        assert_eq!(b.take(t0), Verdict::Refuse);
        // 100 ms at 10/s brings one token back.
        assert_eq!(b.take(t0 + Duration::from_millis(100)), Verdict::Allow);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            [b.take(t1), b.take(t1), b.take(t1)],
            [Verdict::Refuse, Verdict::Refuse, Verdict::Close]
        );
    }
}
