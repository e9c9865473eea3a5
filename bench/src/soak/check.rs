//! The harness's exact check of the soak clients, one epoch at a time.
//!
//! For epoch `k` each client reports its tally of the epoch and the periods
//! of its subscription that reach into it ([`ClientEpoch`]). The harness
//! cuts the periods under one filter to the epoch ([`pieces`]), reads the
//! epoch's events from the stream once ([`verify::expected_pieces`]), and
//! compares count and digest per client ([`Accounting::compare`]). Each
//! switch that ended is read from the stream on its own and must be
//! explained by one switch point ([`switch_explained`]).

use serde::Serialize;

use super::ledger::{ClientEpoch, Epochs, Rule, SwitchRecord};
use crate::control::ChurnEpoch;
use crate::tally::{Accounting, Expected, Tally};
use crate::verify::{self, Piece};
use crate::BenchError;
use flowtape_core::cursor::Cursor;
use flowtape_core::filter::Filter;
use flowtape_server::bus::Bus;

/// Past every cursor.
const END: Cursor = Cursor {
    ms: u64::MAX,
    seq: u64::MAX,
};

/// What the check of one epoch found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EpochCheck {
    pub epoch: u32,
    /// Events committed in the epoch.
    pub events: u64,
    /// Clients' events under a filter, against the stream.
    #[serde(flatten)]
    pub accounting: Accounting,
    /// Switches (`filter` ops) that ended, and of those, how many no single
    /// switch point explains.
    pub switches: u64,
    pub switches_unexplained: u64,
    /// Events received in a switch.
    pub switch_events: u64,
    /// Events that came after their epoch was checked, and periods that
    /// began inside a checked epoch (both should be 0; see `ledger`).
    pub late: u64,
    pub retroactive: u64,
    /// The stream had been trimmed past where the check had read.
    pub trimmed: bool,
    /// Clients not live again when they reported (their loss may be a delay).
    pub unsettled: u64,
}

impl EpochCheck {
    /// Nothing lost, duplicated, unexplained or late.
    pub fn clean(&self) -> bool {
        let a = &self.accounting;
        a.lost == 0
            && a.unexpected == 0
            && a.duplicates == 0
            && a.mismatched_clients == 0
            && self.switches_unexplained == 0
            && self.late == 0
            && self.retroactive == 0
            && !self.trimmed
    }
}

/// The clients' periods under one filter, cut to `[from, to)`.
pub fn pieces(clients: &[ClientEpoch], from: Cursor, to: Cursor) -> Vec<Piece> {
    let mut out = Vec::new();
    for (client, c) in clients.iter().enumerate() {
        for (i, period) in c.periods.iter().enumerate() {
            let Rule::Filter { filter } = &period.rule else {
                continue;
            };
            let end = c.periods.get(i + 1).map_or(END, |next| next.from);
            let (lo, hi) = (period.from.max(from), end.min(to));
            if lo < hi {
                out.push(Piece {
                    client,
                    filter: filter.clone(),
                    from: lo,
                    to: hi,
                });
            }
        }
    }
    out
}

/// Whether one switch point explains what a client got in a switch: some
/// `s` such that `got` is the events before `s` the old filter selects,
/// then the events from `s` on the new one selects. `selected` is every
/// event of the switch either filter selects, in stream order, with
/// `[old, new]` selecting it.
pub fn switch_explained(selected: &[(Cursor, [bool; 2])], got: &[Cursor]) -> bool {
    let n = selected.len();
    // prefix[s]: `got` begins with the old filter's events of selected[..s];
    // old[s] of them.
    let mut prefix = vec![false; n + 1];
    let mut old = vec![0usize; n + 1];
    prefix[0] = true;
    for (s, (cursor, [by_old, _])) in selected.iter().enumerate() {
        old[s + 1] = old[s] + usize::from(*by_old);
        prefix[s + 1] = prefix[s] && (!by_old || got.get(old[s]) == Some(cursor));
    }
    // suffix[s]: `got` ends with the new filter's events of selected[s..];
    // new[s] of them.
    let mut suffix = vec![false; n + 1];
    let mut new = vec![0usize; n + 1];
    suffix[n] = true;
    for s in (0..n).rev() {
        let (cursor, [_, by_new]) = &selected[s];
        new[s] = new[s + 1] + usize::from(*by_new);
        let at = got.len().checked_sub(new[s]);
        suffix[s] = suffix[s + 1] && (!by_new || at.and_then(|i| got.get(i)) == Some(cursor));
    }
    (0..=n).any(|s| prefix[s] && suffix[s] && old[s] + new[s] == got.len())
}

/// Checks one ended switch against the stream.
pub async fn check_switch(bus: &Bus, switch: &SwitchRecord) -> Result<bool, BenchError> {
    let parse = |text: &str| {
        Filter::parse(text).map_err(|e| BenchError::Config(format!("client filter {text:?}: {e}")))
    };
    let (old, new) = (parse(&switch.old)?, parse(&switch.new)?);
    let selected =
        verify::selected_by_either(bus, switch.after, switch.until, [&old, &new]).await?;
    Ok(switch_explained(&selected, &switch.got))
}

/// Checks epoch `k` from the clients' reports; `read_to` is the last
/// stream entry the previous epoch's check read (moved on past this one's).
pub async fn check_epoch(
    bus: &Bus,
    epochs: &Epochs,
    k: u32,
    read_to: &mut Cursor,
    report: &ChurnEpoch,
) -> Result<EpochCheck, BenchError> {
    let clients = &report.clients;
    let trimmed = *read_to != Cursor::ZERO
        && bus
            .flow_bounds()
            .await?
            .first
            .is_some_and(|first| first > read_to.successor());
    let (from, to) = (epochs.start(k), epochs.start(k.saturating_add(1)));
    let pieces = pieces(clients, from, to);
    let window = verify::expected_pieces(bus, *read_to, to, clients.len(), &pieces).await?;
    if window.malformed > 0 {
        tracing::warn!("{} flow entries are not flow events", window.malformed);
    }
    *read_to = window.last.unwrap_or(*read_to);
    let tallies: Vec<Tally> = clients.iter().map(|c| c.tally.clone()).collect();
    let expected: Vec<Expected> = window.expected;
    let mut check = EpochCheck {
        epoch: k,
        events: window.events,
        accounting: Accounting::compare(&expected, &tallies),
        trimmed,
        unsettled: report.unsettled,
        ..EpochCheck::default()
    };
    for c in clients.iter() {
        check.late += c.late;
        check.retroactive += c.retroactive;
        for switch in &c.switches {
            check.switches += 1;
            check.switch_events += switch.got.len() as u64;
            if !check_switch(bus, switch).await? {
                check.switches_unexplained += 1;
                tracing::warn!(
                    after = %switch.after,
                    until = %switch.until,
                    old = switch.old,
                    new = switch.new,
                    got = switch.got.len(),
                    "no single switch point explains what a client got"
                );
            }
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::ledger::Period;

    fn c(ms: u64) -> Cursor {
        Cursor::new(ms, 0)
    }

    #[test]
    fn one_switch_point_must_explain_the_events() {
        // 1: old only, 2: both, 3: new only, 4: old only, 5: new only.
        let sel = [
            (c(1), [true, false]),
            (c(2), [true, true]),
            (c(3), [false, true]),
            (c(4), [true, false]),
            (c(5), [false, true]),
        ];
        // Switched before 1, after 2, after 4: each is one switch point.
        assert!(switch_explained(&sel, &[c(2), c(3), c(5)]));
        assert!(switch_explained(&sel, &[c(1), c(2), c(3), c(5)]));
        assert!(switch_explained(&sel, &[c(1), c(2), c(4), c(5)]));
        assert!(switch_explained(&sel, &[c(1), c(2), c(4)]));
        // 4 (old only) after 3 (new only): two switches, not one.
        assert!(!switch_explained(&sel, &[c(1), c(2), c(3), c(4), c(5)]));
        // 2 is selected by both whenever the switch was: it cannot be missing.
        assert!(!switch_explained(&sel, &[c(1), c(3), c(5)]));
        // Nothing selected, nothing got.
        assert!(switch_explained(&[], &[]));
        assert!(!switch_explained(&[], &[c(9)]));
    }

    #[test]
    fn periods_under_a_filter_are_cut_to_the_epoch() {
        let period = |ms: u64, rule: Rule| Period { from: c(ms), rule };
        let filter = |f: &str| Rule::Filter { filter: f.into() };
        let client = ClientEpoch {
            periods: vec![
                period(50, filter("SPY")),
                period(
                    120,
                    Rule::Switch {
                        old: "SPY".into(),
                        new: "QQQ".into(),
                    },
                ),
                period(130, filter("QQQ")),
            ],
            ..ClientEpoch::default()
        };
        let got = pieces(&[ClientEpoch::default(), client], c(100), c(200));
        let spans: Vec<(usize, &str, u64, u64)> = got
            .iter()
            .map(|p| (p.client, p.filter.as_str(), p.from.ms, p.to.ms))
            .collect();
        assert_eq!(spans, [(1, "SPY", 100, 120), (1, "QQQ", 130, 200)]);
    }
}
