//! What one client received, in a form both sides of the loss check can
//! compute: a count, an order-independent digest of the cursors, and the
//! number of cursors that did not increase.
//!
//! The client adds [`cursor_hash`] of every event it decodes to its digest
//! (wrapping); the checker adds the same for every event of the flow stream
//! the client's filter matches. Equal counts and digests mean the client got
//! exactly the events it should have; strictly increasing cursors mean none
//! twice. A 64-bit digest makes a coincidental match of different sets
//! vanishingly unlikely.

use serde::{Deserialize, Serialize};

use flowtape_core::cursor::Cursor;

/// SplitMix64's finalizer: a fast, well-mixed 64-bit hash of a 64-bit value.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The digest contribution of one event.
pub fn cursor_hash(c: Cursor) -> u64 {
    mix64(c.ms ^ mix64(c.seq))
}

/// One client's account of a measured window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Events decoded.
    pub received: u64,
    /// Wrapping sum of [`cursor_hash`] over them.
    pub digest: u64,
    /// Events whose cursor was not above the one before (duplicates or reordering).
    pub disorder: u64,
    /// Why the connection ended, if it did: the close code, or an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
}

/// What a set of clients should have received, per client: count and digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub count: u64,
    pub digest: u64,
}

impl Expected {
    pub fn add(&mut self, c: Cursor) {
        self.count += 1;
        self.digest = self.digest.wrapping_add(cursor_hash(c));
    }
}

/// Loss and duplication over all clients of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    /// Events the filters select, summed over clients.
    pub expected: u64,
    /// Events the clients decoded.
    pub delivered: u64,
    /// Selected events a client did not get.
    pub lost: u64,
    /// Events a client got more than it should have (beyond duplicates).
    pub unexpected: u64,
    /// Events that came again or out of order.
    pub duplicates: u64,
    /// Clients whose set of events differs from the expected one in any way.
    pub mismatched_clients: u64,
    /// Clients whose connection ended during the run.
    pub disconnected_clients: u64,
}

impl Accounting {
    /// Compares each client's tally with what it should have received.
    pub fn compare(expected: &[Expected], got: &[Tally]) -> Accounting {
        let mut a = Accounting::default();
        for (i, e) in expected.iter().enumerate() {
            let t = got.get(i).cloned().unwrap_or_default();
            let unique = t.received.saturating_sub(t.disorder);
            a.expected += e.count;
            a.delivered += t.received;
            a.lost += e.count.saturating_sub(unique);
            a.unexpected += unique.saturating_sub(e.count);
            a.duplicates += t.disorder;
            if e.count != t.received || e.digest != t.digest || t.disorder > 0 {
                a.mismatched_clients += 1;
            }
            if t.closed.is_some() {
                a.disconnected_clients += 1;
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(cursors: &[Cursor]) -> Tally {
        let mut t = Tally::default();
        let mut last = None;
        for c in cursors {
            t.received += 1;
            t.digest = t.digest.wrapping_add(cursor_hash(*c));
            if last.is_some_and(|l| *c <= l) {
                t.disorder += 1;
            }
            last = Some(*c);
        }
        t
    }

    fn expect(cursors: &[Cursor]) -> Expected {
        let mut e = Expected::default();
        cursors.iter().for_each(|c| e.add(*c));
        e
    }

    #[test]
    fn exact_delivery_balances_and_faults_are_counted() {
        let c = |n: u64| Cursor::new(1_000 + n, n % 3);
        let all = [c(1), c(2), c(3), c(4)];
        let exact = Accounting::compare(&[expect(&all)], &[tally(&all)]);
        assert_eq!(
            (exact.lost, exact.mismatched_clients, exact.delivered),
            (0, 0, 4)
        );

        let missing = Accounting::compare(&[expect(&all)], &[tally(&all[..3])]);
        assert_eq!((missing.lost, missing.mismatched_clients), (1, 1));

        let twice = Accounting::compare(&[expect(&all)], &[tally(&[c(1), c(2), c(2), c(3), c(4)])]);
        assert_eq!(
            (twice.lost, twice.duplicates, twice.mismatched_clients),
            (0, 1, 1)
        );

        // Same count, different events: only the digest tells.
        let swapped = Accounting::compare(&[expect(&all)], &[tally(&[c(1), c(2), c(3), c(5)])]);
        assert_eq!((swapped.lost, swapped.mismatched_clients), (0, 1));
    }
}
