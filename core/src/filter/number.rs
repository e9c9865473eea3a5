//! Numbers in comparisons: `250000`, `250k`, `1.5m`, `-2.5`, `35%`, and the
//! canonical text they print as.
//!
//! Suffixes scale the decimal text before it is converted (`1.1k` is read as
//! `11e2`), so a value means exactly the same double however it is written:
//! `250k`, `250000` and `250000.0` compare identically.

use super::vocab::Field;

/// Why a comparison value did not parse.
#[derive(Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number; the suggestion is the same text without `$ , _` if that
    /// is one.
    Bad { suggestion: Option<String> },
    /// A number followed by letters (or `%`) that are not a valid suffix here.
    Suffix { suggestion: Option<String> },
}

/// `iv` values above this are read as percent; at or below, as a fraction.
pub const IV_PERCENT_ABOVE: f64 = 3.0;

/// A parsed comparison value: `value` in the units the canonical form prints
/// (percent for `iv`), `threshold` in the event's units (a fraction for `iv`).
pub fn parse(text: &str, field: Field) -> Result<(f64, f64), NumberError> {
    let dec = Decimal::split(text).ok_or_else(|| NumberError::Bad {
        suggestion: cleaned(text, field),
    })?;
    let suffix = dec.rest.to_ascii_lowercase();
    let (shift, percent) = match suffix.as_str() {
        "" => (0, false),
        "k" => (3, false),
        "m" => (6, false),
        "%" if field.takes_percent() => (0, true),
        "mm" => {
            return Err(NumberError::Suffix {
                suggestion: Some(format!("{}m", &text[..text.len() - dec.rest.len()])),
            })
        }
        s if s.chars().all(|c| c.is_ascii_alphabetic() || c == '%') => {
            return Err(NumberError::Suffix { suggestion: None })
        }
        _ => {
            return Err(NumberError::Bad {
                suggestion: cleaned(text, field),
            })
        }
    };
    let typed = dec.scaled(shift);
    let value = if field == Field::Iv && !percent && typed <= IV_PERCENT_ABOVE {
        dec.scaled(shift + 2)
    } else {
        typed
    };
    if !value.is_finite() {
        return Err(NumberError::Bad { suggestion: None });
    }
    // -0 and 0 mean the same; make them print the same.
    let value = value + 0.0;
    let threshold = if field == Field::Iv {
        value / 100.0
    } else {
        value
    };
    Ok((value, threshold))
}

/// The canonical text of a value as [`parse`] returned it; parsing the text
/// for the same field gives back exactly `value`.
pub fn format(field: Field, value: f64) -> String {
    match field {
        Field::Iv => format!("{value}%"),
        Field::Premium | Field::Size => compact(value),
        _ => value.to_string(),
    }
}

/// `250000` → `250k`, `2500000` → `2.5m`, `1500` → `1.5k`: integers of a
/// thousand or more with at most two decimals in thousands or millions.
fn compact(v: f64) -> String {
    // An integer below 1e15 divided by 1e3 or 1e6 rounds to the double nearest
    // a decimal of at most 15 significant digits, which prints as exactly that
    // decimal; parsing it back with the suffix gives the integer again.
    const EXACT: f64 = 1e15;
    if v.fract() == 0.0 && v.abs() < EXACT {
        if v.abs() >= 1e6 && v % 1e4 == 0.0 {
            return format!("{}m", v / 1e6);
        }
        if v.abs() >= 1e3 && v % 10.0 == 0.0 {
            return format!("{}k", v / 1e3);
        }
    }
    v.to_string()
}

/// `text` without currency signs and digit separators, if that parses.
fn cleaned(text: &str, field: Field) -> Option<String> {
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, '$' | ',' | '_'))
        .collect();
    (clean.len() != text.len() && parse(&clean, field).is_ok()).then_some(clean)
}

/// A decimal number as written: `[+-]digits[.digits]` and whatever follows.
struct Decimal<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
    rest: &'a str,
}

impl<'a> Decimal<'a> {
    fn split(text: &'a str) -> Option<Decimal<'a>> {
        let (negative, body) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_end = digits_end(body);
        let (int, after_int) = body.split_at(int_end);
        let (frac, rest) = match after_int.strip_prefix('.') {
            Some(after_dot) => after_dot.split_at(digits_end(after_dot)),
            None => ("", after_int),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        Some(Decimal {
            negative,
            int,
            frac,
            rest,
        })
    }

    /// The number × 10^`shift`, correctly rounded once.
    fn scaled(&self, shift: i64) -> f64 {
        let exponent = shift - self.frac.len() as i64;
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{}{}e{exponent}", self.int, self.frac)
            .parse()
            .unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, field: Field) -> Option<f64> {
        parse(text, field).ok().map(|(v, _)| v)
    }

    #[test]
    fn suffixes_scale_exactly() {
        assert_eq!(value("250k", Field::Premium), Some(250_000.0));
        assert_eq!(
            value("250K", Field::Premium),
            value("250000", Field::Premium)
        );
        assert_eq!(value("1.1k", Field::Size), Some(1100.0));
        assert_eq!(value("0.1m", Field::Premium), Some(100_000.0));
        assert_eq!(value("2M", Field::Premium), Some(2_000_000.0));
        assert_eq!(value(".5", Field::Price), Some(0.5));
        assert_eq!(value("-2.5", Field::Otm), Some(-2.5));
        assert_eq!(value("+3", Field::Dte), Some(3.0));
        assert_eq!(
            value("-0", Field::Otm).map(f64::is_sign_positive),
            Some(true)
        );
    }

    #[test]
    fn iv_reads_small_values_as_fractions_and_large_as_percent() {
        assert_eq!(parse("0.35", Field::Iv), Ok((35.0, 0.35)));
        assert_eq!(parse("35", Field::Iv), Ok((35.0, 0.35)));
        assert_eq!(parse("35%", Field::Iv), Ok((35.0, 0.35)));
        assert_eq!(parse("3", Field::Iv), Ok((300.0, 3.0)));
        assert_eq!(parse("3.5", Field::Iv), Ok((3.5, 0.035)));
        assert_eq!(parse("2%", Field::Iv), Ok((2.0, 0.02)));
        assert_eq!(parse("5%", Field::Otm), Ok((5.0, 5.0)));
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        assert_eq!(
            parse("abc", Field::Premium),
            Err(NumberError::Bad { suggestion: None })
        );
        assert_eq!(
            parse("-", Field::Premium),
            Err(NumberError::Bad { suggestion: None })
        );
        assert_eq!(
            parse("1.2.3", Field::Premium),
            Err(NumberError::Bad { suggestion: None })
        );
        assert_eq!(
            parse("1e5", Field::Premium),
            Err(NumberError::Bad { suggestion: None })
        );
        assert_eq!(
            parse("inf", Field::Premium),
            Err(NumberError::Bad { suggestion: None })
        );
        assert_eq!(
            parse("5x", Field::Premium),
            Err(NumberError::Suffix { suggestion: None })
        );
        assert_eq!(
            parse("5%", Field::Premium),
            Err(NumberError::Suffix { suggestion: None })
        );
        assert!(parse(&"9".repeat(400), Field::Premium).is_err());
    }

    #[test]
    fn suggests_the_number_it_can_see() {
        let bad = |s: Option<&str>| {
            Err(NumberError::Bad {
                suggestion: s.map(String::from),
            })
        };
        assert_eq!(parse("$250k", Field::Premium), bad(Some("250k")));
        assert_eq!(parse("1,000,000", Field::Premium), bad(Some("1000000")));
        assert_eq!(
            parse("2mm", Field::Premium),
            Err(NumberError::Suffix {
                suggestion: Some("2m".into())
            })
        );
    }

    #[test]
    fn canonical_text_parses_back_exactly() {
        let cases = [
            (Field::Premium, "250000", "250k"),
            (Field::Premium, "2500000", "2.5m"),
            (Field::Premium, "3000000", "3m"),
            (Field::Premium, "-2100000", "-2.1m"),
            (Field::Premium, "999990", "999.99k"),
            (Field::Premium, "1234567", "1234567"),
            (Field::Premium, "1234.5", "1234.5"),
            (Field::Premium, "990", "990"),
            (Field::Size, "1500", "1.5k"),
            (Field::Strike, "1000", "1000"),
            (Field::Iv, "0.35", "35%"),
            (Field::Iv, "-5", "-500%"),
            (Field::Otm, "-0.0000001", "-0.0000001"),
        ];
        for (field, input, text) in cases {
            let v = value(input, field).unwrap_or(f64::NAN);
            assert_eq!(format(field, v), text, "{input}");
            assert_eq!(value(text, field), Some(v), "{text}");
        }
    }
}
