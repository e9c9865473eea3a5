//! The event buffer: up to N events in cursor (stream) order, and the view
//! of them that the current scope selects.
//!
//! Events are keyed by their cursor, so a backfill merges into what is
//! already buffered: no event twice, always in stream order. The view is the
//! ascending list of the cursors that pass the scope and are not below the
//! floor, the oldest cursor from which the buffer is known to hold every event
//! of the scope ([`Tape::set_floor`]); the flow panel's [`Aggregates`] are kept
//! in step with it. When full, events out of view go first, oldest first,
//! then the oldest in view. Newest is last; the UI reads it backwards.

use std::collections::VecDeque;

use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;

use super::stats::Aggregates;

/// One buffered event and what the client decided about it on arrival.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub cursor: Cursor,
    pub event: FlowEvent,
    /// It matched an alert rule.
    pub alert: bool,
}

#[derive(Debug)]
struct Slot {
    entry: Entry,
    in_view: bool,
}

/// The buffer and its view.
#[derive(Debug)]
pub struct Tape {
    /// Ascending by cursor.
    slots: VecDeque<Slot>,
    cap: usize,
    /// Cursors of the slots in view, ascending.
    view: VecDeque<Cursor>,
    /// The view holds nothing older than this.
    floor: Option<Cursor>,
    aggregates: Aggregates,
}

impl Tape {
    pub fn new(cap: usize) -> Tape {
        let cap = cap.max(1);
        Tape {
            slots: VecDeque::with_capacity(cap.min(65_536)),
            cap,
            view: VecDeque::new(),
            floor: None,
            aggregates: Aggregates::default(),
        }
    }

    /// Adds events, keeping cursor order and skipping cursors already held;
    /// each enters the view if `keep` says so and it is not below the floor.
    /// Events newer than all held are appended; older ones are merged in one
    /// pass. Then the buffer is cut back to its capacity.
    pub fn insert(&mut self, entries: Vec<Entry>, mut keep: impl FnMut(&FlowEvent) -> bool) {
        let mut late = Vec::new();
        for entry in entries {
            if self.newest_cursor().is_none_or(|n| entry.cursor > n) {
                let in_view = self.admits(&entry, &mut keep);
                self.append(entry, in_view);
            } else {
                late.push(entry);
            }
        }
        if !late.is_empty() {
            self.merge(late, &mut keep);
        }
        self.shrink_to_capacity();
    }

    fn admits(&self, entry: &Entry, keep: &mut impl FnMut(&FlowEvent) -> bool) -> bool {
        self.floor.is_none_or(|f| entry.cursor >= f) && keep(&entry.event)
    }

    fn append(&mut self, entry: Entry, in_view: bool) {
        if in_view {
            self.aggregates.add(&entry.event);
            self.view.push_back(entry.cursor);
        }
        self.slots.push_back(Slot { entry, in_view });
    }

    /// Merges events older than the newest held, in one pass over the buffer.
    fn merge(&mut self, mut late: Vec<Entry>, keep: &mut impl FnMut(&FlowEvent) -> bool) {
        late.sort_by_key(|e| e.cursor);
        late.dedup_by_key(|e| e.cursor);
        let old = std::mem::take(&mut self.slots);
        let mut merged = VecDeque::with_capacity(old.len() + late.len());
        let mut old = old.into_iter().peekable();
        for entry in late {
            while let Some(slot) = old.next_if(|s| s.entry.cursor < entry.cursor) {
                merged.push_back(slot);
            }
            if old.peek().is_some_and(|s| s.entry.cursor == entry.cursor) {
                continue;
            }
            let in_view = self.admits(&entry, keep);
            if in_view {
                self.aggregates.add(&entry.event);
            }
            merged.push_back(Slot { entry, in_view });
        }
        merged.extend(old);
        self.slots = merged;
        self.rebuild_view();
    }

    fn rebuild_view(&mut self) {
        self.view = self
            .slots
            .iter()
            .filter(|s| s.in_view)
            .map(|s| s.entry.cursor)
            .collect();
    }

    /// Cuts the buffer back to its capacity: events out of view first,
    /// oldest first, then the oldest in view.
    fn shrink_to_capacity(&mut self) {
        while self.slots.len() > self.cap && self.slots.front().is_some_and(|s| !s.in_view) {
            self.slots.pop_front();
        }
        let excess = self.slots.len().saturating_sub(self.cap);
        let out_of_view = self.slots.len() - self.view.len();
        if excess > 0 && out_of_view > 0 {
            // One pass, and a sixteenth of the buffer more than needed, so
            // that a full buffer does not pay a pass for every event.
            let mut drop = out_of_view.min(excess + self.cap / 16);
            self.slots.retain(|s| {
                let gone = drop > 0 && !s.in_view;
                drop -= usize::from(gone);
                !gone
            });
        }
        while self.slots.len() > self.cap {
            if let Some(old) = self.slots.pop_front() {
                if old.in_view {
                    self.view.pop_front();
                    self.aggregates.remove(&old.entry.event);
                    // The view is complete only above what it lost.
                    self.floor = Some(old.entry.cursor.successor());
                }
            }
        }
    }

    /// Rebuilds the view (and the aggregates) with a new predicate, and
    /// lifts the floor.
    pub fn refilter(&mut self, mut keep: impl FnMut(&FlowEvent) -> bool) {
        self.floor = None;
        self.view.clear();
        self.aggregates = Aggregates::default();
        for s in self.slots.iter_mut() {
            s.in_view = keep(&s.entry.event);
            if s.in_view {
                self.view.push_back(s.entry.cursor);
                self.aggregates.add(&s.entry.event);
            }
        }
    }

    /// Takes every event older than `floor` out of the view, now and for
    /// events merged later, until the next [`Tape::refilter`]: from `floor`
    /// on, the buffer holds every event of the scope; below it, it may not.
    pub fn set_floor(&mut self, floor: Cursor) {
        self.floor = Some(floor);
        while let Some(&c) = self.view.front().filter(|c| **c < floor) {
            self.view.pop_front();
            if let Some(i) = self.index(c) {
                self.slots[i].in_view = false;
                self.aggregates.remove(&self.slots[i].entry.event);
            }
        }
    }

    /// The oldest position from which the view holds every event of the
    /// scope, if one is known.
    pub fn floor(&self) -> Option<Cursor> {
        self.floor
    }

    /// The oldest event in view.
    pub fn oldest_in_view(&self) -> Option<Cursor> {
        self.view.front().copied()
    }

    /// Changes the capacity; a smaller one applies at the next insert.
    pub fn set_capacity(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    /// Adds a page of history that holds every event of the scope from
    /// `floor` up to the current floor: the floor moves down to `floor`,
    /// and what the buffer held there (out of view until now) enters the
    /// view if `keep` says so.
    pub fn extend_back(
        &mut self,
        entries: Vec<Entry>,
        floor: Cursor,
        mut keep: impl FnMut(&FlowEvent) -> bool,
    ) {
        self.floor = Some(floor);
        self.insert(entries, &mut keep);
        for s in self.slots.iter_mut() {
            s.in_view = s.entry.cursor >= floor && keep(&s.entry.event);
        }
        self.view.clear();
        self.aggregates = Aggregates::default();
        for s in &self.slots {
            if s.in_view {
                self.view.push_back(s.entry.cursor);
                self.aggregates.add(&s.entry.event);
            }
        }
    }

    fn index(&self, cursor: Cursor) -> Option<usize> {
        self.slots
            .binary_search_by(|s| s.entry.cursor.cmp(&cursor))
            .ok()
    }

    pub fn get(&self, cursor: Cursor) -> Option<&Entry> {
        self.index(cursor).map(|i| &self.slots[i].entry)
    }

    pub fn contains(&self, cursor: Cursor) -> bool {
        self.index(cursor).is_some()
    }

    /// The newest buffered event, in view or not.
    pub fn newest(&self) -> Option<&Entry> {
        self.slots.back().map(|s| &s.entry)
    }

    pub fn newest_cursor(&self) -> Option<Cursor> {
        self.slots.back().map(|s| s.entry.cursor)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// How many view entries have a cursor at or below `bound`.
    pub fn view_len_upto(&self, bound: Cursor) -> usize {
        self.view.partition_point(|c| *c <= bound)
    }

    pub fn view_len(&self) -> usize {
        self.view.len()
    }

    /// The cursor of the `i`-th view entry counted from the newest among the
    /// first `len` entries (the displayed part of the view).
    pub fn view_from_top(&self, len: usize, i: usize) -> Option<Cursor> {
        let idx = len.checked_sub(i + 1)?;
        self.view.get(idx).copied()
    }

    /// Where `cursor` is among the first `len` view entries, counted from
    /// the newest.
    pub fn view_position_from_top(&self, len: usize, cursor: Cursor) -> Option<usize> {
        let idx = self.view.binary_search(&cursor).ok()?;
        (idx < len).then(|| len - 1 - idx)
    }

    /// The view, oldest first.
    pub fn view_entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slots.iter().filter(|s| s.in_view).map(|s| &s.entry)
    }

    pub fn aggregates(&self) -> &Aggregates {
        &self.aggregates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::event;

    fn entry(sym: &str, i: u64) -> Entry {
        Entry {
            cursor: Cursor::new(i, 0),
            event: event(sym, i as i64),
            alert: false,
        }
    }

    fn view_syms(t: &Tape) -> Vec<String> {
        t.view_entries().map(|e| e.event.sym.clone()).collect()
    }

    fn cursors(t: &Tape) -> Vec<u64> {
        t.slots.iter().map(|s| s.entry.cursor.ms).collect()
    }

    #[test]
    fn a_full_buffer_evicts_out_of_view_first_then_the_oldest() {
        let mut t = Tape::new(3);
        for i in 0..5u64 {
            let keep = i % 2 == 0;
            t.insert(vec![entry(&format!("T{i}"), i)], |_| keep);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(cursors(&t), vec![0, 2, 4], "T1 and T3 were out of view");
        assert_eq!(t.view_len(), 3);
        assert_eq!(t.view_from_top(3, 0), Some(Cursor::new(4, 0)));
        assert_eq!(t.view_from_top(3, 2), Some(Cursor::new(0, 0)));
        assert_eq!(t.view_from_top(3, 3), None);
        assert_eq!(t.get(Cursor::new(1, 0)), None);
        assert_eq!(t.aggregates().count(), 3);
        t.insert(vec![entry("T5", 5)], |_| true);
        assert_eq!(cursors(&t), vec![2, 4, 5], "all in view: the oldest goes");
        assert_eq!(t.aggregates().count(), 3);
        t.refilter(|e| e.sym != "T4");
        assert_eq!(view_syms(&t), vec!["T2", "T5"]);
        assert_eq!(t.view_len_upto(Cursor::new(4, 0)), 1);
    }

    #[test]
    fn events_out_of_view_are_evicted_before_older_ones_in_view() {
        let mut t = Tape::new(4);
        t.insert((10..14).map(|i| entry("OLD", i)).collect(), |_| true);
        // A new scope: the old events leave the view; a backfill brings
        // older events of the new scope.
        t.refilter(|e| e.sym == "NEW");
        t.insert((1..4).map(|i| entry("NEW", i)).collect(), |e| {
            e.sym == "NEW"
        });
        assert_eq!(cursors(&t), vec![1, 2, 3, 13], "the old ones went first");
        assert_eq!(view_syms(&t), vec!["NEW"; 3]);
        assert_eq!(t.aggregates().count(), 3);
    }

    #[test]
    fn a_backfill_merges_in_cursor_order_without_duplicates() {
        let mut t = Tape::new(100);
        t.insert(vec![entry("A", 2), entry("A", 5), entry("A", 9)], |_| true);
        t.insert(
            vec![entry("B", 1), entry("B", 2), entry("B", 7), entry("B", 10)],
            |_| true,
        );
        assert_eq!(cursors(&t), vec![1, 2, 5, 7, 9, 10]);
        assert_eq!(
            view_syms(&t),
            vec!["B", "A", "A", "B", "A", "B"],
            "the one held is kept"
        );
        assert_eq!(t.aggregates().count(), 6);
        assert_eq!(t.view_position_from_top(6, Cursor::new(7, 0)), Some(2));
        assert_eq!(t.view_position_from_top(3, Cursor::new(7, 0)), None);
    }

    #[test]
    fn the_floor_hides_what_the_buffer_may_hold_with_holes() {
        let mut t = Tape::new(100);
        t.insert((1..=6).map(|i| entry("A", i)).collect(), |_| true);
        t.set_floor(Cursor::new(4, 0));
        assert_eq!(t.view_len(), 3);
        assert_eq!(t.aggregates().count(), 3);
        t.insert(vec![entry("A", 0), entry("A", 8)], |_| true);
        assert_eq!(t.view_len(), 4, "nothing below the floor enters");
        t.refilter(|_| true);
        assert_eq!(t.view_len(), 8, "a new scope lifts it");
    }

    #[test]
    fn a_page_of_history_lowers_the_floor_and_shows_what_was_held_below_it() {
        let mut t = Tape::new(100);
        t.insert((5..=9).map(|i| entry("A", i)).collect(), |_| true);
        t.set_floor(Cursor::new(7, 0));
        assert_eq!(t.view_len(), 3);
        // The page covers [3, 7): it brings 3 and 4, and vouches for 5 and 6.
        t.extend_back(vec![entry("A", 3), entry("B", 4)], Cursor::new(3, 0), |e| {
            e.sym == "A"
        });
        assert_eq!(t.floor(), Some(Cursor::new(3, 0)));
        assert_eq!(cursors(&t), vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(view_syms(&t), vec!["A"; 6], "B is not in the scope");
        assert_eq!(t.oldest_in_view(), Some(Cursor::new(3, 0)));
        assert_eq!(t.aggregates().count(), 6);
    }
}
