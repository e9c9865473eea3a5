//! Bounded memory of the latest quote, spot and sequence number per symbol.
//!
//! The options tape covers hundreds of thousands of contracts, so nothing kept
//! per symbol may grow without bound. [`Bounded`] is an approximate LRU map in
//! O(1): entries live in a young and an old generation; a hit in the old one
//! moves the entry to the young one; when the young generation is full the old
//! one is dropped whole and the young one takes its place. It never holds more
//! than its capacity, and an entry touched within the last `capacity / 2`
//! insertions is never evicted.
//!
//! Staleness is judged on the feed's own clock: a quote or spot price is joined
//! onto a trade only if it is at most `max_age` older than the trade (SIP
//! times), so a replay or a lagging connection is judged the same as live data.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use flowtape_core::date::market_date;
use flowtape_core::occ::Contract;

/// An approximate LRU map holding at most `capacity` entries. See the module docs.
#[derive(Debug)]
pub struct Bounded<K, V> {
    half: usize,
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Eq + Hash, V> Bounded<K, V> {
    /// A map of at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> Bounded<K, V> {
        Bounded {
            half: (capacity / 2).max(1),
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if !self.young.contains_key(key) {
            let (k, v) = self.old.remove_entry(key)?;
            self.insert_young(k, v);
        }
        self.young.get(key)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.old.remove(&key);
        self.insert_young(key, value);
    }

    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    fn insert_young(&mut self, key: K, value: V) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }
}

/// A price known at a feed time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stamped<T> {
    value: T,
    t_ms: i64,
}

/// The latest value per key, joined onto trades only while fresh.
#[derive(Debug)]
pub struct Latest<K, T> {
    map: Bounded<K, Stamped<T>>,
    max_age_ms: i64,
}

impl<K: Eq + Hash, T: Copy> Latest<K, T> {
    pub fn new(capacity: usize, max_age_ms: i64) -> Latest<K, T> {
        Latest {
            map: Bounded::new(capacity),
            max_age_ms,
        }
    }

    /// Records `value` as of `t_ms`, unless a newer one is already known.
    pub fn update(&mut self, key: K, value: T, t_ms: i64) {
        if self.map.get(&key).is_some_and(|s| s.t_ms > t_ms) {
            return;
        }
        self.map.insert(key, Stamped { value, t_ms });
    }

    /// The value for `key` if it is at most `max_age` older than `at_ms`.
    pub fn fresh_at<Q>(&mut self, key: &Q, at_ms: i64) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let s = self.map.get(key)?;
        (at_ms.saturating_sub(s.t_ms) <= self.max_age_ms).then_some(s.value)
    }
}

/// Which stream a sequence number belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Trade,
    Quote,
}

/// Checks that `q` increases per symbol and stream within one connection.
///
/// Massive documents `q` as "increasing and unique per ticker symbol, but
/// not always sequential", resetting each trading day: so a jump forward is
/// normal and proves nothing, while a `q` that does not increase on the same
/// market day is a duplicate or out-of-order delivery.
#[derive(Debug)]
pub struct SequenceCheck {
    last: Bounded<(Contract, Stream), (u64, i64)>,
}

impl SequenceCheck {
    pub fn new(capacity: usize) -> SequenceCheck {
        SequenceCheck {
            last: Bounded::new(capacity),
        }
    }

    /// Notes `seq` at `t_ms`; returns the previous number when `seq` did not
    /// increase on the same market day.
    pub fn note(&mut self, contract: Contract, stream: Stream, seq: u64, t_ms: i64) -> Option<u64> {
        let key = (contract, stream);
        let broken = match self.last.get(&key) {
            Some(&(prev, prev_t)) if seq <= prev && market_date(prev_t) == market_date(t_ms) => {
                Some(prev)
            }
            _ => None,
        };
        if broken.is_none() {
            self.last.insert(key, (seq, t_ms));
        }
        broken
    }

    /// Forgets everything: numbering is per connection.
    pub fn reset(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_never_exceeds_capacity_and_keeps_recently_used_entries() {
        let mut m = Bounded::new(10);
        m.insert(0u32, 0u32);
        for i in 1..1000 {
            m.insert(i, i);
            // Touch key 0 every few inserts: it must survive.
            if i % 4 == 0 {
                assert_eq!(m.get(&0), Some(&0), "at {i}");
            }
            assert!(m.len() <= 10);
        }
        assert_eq!(m.get(&999), Some(&999));
        assert_eq!(m.get(&1), None);
    }

    #[test]
    fn latest_keeps_the_newest_and_joins_only_fresh_values() {
        let mut l: Latest<&str, f64> = Latest::new(100, 1_000);
        l.update("AAPL", 190.0, 5_000);
        l.update("AAPL", 189.0, 4_000); // older: ignored
        assert_eq!(l.fresh_at("AAPL", 5_500), Some(190.0));
        assert_eq!(l.fresh_at("AAPL", 6_000), Some(190.0));
        assert_eq!(l.fresh_at("AAPL", 6_001), None);
        assert_eq!(l.fresh_at("MSFT", 5_000), None);
    }

    #[test]
    fn sequence_breaks_are_repeats_or_regressions_on_the_same_day() {
        let c = Contract::parse("O:SPY261218C00600000").unwrap_or_else(|e| panic!("{e}"));
        let day = 1_766_000_000_000; // a weekday afternoon, New York
        let mut s = SequenceCheck::new(100);
        assert_eq!(s.note(c, Stream::Trade, 10, day), None);
        assert_eq!(s.note(c, Stream::Trade, 15, day), None, "jumps are normal");
        assert_eq!(
            s.note(c, Stream::Quote, 3, day),
            None,
            "streams are separate"
        );
        assert_eq!(s.note(c, Stream::Trade, 15, day), Some(15));
        assert_eq!(s.note(c, Stream::Trade, 12, day), Some(15));
        assert_eq!(
            s.note(c, Stream::Trade, 1, day + 86_400_000),
            None,
            "numbering resets daily"
        );
        s.reset();
        assert_eq!(s.note(c, Stream::Trade, 1, day + 86_400_000), None);
    }
}
