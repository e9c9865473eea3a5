//! Trade condition codes and what they mean for flow detection.
//!
//! Feeds report each option trade with condition codes (OPRA's trade message
//! types, numbered as Massive/Polygon number them). Flow detection needs a few
//! facts from them: is the print an intermarket sweep (ISO) leg, is it a leg
//! of a multi-leg (spread) order, was it cancelled or reported late. The
//! [`ConditionTable`] maps codes to those facts; its defaults are below and an
//! operator can override them. No I/O happens here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Massive/Polygon condition id: automatic execution (a regular electronic trade).
pub const AUTO_EXECUTION: u16 = 209;
/// Massive/Polygon condition id: intermarket sweep order.
pub const INTERMARKET_SWEEP: u16 = 219;
/// Massive/Polygon condition id: single-leg auction, ISO.
pub const SINGLE_LEG_AUCTION_ISO: u16 = 228;
/// Massive/Polygon condition id: single-leg cross, ISO.
pub const SINGLE_LEG_CROSS_ISO: u16 = 230;
/// Massive/Polygon condition id: multi-leg auto-electronic trade (a spread leg).
pub const MULTI_LEG_AUTO: u16 = 232;
/// Massive/Polygon condition id: canceled.
pub const CANCELED: u16 = 201;
/// Massive/Polygon condition id: late and out of sequence.
pub const LATE_OUT_OF_SEQUENCE: u16 = 202;

/// What a set of condition codes says about a print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionFlags {
    /// An intermarket sweep order leg.
    pub iso: bool,
    /// A leg of a multi-leg (spread, combo) order: not directional on its own.
    pub multi_leg: bool,
    /// Cancelled or a cancel record: not a live trade.
    pub canceled: bool,
    /// Reported late or out of sequence.
    pub late: bool,
}

impl ConditionFlags {
    fn merge(self, other: ConditionFlags) -> ConditionFlags {
        ConditionFlags {
            iso: self.iso || other.iso,
            multi_leg: self.multi_leg || other.multi_leg,
            canceled: self.canceled || other.canceled,
            late: self.late || other.late,
        }
    }
}

/// Maps condition codes to [`ConditionFlags`]. Unknown codes mean nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionTable {
    codes: HashMap<u16, ConditionFlags>,
}

impl Default for ConditionTable {
    fn default() -> Self {
        let iso = ConditionFlags {
            iso: true,
            ..ConditionFlags::default()
        };
        let multi = ConditionFlags {
            multi_leg: true,
            ..ConditionFlags::default()
        };
        let canceled = ConditionFlags {
            canceled: true,
            ..ConditionFlags::default()
        };
        let late = ConditionFlags {
            late: true,
            ..ConditionFlags::default()
        };
        let mut codes = HashMap::new();
        codes.insert(INTERMARKET_SWEEP, iso);
        codes.insert(SINGLE_LEG_AUCTION_ISO, iso);
        codes.insert(SINGLE_LEG_CROSS_ISO, iso);
        for code in 232..=236 {
            codes.insert(code, multi);
        }
        for code in [CANCELED, 203, 205, 207] {
            codes.insert(code, canceled);
        }
        for code in [LATE_OUT_OF_SEQUENCE, 204, 206, 208] {
            codes.insert(code, late);
        }
        ConditionTable { codes }
    }
}

impl ConditionTable {
    pub fn new(codes: HashMap<u16, ConditionFlags>) -> ConditionTable {
        ConditionTable { codes }
    }

    /// The combined meaning of a print's condition codes.
    pub fn flags(&self, conditions: &[u16]) -> ConditionFlags {
        conditions
            .iter()
            .filter_map(|c| self.codes.get(c))
            .fold(ConditionFlags::default(), |acc, f| acc.merge(*f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let t = ConditionTable::default();
        assert!(t.flags(&[AUTO_EXECUTION, INTERMARKET_SWEEP]).iso);
        assert!(!t.flags(&[AUTO_EXECUTION]).iso);
        assert!(t.flags(&[CANCELED]).canceled);
        assert!(t.flags(&[MULTI_LEG_AUTO]).multi_leg);
        assert_eq!(t.flags(&[9999]), ConditionFlags::default());
    }
}
