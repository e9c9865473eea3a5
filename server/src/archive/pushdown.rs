//! A filter as a SQL predicate over `flow_events`, with bind parameters.
//!
//! [`Pushdown::new`] translates a parsed [`Filter`] into a `WHERE` fragment
//! whose values are all parameters (never spliced into the text). The
//! contract: the predicate is *implied* by the filter — it never excludes a
//! row the Rust filter keeps — so the reader may apply it in PostgreSQL and
//! then run the Rust filter on what comes back. What SQL cannot say the
//! same way becomes `TRUE` for that part. `docs/archive.md` has the table
//! of what is pushed.
//!
//! The points where the two could disagree, and how each is kept sound:
//! tickers match `upper(sym)` (the Rust filter ignores the case of `sym`),
//! excluded tickers exclude only the exact upper-case `sym` (a superset of
//! what the Rust filter keeps); comparisons read the column as `float8`
//! exactly as the Rust filter reads the field as `f64`, a NULL column
//! (unknown `otm`, `iv`, `oi`) makes the comparison NULL, i.e. not kept, as
//! the Rust filter does with a missing value, and `=` is pushed as a range
//! a little wider than the Rust filter's tolerance.

use std::fmt::Write as _;

use flowtape_core::event::Sentiment;
use flowtape_core::filter::{Clause, Comparison, Expr, Field, Filter, Op, TermSet};
use flowtape_core::occ::Right;
use tokio_postgres::types::ToSql;

use super::row::SqlDate;

/// One bind parameter of a pushed predicate.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// A predicate and its parameters, numbered from the `first` given to
/// [`Pushdown::new`].
pub struct Pushdown {
    /// The SQL, `TRUE` when nothing is pushed.
    pub sql: String,
    pub params: Vec<Param>,
}

impl std::fmt::Debug for Pushdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pushdown")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .finish()
    }
}

impl Pushdown {
    /// The predicate for `filter`, its first parameter being `$first`.
    pub fn new(filter: &Filter, first: usize) -> Pushdown {
        let mut b = Builder {
            params: Vec::new(),
            first,
        };
        let sql = b.expr(filter.expr());
        Pushdown {
            sql,
            params: b.params,
        }
    }

    /// The parameters as the driver takes them.
    pub fn refs(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))
    }
}

struct Builder {
    params: Vec<Param>,
    first: usize,
}

impl Builder {
    /// Adds a parameter; its placeholder.
    fn bind(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.first + self.params.len() - 1)
    }

    fn expr(&mut self, e: &Expr) -> String {
        let parts: Vec<String> = e.clauses().iter().map(|c| self.clause(c)).collect();
        if parts.iter().any(|p| p == "TRUE") {
            return "TRUE".into();
        }
        match parts.as_slice() {
            [only] => only.clone(),
            _ => format!("({})", parts.join(" OR ")),
        }
    }

    fn clause(&mut self, c: &Clause) -> String {
        let mut parts = self.terms(c.terms());
        parts.extend(c.groups().iter().map(|g| self.expr(g)));
        parts.retain(|p| p != "TRUE");
        match parts.as_slice() {
            [] => "TRUE".into(),
            [only] => only.clone(),
            _ => format!("({})", parts.join(" AND ")),
        }
    }

    fn terms(&mut self, t: &TermSet) -> Vec<String> {
        let mut parts = Vec::new();
        if !t.tickers().is_empty() {
            let list: Vec<String> = t.tickers().iter().map(|t| t.to_string()).collect();
            parts.push(format!("upper(sym) = ANY({})", self.bind(Box::new(list))));
        }
        if !t.excluded().is_empty() {
            let list: Vec<String> = t.excluded().iter().map(|t| t.to_string()).collect();
            parts.push(format!("sym <> ALL({})", self.bind(Box::new(list))));
        }
        if !t.contracts().is_empty() {
            let list = t.contracts().to_vec();
            parts.push(format!("occ = ANY({})", self.bind(Box::new(list))));
        }
        let one_of = |b: &mut Builder, column: &str, values: Vec<String>| {
            (!values.is_empty()).then(|| format!("{column} = ANY({})", b.bind(Box::new(values))))
        };
        let rights = t.rights().map(|r| right_code(r).to_string()).collect();
        let kinds = t.kinds().map(|k| k.name().to_string()).collect();
        let sentiments = t
            .sentiments()
            .map(|s| sentiment_name(s).to_string())
            .collect();
        let sides = t.sides().map(|s| s.code().to_string()).collect();
        parts.extend(one_of(self, "\"right\"", rights));
        parts.extend(one_of(self, "kind", kinds));
        parts.extend(one_of(self, "sentiment", sentiments));
        parts.extend(one_of(self, "side", sides));
        let tags: Vec<String> = t.tags().iter().map(|t| t.name().to_string()).collect();
        if !tags.is_empty() {
            parts.push(format!("tags @> {}", self.bind(Box::new(tags))));
        }
        let expiries: Option<Vec<SqlDate>> = t.expiries().iter().map(|d| d.parse().ok().map(SqlDate)).collect();
        match expiries {
            Some(days) if !days.is_empty() => {
                parts.push(format!("expiry = ANY({})", self.bind(Box::new(days))));
            }
            // An expiry the Rust filter holds that is not a date: not pushed.
            _ => {}
        }
        for c in t.comparisons() {
            parts.extend(self.comparison(c));
        }
        parts
    }

    /// A comparison, or `None` when it is not pushed.
    fn comparison(&mut self, c: &Comparison) -> Option<String> {
        let t = c.threshold;
        if !t.is_finite() {
            return None;
        }
        let column = field_sql(c.field);
        Some(match c.op {
            Op::Eq => {
                // The Rust tolerance is 1e-9 of the larger magnitude (at
                // least 1); twice that around the threshold covers it.
                let slack = 2e-9 * (t.abs() + 1.0);
                let lo = self.bind(Box::new(t - slack));
                let hi = self.bind(Box::new(t + slack));
                format!("{column} BETWEEN {lo} AND {hi}")
            }
            op => {
                let p = self.bind(Box::new(t));
                let mut s = String::new();
                let _ = write!(s, "{column} {} {p}", op.symbol());
                s
            }
        })
    }
}

/// The column expression a field reads, as `float8` like the Rust filter's
/// `f64`; NULL where the field is unknown.
fn field_sql(field: Field) -> &'static str {
    match field {
        Field::Premium => "premium",
        Field::Size => "size::float8",
        Field::Price => "price",
        Field::Strike => "strike",
        Field::Dte => "dte::float8",
        Field::Score => "score::float8",
        Field::Otm => "otm",
        Field::Iv => "iv",
        Field::VolOi => "(vol::float8 / nullif(oi, 0)::float8)",
    }
}

/// The `right` column's value.
pub(super) fn right_code(r: Right) -> &'static str {
    if r == Right::Put {
        "P"
    } else {
        "C"
    }
}

/// The `sentiment` column's value.
pub(super) fn sentiment_name(s: Sentiment) -> &'static str {
    match s {
        Sentiment::Bull => "bull",
        Sentiment::Bear => "bear",
        Sentiment::Neutral => "neutral",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(filter: &str) -> (String, usize) {
        let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let p = Pushdown::new(&f, 3);
        (p.sql, p.params.len())
    }

    #[test]
    fn typical_filters() {
        assert_eq!(sql(""), ("TRUE".into(), 0));
        assert_eq!(
            sql("AAPL TSLA calls sweep premium>=250k"),
            (
                "(upper(sym) = ANY($3) AND \"right\" = ANY($4) AND kind = ANY($5) AND premium >= $6)"
                    .into(),
                4
            )
        );
        assert_eq!(
            sql("-SPY golden side:ask"),
            (
                "(sym <> ALL($3) AND side = ANY($4) AND tags @> $5)".into(),
                3
            )
        );
        assert_eq!(
            sql("sweep or block or (unusual premium>=25k)"),
            (
                "(kind = ANY($3) OR kind = ANY($4) OR (tags @> $5 AND premium >= $6))".into(),
                4
            )
        );
        assert_eq!(
            sql("occ:AAPL261218C00200000 exp:2026-12-18 bull"),
            (
                "(occ = ANY($3) AND sentiment = ANY($4) AND expiry = ANY($5))".into(),
                3
            )
        );
        assert_eq!(
            sql("voloi>2 otm<10% iv=50% size<100 dte<=7 score>80"),
            (
                "(size::float8 < $3 AND dte::float8 <= $4 AND score::float8 > $5 AND otm < $6 \
                 AND iv BETWEEN $7 AND $8 AND (vol::float8 / nullif(oi, 0)::float8) > $9)"
                    .into(),
                7
            )
        );
        // An alternative that matches everything makes the whole TRUE.
        assert_eq!(sql("sweep or calls puts").0, "TRUE");
    }

    #[test]
    fn values_are_parameters_never_text() {
        let (text, n) = sql("BRK.B");
        assert!(!text.contains("BRK"), "{text}");
        assert_eq!(n, 1);
    }
}
