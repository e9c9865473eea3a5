//! From filter text to an [`Expr`]: tokens, `or`, parentheses and presets.
//!
//! ```text
//! filter := clause ("or" clause)*     the empty text is the empty filter
//! clause := item item*                items side by side: AND, see TermSet
//! item   := term | preset | "(" filter ")"
//! ```
//!
//! Words are split at whitespace, and `(` and `)` are tokens of their own.
//! `or` (any case) binds loosest: `a b or c` is `(a b) or c`. Groups nest
//! at most [`MAX_DEPTH`] deep, so nothing recurses without bound.

use super::error::{FilterError, FilterErrorKind as E};
use super::expr::{Clause, Expr};
use super::parse;
use super::preset::Presets;
use super::term_set::TermSet;

/// The deepest parentheses may nest.
pub const MAX_DEPTH: usize = 16;

/// Reads `src`, expanding the words of `presets`.
pub fn expression(src: &str, presets: &Presets) -> Result<Expr, FilterError> {
    let tokens = tokens(src);
    Parser {
        tokens: &tokens,
        at: 0,
        presets,
    }
    .alternatives(0, None)
}

/// Words and parentheses, each with its 1-based character column.
fn tokens(src: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut word: Option<(usize, usize)> = None;
    for (column, (byte, c)) in (1..).zip(src.char_indices()) {
        let paren = c == '(' || c == ')';
        if c.is_whitespace() || paren {
            if let Some((from, col)) = word.take() {
                out.push((col, &src[from..byte]));
            }
            if paren {
                out.push((column, &src[byte..byte + 1]));
            }
        } else if word.is_none() {
            word = Some((byte, column));
        }
    }
    if let Some((from, col)) = word {
        out.push((col, &src[from..]));
    }
    out
}

/// What ends a clause.
enum End<'a> {
    Or(usize, &'a str),
    Close(usize),
    Text,
}

struct Parser<'a> {
    tokens: &'a [(usize, &'a str)],
    at: usize,
    presets: &'a Presets,
}

impl<'a> Parser<'a> {
    /// `clause or clause …` up to the end of the text, or up to and
    /// including the `)` that closes the `(` at column `open`.
    fn alternatives(&mut self, depth: usize, open: Option<usize>) -> Result<Expr, FilterError> {
        let mut clauses = Vec::new();
        let mut or_before: Option<(usize, &str)> = None;
        loop {
            let clause = self.clause(depth)?;
            let end = self.end();
            match (clause, or_before, &end, open) {
                (Some(clause), ..) => clauses.push(clause),
                (None, Some((column, or)), ..) | (None, None, &End::Or(column, or), _) => {
                    return Err(FilterError::new(E::DanglingOr, column, or))
                }
                (None, None, End::Close(_), Some(open)) => {
                    return Err(FilterError::new(E::EmptyGroup, open, "("))
                }
                // Nothing before the end: the empty filter, or an error below.
                (None, None, ..) => {}
            }
            match (end, open) {
                (End::Or(column, or), _) => {
                    self.at += 1;
                    or_before = Some((column, or));
                }
                (End::Close(_), Some(_)) => {
                    self.at += 1;
                    return Ok(Expr::any(clauses));
                }
                (End::Text, None) => return Ok(Expr::any(clauses)),
                (End::Close(column), None) => {
                    return Err(FilterError::new(E::UnmatchedParen, column, ")"))
                }
                (End::Text, Some(open)) => {
                    return Err(FilterError::new(E::UnclosedParen, open, "("))
                }
            }
        }
    }

    /// The items up to the next `or`, `)` or the end; `None` if there are none.
    fn clause(&mut self, depth: usize) -> Result<Option<Clause>, FilterError> {
        let mut terms = TermSet::default();
        let mut groups = Vec::new();
        let start = self.at;
        while let Some(&(column, token)) = self.tokens.get(self.at) {
            if token == ")" || parse::is_or(token) {
                break;
            }
            self.at += 1;
            if token == "(" {
                if depth >= MAX_DEPTH {
                    return Err(FilterError::new(E::TooDeep, column, token));
                }
                groups.push(self.alternatives(depth + 1, Some(column))?);
            } else if let Some(expr) = self.presets.get(token) {
                groups.push(expr.clone());
            } else {
                let term = parse::term(column, token)
                    .map_err(|e| parse::suggest_joined(e, &self.tokens[self.at - 1..]))?;
                terms.add(term);
            }
        }
        if self.at == start {
            return Ok(None);
        }
        terms.finish();
        Ok(Some(Clause::all(terms, groups)))
    }

    fn end(&self) -> End<'a> {
        match self.tokens.get(self.at) {
            Some(&(column, ")")) => End::Close(column),
            Some(&(column, or)) => End::Or(column, or),
            None => End::Text,
        }
    }
}
