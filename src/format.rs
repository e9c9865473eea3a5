//! Text forms of flow-event fields, shared by the tape, the detail popup,
//! `flowtape tail --format table` and the CSV export.
//!
//! Every function is pure and total: missing values (`None`, non-finite
//! numbers) print as `-`, never as `NaN` or a panic.

use flowtape_core::date;

/// What a missing value prints as.
pub const MISSING: &str = "-";

/// `HH:MM:SS.mmm` in New York time, the market's clock.
pub fn time_ms(ts_ms: i64) -> String {
    let tod = date::market_time_of_day_ms(ts_ms);
    let (h, rest) = (tod / 3_600_000, tod % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// `HH:MM:SS` in New York time.
pub fn time_s(ts_ms: i64) -> String {
    let mut t = time_ms(ts_ms);
    t.truncate(8);
    t
}

/// Dollars in the tape's compact style: `$950`, `$12k`, `$258k`, `$1.2M`, `$3.4B`.
pub fn money(usd: f64) -> String {
    if !usd.is_finite() {
        return MISSING.to_string();
    }
    let sign = if usd < 0.0 { "-" } else { "" };
    let a = usd.abs();
    // Round first, so that 999_950 prints as $1.0M rather than $1000k.
    if a < 1_000.0 {
        format!("{sign}${a:.0}")
    } else if (a / 1e3).round() < 1_000.0 {
        let k = a / 1e3;
        if k < 10.0 {
            format!("{sign}${k:.1}k")
        } else {
            format!("{sign}${k:.0}k")
        }
    } else if (a / 1e6 * 10.0).round() / 10.0 < 1_000.0 {
        format!("{sign}${:.1}M", a / 1e6)
    } else {
        format!("{sign}${:.1}B", a / 1e9)
    }
}

/// A strike without trailing zeros: `190`, `187.5`, `0.125`.
pub fn strike(v: f64) -> String {
    if !v.is_finite() {
        return MISSING.to_string();
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A price with two decimals (three below $0.10, where pennies matter).
pub fn price(v: f64) -> String {
    if !v.is_finite() {
        MISSING.to_string()
    } else if v.abs() < 0.1 && v != 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2}")
    }
}

/// An optional price.
pub fn opt_price(v: Option<f64>) -> String {
    v.map_or_else(|| MISSING.to_string(), price)
}

/// An integer with thousands separators: `12,400`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A signed percentage with one decimal: `+2.6%`, `-11.0%`.
pub fn signed_pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:+.1}%"),
        _ => MISSING.to_string(),
    }
}

/// Implied volatility (0.31 → `31%`).
pub fn iv(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.0}%", v * 100.0),
        _ => MISSING.to_string(),
    }
}

/// A volume/open-interest ratio: `3.0x`, `12x`.
pub fn ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v < 10.0 => format!("{v:.1}x"),
        Some(v) if v.is_finite() => format!("{v:.0}x"),
        _ => MISSING.to_string(),
    }
}

/// `2024-12-20` → `12/20/24`; anything else is shown as given.
pub fn expiry_short(expiry: &str) -> String {
    let b = expiry.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        format!("{}/{}/{}", &expiry[5..7], &expiry[8..10], &expiry[2..4])
    } else {
        expiry.to_string()
    }
}

/// A duration in whole seconds, compact: `42s`, `3m05s`, `2h10m`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::date::{market_instant_ms, Date};

    #[test]
    fn money_tiers_read_like_the_tape() {
        let cases = [
            (0.0, "$0"),
            (950.0, "$950"),
            (1_500.0, "$1.5k"),
            (12_400.0, "$12k"),
            (258_000.0, "$258k"),
            (999_950.0, "$1.0M"),
            (1_234_567.0, "$1.2M"),
            (-2_500_000.0, "-$2.5M"),
            (3.4e9, "$3.4B"),
            (f64::NAN, "-"),
        ];
        for (v, want) in cases {
            assert_eq!(money(v), want, "{v}");
        }
    }

    #[test]
    fn time_is_new_york() {
        let d = Date::from_ymd(2024, 12, 20).unwrap_or_else(|e| panic!("{e}"));
        let t = market_instant_ms(d, 9, 30) + 5_123;
        assert_eq!(time_ms(t), "09:30:05.123");
        assert_eq!(time_s(t), "09:30:05");
    }

    #[test]
    fn numbers() {
        assert_eq!(strike(190.0), "190");
        assert_eq!(strike(187.5), "187.5");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(signed_pct(Some(2.594)), "+2.6%");
        assert_eq!(signed_pct(None), "-");
        assert_eq!(iv(Some(0.314)), "31%");
        assert_eq!(ratio(Some(3.0)), "3.0x");
        assert_eq!(ratio(Some(42.4)), "42x");
        assert_eq!(price(0.05), "0.050");
        assert_eq!(expiry_short("2024-12-20"), "12/20/24");
        assert_eq!(expiry_short("garbage"), "garbage");
        assert_eq!(age(185_000), "3m05s");
    }
}
