//! The compiled shape of a filter: alternatives (`or`) of clauses, each a
//! [`TermSet`] plus parenthesised groups that must all match.
//!
//! Building normalises, so that filters with the same meaning tend to print
//! the same canonical text and parsing that text gives back the same shape:
//! a group that is one clause joins the clause around it when no category
//! would then OR across the parenthesis; `(a or b) or c` is `a or b or c`;
//! an alternative that matches everything makes the whole match everything;
//! alternatives and groups are sorted by their canonical text and deduplicated.
//! Nesting depth is bounded by the parser, so the recursion here is too.

use super::term_set::TermSet;
use super::vocab::Ticker;
use crate::event::FlowEvent;

/// Alternatives: matches when any clause matches. Never empty; the filter
/// that matches everything is one empty clause.
#[derive(Clone, Debug)]
pub struct Expr {
    clauses: Vec<Clause>,
}

/// Terms side by side and parenthesised groups: matches when the terms and
/// every group match.
#[derive(Clone, Debug, Default)]
pub struct Clause {
    terms: TermSet,
    groups: Vec<Expr>,
}

impl Default for Expr {
    fn default() -> Expr {
        Expr {
            clauses: vec![Clause::default()],
        }
    }
}

impl Expr {
    /// `clauses[0] or clauses[1] or …`; no clauses is the empty filter.
    pub fn any(clauses: Vec<Clause>) -> Expr {
        let mut flat = Vec::with_capacity(clauses.len());
        for mut c in clauses {
            if c.terms.is_empty() && c.groups.len() == 1 {
                // A lone group in an alternative: `(a or b) or c`.
                flat.extend(c.groups.pop().map(|g| g.clauses).unwrap_or_default());
            } else {
                flat.push(c);
            }
        }
        if flat.is_empty() || flat.iter().any(Clause::is_everything) {
            return Expr::default();
        }
        sort_dedup(&mut flat, Clause::canonical);
        Expr { clauses: flat }
    }

    /// The alternatives, any of which must match (never empty).
    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// Whether it matches every event.
    pub fn is_everything(&self) -> bool {
        matches!(self.clauses.as_slice(), [only] if only.is_everything())
    }

    #[inline]
    pub fn matches(&self, e: &FlowEvent) -> bool {
        self.clauses.iter().any(|c| c.matches(e))
    }

    /// [`Expr::matches`] for an event whose `sym` is one of
    /// [`Expr::tickers`]: the ticker check of a lone clause is skipped.
    #[inline]
    pub fn matches_listed(&self, e: &FlowEvent) -> bool {
        match self.clauses.as_slice() {
            [only] => only.terms.matches_listed(e) && only.groups.iter().all(|g| g.matches(e)),
            _ => self.matches(e),
        }
    }

    /// Tickers outside which nothing matches, sorted and distinct (never
    /// empty), or `None` when an event of any ticker may match. A superset
    /// is sound for indexing, so a clause names the tickers of its terms, or
    /// failing that those of its narrowest group; alternatives name the
    /// union of theirs, if they all name some.
    pub fn tickers(&self) -> Option<Vec<Ticker>> {
        let mut all = Vec::new();
        for c in &self.clauses {
            all.extend(c.tickers()?);
        }
        all.sort_unstable();
        all.dedup();
        Some(all)
    }

    pub fn canonical(&self) -> String {
        let texts: Vec<String> = self.clauses.iter().map(Clause::canonical).collect();
        texts.join(" or ")
    }
}

impl Clause {
    /// `terms` (finished) and every group.
    pub fn all(mut terms: TermSet, groups: Vec<Expr>) -> Clause {
        // In canonical order, so the result does not depend on the order
        // the groups were written in.
        let mut pending = groups;
        sort_dedup(&mut pending, Expr::canonical);
        let mut kept = Vec::new();
        let mut next = 0;
        while next < pending.len() {
            let g = std::mem::take(&mut pending[next]);
            next += 1;
            if g.is_everything() {
                continue;
            }
            match <[Clause; 1]>::try_from(g.clauses) {
                Ok([only]) if terms.joins(&only.terms) => {
                    terms.join(only.terms);
                    pending.extend(only.groups);
                }
                Ok([only]) => kept.push(Expr {
                    clauses: vec![only],
                }),
                Err(clauses) => kept.push(Expr { clauses }),
            }
        }
        sort_dedup(&mut kept, Expr::canonical);
        Clause {
            terms,
            groups: kept,
        }
    }

    /// The terms side by side.
    pub fn terms(&self) -> &TermSet {
        &self.terms
    }

    /// The parenthesised groups, all of which must match.
    pub fn groups(&self) -> &[Expr] {
        &self.groups
    }

    fn is_everything(&self) -> bool {
        self.terms.is_empty() && self.groups.is_empty()
    }

    #[inline]
    fn matches(&self, e: &FlowEvent) -> bool {
        self.terms.matches(e) && self.groups.iter().all(|g| g.matches(e))
    }

    fn tickers(&self) -> Option<Vec<Ticker>> {
        if !self.terms.tickers().is_empty() {
            return Some(self.terms.tickers().to_vec());
        }
        self.groups
            .iter()
            .filter_map(Expr::tickers)
            .min_by_key(Vec::len)
    }

    fn canonical(&self) -> String {
        let mut parts = self.terms.canonical_terms();
        parts.extend(self.groups.iter().map(|g| format!("({})", g.canonical())));
        parts.join(" ")
    }
}

/// Sorts by canonical text and drops repeats.
fn sort_dedup<T>(items: &mut Vec<T>, canonical: impl Fn(&T) -> String) {
    let mut keyed: Vec<(String, T)> = items.drain(..).map(|t| (canonical(&t), t)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    items.extend(keyed.into_iter().map(|(_, t)| t));
}
