//! Trade condition codes and what they mean for flow detection.
//!
//! Feeds report each option trade with condition codes (OPRA's trade message
//! types, numbered as Massive/Polygon number them). Flow detection needs a few
//! facts from them: is the print an intermarket sweep (ISO) leg, is it a leg
//! of a multi-leg (spread) order, was it cancelled or reported late. The
//! [`ConditionTable`] maps codes to those facts. Its defaults are the table
//! shipped as `assets/conditions.toml` (with each code's meaning and source);
//! an operator replaces it with a file of their own, whose text the caller
//! reads and hands to [`ConditionTable::from_toml_str`].

use std::collections::{HashMap, HashSet};

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
    /// The table shipped as `assets/conditions.toml`.
    fn default() -> Self {
        let mut codes = HashMap::new();
        let mut set = |ids: &[u16], flag: Flag| {
            for id in ids {
                flag.set(codes.entry(*id).or_insert_with(ConditionFlags::default));
            }
        };
        set(
            &[
                INTERMARKET_SWEEP,
                SINGLE_LEG_AUCTION_ISO,
                SINGLE_LEG_CROSS_ISO,
            ],
            Flag::Iso,
        );
        set(&[CANCELED, 203, 205, 207], Flag::Canceled);
        set(&[LATE_OUT_OF_SEQUENCE, 204, 206, 208], Flag::Late);
        // Multi-leg, stock-option and proprietary multi-leg trades, and compression trades.
        let multi: Vec<u16> = (MULTI_LEG_AUTO..=MULTI_LEG_LAST).collect();
        set(&multi, Flag::MultiLeg);
        ConditionTable { codes }
    }
}

/// The last of the contiguous multi-leg ids (232–247); see `assets/conditions.toml`.
const MULTI_LEG_LAST: u16 = 247;

/// Why a condition table is not valid: where it came from, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct ConditionsError {
    origin: String,
    reason: String,
}

/// One flag a table entry can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Flag {
    Iso,
    MultiLeg,
    Canceled,
    Late,
}

impl Flag {
    fn set(self, flags: &mut ConditionFlags) {
        match self {
            Flag::Iso => flags.iso = true,
            Flag::MultiLeg => flags.multi_leg = true,
            Flag::Canceled => flags.canceled = true,
            Flag::Late => flags.late = true,
        }
    }
}

/// The file form: `[[condition]]` tables. Entries may carry documentation keys
/// (`name`, `abbreviation`, `opra`, …) beside the two that are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    condition: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: u16,
    flags: Vec<Flag>,
}

impl ConditionTable {
    pub fn new(codes: HashMap<u16, ConditionFlags>) -> ConditionTable {
        ConditionTable { codes }
    }

    /// Parses a table in the format of `assets/conditions.toml`. An id listed
    /// twice, an unknown flag or an unknown top-level key is an error, which
    /// names `origin` (e.g. "condition table /etc/flowtape/conditions.toml");
    /// codes the table does not list mean nothing.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<ConditionTable, ConditionsError> {
        let invalid = |reason: String| ConditionsError {
            origin: origin.to_string(),
            reason,
        };
        let file: TableFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut codes = HashMap::new();
        let mut seen = HashSet::new();
        for entry in file.condition {
            if !seen.insert(entry.id) {
                return Err(invalid(format!(
                    "condition id {} is listed twice",
                    entry.id
                )));
            }
            if entry.flags.is_empty() {
                continue;
            }
            let mut flags = ConditionFlags::default();
            for flag in entry.flags {
                flag.set(&mut flags);
            }
            codes.insert(entry.id, flags);
        }
        Ok(ConditionTable { codes })
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

    const SHIPPED: &str = include_str!("../../assets/conditions.toml");

    #[test]
    fn defaults() {
        let t = ConditionTable::default();
        assert!(t.flags(&[AUTO_EXECUTION, INTERMARKET_SWEEP]).iso);
        assert!(t.flags(&[SINGLE_LEG_AUCTION_ISO]).iso && t.flags(&[SINGLE_LEG_CROSS_ISO]).iso);
        assert!(!t.flags(&[AUTO_EXECUTION]).iso);
        assert!(t.flags(&[CANCELED]).canceled);
        assert!(t.flags(&[LATE_OUT_OF_SEQUENCE]).late);
        assert!(t.flags(&[MULTI_LEG_AUTO]).multi_leg);
        // Stock-option trades (240, TLET) are combos too: not directional alone.
        assert!(t.flags(&[240]).multi_leg);
        assert_eq!(t.flags(&[9999]), ConditionFlags::default());
    }

    #[test]
    fn the_default_table_is_the_shipped_file() {
        let shipped =
            ConditionTable::from_toml_str(SHIPPED, "shipped").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shipped, ConditionTable::default());
    }

    #[test]
    fn parses_flags_and_ignores_documentation_keys() {
        let t = ConditionTable::from_toml_str(
            "[[condition]]\nid = 7\nname = \"house sweep\"\nflags = [\"iso\", \"late\"]\n\
             [[condition]]\nid = 8\nflags = []\n",
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = t.flags(&[7]);
        assert!(f.iso && f.late && !f.canceled && !f.multi_leg);
        assert_eq!(t.flags(&[8]), ConditionFlags::default());
        assert_eq!(t.flags(&[INTERMARKET_SWEEP]), ConditionFlags::default());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |text: &str| {
            ConditionTable::from_toml_str(text, "condition table")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("[[condition]]\nid = 1\nflags = [\"sweep\"]\n").contains("sweep"));
        assert!(
            err("[[condition]]\nid = 1\nflags = []\n[[condition]]\nid = 1\nflags = []\n")
                .contains("condition id 1 is listed twice")
        );
        assert!(err("[[conditon]]\nid = 1\nflags = []\n").contains("conditon"));
        assert!(err("[[condition]]\nid = 70000\nflags = []\n").contains("condition table"));
        assert!(err("[[condition]]\nid = 1\n").contains("flags"));
    }
}
