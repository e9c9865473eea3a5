//! Option contracts and their OCC/OSI symbols.
//!
//! A listed US equity or index option is identified by its root, expiry, right
//! and strike. The OCC's OSI symbology writes these as 21 characters:
//! the root left-justified in 6 (`AAPL  `), `YYMMDD`, `C` or `P`, and the
//! strike × 1000 in 8 digits. Vendors also use the unpadded form
//! (`AAPL241220C00190000`) and Massive/Polygon prefixes it with `O:`.
//! [`Contract`] parses all three and formats each back exactly; the strike is
//! kept as the OSI integer (strike × 1000), never as a float. No I/O happens here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::date::Date;

/// Longest root OSI allows.
pub const MAX_ROOT_LEN: usize = 6;

/// An option root (`AAPL`, `SPXW`, `AAPL1` for an adjusted contract): 1–6
/// upper-case letters and digits, starting with a letter. Stored inline so a
/// [`Contract`] is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Root {
    bytes: [u8; MAX_ROOT_LEN],
    len: u8,
}

impl Root {
    pub fn new(s: &str) -> Result<Root, OccError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(OccError::EmptyRoot);
        }
        if b.len() > MAX_ROOT_LEN {
            return Err(OccError::RootTooLong(s.to_string()));
        }
        if !b[0].is_ascii_uppercase() {
            return Err(OccError::RootChar(s.to_string()));
        }
        if !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(OccError::RootChar(s.to_string()));
        }
        let mut bytes = [0u8; MAX_ROOT_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Root {
            bytes,
            len: b.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Call or put. Serialized as `"C"` / `"P"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Right {
    #[serde(rename = "C")]
    Call,
    #[serde(rename = "P")]
    Put,
}

impl Right {
    pub fn letter(self) -> char {
        match self {
            Right::Call => 'C',
            Right::Put => 'P',
        }
    }
}

/// One option contract.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Contract {
    pub root: Root,
    pub expiry: Date,
    pub right: Right,
    /// Strike × 1000, exactly as OSI stores it (190.5 → 190500).
    pub strike_milli: u32,
}

/// The largest strike OSI can express: 99999.999.
pub const MAX_STRIKE_MILLI: u32 = 99_999_999;

/// Why a symbol is not a valid OCC/OSI option symbol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OccError {
    #[error("option symbol is empty")]
    Empty,
    #[error(
        "option symbol {0:?} is too short: it needs a root, YYMMDD, C/P and an 8-digit strike"
    )]
    TooShort(String),
    #[error("option symbol has no root before the expiry")]
    EmptyRoot,
    #[error("option root {0:?} is longer than 6 characters")]
    RootTooLong(String),
    #[error("option root {0:?} must be upper-case letters and digits, starting with a letter")]
    RootChar(String),
    #[error("padded option symbol {0:?} must be exactly 21 characters")]
    PaddedLength(String),
    #[error("expiry {0:?} is not a valid YYMMDD date")]
    Expiry(String),
    #[error("right {0:?} must be C or P")]
    Right(char),
    #[error("strike {0:?} must be 8 digits (strike × 1000)")]
    Strike(String),
}

impl Contract {
    pub fn new(
        root: &str,
        expiry: Date,
        right: Right,
        strike_milli: u32,
    ) -> Result<Contract, OccError> {
        if strike_milli > MAX_STRIKE_MILLI {
            return Err(OccError::Strike(strike_milli.to_string()));
        }
        if !(2000..2100).contains(&expiry.year()) {
            return Err(OccError::Expiry(expiry.to_string()));
        }
        Ok(Contract {
            root: Root::new(root)?,
            expiry,
            right,
            strike_milli,
        })
    }

    /// Parses the padded OSI form, the unpadded form, or the Massive `O:` form.
    pub fn parse(symbol: &str) -> Result<Contract, OccError> {
        if symbol.is_empty() {
            return Err(OccError::Empty);
        }
        let body = symbol.strip_prefix("O:").unwrap_or(symbol);
        if !body.is_ascii() {
            return Err(OccError::RootChar(body.to_string()));
        }
        if body.len() < 16 {
            return if body.len() <= 15
                && body
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c == b'C' || c == b'P')
            {
                Err(OccError::EmptyRoot)
            } else {
                Err(OccError::TooShort(symbol.to_string()))
            };
        }
        let (root_part, tail) = body.split_at(body.len() - 15);
        let root = if root_part.contains(' ') {
            if body.len() != 21 {
                return Err(OccError::PaddedLength(symbol.to_string()));
            }
            let trimmed = root_part.trim_end_matches(' ');
            if trimmed.contains(' ') {
                return Err(OccError::RootChar(root_part.to_string()));
            }
            trimmed
        } else {
            root_part
        };
        let root = Root::new(root)?;
        let (yymmdd, rest) = tail.split_at(6);
        let expiry = parse_yymmdd(yymmdd).ok_or_else(|| OccError::Expiry(yymmdd.to_string()))?;
        let (right, strike) = rest.split_at(1);
        let right = match right {
            "C" => Right::Call,
            "P" => Right::Put,
            other => return Err(OccError::Right(other.chars().next().unwrap_or(' '))),
        };
        if !strike.bytes().all(|c| c.is_ascii_digit()) {
            return Err(OccError::Strike(strike.to_string()));
        }
        let strike_milli = strike
            .parse()
            .map_err(|_| OccError::Strike(strike.to_string()))?;
        Ok(Contract {
            root,
            expiry,
            right,
            strike_milli,
        })
    }

    /// The strike in dollars.
    pub fn strike(&self) -> f64 {
        f64::from(self.strike_milli) / 1000.0
    }

    /// The 21-character padded OSI form: `AAPL  241220C00190000`.
    pub fn osi_padded(&self) -> String {
        format!("{:<6}{}", self.root.as_str(), self.tail())
    }

    /// The unpadded form: `AAPL241220C00190000`. This is the `occ` field of a flow event.
    pub fn osi(&self) -> String {
        format!("{}{}", self.root.as_str(), self.tail())
    }

    /// The Massive/Polygon form: `O:AAPL241220C00190000`.
    pub fn massive(&self) -> String {
        format!("O:{}{}", self.root.as_str(), self.tail())
    }

    fn tail(&self) -> String {
        format!(
            "{:02}{:02}{:02}{}{:08}",
            self.expiry.year() % 100,
            self.expiry.month(),
            self.expiry.day(),
            self.right.letter(),
            self.strike_milli
        )
    }

    /// The underlying ticker this contract's root trades on. Weekly and
    /// adjusted roots map to their underlying (`SPXW` → `SPX`, `AAPL1` → `AAPL`).
    pub fn underlying(&self) -> &str {
        underlying_of_root(self.root.as_str())
    }
}

/// Maps an option root to its underlying ticker: trailing adjustment digits are
/// dropped (`AAPL1` → `AAPL`) and the index weekly roots are folded
/// (`SPXW` → `SPX`, `NDXP` → `NDX`, `RUTW` → `RUT`, `VIXW` → `VIX`).
pub fn underlying_of_root(root: &str) -> &str {
    let root = root.trim_end_matches(|c: char| c.is_ascii_digit());
    match root {
        "SPXW" => "SPX",
        "NDXP" => "NDX",
        "RUTW" => "RUT",
        "VIXW" => "VIX",
        "XSP" | "SPX" | "NDX" | "RUT" | "VIX" => root,
        other => other,
    }
}

/// The date an OSI `YYMMDD` expiry means (years 2000–2099).
pub fn parse_yymmdd(s: &str) -> Option<Date> {
    if s.len() != 6 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = s[0..2].parse().ok()?;
    let mm: u32 = s[2..4].parse().ok()?;
    let dd: u32 = s[4..6].parse().ok()?;
    Date::from_ymd(2000 + yy, mm, dd).ok()
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.osi())
    }
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Contract({})", self.osi())
    }
}

impl FromStr for Contract {
    type Err = OccError;
    fn from_str(s: &str) -> Result<Contract, OccError> {
        Contract::parse(s)
    }
}

impl Serialize for Contract {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.osi())
    }
}

impl<'de> Deserialize<'de> for Contract {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Contract, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Contract::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn aapl() -> Contract {
        let expiry = Date::from_ymd(2024, 12, 20).unwrap_or_else(|e| panic!("{e}"));
        Contract::new("AAPL", expiry, Right::Call, 190_000).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_the_three_forms() {
        for s in [
            "AAPL  241220C00190000",
            "AAPL241220C00190000",
            "O:AAPL241220C00190000",
        ] {
            assert_eq!(Contract::parse(s), Ok(aapl()), "{s}");
        }
        let c = aapl();
        assert_eq!(c.osi_padded(), "AAPL  241220C00190000");
        assert_eq!(c.osi(), "AAPL241220C00190000");
        assert_eq!(c.massive(), "O:AAPL241220C00190000");
        assert_eq!(c.strike(), 190.0);
    }

    #[test]
    fn roots_with_digits_and_index_roots() {
        let adj = Contract::parse("AAPL1 241220P00012500").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(adj.root.as_str(), "AAPL1");
        assert_eq!(adj.underlying(), "AAPL");
        assert_eq!(adj.strike_milli, 12_500);
        assert_eq!(adj.right, Right::Put);
        let spxw = Contract::parse("O:SPXW261218P05800000").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spxw.underlying(), "SPX");
        assert_eq!(spxw.osi_padded(), "SPXW  261218P05800000");
        let six = Contract::parse("GOOGL1261218C00150000").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(six.root.as_str(), "GOOGL1");
        assert_eq!(six.osi_padded().len(), 21);
    }

    #[test]
    fn rejects_say_what_is_wrong() {
        let cases: &[(&str, OccError)] = &[
            ("", OccError::Empty),
            ("241220C00190000", OccError::EmptyRoot),
            ("AAPL24122", OccError::TooShort("AAPL24122".into())),
            (
                "TOOLONGX241220C00190000",
                OccError::RootTooLong("TOOLONGX".into()),
            ),
            ("aapl241220C00190000", OccError::RootChar("aapl".into())),
            ("1AAP241220C00190000", OccError::RootChar("1AAP".into())),
            ("AAPL241320C00190000", OccError::Expiry("241320".into())),
            ("AAPL240230C00190000", OccError::Expiry("240230".into())),
            ("AAPL241220X00190000", OccError::Right('X')),
            ("AAPL241220C0019000A", OccError::Strike("0019000A".into())),
            (
                "AAPL 241220C00190000",
                OccError::PaddedLength("AAPL 241220C00190000".into()),
            ),
            ("A A   241220C00190000", OccError::RootChar("A A   ".into())),
        ];
        for (input, want) in cases {
            assert_eq!(Contract::parse(input).as_ref(), Err(want), "{input}");
        }
        let msg = Contract::parse("AAPL241220X00190000")
            .err()
            .map(|e| e.to_string());
        assert_eq!(msg.as_deref(), Some("right 'X' must be C or P"));
    }

    fn contract_strategy() -> impl Strategy<Value = Contract> {
        (
            "[A-Z][A-Z0-9]{0,5}",
            2000i32..2100,
            1u32..=12,
            1u32..=28,
            any::<bool>(),
            0u32..=MAX_STRIKE_MILLI,
        )
            .prop_map(|(root, y, m, d, call, strike)| {
                let expiry = Date::from_ymd(y, m, d).unwrap_or_else(|e| panic!("{e}"));
                let right = if call { Right::Call } else { Right::Put };
                Contract::new(&root, expiry, right, strike).unwrap_or_else(|e| panic!("{e}"))
            })
    }

    proptest! {
        #[test]
        fn every_form_round_trips(c in contract_strategy()) {
            prop_assert_eq!(Contract::parse(&c.osi_padded()), Ok(c));
            prop_assert_eq!(Contract::parse(&c.osi()), Ok(c));
            prop_assert_eq!(Contract::parse(&c.massive()), Ok(c));
            prop_assert_eq!(c.osi_padded().len(), 21);
            let json = serde_json::to_string(&c).unwrap_or_default();
            prop_assert_eq!(serde_json::from_str::<Contract>(&json).ok(), Some(c));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,30}") {
            let _ = Contract::parse(&s);
        }
    }
}
