//! Counters of the Massive feed, readable while it runs (for `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::feed::breaker::Transitions;

/// Counters of one upstream socket. Relaxed atomics: each is exact on its
/// own; a snapshot is not one instant across all of them.
#[derive(Debug, Default)]
pub struct SocketStats {
    /// Connection attempts, the first included.
    pub connection_attempts: AtomicU64,
    /// Connection attempts after the first.
    pub reconnects: AtomicU64,
    /// Sessions refused with `auth_failed`.
    pub auth_failures: AtomicU64,
    /// Sessions dropped because nothing arrived for the stall timeout.
    pub stalls: AtomicU64,
    /// Text frames received.
    pub frames: AtomicU64,
    /// Trade messages received (decoded; not all become prints).
    pub trades: AtomicU64,
    /// Quote messages received.
    pub quotes: AtomicU64,
    /// Frames or messages skipped as unreadable: bad JSON, not an array,
    /// binary, missing or mistyped fields, a bad option symbol.
    pub malformed: AtomicU64,
    /// Well-formed messages of an `ev` type the feed does not use.
    pub unknown_events: AtomicU64,
    /// Messages whose `q` did not increase for their symbol on the same day:
    /// duplicates or out-of-order delivery (options socket only).
    pub out_of_sequence: AtomicU64,
    /// The socket's circuit breaker's changes of state.
    pub breaker: Arc<Transitions>,
}

/// A plain copy of [`SocketStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SocketCounters {
    pub connection_attempts: u64,
    pub reconnects: u64,
    pub auth_failures: u64,
    pub stalls: u64,
    pub frames: u64,
    pub trades: u64,
    pub quotes: u64,
    pub malformed: u64,
    pub unknown_events: u64,
    pub out_of_sequence: u64,
}

impl SocketStats {
    /// Adds one; returns the new count.
    pub fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn snapshot(&self) -> SocketCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SocketCounters {
            connection_attempts: get(&self.connection_attempts),
            reconnects: get(&self.reconnects),
            auth_failures: get(&self.auth_failures),
            stalls: get(&self.stalls),
            frames: get(&self.frames),
            trades: get(&self.trades),
            quotes: get(&self.quotes),
            malformed: get(&self.malformed),
            unknown_events: get(&self.unknown_events),
            out_of_sequence: get(&self.out_of_sequence),
        }
    }
}

/// Counters of the whole feed.
#[derive(Debug, Default)]
pub struct MassiveStats {
    /// The options socket.
    pub options: SocketStats,
    /// The stocks socket (underlying spot), when configured.
    pub stocks: SocketStats,
}

/// Repeated warnings are logged for the first 20, then at powers of two.
pub(crate) fn worth_logging(n: u64) -> bool {
    n <= 20 || n.is_power_of_two()
}
