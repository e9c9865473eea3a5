//! The filter language: one line of text that selects flow events.
//!
//! The same language filters the gateway's stream for each client, the TUI's
//! filter line and `flowtape tail`; `docs/filter.md` is its reference. A
//! filter reads like `AAPL TSLA -SPY calls sweep premium>=250k side:ask` or
//! `sweep or block or (unusual premium>=25k)`: terms side by side combine
//! with AND (and with OR within a category an event has one value of), `or`
//! binds loosest, and parentheses group.
//!
//! [`Filter::parse`] compiles the text into masks, sorted lists and
//! comparisons, so [`Filter::matches`] is a handful of integer and float
//! comparisons with no allocation; it runs once per event per distinct
//! filter. [`Filter::canonical`] prints a normal form that filters with the
//! same meaning tend to share, so callers can group clients by it. No I/O
//! happens here.
//!
//! Layout: `vocab` defines the words and compiled values, `grammar` reads
//! text into an `expr` (`or`, groups, presets) whose leaves `parse` reads
//! into terms that a `term_set` compiles; `number` reads and prints
//! comparison values, `preset` holds the named filters, `suggest` finds "did
//! you mean" words, `error` says what went wrong. [`Filter::expr`] exposes
//! the compiled shape read-only ([`Expr`], [`Clause`], [`TermSet`]).

mod error;
mod expr;
mod grammar;
mod number;
mod parse;
mod preset;
pub mod suggest;
mod term_set;
mod vocab;

#[cfg(test)]
mod tests;

use std::str::FromStr;

pub use error::{FilterError, FilterErrorKind};
pub use grammar::MAX_DEPTH;
pub use preset::{PresetError, Presets, NOTABLE_DEFAULT};
pub use expr::{Clause, Expr};
pub use term_set::TermSet;
pub use vocab::{Comparison, Field, Op, Ticker};

use crate::event::FlowEvent;

/// A compiled filter. See the [module docs](self) and `docs/filter.md`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    source: String,
    expr: Expr,
    /// See [`Filter::tickers`].
    tickers: Vec<Ticker>,
}

impl Filter {
    /// Parses and compiles a filter, with the built-in presets
    /// ([`Presets::builtin`]). Whitespace-only text is the empty filter.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        Filter::parse_with(src, Presets::builtin())
    }

    /// [`Filter::parse`] with other presets.
    pub fn parse_with(src: &str, presets: &Presets) -> Result<Filter, FilterError> {
        let expr = grammar::expression(src, presets)?;
        Ok(Filter {
            source: src.to_owned(),
            tickers: expr.tickers().unwrap_or_default(),
            expr,
        })
    }

    /// The compiled filter, read-only: for translating it into another
    /// query language (the archive's SQL pushdown).
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether `e` passes the filter. Allocation-free.
    pub fn matches(&self, e: &FlowEvent) -> bool {
        self.expr.matches(e)
    }

    /// [`Filter::matches`] for an event whose `sym` is already known to be
    /// one of [`Filter::tickers`] (found through an index by ticker).
    pub fn matches_listed(&self, e: &FlowEvent) -> bool {
        self.expr.matches_listed(e)
    }

    /// Whether the filter constrains nothing and so matches every event:
    /// true for the empty filter and for ones like `calls puts` or
    /// `sweep or calls puts`.
    pub fn is_empty(&self) -> bool {
        self.expr.is_everything()
    }

    /// The text the filter was parsed from, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Upper-case tickers, sorted and distinct. When this is not empty the
    /// filter matches only events whose `sym` is one of them (ignoring ASCII
    /// case), so a caller may index filters by ticker; when it is empty the
    /// filter may match any ticker not excluded. With `or` it lists the
    /// tickers of every alternative (`AAPL sweep or TSLA` gives AAPL and
    /// TSLA), and it is empty when one alternative names none
    /// (`AAPL or sweep`). It may list tickers the filter cannot match.
    pub fn tickers(&self) -> &[Ticker] {
        &self.tickers
    }

    /// The normal form of the filter: terms in a fixed order, keywords in
    /// lower case, tickers in upper case, numbers without redundant digits
    /// (`250k` and `250000` both print `250k`), duplicates and no-op terms
    /// dropped, presets expanded, alternatives and groups sorted. Filters
    /// that differ only in order, case, spelling of numbers or such
    /// redundancy have the same canonical form, and parsing it gives a filter
    /// that matches exactly the same events and has the same canonical form.
    pub fn canonical(&self) -> String {
        self.expr.canonical()
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}
