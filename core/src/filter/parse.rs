//! From a token to a term: reading one word of a filter as a term, and
//! explaining words that are not one.
//!
//! A token is read by its shape, in this order: a leading `-` makes an
//! exclusion; otherwise whichever comes first of `:` (a `xxx:` prefix) and an
//! operator character (a comparison) decides; a token with neither is a bare
//! word: a keyword, else a ticker.

use super::error::{FilterError, FilterErrorKind as E};
use super::number::{self, NumberError};
use super::preset;
use super::suggest;
use super::vocab::{self, Comparison, Field, Keyword, Op, Ticker, PREFIXES};
use crate::date::Date;
use crate::occ::{self, Contract, Right};

/// One term of a filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Term {
    Ticker(Ticker),
    Exclude(Ticker),
    Keyword(Keyword),
    /// A `side:` term, as the mask of the sides it allows.
    Sides(u8),
    Expiry(Date),
    /// An `occ:` term: one option contract.
    Contract(Contract),
    Compare(Comparison),
}

/// The characters an operator is made of, including the `!` of an
/// unsupported `!=`, so that it is reported as an operator.
const OPERATOR_CHARS: [char; 4] = ['<', '>', '=', '!'];

/// Spellings of `sym:` that are too far from it for edit distance.
const SYM_ALIASES: [&str; 3] = ["ticker", "symbol", "root"];

/// `premium >= 250k`, `side: ask`, `- SPY`: a term split by spaces. When the
/// first failing token joined with the next one or two makes a term, suggest it.
pub fn suggest_joined(e: FilterError, rest: &[(usize, &str)]) -> FilterError {
    if e.suggestion.is_some()
        || !matches!(
            e.kind,
            E::MissingOperator | E::MissingValue | E::EmptyExclusion | E::BadContract
        )
    {
        return e;
    }
    let mut joined = String::new();
    for (n, &(_, token)) in rest.iter().take(3).enumerate() {
        joined.push_str(token);
        if n > 0 && term(1, &joined).is_ok() {
            return e.suggest(Some(joined));
        }
    }
    e
}

/// The column of byte `at` of a token that starts at `column`.
fn column_at(column: usize, token: &str, at: usize) -> usize {
    column + token[..at].chars().count()
}

/// Reads one token, which starts at `column`, as a term.
pub fn term(column: usize, token: &str) -> Result<Term, FilterError> {
    if let Some(body) = token.strip_prefix('-') {
        return exclusion(column, token, body);
    }
    match (token.find(':'), token.find(OPERATOR_CHARS)) {
        (Some(colon), Some(op)) if colon < op => prefixed(column, token, colon),
        (_, Some(op)) => comparison(column, token, op),
        (Some(colon), None) => prefixed(column, token, colon),
        (None, None) => bare(column, token),
    }
}

fn comparison(column: usize, token: &str, at: usize) -> Result<Term, FilterError> {
    let (name, after) = token.split_at(at);
    let op_len = after
        .find(|c| !OPERATOR_CHARS.contains(&c))
        .unwrap_or(after.len());
    let (op_text, value) = after.split_at(op_len);
    if name.is_empty() {
        return Err(FilterError::new(E::MissingField, column, token));
    }
    let Some(field) = Field::from_name(name) else {
        if let Some(prefix) = PREFIXES.iter().find(|p| p.eq_ignore_ascii_case(name)) {
            let fix = (op_text == "=" && !value.is_empty()).then(|| format!("{prefix}:{value}"));
            return Err(FilterError::new(E::PrefixWithOperator, column, name).suggest(fix));
        }
        let near = suggest::nearest_or_abbreviated(name, Field::ALL.map(Field::name), 2);
        return Err(FilterError::new(E::UnknownField, column, name).suggest(near.map(String::from)));
    };
    let op_column = column_at(column, token, at);
    let Some(op) = Op::from_symbol(op_text) else {
        let fix = match op_text {
            "=>" => Some(">="),
            "=<" => Some("<="),
            "==" => Some("="),
            _ => None,
        };
        return Err(
            FilterError::new(E::BadOperator, op_column, op_text).suggest(fix.map(String::from))
        );
    };
    if value.is_empty() {
        return Err(FilterError::new(E::MissingValue, column, token));
    }
    let value_column = op_column + op_text.chars().count();
    let (shown, threshold) = number::parse(value, field).map_err(|e| match e {
        NumberError::Bad { suggestion } => {
            FilterError::new(E::BadNumber, value_column, value).suggest(suggestion)
        }
        NumberError::Suffix { suggestion } => {
            FilterError::new(E::BadSuffix, value_column, value).suggest(suggestion)
        }
    })?;
    Ok(Term::Compare(Comparison {
        field,
        op,
        value: shown,
        threshold,
    }))
}

fn prefixed(column: usize, token: &str, at: usize) -> Result<Term, FilterError> {
    let name = &token[..at];
    let value = &token[at + 1..];
    let value_column = column_at(column, token, at + 1);
    let prefix = name.to_ascii_lowercase();
    if value.is_empty() && PREFIXES.contains(&prefix.as_str()) {
        return Err(FilterError::new(E::MissingValue, column, token));
    }
    match prefix.as_str() {
        "side" => vocab::side_mask(value).map(Term::Sides).ok_or_else(|| {
            FilterError::new(E::BadSide, value_column, value).suggest(side_suggestion(value))
        }),
        "exp" => value.parse::<Date>().map(Term::Expiry).map_err(|_| {
            FilterError::new(E::BadDate, value_column, value).suggest(date_suggestion(value))
        }),
        "sym" => Ticker::parse(value).map(Term::Ticker).ok_or_else(|| {
            FilterError::new(E::BadTicker, value_column, value)
                .suggest(ticker_suggestion(value, "sym:"))
        }),
        "occ" => contract(value).map(Term::Contract).ok_or_else(|| {
            FilterError::new(E::BadContract, value_column, value)
                .suggest(contract_suggestion(value))
        }),
        _ => Err(unknown_prefix(column, name, value)),
    }
}

/// An OSI symbol in any case, unpadded or with Massive's `O:` prefix.
fn contract(value: &str) -> Option<Contract> {
    Contract::parse(&value.to_ascii_uppercase()).ok()
}

/// The OSI symbol meant by one written with a plain strike, as some
/// platforms show it (`NVDA261218C200`, `.NVDA261218C187.5`).
fn contract_suggestion(value: &str) -> Option<String> {
    let upper = value.to_ascii_uppercase();
    let body = upper.trim_start_matches(['.', '$']);
    if !body.is_ascii() {
        return None;
    }
    let strike_at = body.rfind(['C', 'P'])?;
    let (head, strike) = (&body[..strike_at], &body[strike_at + 1..]);
    let right = if body[strike_at..].starts_with('C') {
        Right::Call
    } else {
        Right::Put
    };
    let (root, yymmdd) = head.split_at(head.len().checked_sub(6)?);
    let expiry = occ::parse_yymmdd(yymmdd)?;
    let strike_milli = strike_milli(strike)?;
    Contract::new(root, expiry, right, strike_milli)
        .ok()
        .map(|c| c.osi())
}

/// `187.5` → 187500: a strike in dollars with at most three decimals.
fn strike_milli(strike: &str) -> Option<u32> {
    let (int, frac) = strike.split_once('.').unwrap_or((strike, ""));
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() || int.len() > 5 || frac.len() > 3 || !digits(int) || !digits(frac) {
        return None;
    }
    let frac_milli: u32 = format!("{frac:0<3}").parse().ok()?;
    Some(int.parse::<u32>().ok()? * 1000 + frac_milli)
}

fn unknown_prefix(column: usize, name: &str, value: &str) -> FilterError {
    if let Some(field) = Field::from_name(name) {
        let fix = (!value.is_empty()).then(|| format!("{}>={value}", field.name()));
        return FilterError::new(E::MissingOperator, column, name).suggest(fix);
    }
    let lower = name.to_ascii_lowercase();
    let prefix = if SYM_ALIASES.contains(&lower.as_str()) {
        Some("sym")
    } else {
        suggest::nearest_or_abbreviated(name, PREFIXES, 1)
    };
    let fix = match (prefix, Keyword::from_word(value)) {
        (Some(p), _) => Some(format!("{p}:")),
        // `kind:sweep`, `tag:golden`: the keyword alone is the term.
        (None, Some(k)) => Some(k.name().to_string()),
        (None, None) => None,
    };
    FilterError::new(E::UnknownPrefix, column, &format!("{name}:")).suggest(fix)
}

fn bare(column: usize, token: &str) -> Result<Term, FilterError> {
    if let Some(k) = Keyword::from_word(token) {
        return Ok(Term::Keyword(k));
    }
    if let Some(t) = Ticker::parse(token) {
        return match near_keyword(token) {
            Some(k) => {
                Err(FilterError::new(E::UnknownWord, column, token)
                    .suggest(Some(canonical_keyword(k))))
            }
            None => Ok(Term::Ticker(t)),
        };
    }
    if Field::from_name(token).is_some() {
        return Err(FilterError::new(E::MissingOperator, column, token));
    }
    let words = Keyword::spellings().chain(preset::builtin_names());
    if let Some(k) = suggest::nearest_or_abbreviated(token, words, 2) {
        return Err(
            FilterError::new(E::UnknownWord, column, token).suggest(Some(canonical_keyword(k)))
        );
    }
    Err(FilterError::new(E::BadTicker, column, token).suggest(ticker_suggestion(token, "")))
}

/// Whether `word` is the operator `or` (any case).
pub fn is_or(word: &str) -> bool {
    word.eq_ignore_ascii_case("or")
}

/// The canonical spelling of a keyword spelling (`call` → `calls`).
fn canonical_keyword(spelling: &'static str) -> String {
    Keyword::from_word(spelling)
        .map_or(spelling, Keyword::name)
        .to_string()
}

/// The keyword a ticker-shaped word is a typo of: one edit away, and the word
/// longer than four characters (`sweeps`, `golen`, `unusal`). Shorter words
/// near a keyword (`bul`, `swep`) stay tickers; real tickers are short.
fn near_keyword(word: &str) -> Option<&'static str> {
    if word.chars().count() > 4 {
        suggest::nearest(word, Keyword::spellings(), 1)
    } else {
        None
    }
}

fn exclusion(column: usize, token: &str, body: &str) -> Result<Term, FilterError> {
    let body_column = column + 1;
    if body.is_empty() {
        return Err(FilterError::new(E::EmptyExclusion, column, token));
    }
    let sym_value = body
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("sym:"))
        .map(|_| &body[4..]);
    if let Some(value) = sym_value {
        if value.is_empty() {
            return Err(FilterError::new(E::MissingValue, column, token));
        }
        return Ticker::parse(value).map(Term::Exclude).ok_or_else(|| {
            FilterError::new(E::BadTicker, body_column + 4, value)
                .suggest(ticker_suggestion(value, "-sym:"))
        });
    }
    if Keyword::from_word(body).is_some() {
        let fix = format!("-sym:{}", body.to_ascii_uppercase());
        return Err(FilterError::new(E::NotExcludable, body_column, body).suggest(Some(fix)));
    }
    if body.contains(':') || body.contains(OPERATOR_CHARS) {
        return Err(FilterError::new(E::NotExcludable, body_column, body));
    }
    Ticker::parse(body).map(Term::Exclude).ok_or_else(|| {
        FilterError::new(E::BadTicker, body_column, body).suggest(ticker_suggestion(body, "-"))
    })
}

/// How a ticker is written so that it parses back as that ticker: bare where
/// a bare word is read as a ticker, else with `sym:`.
pub fn ticker_text(t: Ticker, excluded: bool) -> String {
    let s = t.as_str();
    let plain =
        Keyword::from_word(s).is_none() && (excluded || (near_keyword(s).is_none() && !is_or(s)));
    match (excluded, plain) {
        (false, true) => s.to_string(),
        (false, false) => format!("sym:{s}"),
        (true, true) => format!("-{s}"),
        (true, false) => format!("-sym:{s}"),
    }
}

/// `$AAPL` → `AAPL`; `AAPL,TSLA` → `AAPL TSLA` (each with `prefix`).
fn ticker_suggestion(word: &str, prefix: &str) -> Option<String> {
    let pieces: Option<Vec<Ticker>> = word
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| Ticker::parse(p.strip_prefix('$').unwrap_or(p)))
        .collect();
    let pieces = pieces.filter(|p| !p.is_empty())?;
    let words: Vec<String> = pieces.iter().map(|t| format!("{prefix}{t}")).collect();
    Some(words.join(" "))
}

fn side_suggestion(value: &str) -> Option<String> {
    let alias = match value.to_ascii_lowercase().as_str() {
        "a" => Some("ask"),
        "b" => Some("bid"),
        "m" => Some("mid"),
        "above" => Some("aa"),
        "below" => Some("bb"),
        _ => None,
    };
    let names = vocab::SIDE_WORDS.map(|(name, _)| name);
    alias
        .or_else(|| suggest::nearest_or_abbreviated(value, names, 1))
        .map(String::from)
}

/// `20261218`, `2026/12/18`, `2026-1-5`, `12/18/2026` → `2026-12-18`, when
/// that is a calendar date.
fn date_suggestion(value: &str) -> Option<String> {
    let groups: Vec<&str> = value
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let (y, m, d) = match groups.as_slice() {
        [all] if all.len() == 8 => (&all[..4], &all[4..6], &all[6..]),
        [y, m, d] if y.len() == 4 && m.len() <= 2 && d.len() <= 2 => (*y, *m, *d),
        [m, d, y] if y.len() == 4 && m.len() <= 2 && d.len() <= 2 => (*y, *m, *d),
        _ => return None,
    };
    let date = Date::from_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()?;
    Some(date.to_string())
}
