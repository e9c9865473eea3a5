//! Terms written side by side, compiled: the masks, sorted lists and
//! comparisons that one run of juxtaposed terms (`AAPL TSLA calls sweep
//! premium>=250k`) means.
//!
//! Within a category an event has exactly one value of (ticker, contract,
//! right, kind, sentiment, side, expiry) terms combine with OR; categories,
//! tags, exclusions and comparisons combine with AND. Matching is a handful
//! of integer and float comparisons with no allocation.

use super::number;
use super::parse::{self, Term};
use super::vocab::{self, Comparison, Keyword, Ticker};
use crate::event::{FlowEvent, Kind, Sentiment, Side, Tags};
use crate::occ::Right;

/// Compiled juxtaposed terms. Built with [`TermSet::add`], then
/// [`TermSet::finish`] before use.
#[derive(Clone, Debug, Default)]
pub struct TermSet {
    /// Included tickers, sorted and deduplicated; empty means any.
    tickers: Vec<Ticker>,
    /// Excluded tickers, sorted and deduplicated.
    excluded: Vec<Ticker>,
    /// Allowed contracts as unpadded OSI symbols (the form of
    /// `FlowEvent::occ`), sorted and deduplicated; empty means any.
    contracts: Vec<String>,
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

impl TermSet {
    pub fn add(&mut self, term: Term) {
        match term {
            Term::Ticker(t) => self.tickers.push(t),
            Term::Exclude(t) => self.excluded.push(t),
            Term::Contract(c) => self.contracts.push(c.osi()),
            Term::Keyword(Keyword::Right(r)) => self.rights |= vocab::right_bit(r),
            Term::Keyword(Keyword::Kind(k)) => self.kinds |= vocab::kind_bit(k),
            Term::Keyword(Keyword::Sentiment(s)) => self.sentiments |= vocab::sentiment_bit(s),
            Term::Keyword(Keyword::Tag(t)) => self.tags.insert(t),
            Term::Sides(mask) => self.sides |= mask,
            Term::Expiry(d) => self.expiries.push(d.to_string()),
            Term::Compare(c) => self.comparisons.push(c),
        }
    }

    /// Sorts and deduplicates, and drops no-op constraints (`calls puts`).
    pub fn finish(&mut self) {
        self.tickers.sort_unstable();
        self.tickers.dedup();
        self.excluded.sort_unstable();
        self.excluded.dedup();
        self.contracts.sort_unstable();
        self.contracts.dedup();
        self.expiries.sort_unstable();
        self.expiries.dedup();
        self.comparisons.sort_by(Comparison::canonical_cmp);
        self.comparisons.dedup_by(|a, b| a.canonical_cmp(b).is_eq());
        // Allowing every value of a category is no constraint.
        for (mask, all) in [
            (&mut self.rights, vocab::ALL_RIGHTS),
            (&mut self.kinds, vocab::ALL_KINDS),
            (&mut self.sentiments, vocab::ALL_SENTIMENTS),
        ] {
            if *mask == all {
                *mask = 0;
            }
        }
    }

    /// Whether `e` passes.
    #[inline]
    pub fn matches(&self, e: &FlowEvent) -> bool {
        (self.tickers.is_empty() || vocab::contains_sym(&self.tickers, &e.sym))
            && self.matches_listed(e)
    }

    /// [`TermSet::matches`] for an event whose `sym` is known to be one of
    /// [`TermSet::tickers`].
    #[inline]
    pub fn matches_listed(&self, e: &FlowEvent) -> bool {
        (self.rights == 0 || self.rights & vocab::right_bit(e.right) != 0)
            && (self.kinds == 0 || self.kinds & vocab::kind_bit(e.kind) != 0)
            && (self.sentiments == 0 || self.sentiments & vocab::sentiment_bit(e.sentiment) != 0)
            && (self.sides == 0 || self.sides & vocab::side_bit(e.side) != 0)
            && (self.tags.is_empty() || self.tags.iter().all(|t| e.tags.contains(t)))
            && self.comparisons.iter().all(|c| c.matches(e))
            && (self.expiries.is_empty() || self.expiries.contains(&e.expiry))
            && (self.contracts.is_empty()
                || self
                    .contracts
                    .binary_search_by(|c| c.as_str().cmp(&e.occ))
                    .is_ok())
            && !vocab::contains_sym(&self.excluded, &e.sym)
    }

    /// Whether the terms constrain nothing.
    pub fn is_empty(&self) -> bool {
        self.tickers.is_empty()
            && self.excluded.is_empty()
            && self.contracts.is_empty()
            && self.rights == 0
            && self.kinds == 0
            && self.sentiments == 0
            && self.sides == 0
            && self.tags.is_empty()
            && self.expiries.is_empty()
            && self.comparisons.is_empty()
    }

    /// The included tickers, sorted and distinct; empty means any.
    pub fn tickers(&self) -> &[Ticker] {
        &self.tickers
    }

    /// The excluded tickers, sorted and distinct.
    pub fn excluded(&self) -> &[Ticker] {
        &self.excluded
    }

    /// The allowed contracts as unpadded OSI symbols (as `FlowEvent::occ`),
    /// sorted and distinct; empty means any.
    pub fn contracts(&self) -> &[String] {
        &self.contracts
    }

    /// The allowed rights; none means any.
    pub fn rights(&self) -> impl Iterator<Item = Right> + '_ {
        vocab::RIGHTS
            .into_iter()
            .filter(|r| self.rights & vocab::right_bit(*r) != 0)
    }

    /// The allowed kinds; none means any.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL
            .into_iter()
            .filter(|k| self.kinds & vocab::kind_bit(*k) != 0)
    }

    /// The allowed sentiments; none means any.
    pub fn sentiments(&self) -> impl Iterator<Item = Sentiment> + '_ {
        vocab::SENTIMENTS
            .into_iter()
            .filter(|s| self.sentiments & vocab::sentiment_bit(*s) != 0)
    }

    /// The allowed sides; none means any.
    pub fn sides(&self) -> impl Iterator<Item = Side> + '_ {
        vocab::SIDES
            .into_iter()
            .filter(|s| self.sides & vocab::side_bit(*s) != 0)
    }

    /// The tags an event must all carry.
    pub fn tags(&self) -> Tags {
        self.tags
    }

    /// The allowed expiries as `YYYY-MM-DD`, sorted and distinct; empty means any.
    pub fn expiries(&self) -> &[String] {
        &self.expiries
    }

    /// The comparisons, all of which must hold.
    pub fn comparisons(&self) -> &[Comparison] {
        &self.comparisons
    }

    /// Whether `self AND other` is what the two sets written side by side
    /// mean: true unless both constrain a category whose terms OR together.
    pub fn joins(&self, other: &TermSet) -> bool {
        let or_categories = |t: &TermSet| {
            [
                !t.tickers.is_empty(),
                !t.contracts.is_empty(),
                t.rights != 0,
                t.kinds != 0,
                t.sentiments != 0,
                t.sides != 0,
                !t.expiries.is_empty(),
            ]
        };
        !or_categories(self)
            .into_iter()
            .zip(or_categories(other))
            .any(|(a, b)| a && b)
    }

    /// Adds `other`'s terms; with [`TermSet::joins`] true the result means
    /// `self AND other`.
    pub fn join(&mut self, other: TermSet) {
        self.tickers.extend(other.tickers);
        self.excluded.extend(other.excluded);
        self.contracts.extend(other.contracts);
        self.rights |= other.rights;
        self.kinds |= other.kinds;
        self.sentiments |= other.sentiments;
        self.sides |= other.sides;
        for t in other.tags.iter() {
            self.tags.insert(t);
        }
        self.expiries.extend(other.expiries);
        self.comparisons.extend(other.comparisons);
        self.finish();
    }

    /// The canonical text of each term, in the canonical order: tickers,
    /// exclusions, contracts, rights, kinds, sentiments, tags, sides,
    /// expiries, comparisons.
    pub fn canonical_terms(&self) -> Vec<String> {
        let mut terms: Vec<String> = Vec::new();
        terms.extend(self.tickers.iter().map(|t| parse::ticker_text(*t, false)));
        terms.extend(self.excluded.iter().map(|t| parse::ticker_text(*t, true)));
        terms.extend(self.contracts.iter().map(|c| format!("occ:{c}")));
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
        terms
    }
}
