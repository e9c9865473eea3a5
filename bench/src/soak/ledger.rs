//! One soak client's ledger: what it received, kept so that the harness can
//! check it exactly although the client reconnects and changes its filter.
//!
//! A client's subscription is one line through the flow stream, from its
//! start cursor to the end of the run, cut into [`Period`]s. Reconnecting
//! resumes with `since` = the last cursor received and the current filter,
//! so the line has no gap. A `filter` op takes effect at a point the client
//! cannot see, so it opens a [`Rule::Switch`] period; the switch ends at the
//! first event that only the new filter selects (proof that the gateway
//! switched before it), or at the next `subscribe`.
//! - Events under a [`Rule::Filter`] are tallied per [`Epochs`] minute of
//!   cursor time ([`Tally`]: count and digest), for the harness to compare
//!   with the stream minute by minute.
//! - Events in a switch are kept as a list ([`SwitchRecord`]); the harness
//!   checks that one switch point explains it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tally::{cursor_hash, Tally};
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;

/// Minutes of cursor (commit) time from an origin: the soak's checking units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epochs {
    pub origin_ms: u64,
    pub length_ms: u64,
}

impl Epochs {
    /// The epoch an event belongs to; anything before the origin is in epoch 0.
    pub fn of(&self, c: Cursor) -> u32 {
        let k = c.ms.saturating_sub(self.origin_ms) / self.length_ms.max(1);
        u32::try_from(k).unwrap_or(u32::MAX)
    }

    /// The first cursor of epoch `k` (epoch 0 also holds everything earlier).
    pub fn start(&self, k: u32) -> Cursor {
        match k {
            0 => Cursor::ZERO,
            k => Cursor::new(self.origin_ms + u64::from(k) * self.length_ms, 0),
        }
    }
}

/// A filter and the text it was parsed from.
#[derive(Clone, Debug)]
pub struct Watch {
    pub text: String,
    pub filter: Filter,
}

/// What selects a client's events in a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Exactly the events this filter selects.
    Filter { filter: String },
    /// A `filter` op in flight: the old filter up to a point, the new one after.
    Switch { old: String, new: String },
}

/// From `from` (inclusive) up to the next period's `from`, `rule` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: Cursor,
    #[serde(flatten)]
    pub rule: Rule,
}

/// A switch that has ended: the events received after `after` and before
/// `until`, where the filter changed from `old` to `new` at one unknown point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchRecord {
    pub after: Cursor,
    pub until: Cursor,
    pub old: String,
    pub new: String,
    pub got: Vec<Cursor>,
}

/// A client's report for one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEpoch {
    /// The epoch's events received under a filter (not in a switch).
    pub tally: Tally,
    /// The periods that reach into the epoch or later, oldest first; empty
    /// for a client that has not subscribed yet.
    pub periods: Vec<Period>,
    /// Switches that ended since the last report.
    pub switches: Vec<SwitchRecord>,
    /// Events of epochs already reported, received since the last report.
    pub late: u64,
    /// Periods that began inside an epoch already reported (which the
    /// harness then checked under the rule before).
    pub retroactive: u64,
}

/// A switch in flight.
struct OpenSwitch {
    after: Cursor,
    old: Watch,
    new: Watch,
    got: Vec<Cursor>,
}

/// One client's ledger (see the module docs).
pub struct Ledger {
    start: Cursor,
    current: Watch,
    periods: Vec<Period>,
    last: Option<Cursor>,
    tallies: BTreeMap<u32, Tally>,
    open: Option<OpenSwitch>,
    ended: Vec<SwitchRecord>,
    /// Epochs up to this one have been reported.
    reported: Option<u32>,
    late: u64,
    retroactive: u64,
}

impl Ledger {
    /// A subscription to every event after `start` that `watch` selects.
    pub fn new(start: Cursor, watch: Watch) -> Ledger {
        Ledger {
            start,
            periods: vec![Period {
                from: start.successor(),
                rule: Rule::Filter {
                    filter: watch.text.clone(),
                },
            }],
            current: watch,
            last: None,
            tallies: BTreeMap::new(),
            open: None,
            ended: Vec::new(),
            reported: None,
            late: 0,
            retroactive: 0,
        }
    }

    /// The `since` to subscribe with: the last cursor received, or the start.
    pub fn resume_from(&self) -> Cursor {
        self.last.unwrap_or(self.start)
    }

    /// The filter to subscribe with: the new one while a switch is in flight.
    pub fn filter(&self) -> &str {
        match &self.open {
            Some(open) => &open.new.text,
            None => &self.current.text,
        }
    }

    /// Whether a `filter` op is in flight.
    pub fn switching(&self) -> bool {
        self.open.is_some()
    }

    /// The filter in force (the old one while a switch is in flight).
    pub fn watch(&self) -> &Watch {
        &self.current
    }

    /// Notes a `subscribe` with [`Ledger::resume_from`] and [`Ledger::filter`]:
    /// it ends a switch in flight exactly there.
    pub fn resubscribed(&mut self, epochs: &Epochs) {
        let at = self.resume_from().successor();
        self.end_switch(at, epochs);
    }

    /// Notes a `filter` op sent for `new`: a switch from the last cursor received.
    pub fn begin_switch(&mut self, new: Watch, epochs: &Epochs) {
        self.end_switch(self.resume_from().successor(), epochs);
        let after = self.resume_from();
        self.push(
            after.successor(),
            Rule::Switch {
                old: self.current.text.clone(),
                new: new.text.clone(),
            },
            epochs,
        );
        self.open = Some(OpenSwitch {
            after,
            old: self.current.clone(),
            new,
            got: Vec::new(),
        });
    }

    /// Ends the switch in flight (if any) just before `until`, from where
    /// the new filter holds.
    fn end_switch(&mut self, until: Cursor, epochs: &Epochs) {
        let Some(open) = self.open.take() else { return };
        self.ended.push(SwitchRecord {
            after: open.after,
            until,
            old: open.old.text,
            new: open.new.text.clone(),
            got: open.got,
        });
        self.push(
            until,
            Rule::Filter {
                filter: open.new.text.clone(),
            },
            epochs,
        );
        self.current = open.new;
    }

    fn push(&mut self, from: Cursor, rule: Rule, epochs: &Epochs) {
        if let Some(r) = self.reported {
            if from < epochs.start(r.saturating_add(1)) {
                self.retroactive += 1;
            }
        }
        self.periods.push(Period { from, rule });
    }

    /// Records one event received.
    pub fn record(&mut self, cursor: Cursor, event: &FlowEvent, epochs: &Epochs) {
        let epoch = epochs.of(cursor);
        if self.reported.is_some_and(|r| epoch <= r) {
            self.late += 1;
            self.last = self.last.max(Some(cursor));
            return;
        }
        let in_order = self.last.is_none_or(|l| cursor > l);
        if in_order {
            self.last = Some(cursor);
            if let Some(open) = &mut self.open {
                let proof = open.new.filter.matches(event) && !open.old.filter.matches(event);
                if !proof {
                    open.got.push(cursor);
                    return;
                }
                self.end_switch(cursor, epochs);
            }
        }
        let tally = self.tallies.entry(epoch).or_default();
        tally.received += 1;
        tally.digest = tally.digest.wrapping_add(cursor_hash(cursor));
        tally.disorder += u64::from(!in_order);
    }

    /// Ends a switch still in flight at the end of the run, after `through`
    /// (the last event of the stream).
    pub fn finish(&mut self, through: Cursor, epochs: &Epochs) {
        self.end_switch(through.successor(), epochs);
    }

    /// The report for epoch `k`; from now on events of epochs up to `k` are late.
    pub fn report(&mut self, k: u32, epochs: &Epochs) -> ClientEpoch {
        let tally = self.tallies.remove(&k).unwrap_or_default();
        let mut late = std::mem::take(&mut self.late);
        while let Some(entry) = self.tallies.first_entry() {
            if *entry.key() > k {
                break;
            }
            late += entry.remove().received;
        }
        let start = epochs.start(k);
        let first = self
            .periods
            .iter()
            .rposition(|p| p.from <= start)
            .unwrap_or(0);
        self.periods.drain(..first);
        self.reported = Some(self.reported.map_or(k, |r| r.max(k)));
        ClientEpoch {
            tally,
            periods: self.periods.clone(),
            switches: std::mem::take(&mut self.ended),
            late,
            retroactive: std::mem::take(&mut self.retroactive),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::event::sample_event;

    fn watch(text: &str) -> Watch {
        Watch {
            text: text.into(),
            filter: Filter::parse(text).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn event(sym: &str) -> FlowEvent {
        FlowEvent {
            sym: sym.into(),
            ..sample_event()
        }
    }

    const EPOCHS: Epochs = Epochs {
        origin_ms: 1_000,
        length_ms: 100,
    };

    #[test]
    fn epochs_cut_cursor_time_into_minutes() {
        assert_eq!(EPOCHS.of(Cursor::new(5, 0)), 0);
        assert_eq!(EPOCHS.of(Cursor::new(1_099, 9)), 0);
        assert_eq!(EPOCHS.of(Cursor::new(1_100, 0)), 1);
        assert_eq!(EPOCHS.start(0), Cursor::ZERO);
        assert_eq!(EPOCHS.start(2), Cursor::new(1_200, 0));
    }

    #[test]
    fn a_switch_ends_at_its_proof_and_tallies_go_by_epoch() {
        let mut l = Ledger::new(Cursor::new(990, 0), watch("AAPL"));
        l.record(Cursor::new(1_050, 0), &event("AAPL"), &EPOCHS);
        l.begin_switch(watch("AAPL TSLA"), &EPOCHS);
        assert_eq!(l.filter(), "AAPL TSLA");
        assert_eq!(l.watch().text, "AAPL");
        // Either filter selects AAPL: no proof yet.
        l.record(Cursor::new(1_060, 0), &event("AAPL"), &EPOCHS);
        // Only the new filter selects TSLA: the switch happened before it.
        l.record(Cursor::new(1_120, 0), &event("TSLA"), &EPOCHS);
        assert!(!l.switching());
        let r0 = l.report(0, &EPOCHS);
        assert_eq!(r0.tally.received, 1);
        assert_eq!(r0.tally.digest, cursor_hash(Cursor::new(1_050, 0)));
        assert_eq!(
            r0.switches,
            vec![SwitchRecord {
                after: Cursor::new(1_050, 0),
                until: Cursor::new(1_120, 0),
                old: "AAPL".into(),
                new: "AAPL TSLA".into(),
                got: vec![Cursor::new(1_060, 0)],
            }]
        );
        let froms: Vec<Cursor> = r0.periods.iter().map(|p| p.from).collect();
        assert_eq!(
            froms,
            [
                Cursor::new(990, 1),
                Cursor::new(1_050, 1),
                Cursor::new(1_120, 0)
            ]
        );
        // Epoch 1 starts inside the switch: it and the period after are reported.
        let r1 = l.report(1, &EPOCHS);
        assert_eq!((r1.tally.received, r1.periods.len()), (1, 2));
        assert_eq!(r1.retroactive, 0);
    }

    #[test]
    fn a_resubscribe_ends_a_switch_and_faults_are_counted() {
        let mut l = Ledger::new(Cursor::ZERO, watch("SPY"));
        l.record(Cursor::new(1_010, 0), &event("SPY"), &EPOCHS);
        l.begin_switch(watch("QQQ"), &EPOCHS);
        l.record(Cursor::new(1_020, 0), &event("SPY"), &EPOCHS);
        // The connection drops; the client resumes with the new filter.
        assert_eq!(l.resume_from(), Cursor::new(1_020, 0));
        l.resubscribed(&EPOCHS);
        assert!(!l.switching());
        assert_eq!(l.filter(), "QQQ");
        // A duplicate is tallied as disorder.
        l.record(Cursor::new(1_020, 0), &event("QQQ"), &EPOCHS);
        let r0 = l.report(0, &EPOCHS);
        assert_eq!(r0.switches[0].until, Cursor::new(1_020, 1));
        assert_eq!(r0.switches[0].got, vec![Cursor::new(1_020, 0)]);
        assert_eq!((r0.tally.received, r0.tally.disorder), (2, 1));
        // An event of a reported epoch is late; a switch that starts in one is retroactive.
        l.record(Cursor::new(1_090, 0), &event("QQQ"), &EPOCHS);
        l.begin_switch(watch("IWM"), &EPOCHS);
        l.finish(Cursor::new(1_150, 0), &EPOCHS);
        let r1 = l.report(1, &EPOCHS);
        assert_eq!((r1.late, r1.retroactive), (1, 1));
        assert_eq!(r1.switches[0].until, Cursor::new(1_150, 1));
    }
}
