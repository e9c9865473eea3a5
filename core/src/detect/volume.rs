//! Day volume per contract.
//!
//! An event's `vol` is its contract's volume for the trading day, this event
//! included. [`DayVolume`] counts it per (contract, New York market date); the
//! caller can preload counts (after a restart) and the detector adds each
//! event's size as the event is emitted. Only the most recent
//! [`DAYS_KEPT`] market dates are kept, so memory does not grow across days.

use std::collections::{BTreeMap, HashMap};

use crate::date::Date;
use crate::occ::Contract;

/// Market dates kept: today, and yesterday for a print reported late across
/// the day boundary.
pub const DAYS_KEPT: usize = 2;

/// Contracts traded per contract and market date.
#[derive(Debug, Default)]
pub struct DayVolume {
    days: BTreeMap<Date, HashMap<Contract, u64>>,
}

impl DayVolume {
    pub fn new() -> DayVolume {
        DayVolume::default()
    }

    /// Adds `size` contracts to `contract` on `date` and returns the new day volume.
    pub fn add(&mut self, contract: Contract, date: Date, size: u64) -> u64 {
        let vol = self
            .days
            .entry(date)
            .or_default()
            .entry(contract)
            .or_insert(0);
        *vol = vol.saturating_add(size);
        let total = *vol;
        self.drop_old_days();
        total
    }

    /// Sets the day volume of `contract` on `date`, replacing what was counted.
    pub fn set(&mut self, contract: Contract, date: Date, vol: u64) {
        self.days.entry(date).or_default().insert(contract, vol);
        self.drop_old_days();
    }

    /// The day volume of `contract` on `date`; 0 when nothing was counted.
    pub fn get(&self, contract: Contract, date: Date) -> u64 {
        self.days
            .get(&date)
            .and_then(|day| day.get(&contract))
            .copied()
            .unwrap_or(0)
    }

    fn drop_old_days(&mut self) {
        while self.days.len() > DAYS_KEPT {
            self.days.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::occ::Right;

    fn date(d: u32) -> Date {
        Date::from_ymd(2026, 3, d).unwrap_or_else(|e| panic!("{e}"))
    }

    fn spy() -> Contract {
        Contract::new("SPY", date(20), Right::Call, 600_000).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn counts_per_day_on_top_of_a_preload() {
        let mut v = DayVolume::new();
        v.set(spy(), date(2), 1_000);
        assert_eq!(v.add(spy(), date(2), 50), 1_050);
        assert_eq!(v.add(spy(), date(3), 7), 7, "a new day starts from zero");
        assert_eq!(v.get(spy(), date(2)), 1_050);
    }

    #[test]
    fn old_days_are_dropped() {
        let mut v = DayVolume::new();
        for d in 1..=10 {
            v.add(spy(), date(d), 1);
        }
        assert_eq!(v.days.len(), DAYS_KEPT);
        assert_eq!(v.get(spy(), date(8)), 0);
        assert_eq!(v.get(spy(), date(9)), 1);
        assert_eq!(v.get(spy(), date(10)), 1);
    }
}
