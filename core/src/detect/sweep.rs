//! Grouping prints into orders: the sweep detector.
//!
//! A sweep is one order routed as intermarket sweep (ISO) legs to several
//! venues at once; OPRA reports the legs as separate prints a few milliseconds
//! apart. [`SweepDetector`] holds ISO prints per contract while their window is
//! open and closes each group into one [`Order`]. Every other live print is an
//! order on its own and leaves at once.
//!
//! Windows are judged on the prints' own timestamps (feed time), never on the
//! wall clock: a group is the ISO prints on one contract whose timestamps span
//! at most the window. The caller says what time it is ([`SweepDetector::flush_due`])
//! so that pushing the same prints and flushing at the end always gives the
//! same orders. Every order lists the entry ids of all the prints it covers,
//! and the ids still held are visible, so the caller acknowledges exactly what
//! has been reflected in events.

use std::collections::HashMap;

use crate::conditions::ConditionFlags;
use crate::cursor::Cursor;
use crate::event::Print;
use crate::occ::Contract;

/// One order on the tape: a lone print or a closed group of ISO legs.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    entries: Vec<Cursor>,
    legs: Vec<Print>,
    multi_leg: bool,
}

impl Order {
    fn lone(entry: Cursor, print: Print, multi_leg: bool) -> Order {
        Order {
            entries: vec![entry],
            legs: vec![print],
            multi_leg,
        }
    }

    /// The stream entries of every print in the order, in the order they were pushed.
    pub fn entries(&self) -> &[Cursor] {
        &self.entries
    }

    /// The prints, earliest timestamp first (ties keep push order). Never empty.
    pub fn legs(&self) -> &[Print] {
        &self.legs
    }

    /// The earliest print: its time and quote are the order's.
    pub fn first(&self) -> &Print {
        // Orders are only built from at least one print.
        &self.legs[0]
    }

    /// A leg of a multi-leg (spread) order, which is never grouped.
    pub fn is_multi_leg(&self) -> bool {
        self.multi_leg
    }
}

/// ISO prints on one contract, waiting for their window to pass.
#[derive(Debug)]
struct OpenGroup {
    entries: Vec<Cursor>,
    legs: Vec<Print>,
    /// Earliest and latest leg timestamps (ns).
    start_ns: i64,
    end_ns: i64,
    /// When the group was opened, counted in groups: breaks ties between
    /// groups that start at the same nanosecond so closing order is stable.
    opened: u64,
}

impl OpenGroup {
    fn new(entry: Cursor, print: Print, opened: u64) -> OpenGroup {
        OpenGroup {
            entries: vec![entry],
            start_ns: print.ts_ns,
            end_ns: print.ts_ns,
            legs: vec![print],
            opened,
        }
    }

    /// Whether a print at `ts_ns` keeps the group's span within `window_ns`.
    fn admits(&self, ts_ns: i64, window_ns: i64) -> bool {
        let start = self.start_ns.min(ts_ns);
        let end = self.end_ns.max(ts_ns);
        end.saturating_sub(start) <= window_ns
    }

    fn add(&mut self, entry: Cursor, print: Print) {
        self.start_ns = self.start_ns.min(print.ts_ns);
        self.end_ns = self.end_ns.max(print.ts_ns);
        self.entries.push(entry);
        self.legs.push(print);
    }

    /// Whether the window that opened at the earliest leg has passed at `now_ns`.
    fn is_due(&self, now_ns: i64, window_ns: i64) -> bool {
        now_ns > self.start_ns.saturating_add(window_ns)
    }

    fn close(mut self) -> Order {
        // Stable: legs with equal timestamps keep the order they were pushed in.
        self.legs.sort_by_key(|p| p.ts_ns);
        Order {
            entries: self.entries,
            legs: self.legs,
            multi_leg: false,
        }
    }
}

/// Groups ISO prints per contract within a feed-time window.
#[derive(Debug)]
pub struct SweepDetector {
    window_ns: i64,
    open: HashMap<Contract, OpenGroup>,
    opened: u64,
}

impl SweepDetector {
    /// A detector grouping ISO legs whose timestamps span at most `window_ns`.
    pub fn new(window_ns: i64) -> SweepDetector {
        SweepDetector {
            window_ns: window_ns.max(0),
            open: HashMap::new(),
            opened: 0,
        }
    }

    /// Takes one live (not canceled) print.
    ///
    /// An ISO print that is neither a spread leg nor reported late joins the
    /// open group on its contract if the group's span stays within the window;
    /// otherwise that group is closed into `out` and the print opens a new one.
    /// Any other print goes to `out` at once as an order of its own: spread
    /// legs are not directional sweeps, and a late report arrives after its
    /// companions were published, so merging it would depend on timing.
    pub fn push(
        &mut self,
        entry: Cursor,
        print: Print,
        flags: ConditionFlags,
        out: &mut Vec<Order>,
    ) {
        if !flags.iso || flags.multi_leg || flags.late {
            out.push(Order::lone(entry, print, flags.multi_leg));
            return;
        }
        let contract = print.contract;
        if let Some(group) = self.open.get_mut(&contract) {
            if group.admits(print.ts_ns, self.window_ns) {
                group.add(entry, print);
                return;
            }
        }
        let opened = self.opened;
        self.opened += 1;
        if let Some(previous) = self
            .open
            .insert(contract, OpenGroup::new(entry, print, opened))
        {
            out.push(previous.close());
        }
    }

    /// Closes every group whose window has passed at feed time `now_ns`, in
    /// the order the groups started.
    pub fn flush_due(&mut self, now_ns: i64, out: &mut Vec<Order>) {
        let window_ns = self.window_ns;
        let due: Vec<Contract> = self
            .open
            .iter()
            .filter(|(_, group)| group.is_due(now_ns, window_ns))
            .map(|(contract, _)| *contract)
            .collect();
        let groups = due.iter().filter_map(|c| self.open.remove(c)).collect();
        Self::close_in_order(groups, out);
    }

    /// Closes every open group, in the order they started.
    pub fn flush_all(&mut self, out: &mut Vec<Order>) {
        let all = self.open.drain().map(|(_, group)| group).collect();
        Self::close_in_order(all, out);
    }

    fn close_in_order(mut groups: Vec<OpenGroup>, out: &mut Vec<Order>) {
        groups.sort_by_key(|g| (g.start_ns, g.opened));
        out.extend(groups.into_iter().map(OpenGroup::close));
    }

    /// Entry ids of the prints held in open groups: not yet reflected in any
    /// event, so not to be acknowledged.
    pub fn pending_ids(&self) -> impl Iterator<Item = Cursor> + '_ {
        self.open.values().flat_map(|g| g.entries.iter().copied())
    }

    /// The smallest entry id still held.
    pub fn oldest_open(&self) -> Option<Cursor> {
        self.pending_ids().min()
    }
}
