//! What the tape shows: the view (notable flow or all prints), the filter
//! expression, the active watchlist, the quick toggles and the drill-down
//! focus, combined with AND.
//!
//! The gateway applies the same scope: [`Scope::wire_filter`] composes it into
//! one filter of the shared language that matches exactly the events
//! [`Scope::matches`] matches (tested over random scopes and events), so the
//! client receives only what it shows and can still re-apply a scope to its
//! buffer at once.

use std::collections::BTreeSet;

use flowtape_core::event::{FlowEvent, Kind, Tag};
use flowtape_core::filter::{Filter, FilterError};
use flowtape_core::occ::Right;
use serde::Deserialize;

/// Filter text that matches no event: what an empty active watchlist shows.
const NOTHING: &str = "(calls) (puts)";

/// Notable flow, or every print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// What the `notable` preset selects: sweeps, blocks, golden and unusual
    /// orders, and large premiums.
    #[default]
    Notable,
    /// Every print.
    All,
}

impl View {
    /// The other view.
    pub fn toggled(self) -> View {
        match self {
            View::Notable => View::All,
            View::All => View::Notable,
        }
    }

    /// As the status line says it.
    pub fn label(self) -> &'static str {
        match self {
            View::Notable => "notable",
            View::All => "all prints",
        }
    }
}

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

    /// The same constraints as filter terms.
    fn terms(&self) -> impl Iterator<Item = &'static str> {
        let right = self.right.map(|r| match r {
            Right::Call => "calls",
            Right::Put => "puts",
        });
        right
            .into_iter()
            .chain(self.sweeps.then_some("sweep"))
            .chain(self.unusual.then_some("unusual"))
    }
}

/// The drill-down from a row: its ticker, its contract, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Focus {
    /// Only this underlying.
    pub ticker: Option<String>,
    /// Only this contract, as an unpadded OSI symbol.
    pub contract: Option<String>,
}

impl Focus {
    /// What the status line shows: the narrowest part.
    pub fn label(&self) -> Option<&str> {
        self.contract.as_deref().or(self.ticker.as_deref())
    }
}

/// The combined predicate.
#[derive(Clone, Debug)]
pub struct Scope {
    pub view: View,
    /// What the notable view selects: the `notable` preset as this client
    /// defines it.
    pub notable: Filter,
    /// The filter expression as typed.
    pub filter_text: String,
    pub filter: Filter,
    pub toggles: Toggles,
    /// Tickers of the active watchlist, if one is active.
    pub watch: Option<BTreeSet<String>>,
    pub focus: Focus,
}

impl Scope {
    /// All prints, no filter, no watchlist, no toggles, no focus.
    pub fn everything() -> Scope {
        Scope {
            view: View::All,
            notable: Filter::default(),
            filter_text: String::new(),
            filter: Filter::default(),
            toggles: Toggles::default(),
            watch: None,
            focus: Focus::default(),
        }
    }

    pub fn matches(&self, e: &FlowEvent) -> bool {
        (self.view == View::All || self.notable.matches(e))
            && self.filter.matches(e)
            && self
                .watch
                .as_ref()
                .is_none_or(|w| w.iter().any(|t| t.eq_ignore_ascii_case(&e.sym)))
            && self.toggles.matches(e)
            && self
                .focus
                .ticker
                .as_ref()
                .is_none_or(|t| t.eq_ignore_ascii_case(&e.sym))
            && self.focus.contract.as_ref().is_none_or(|c| *c == e.occ)
    }

    /// The scope as one filter for the gateway, in canonical form (presets
    /// expanded, so the gateway's built-in presets read it the same):
    /// `(view) (expression) (sym:A sym:B …) toggles focus`, each part only
    /// when it constrains something. Fails only if a part cannot be written
    /// in the language (a watchlist entry or focus that is not a ticker or
    /// contract).
    pub fn wire_filter(&self) -> Result<String, FilterError> {
        let group = |f: &Filter| format!("({})", f.canonical());
        let mut parts: Vec<String> = Vec::new();
        if self.view == View::Notable && !self.notable.is_empty() {
            parts.push(group(&self.notable));
        }
        if !self.filter.is_empty() {
            parts.push(group(&self.filter));
        }
        if let Some(w) = &self.watch {
            parts.push(if w.is_empty() {
                NOTHING.to_string()
            } else {
                let tickers: Vec<String> = w.iter().map(|t| format!("sym:{t}")).collect();
                format!("({})", tickers.join(" "))
            });
        }
        parts.extend(self.toggles.terms().map(str::to_string));
        if let Some(t) = &self.focus.ticker {
            parts.push(format!("sym:{t}"));
        }
        if let Some(c) = &self.focus.contract {
            parts.push(format!("occ:{c}"));
        }
        Filter::parse(&parts.join(" ")).map(|f| f.canonical())
    }
}

#[cfg(test)]
mod tests;
