//! Fair values and NBBO quotes for simulated options.
//!
//! The fair value is Black-Scholes ([`flowtape_core::detect::iv`]; a flat 4% rate)
//! at the underlying's base implied volatility bent by a skewed smile: puts
//! below spot are richer, as in equity markets. The quote straddles the fair
//! value with a spread that is a fraction of the value (tighter for popular
//! names), at least one tick, on the name's tick grid. Prices are kept in
//! whole cents so that they print exactly.

use flowtape_core::detect::iv::black_scholes;
use flowtape_core::occ::Right;

use super::universe::TickRule;

/// Risk-free rate used for fair values.
const RATE: f64 = 0.04;
/// Time to expiry never counts as less than ten minutes, so an expiring
/// option keeps a little time value instead of collapsing to intrinsic.
const MIN_YEARS: f64 = 10.0 / (365.0 * 24.0 * 60.0);
/// The highest bid the simulator quotes, in cents (USD 1,000,000).
const MAX_CENTS: f64 = 100_000_000.0;

/// A two-sided quote in cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub bid: u32,
    pub ask: u32,
    pub tick: u32,
}

impl Quote {
    /// The quote for an option worth `fair` dollars: bid at least one tick,
    /// ask at least one tick above the bid.
    pub fn around(fair: f64, ticks: TickRule, spread_frac: f64) -> Quote {
        let tick = ticks.tick_cents(fair);
        let tick_f = f64::from(tick);
        let fair_c = (fair * 100.0).clamp(0.0, MAX_CENTS);
        let spread_ticks = (fair_c * spread_frac / tick_f).round().max(1.0);
        let bid_ticks = ((fair_c - spread_ticks * tick_f / 2.0) / tick_f)
            .round()
            .max(1.0);
        let bid = bid_ticks as u32 * tick;
        Quote {
            bid,
            ask: bid + spread_ticks as u32 * tick,
            tick,
        }
    }

    /// The midpoint, rounded down to a cent.
    pub fn mid(&self) -> u32 {
        (self.bid + self.ask) / 2
    }
}

/// Implied volatility at `strike`: the base level with a downward-sloping,
/// slightly convex smile in standardised moneyness.
pub fn smile_vol(base: f64, spot: f64, strike: f64, years: f64) -> f64 {
    let k = ((strike / spot).ln() / years.sqrt().max(0.1)).clamp(-3.0, 3.0);
    (base * (1.0 - 0.12 * k + 0.05 * k * k)).clamp(0.05, 4.0)
}

/// Black-Scholes value per share (the pipeline's own pricer), never negative.
pub fn fair_value(right: Right, spot: f64, strike: f64, years: f64, vol: f64) -> f64 {
    black_scholes(right, spot, strike, years.max(MIN_YEARS), RATE, vol).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_scholes_matches_a_textbook_value_and_parity() {
        // S=100, K=100, T=1, r=4%, vol=20%: call ≈ 9.925.
        let call = fair_value(Right::Call, 100.0, 100.0, 1.0, 0.2);
        let put = fair_value(Right::Put, 100.0, 100.0, 1.0, 0.2);
        assert!((call - 9.925).abs() < 0.01, "{call}");
        assert!((call - put - (100.0 - 100.0 * (-0.04f64).exp())).abs() < 1e-6);
        assert!(fair_value(Right::Put, 100.0, 50.0, 0.0, 0.2) >= 0.0);
    }

    #[test]
    fn quotes_sit_on_ticks_around_the_value() {
        let q = Quote::around(1.503, TickRule::AllPenny, 0.006);
        assert_eq!((q.bid, q.ask), (150, 151));
        let q = Quote::around(8.0, TickRule::Standard, 0.04);
        assert_eq!(q.tick, 10);
        assert!(q.bid % 10 == 0 && q.ask % 10 == 0 && q.bid < 800 && q.ask > 800);
        let q = Quote::around(0.0, TickRule::Standard, 0.04);
        assert_eq!(
            (q.bid, q.ask),
            (5, 10),
            "worthless options still quote a tick"
        );
        assert!(smile_vol(0.3, 100.0, 80.0, 0.25) > smile_vol(0.3, 100.0, 120.0, 0.25));
    }
}
