//! The words of the filter language and the compact values they compile to.
//!
//! Keywords, fields, operators, sides and tickers are defined here once; the
//! parser reads them, [`super::Filter`] evaluates and prints them. Every
//! category that an event has exactly one value of (right, kind, sentiment,
//! side) compiles to a bit in a `u8` mask.

use std::cmp::Ordering;
use std::fmt;

use crate::event::{FlowEvent, Kind, Sentiment, Side, Tag};
use crate::occ::Right;

/// Longest ticker the language accepts.
pub const MAX_TICKER_LEN: usize = 6;

/// An underlying ticker in a filter: 1–6 ASCII letters, digits or dots,
/// starting with a letter, stored upper-case and inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticker {
    // Zero-padded, so the derived order is the order of the strings.
    bytes: [u8; MAX_TICKER_LEN],
    len: u8,
}

impl Ticker {
    /// Reads a ticker in any case; `None` if `s` is not shaped like one.
    pub fn parse(s: &str) -> Option<Ticker> {
        let b = s.as_bytes();
        let shaped = (1..=MAX_TICKER_LEN).contains(&b.len())
            && b[0].is_ascii_alphabetic()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.');
        if !shaped {
            return None;
        }
        let mut bytes = [0u8; MAX_TICKER_LEN];
        for (slot, c) in bytes.iter_mut().zip(b) {
            *slot = c.to_ascii_uppercase();
        }
        Some(Ticker {
            bytes,
            len: b.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Orders this ticker against an event's `sym`, ignoring the case of `sym`,
    /// consistently with the derived order.
    fn cmp_sym(&self, sym: &str) -> Ordering {
        self.as_bytes()
            .iter()
            .copied()
            .cmp(sym.bytes().map(|c| c.to_ascii_uppercase()))
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `sym` is in `sorted` (sorted and deduplicated), ignoring ASCII case.
/// Allocation-free.
pub fn contains_sym(sorted: &[Ticker], sym: &str) -> bool {
    !sorted.is_empty()
        && sym.len() <= MAX_TICKER_LEN
        && sorted.binary_search_by(|t| t.cmp_sym(sym)).is_ok()
}

/// A bare word with a fixed meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    Right(Right),
    Kind(Kind),
    Tag(Tag),
    Sentiment(Sentiment),
}

/// Every keyword spelling. The first spelling of each meaning is the one
/// [`Keyword::name`] prints; `call` and `put` are accepted for `calls`, `puts`.
const KEYWORDS: [(&str, Keyword); 15] = [
    ("calls", Keyword::Right(Right::Call)),
    ("puts", Keyword::Right(Right::Put)),
    ("sweep", Keyword::Kind(Kind::Sweep)),
    ("block", Keyword::Kind(Kind::Block)),
    ("split", Keyword::Kind(Kind::Split)),
    ("single", Keyword::Kind(Kind::Single)),
    ("unusual", Keyword::Tag(Tag::Unusual)),
    ("golden", Keyword::Tag(Tag::Golden)),
    ("opening", Keyword::Tag(Tag::Opening)),
    ("repeat", Keyword::Tag(Tag::Repeat)),
    ("bull", Keyword::Sentiment(Sentiment::Bull)),
    ("bear", Keyword::Sentiment(Sentiment::Bear)),
    ("neutral", Keyword::Sentiment(Sentiment::Neutral)),
    ("call", Keyword::Right(Right::Call)),
    ("put", Keyword::Right(Right::Put)),
];

impl Keyword {
    /// Looks a word up, ignoring case.
    pub fn from_word(word: &str) -> Option<Keyword> {
        KEYWORDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|(_, k)| *k)
    }

    /// Every accepted spelling, for suggestions.
    pub fn spellings() -> impl Iterator<Item = &'static str> + Clone {
        KEYWORDS.iter().map(|(name, _)| *name)
    }

    /// The canonical spelling.
    pub fn name(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(name, _)| name)
    }
}

pub const RIGHTS: [Right; 2] = [Right::Call, Right::Put];
pub const SENTIMENTS: [Sentiment; 3] = [Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral];

pub fn right_bit(r: Right) -> u8 {
    match r {
        Right::Call => 1,
        Right::Put => 2,
    }
}

pub fn kind_bit(k: Kind) -> u8 {
    match k {
        Kind::Sweep => 1,
        Kind::Block => 2,
        Kind::Split => 4,
        Kind::Single => 8,
    }
}

pub fn sentiment_bit(s: Sentiment) -> u8 {
    match s {
        Sentiment::Bull => 1,
        Sentiment::Bear => 2,
        Sentiment::Neutral => 4,
    }
}

/// The mask a category's bits make when every value is allowed: a filter with
/// such a mask constrains nothing.
pub const ALL_RIGHTS: u8 = 0b11;
pub const ALL_KINDS: u8 = 0b1111;
pub const ALL_SENTIMENTS: u8 = 0b111;

pub const SIDES: [Side; 6] = [
    Side::AboveAsk,
    Side::Ask,
    Side::Mid,
    Side::Bid,
    Side::BelowBid,
    Side::Unknown,
];

pub fn side_bit(s: Side) -> u8 {
    match s {
        Side::AboveAsk => 1,
        Side::Ask => 2,
        Side::Mid => 4,
        Side::Bid => 8,
        Side::BelowBid => 16,
        Side::Unknown => 32,
    }
}

const ABOVE_ASK: u8 = 1;
const AT_ASK: u8 = 2;
const MID: u8 = 4;
const AT_BID: u8 = 8;
const BELOW_BID: u8 = 16;

/// `side:` values and the sides each one allows, in canonical print order.
/// Printing takes the first entry whose sides are all in a mask, so `ask`
/// must precede `aa` and `bid` precede `bb`.
pub const SIDE_WORDS: [(&str, u8); 5] = [
    ("ask", ABOVE_ASK | AT_ASK),
    ("aa", ABOVE_ASK),
    ("mid", MID),
    ("bid", AT_BID | BELOW_BID),
    ("bb", BELOW_BID),
];

/// The sides a `side:` value allows, ignoring case.
pub fn side_mask(word: &str) -> Option<u8> {
    SIDE_WORDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, m)| *m)
}

/// The shortest list of `side:` values that allows exactly `mask`.
pub fn side_words(mut mask: u8) -> impl Iterator<Item = &'static str> {
    SIDE_WORDS.iter().filter_map(move |(name, m)| {
        if mask & m == *m {
            mask &= !m;
            Some(*name)
        } else {
            None
        }
    })
}

/// `xxx:` prefixes.
pub const PREFIXES: [&str; 4] = ["side", "exp", "sym", "occ"];

/// A numeric field of a flow event that a comparison reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Premium,
    Size,
    Price,
    Strike,
    Dte,
    Score,
    Otm,
    Iv,
    VolOi,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Premium,
        Field::Size,
        Field::Price,
        Field::Strike,
        Field::Dte,
        Field::Score,
        Field::Otm,
        Field::Iv,
        Field::VolOi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Premium => "premium",
            Field::Size => "size",
            Field::Price => "price",
            Field::Strike => "strike",
            Field::Dte => "dte",
            Field::Score => "score",
            Field::Otm => "otm",
            Field::Iv => "iv",
            Field::VolOi => "voloi",
        }
    }

    /// Looks a field up, ignoring case.
    pub fn from_name(s: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
    }

    /// Whether values may be written with `%` (the field is a percentage).
    pub fn takes_percent(self) -> bool {
        matches!(self, Field::Otm | Field::Iv)
    }

    /// The event's value, in the event's units; `None` where it is unknown.
    #[inline]
    pub fn value(self, e: &FlowEvent) -> Option<f64> {
        match self {
            Field::Premium => Some(e.premium),
            Field::Size => Some(e.size as f64),
            Field::Price => Some(e.price),
            Field::Strike => Some(e.strike),
            Field::Dte => Some(f64::from(e.dte)),
            Field::Score => Some(f64::from(e.score)),
            Field::Otm => e.otm,
            Field::Iv => e.iv,
            Field::VolOi => e.vol_oi(),
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// `=` treats values this close (relative to the larger, or absolute below 1)
/// as equal, so that a price computed as a weighted average still equals the
/// price the user typed.
const EQ_TOLERANCE: f64 = 1e-9;

impl Op {
    pub const ALL: [Op; 5] = [Op::Lt, Op::Le, Op::Eq, Op::Ge, Op::Gt];

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }

    pub fn from_symbol(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.symbol() == s)
    }

    /// `value <op> threshold`; false whenever either is NaN.
    #[inline]
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Eq => {
                (value - threshold).abs()
                    <= EQ_TOLERANCE * value.abs().max(threshold.abs()).max(1.0)
            }
        }
    }
}

/// One compiled comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    pub field: Field,
    pub op: Op,
    /// The value in the units the canonical form prints (percent for `iv`).
    pub value: f64,
    /// The value in the event's units (a fraction for `iv`).
    pub threshold: f64,
}

impl Comparison {
    /// True when the field is known and the comparison holds.
    #[inline]
    pub fn matches(&self, e: &FlowEvent) -> bool {
        self.field
            .value(e)
            .is_some_and(|v| self.op.holds(v, self.threshold))
    }

    /// The order of comparisons in the canonical form.
    pub fn canonical_cmp(&self, other: &Comparison) -> Ordering {
        (self.field, self.op)
            .cmp(&(other.field, other.op))
            .then(self.value.total_cmp(&other.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_shape_and_case() {
        assert_eq!(
            Ticker::parse("brk.b").map(|t| t.to_string()),
            Some("BRK.B".into())
        );
        assert!(Ticker::parse("SPXW1").is_some());
        for bad in ["", "1AAPL", "TOOLONG", ".A", "AA-PL", "ÄPPL"] {
            assert_eq!(Ticker::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn sym_lookup_ignores_case_and_is_consistent_with_sorting() {
        let mut list: Vec<Ticker> = ["TSLA", "A", "AAPL", "AA", "BRK.B", "SPY"]
            .iter()
            .filter_map(|s| Ticker::parse(s))
            .collect();
        list.sort_unstable();
        for sym in ["tsla", "A", "aa", "AAPL", "brk.b", "SPY"] {
            assert!(contains_sym(&list, sym), "{sym}");
        }
        for sym in ["AAP", "AAPLX", "", "BRK", "QQQ", "SPYSPYSPY"] {
            assert!(!contains_sym(&list, sym), "{sym}");
        }
    }

    #[test]
    fn side_words_cover_masks_minimally() {
        let ask = side_mask("ASK").unwrap_or(0);
        let aa = side_mask("aa").unwrap_or(0);
        assert_eq!(side_words(ask | aa).collect::<Vec<_>>(), ["ask"]);
        assert_eq!(side_words(aa).collect::<Vec<_>>(), ["aa"]);
        let bb_mid = side_mask("bb").unwrap_or(0) | side_mask("mid").unwrap_or(0);
        assert_eq!(side_words(bb_mid).collect::<Vec<_>>(), ["mid", "bb"]);
        assert!(
            Side::Ask.is_ask()
                && ask & side_bit(Side::Ask) != 0
                && ask & side_bit(Side::AboveAsk) != 0
        );
    }

    #[test]
    fn equality_absorbs_rounding_only() {
        assert!(Op::Eq.holds(2.1499999999999995, 2.15));
        assert!(!Op::Eq.holds(2.149, 2.15));
        assert!(!Op::Eq.holds(f64::NAN, 2.15));
        assert!(!Op::Ge.holds(f64::NAN, 0.0));
    }

    #[test]
    fn keyword_names_are_canonical_spellings() {
        assert_eq!(Keyword::from_word("CALL").map(Keyword::name), Some("calls"));
        assert_eq!(
            Keyword::from_word("Golden").map(Keyword::name),
            Some("golden")
        );
        assert_eq!(Keyword::from_word("sym"), None);
    }
}
