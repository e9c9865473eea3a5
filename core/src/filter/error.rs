//! Why a filter does not parse, said so a user can fix it.

use std::fmt;

/// What is wrong with the token a [`FilterError`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterErrorKind {
    /// A comparison on a field that does not exist: `premum>=1k`.
    UnknownField,
    /// An operator with nothing before it: `>=5`.
    MissingField,
    /// An operator that is not one of `> >= < <= =`: `premium=>5`, `size!=1`.
    BadOperator,
    /// A field, a `xxx:` prefix or a comparison with nothing after it:
    /// `premium>=`, `side:`.
    MissingValue,
    /// A value that is not a number: `premium>=abc`.
    BadNumber,
    /// A number with a suffix other than `k` or `m` (or `%` for `iv`, `otm`): `premium>=5x`.
    BadSuffix,
    /// A `side:` value other than `ask bid mid aa bb`: `side:up`.
    BadSide,
    /// An `exp:` value that is not a calendar date `YYYY-MM-DD`: `exp:2026-02-30`.
    BadDate,
    /// A `-` with nothing after it.
    EmptyExclusion,
    /// A word that is not a keyword and not shaped like a ticker: `AAP$L`, `TOOLONGX`.
    BadTicker,
    /// A `xxx:` prefix other than `side: exp: sym: occ:`: `sid:ask`.
    UnknownPrefix,
    /// A word one typo away from a keyword: `sweeps`, `golen`.
    UnknownWord,
    /// A field written without an operator: `premium`, `premium:250k`.
    MissingOperator,
    /// A prefix written with an operator: `side=ask`, `exp>2026-12-18`.
    PrefixWithOperator,
    /// An exclusion of something other than a ticker: `-bull`, `-side:ask`.
    NotExcludable,
    /// An `occ:` value that is not an OSI option symbol: `occ:NVDA261218C200`.
    BadContract,
    /// An `or` without a term on one side: `sweep or`, `or block`, `(or sweep)`.
    DanglingOr,
    /// A `(` that is never closed: `(sweep or block`.
    UnclosedParen,
    /// A `)` that closes nothing: `sweep)`.
    UnmatchedParen,
    /// Parentheses with nothing inside: `()`.
    EmptyGroup,
    /// Parentheses nested deeper than the language allows.
    TooDeep,
}

/// A filter that does not parse: the offending token, where it starts, and
/// what to write instead when something close is valid.
///
/// Displays as one line, e.g.
/// ``unknown field `premum` at column 6; did you mean `premium`?``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based character (not byte) column of `token` in the filter text.
    pub column: usize,
    /// The offending part of the input, as written.
    pub token: String,
    pub kind: FilterErrorKind,
    /// A valid word or term close to what was written.
    pub suggestion: Option<String>,
}

impl FilterError {
    pub(super) fn new(kind: FilterErrorKind, column: usize, token: &str) -> FilterError {
        FilterError {
            column,
            token: token.to_owned(),
            kind,
            suggestion: None,
        }
    }

    pub(super) fn suggest(mut self, suggestion: Option<String>) -> FilterError {
        self.suggestion = suggestion;
        self
    }
}

impl FilterErrorKind {
    /// What to write, for when there is no specific suggestion.
    fn hint(self) -> &'static str {
        use FilterErrorKind::*;
        match self {
            UnknownField | MissingField => {
                "fields are premium size price strike dte score otm iv voloi"
            }
            BadOperator => "operators are > >= < <= =",
            MissingValue => "write a value after it, as in `premium>=250k` or `side:ask`",
            BadNumber => "write a number such as 250000, 250k, 1.5m or 0.35",
            BadSuffix => "numbers take k (thousand) or m (million), and iv and otm also take %",
            BadSide => "sides are ask bid mid aa bb",
            BadDate => "write a calendar date as YYYY-MM-DD",
            EmptyExclusion => "write -TICKER",
            BadTicker => "tickers are 1 to 6 letters, digits or dots, starting with a letter",
            UnknownPrefix => "prefixes are side: exp: sym: occ:",
            UnknownWord => "write sym:WORD if it is a ticker",
            MissingOperator => "compare it, as in `premium>=250k`",
            PrefixWithOperator => "write it with a colon, as in `side:ask` or `exp:2026-12-18`",
            NotExcludable => "select the values you want instead, as in `side:bid side:mid`",
            BadContract => {
                "expected an OSI option symbol like NVDA261218C00200000 \
                 (root, YYMMDD, C/P, strike×1000 in 8 digits)"
            }
            DanglingOr => "write a term on each side, as in `sweep or block`",
            UnclosedParen => "close the group with `)`",
            UnmatchedParen => "remove it, or open the group with `(`",
            EmptyGroup => "write terms inside, as in `(sweep or block)`",
            TooDeep => "groups nest at most 16 deep",
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FilterErrorKind::*;
        let t = &self.token;
        match self.kind {
            UnknownField => write!(f, "unknown field `{t}`"),
            MissingField => write!(f, "no field before the operator in `{t}`"),
            BadOperator => write!(f, "unknown operator `{t}`"),
            MissingValue => write!(f, "missing value after `{t}`"),
            BadNumber => write!(f, "bad number `{t}`"),
            BadSuffix => write!(f, "bad suffix on `{t}`"),
            BadSide => write!(f, "unknown side `{t}`"),
            BadDate => write!(f, "bad date `{t}`"),
            EmptyExclusion => write!(f, "empty exclusion `{t}`"),
            BadTicker => write!(f, "bad ticker `{t}`"),
            UnknownPrefix => write!(f, "unknown prefix `{t}`"),
            UnknownWord => write!(f, "unknown word `{t}`"),
            MissingOperator => write!(f, "missing operator after field `{t}`"),
            PrefixWithOperator => write!(f, "prefix `{t}` used with an operator"),
            NotExcludable => write!(f, "cannot exclude `{t}` (only tickers)"),
            BadContract => write!(f, "bad option symbol `{t}`"),
            DanglingOr => write!(f, "`{t}` without a term on both sides"),
            UnclosedParen => write!(f, "unclosed `{t}`"),
            UnmatchedParen => write!(f, "unmatched `{t}`"),
            EmptyGroup => write!(f, "empty group `{t}`"),
            TooDeep => write!(f, "too deeply nested `{t}`"),
        }?;
        write!(f, " at column {}", self.column)?;
        match &self.suggestion {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => write!(f, "; {}", self.kind.hint()),
        }
    }
}

impl std::error::Error for FilterError {}
