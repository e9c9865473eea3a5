//! Black-Scholes prices and implied volatility.
//!
//! European Black-Scholes with a continuously compounded rate and no
//! dividends. [`implied_vol`] inverts it by bisection on volatility, which
//! always converges because the price rises strictly with volatility; it
//! returns `None` instead of a number whenever no volatility explains the
//! price. Time runs to 16:00 New York on the expiry date, counted in
//! milliseconds so that a same-day option has a fraction of a day left.

use crate::date::{market_instant_ms, Date};
use crate::occ::Right;

/// Milliseconds in the 365-day year that annualised volatility is quoted in.
const MS_PER_YEAR: f64 = 365.0 * 86_400_000.0;
/// Volatility search bounds (annualised): 0.0001% to 1000%.
const MIN_VOL: f64 = 1e-6;
const MAX_VOL: f64 = 10.0;
/// Stop when the volatility bracket is this narrow.
const VOL_TOLERANCE: f64 = 1e-10;
/// Bisection halves a bracket of 10 to 1e-10 in 37 steps; this bounds the work
/// whatever the inputs.
const MAX_ITERATIONS: u32 = 100;

/// Years from `ts_ms` to the 16:00 New York close on `expiry`; zero or
/// negative once the option has expired.
pub fn years_to_expiry(ts_ms: i64, expiry: Date) -> f64 {
    let close_ms = market_instant_ms(expiry, 16, 0);
    close_ms.saturating_sub(ts_ms) as f64 / MS_PER_YEAR
}

/// The standard normal cumulative distribution function, to about 1e-15
/// (Hart's algorithm 5666, as given by G. West, "Better approximations to
/// cumulative normal functions", 2005).
pub fn norm_cdf(x: f64) -> f64 {
    let z = x.abs();
    let tail = if z > 37.0 {
        0.0
    } else {
        let e = (-z * z / 2.0).exp();
        if z < 7.071_067_811_865_47 {
            let num = (((((0.035_262_496_599_891_1 * z + 0.700_383_064_443_688) * z
                + 6.373_962_203_531_65)
                * z
                + 33.912_866_078_383)
                * z
                + 112.079_291_497_871)
                * z
                + 221.213_596_169_931)
                * z
                + 220.206_867_912_376;
            let den = ((((((0.088_388_347_648_318_4 * z + 1.755_667_163_182_64) * z
                + 16.064_177_579_207)
                * z
                + 86.780_732_202_946_1)
                * z
                + 296.564_248_779_674)
                * z
                + 637.333_633_378_831)
                * z
                + 793.826_512_519_948)
                * z
                + 440.413_735_824_752;
            e * num / den
        } else {
            let mut b = z + 0.65;
            b = z + 4.0 / b;
            b = z + 3.0 / b;
            b = z + 2.0 / b;
            b = z + 1.0 / b;
            e / b / 2.506_628_274_631
        }
    };
    if x > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The Black-Scholes price of a European option per share. Inputs must be
/// positive and finite (spot, strike, years, vol); the result is then finite.
pub fn black_scholes(right: Right, spot: f64, strike: f64, years: f64, rate: f64, vol: f64) -> f64 {
    let sqrt_t = years.sqrt();
    let d1 = ((spot / strike).ln() + (rate + vol * vol / 2.0) * years) / (vol * sqrt_t);
    let d2 = d1 - vol * sqrt_t;
    let discounted_strike = strike * (-rate * years).exp();
    match right {
        Right::Call => spot * norm_cdf(d1) - discounted_strike * norm_cdf(d2),
        Right::Put => discounted_strike * norm_cdf(-d2) - spot * norm_cdf(-d1),
    }
}

/// The volatility at which Black-Scholes gives `price`, or `None` when the
/// inputs are not positive finite numbers, the option has expired, or the
/// price is outside what any volatility in 0.0001%–1000% produces (at or below
/// intrinsic value, or above the price of the underlying).
pub fn implied_vol(
    right: Right,
    price: f64,
    spot: f64,
    strike: f64,
    years: f64,
    rate: f64,
) -> Option<f64> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !(positive(price)
        && positive(spot)
        && positive(strike)
        && positive(years)
        && rate.is_finite())
    {
        return None;
    }
    let at = |vol: f64| black_scholes(right, spot, strike, years, rate, vol);
    if price <= at(MIN_VOL) || price >= at(MAX_VOL) {
        return None;
    }
    let (mut lo, mut hi) = (MIN_VOL, MAX_VOL);
    for _ in 0..MAX_ITERATIONS {
        if hi - lo <= VOL_TOLERANCE {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if at(mid) < price {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_reference_values() {
        let cases = [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_542_9),
            (-1.959_963_984_540_054, 0.025),
            (3.0, 0.998_650_101_968_369_9),
            (-8.0, 6.220_960_574_271_785e-16),
        ];
        for (x, want) in cases {
            let got = norm_cdf(x);
            assert!(
                (got - want).abs() <= 1e-14 + want * 1e-12,
                "N({x}) = {got}, want {want}"
            );
        }
        assert_eq!(norm_cdf(-40.0), 0.0);
        assert_eq!(norm_cdf(40.0), 1.0);
    }

    #[test]
    fn black_scholes_matches_a_textbook_value() {
        // Hull: S=42, K=40, r=10%, sigma=20%, T=0.5 → call 4.76, put 0.81.
        let call = black_scholes(Right::Call, 42.0, 40.0, 0.5, 0.1, 0.2);
        let put = black_scholes(Right::Put, 42.0, 40.0, 0.5, 0.1, 0.2);
        assert!((call - 4.7594).abs() < 1e-4, "{call}");
        assert!((put - 0.8086).abs() < 1e-4, "{put}");
    }

    #[test]
    fn recovers_a_known_vol() {
        for right in [Right::Call, Right::Put] {
            for (spot, strike, years, vol) in [
                (100.0, 100.0, 0.25, 0.30),
                (185.2, 190.0, 3.0 / 365.0, 0.31),
                (5800.0, 5750.0, 2.0 / (365.0 * 24.0), 0.12),
                (20.0, 35.0, 1.5, 1.8),
                (450.0, 440.0, 0.08, 0.08),
            ] {
                let price = black_scholes(right, spot, strike, years, 0.04, vol);
                let got = implied_vol(right, price, spot, strike, years, 0.04);
                let err = got.map(|g| (g - vol).abs());
                assert!(
                    err.is_some_and(|e| e < 1e-4),
                    "{right:?} S={spot} K={strike} T={years}: {got:?} vs {vol}"
                );
            }
        }
    }

    #[test]
    fn no_vol_explains_a_price_below_intrinsic_or_above_spot() {
        // Call intrinsic 10: a price of 9.5 is below it.
        assert_eq!(implied_vol(Right::Call, 9.5, 110.0, 100.0, 0.1, 0.04), None);
        assert_eq!(implied_vol(Right::Put, 9.5, 90.0, 100.0, 0.1, 0.04), None);
        assert_eq!(
            implied_vol(Right::Call, 120.0, 110.0, 100.0, 0.1, 0.04),
            None
        );
        assert_eq!(
            implied_vol(Right::Call, 1.0, 100.0, 100.0, 0.0, 0.04),
            None,
            "expired"
        );
        assert_eq!(
            implied_vol(Right::Call, 1.0, f64::NAN, 100.0, 0.1, 0.04),
            None
        );
        assert_eq!(implied_vol(Right::Call, 0.0, 100.0, 100.0, 0.1, 0.04), None);
    }

    #[test]
    fn time_runs_to_the_close_on_expiry_day() {
        let expiry = Date::from_ymd(2026, 3, 20).unwrap_or_else(|e| panic!("{e}"));
        let morning = market_instant_ms(expiry, 10, 0);
        let hours = years_to_expiry(morning, expiry) * 365.0 * 24.0;
        assert!((hours - 6.0).abs() < 1e-9, "{hours}");
        assert!(years_to_expiry(market_instant_ms(expiry, 16, 30), expiry) < 0.0);
    }
}
