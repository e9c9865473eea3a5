//! The filter language: one line of text that selects flow events.
//!
//! The same language filters the gateway's stream for each client, the TUI's
//! filter line and `flowtape tail`; `docs/filter.md` is its reference
//! ("Filter language, version 1"). A filter reads like
//! `AAPL TSLA -SPY calls sweep golden premium>=250k side:ask exp:2026-12-18`:
//!
//! - terms are separated by whitespace and combine with AND;
//! - within a category an event has exactly one value of (ticker, right,
//!   kind, sentiment, side, expiry) terms combine with OR;
//! - tags combine with AND, since an event carries several;
//! - excluded tickers (`-SPY`) never match; comparisons on unknown values
//!   (`otm`, `iv`, `voloi`) never match;
//! - the empty filter matches everything.
//!
//! [`Filter::parse`] compiles the text into masks, sorted inline tickers and
//! `(field, op, threshold)` triples, so [`Filter::matches`] is a handful of
//! integer and float comparisons with no allocation; it runs once per event
//! per distinct filter. [`Filter::canonical`] prints a normal form that two
//! filters with the same meaning share, so callers can group clients by it.
//! No I/O happens here.
//!
//! Layout: `vocab` defines the words and compiled values, `parse` reads text
//! into terms, `number` reads and prints comparison values, `suggest` finds
//! "did you mean" words, `error` says what went wrong.

mod error;
mod number;
mod parse;
pub mod suggest;
mod vocab;

#[cfg(test)]
mod tests;

use std::str::FromStr;

pub use error::{FilterError, FilterErrorKind};
pub use vocab::Ticker;

use crate::event::{FlowEvent, Tags};
use parse::Term;
use vocab::{Comparison, Keyword};

/// A compiled filter. See the [module docs](self) and `docs/filter.md`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    source: String,
    /// Included tickers, sorted and deduplicated; empty means any.
    tickers: Vec<Ticker>,
    /// Excluded tickers, sorted and deduplicated.
    excluded: Vec<Ticker>,
    /// Masks of allowed values (bits from `vocab`); 0 means any.
    rights: u8,
    kinds: u8,
    sentiments: u8,
    sides: u8,
    /// Tags an event must all carry.
    tags: Tags,
    /// Allowed expiries as `YYYY-MM-DD`, sorted and deduplicated; empty means any.
    expiries: Vec<String>,
    /// Sorted by `Comparison::canonical_cmp` and deduplicated.
    comparisons: Vec<Comparison>,
}

impl Filter {
    /// Parses and compiles a filter. Whitespace-only text is the empty filter.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        let mut f = Filter {
            source: src.to_owned(),
            ..Filter::default()
        };
        for term in parse::terms(src)? {
            f.add(term);
        }
        f.tickers.sort_unstable();
        f.tickers.dedup();
        f.excluded.sort_unstable();
        f.excluded.dedup();
        f.expiries.sort_unstable();
        f.expiries.dedup();
        f.comparisons.sort_by(Comparison::canonical_cmp);
        f.comparisons.dedup_by(|a, b| a.canonical_cmp(b).is_eq());
        // Allowing every value of a category is no constraint.
        for (mask, all) in [
            (&mut f.rights, vocab::ALL_RIGHTS),
            (&mut f.kinds, vocab::ALL_KINDS),
            (&mut f.sentiments, vocab::ALL_SENTIMENTS),
        ] {
            if *mask == all {
                *mask = 0;
            }
        }
        Ok(f)
    }

    fn add(&mut self, term: Term) {
        match term {
            Term::Ticker(t) => self.tickers.push(t),
            Term::Exclude(t) => self.excluded.push(t),
            Term::Keyword(Keyword::Right(r)) => self.rights |= vocab::right_bit(r),
            Term::Keyword(Keyword::Kind(k)) => self.kinds |= vocab::kind_bit(k),
            Term::Keyword(Keyword::Sentiment(s)) => self.sentiments |= vocab::sentiment_bit(s),
            Term::Keyword(Keyword::Tag(t)) => self.tags.insert(t),
            Term::Sides(mask) => self.sides |= mask,
            Term::Expiry(d) => self.expiries.push(d.to_string()),
            Term::Compare(c) => self.comparisons.push(c),
        }
    }

    /// Whether `e` passes the filter. Allocation-free.
    pub fn matches(&self, e: &FlowEvent) -> bool {
        (self.tickers.is_empty() || vocab::contains_sym(&self.tickers, &e.sym))
            && self.matches_listed(e)
    }

    /// [`Filter::matches`] for an event whose `sym` is already known to be
    /// one of [`Filter::tickers`] (found through an index by ticker).
    pub fn matches_listed(&self, e: &FlowEvent) -> bool {
        (self.rights == 0 || self.rights & vocab::right_bit(e.right) != 0)
            && (self.kinds == 0 || self.kinds & vocab::kind_bit(e.kind) != 0)
            && (self.sentiments == 0 || self.sentiments & vocab::sentiment_bit(e.sentiment) != 0)
            && (self.sides == 0 || self.sides & vocab::side_bit(e.side) != 0)
            && (self.tags.is_empty() || self.tags.iter().all(|t| e.tags.contains(t)))
            && self.comparisons.iter().all(|c| c.matches(e))
            && (self.expiries.is_empty() || self.expiries.contains(&e.expiry))
            && !vocab::contains_sym(&self.excluded, &e.sym)
    }

    /// Whether the filter constrains nothing and so matches every event:
    /// true for the empty filter and for ones like `calls puts`.
    pub fn is_empty(&self) -> bool {
        self.tickers.is_empty()
            && self.excluded.is_empty()
            && self.rights == 0
            && self.kinds == 0
            && self.sentiments == 0
            && self.sides == 0
            && self.tags.is_empty()
            && self.expiries.is_empty()
            && self.comparisons.is_empty()
    }

    /// The text the filter was parsed from, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The included tickers, upper-case, sorted and distinct. When this is not
    /// empty the filter matches only events whose `sym` is one of them
    /// (ignoring ASCII case), so a caller may index filters by ticker; when it
    /// is empty the filter may match any ticker not excluded.
    pub fn tickers(&self) -> &[Ticker] {
        &self.tickers
    }

    /// The normal form of the filter: terms in a fixed order, keywords in
    /// lower case, tickers in upper case, numbers without redundant digits
    /// (`250k` and `250000` both print `250k`), duplicates and no-op terms
    /// dropped. Filters that differ only in order, case, spelling of numbers
    /// or such redundancy have the same canonical form, and parsing it gives
    /// a filter that matches exactly the same events.
    pub fn canonical(&self) -> String {
        let mut terms: Vec<String> = Vec::new();
        terms.extend(self.tickers.iter().map(|t| parse::ticker_text(*t, false)));
        terms.extend(self.excluded.iter().map(|t| parse::ticker_text(*t, true)));
        let keyword = |k: Keyword| k.name().to_string();
        terms.extend(
            vocab::RIGHTS
                .into_iter()
                .filter(|r| self.rights & vocab::right_bit(*r) != 0)
                .map(|r| keyword(Keyword::Right(r))),
        );
        terms.extend(
            crate::event::Kind::ALL
                .into_iter()
                .filter(|k| self.kinds & vocab::kind_bit(*k) != 0)
                .map(|k| keyword(Keyword::Kind(k))),
        );
        terms.extend(
            vocab::SENTIMENTS
                .into_iter()
                .filter(|s| self.sentiments & vocab::sentiment_bit(*s) != 0)
                .map(|s| keyword(Keyword::Sentiment(s))),
        );
        terms.extend(self.tags.iter().map(|t| keyword(Keyword::Tag(t))));
        terms.extend(vocab::side_words(self.sides).map(|w| format!("side:{w}")));
        terms.extend(self.expiries.iter().map(|d| format!("exp:{d}")));
        terms.extend(self.comparisons.iter().map(|c| {
            format!(
                "{}{}{}",
                c.field.name(),
                c.op.symbol(),
                number::format(c.field, c.value)
            )
        }));
        terms.join(" ")
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}
