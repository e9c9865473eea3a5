//! The event buffer: a ring of the last N events and the filtered view of it.
//!
//! Every event that enters gets an absolute sequence number; the ring holds
//! the numbers `base..base + len`. The view is the ascending list of the
//! numbers that pass the current scope, so re-filtering is one pass over the
//! ring and eviction pops from both fronts. The side panel's [`Aggregates`]
//! are kept in step with the view. Newest is last; the UI reads it backwards.

use std::collections::VecDeque;

use flowtape_core::event::FlowEvent;

use super::stats::Aggregates;

/// One buffered event and what the client decided about it on arrival.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub event: FlowEvent,
    /// It matched an alert rule.
    pub alert: bool,
}

/// The ring and its filtered view.
#[derive(Debug)]
pub struct Tape {
    entries: VecDeque<Entry>,
    base: u64,
    cap: usize,
    view: VecDeque<u64>,
    aggregates: Aggregates,
}

impl Tape {
    pub fn new(cap: usize) -> Tape {
        let cap = cap.max(1);
        Tape {
            entries: VecDeque::with_capacity(cap.min(65_536)),
            base: 0,
            cap,
            view: VecDeque::new(),
            aggregates: Aggregates::default(),
        }
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Appends an event, evicting the oldest when full. Returns whether it
    /// entered the view.
    pub fn push(&mut self, entry: Entry, in_view: bool) -> bool {
        if self.entries.len() == self.cap {
            self.evict_oldest();
        }
        let seq = self.next_seq();
        if in_view {
            self.aggregates.add(&entry.event);
            self.view.push_back(seq);
        }
        self.entries.push_back(entry);
        in_view
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.entries.pop_front() {
            if self.view.front() == Some(&self.base) {
                self.view.pop_front();
                self.aggregates.remove(&old.event);
            }
            self.base += 1;
        }
    }

    /// Rebuilds the view (and the aggregates) with a new predicate.
    pub fn refilter(&mut self, mut keep: impl FnMut(&FlowEvent) -> bool) {
        self.view.clear();
        self.aggregates = Aggregates::default();
        for (i, e) in self.entries.iter().enumerate() {
            if keep(&e.event) {
                self.view.push_back(self.base + i as u64);
                self.aggregates.add(&e.event);
            }
        }
    }

    pub fn get(&self, seq: u64) -> Option<&Entry> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.entries.get(i)
    }

    /// The newest buffered event, filtered or not.
    pub fn newest(&self) -> Option<&Entry> {
        self.entries.back()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// How many view entries have a sequence number below `bound`.
    pub fn view_len_before(&self, bound: u64) -> usize {
        self.view.partition_point(|s| *s < bound)
    }

    pub fn view_len(&self) -> usize {
        self.view.len()
    }

    /// The sequence number of the `i`-th view entry counted from the newest
    /// among the first `len` entries (the displayed part of the view).
    pub fn view_from_top(&self, len: usize, i: usize) -> Option<u64> {
        let idx = len.checked_sub(i + 1)?;
        self.view.get(idx).copied()
    }

    /// The view, oldest first.
    pub fn view_entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.view.iter().filter_map(|s| self.get(*s))
    }

    pub fn aggregates(&self) -> &Aggregates {
        &self.aggregates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::event;

    #[test]
    fn ring_evicts_oldest_and_keeps_view_in_step() {
        let mut t = Tape::new(3);
        for i in 0..5u64 {
            let e = event(&format!("T{i}"), i as i64);
            t.push(
                Entry {
                    event: e,
                    alert: false,
                },
                i % 2 == 0,
            );
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.next_seq(), 5);
        // Seqs 2, 3, 4 remain; 2 and 4 are in view.
        assert_eq!(t.view_len(), 2);
        assert_eq!(t.view_from_top(2, 0), Some(4));
        assert_eq!(t.view_from_top(2, 1), Some(2));
        assert_eq!(t.view_from_top(2, 2), None);
        assert_eq!(t.get(1), None);
        assert_eq!(t.get(2).map(|e| e.event.sym.as_str()), Some("T2"));
        assert_eq!(t.aggregates().count(), 2);
        t.refilter(|e| e.sym != "T4");
        assert_eq!(
            t.view_entries()
                .map(|e| e.event.sym.clone())
                .collect::<Vec<_>>(),
            vec!["T2", "T3"]
        );
        assert_eq!(t.view_len_before(3), 1);
    }
}
