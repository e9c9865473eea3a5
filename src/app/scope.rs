//! What the tape shows: the filter expression, the quick toggles and the
//! active watchlist, combined with AND.
//!
//! The filter is also sent to the gateway; the toggles and the watchlist are
//! applied only here, so flipping them needs no round trip and loses nothing.

use std::collections::HashSet;

use flowtape_core::event::{FlowEvent, Kind, Tag};
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;

/// The quick toggles (`c`, `p`, `s`, `u`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Toggles {
    /// `Some(Call)` = calls only, `Some(Put)` = puts only.
    pub right: Option<Right>,
    pub sweeps: bool,
    pub unusual: bool,
}

impl Toggles {
    /// Calls only, puts only, or neither: pressing the active one turns it off.
    pub fn toggle_right(&mut self, right: Right) {
        self.right = if self.right == Some(right) {
            None
        } else {
            Some(right)
        };
    }

    pub fn matches(&self, e: &FlowEvent) -> bool {
        self.right.is_none_or(|r| e.right == r)
            && (!self.sweeps || e.kind == Kind::Sweep)
            && (!self.unusual || e.tags.contains(Tag::Unusual))
    }

    /// Labels of the active toggles, for the status line.
    pub fn labels(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        match self.right {
            Some(Right::Call) => v.push("calls"),
            Some(Right::Put) => v.push("puts"),
            None => {}
        }
        if self.sweeps {
            v.push("sweeps");
        }
        if self.unusual {
            v.push("unusual");
        }
        v
    }
}

/// The combined predicate.
#[derive(Debug, Default)]
pub struct Scope {
    pub filter_text: String,
    pub filter: Filter,
    pub toggles: Toggles,
    /// Tickers of the active watchlist, if one is active.
    pub watch: Option<HashSet<String>>,
}

impl Scope {
    pub fn matches(&self, e: &FlowEvent) -> bool {
        self.toggles.matches(e)
            && self
                .watch
                .as_ref()
                .is_none_or(|w| w.contains(e.sym.as_str()))
            && self.filter.matches(e)
    }
}
