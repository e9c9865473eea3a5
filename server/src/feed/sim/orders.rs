//! Order shapes: how one simulated order appears on the tape.
//!
//! - **Single**: one print, at the ask or bid (occasionally through it) or at
//!   the mid; sizes are Pareto (mostly 1–10 contracts, rarely 1,000+).
//! - **Sweep**: an intermarket sweep (ISO) split across 2–8 distinct venues
//!   within about a millisecond or two, same contract and direction; a buy
//!   takes the ask and walks it up a tick at a time, a sell walks the bid
//!   down. Each leg's quote shows the level it took.
//! - **Split**: 2–5 ISO prints on a single venue within a millisecond.
//! - **Block**: one large print, often at the mid, worth at least
//!   [`BLOCK_MIN_PREMIUM`] dollars (for any option priced 3 cents or more;
//!   sizes stop at [`BLOCK_MAX_SIZE`]), as a floor trade, cross or auction.
//! - **Spread**: a two-leg vertical (multi-leg condition), one leg bought and
//!   one sold near the mid.
//!
//! Single-venue products (SPX, NDX, ...) cannot sweep across venues: their
//! sweeps print on the home venue, as splits do.

use crate::feed::rng::Rng;
use flowtape_core::conditions::{AUTO_EXECUTION, INTERMARKET_SWEEP, MULTI_LEG_AUTO};
use flowtape_core::event::Print;
use flowtape_core::occ::Contract;

use super::quote::Quote;
use super::venues;

/// Massive/Polygon condition id: single-leg auction, not ISO.
pub const SINGLE_LEG_AUCTION_NON_ISO: u16 = 227;
/// Massive/Polygon condition id: single-leg cross, not ISO.
pub const SINGLE_LEG_CROSS_NON_ISO: u16 = 229;
/// Massive/Polygon condition id: single-leg floor trade.
pub const SINGLE_LEG_FLOOR_TRADE: u16 = 231;

/// The least premium a block order carries, USD.
pub const BLOCK_MIN_PREMIUM: f64 = 300_000.0;
/// The largest block, contracts.
pub const BLOCK_MAX_SIZE: u32 = 100_000;

/// The kinds of order the simulator places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    Single,
    Sweep,
    Split,
    Block,
    Spread,
}

/// How often a shape occurs and what it prints.
struct ShapeMix {
    shape: Shape,
    /// Share of fresh orders.
    share: f64,
    /// Mean prints per order: legs are uniform in `legs`.
    legs: (u64, u64),
    /// Chance that an order of this shape is the first of a run of repeated
    /// hits on the same contract.
    repeat_chance: f64,
}

const MIX: [ShapeMix; 5] = [
    ShapeMix {
        shape: Shape::Single,
        share: 0.895,
        legs: (1, 1),
        repeat_chance: 0.0,
    },
    ShapeMix {
        shape: Shape::Sweep,
        share: 0.025,
        legs: (2, 8),
        repeat_chance: 0.10,
    },
    ShapeMix {
        shape: Shape::Split,
        share: 0.015,
        legs: (2, 5),
        repeat_chance: 0.05,
    },
    ShapeMix {
        shape: Shape::Block,
        share: 0.005,
        legs: (1, 1),
        repeat_chance: 0.15,
    },
    ShapeMix {
        shape: Shape::Spread,
        share: 0.06,
        legs: (2, 2),
        repeat_chance: 0.0,
    },
];

/// Repeated hits on one contract come in runs of this many further orders.
pub const REPEAT_HITS: (u64, u64) = (2, 6);
/// Mean gap between repeated hits, seconds.
pub const REPEAT_MEAN_GAP_S: f64 = 40.0;

impl Shape {
    /// A fresh order's shape, by the mix.
    pub fn pick(rng: &mut Rng) -> Shape {
        let mut x = rng.unit();
        for m in &MIX {
            if x < m.share {
                return m.shape;
            }
            x -= m.share;
        }
        Shape::Single
    }

    fn mix(self) -> &'static ShapeMix {
        let i = match self {
            Shape::Single => 0,
            Shape::Sweep => 1,
            Shape::Split => 2,
            Shape::Block => 3,
            Shape::Spread => 4,
        };
        &MIX[i]
    }

    /// Chance that this order starts a run of repeated hits.
    pub fn repeat_chance(self) -> f64 {
        self.mix().repeat_chance
    }

    /// The expected number of prints per fresh order, counting the repeated
    /// hits it may set off: the order rate is the print rate divided by this.
    pub fn mean_prints_per_order() -> f64 {
        let mean_hits = (REPEAT_HITS.0 + REPEAT_HITS.1) as f64 / 2.0;
        MIX.iter()
            .map(|m| {
                let prints = (m.legs.0 + m.legs.1) as f64 / 2.0;
                m.share * prints * (1.0 + m.repeat_chance * mean_hits)
            })
            .sum()
    }

    fn legs(self, rng: &mut Rng) -> usize {
        let (lo, hi) = self.mix().legs;
        rng.range(lo, hi) as usize
    }
}

/// One contract's market at the moment of an order.
#[derive(Clone, Copy, Debug)]
pub struct Market {
    pub contract: Contract,
    pub quote: Quote,
    /// Underlying spot, rounded to cents.
    pub spot: f64,
    pub oi: u64,
    pub home_venue: Option<u16>,
}

impl Market {
    fn venue(&self, rng: &mut Rng) -> u16 {
        self.home_venue.unwrap_or_else(|| venues::pick(rng))
    }

    fn print(&self, ts_ns: i64, leg: Leg) -> Print {
        Print {
            contract: self.contract,
            price: dollars(leg.price),
            size: leg.size,
            exchange: leg.exchange,
            conditions: vec![leg.condition],
            ts_ns,
            seq: 0,
            bid: Some(dollars(leg.bid)),
            ask: Some(dollars(leg.ask)),
            spot: Some(self.spot),
            oi: Some(self.oi),
        }
    }
}

/// One print of an order, prices in cents.
#[derive(Clone, Copy, Debug)]
struct Leg {
    price: u32,
    size: u32,
    exchange: u16,
    condition: u16,
    bid: u32,
    ask: u32,
}

fn dollars(cents: u32) -> f64 {
    f64::from(cents) / 100.0
}

/// Appends the prints of a one-contract order to `out`. `buy` is the
/// initiator's direction; the first print is at `ts_ns`. A spread needs its
/// second contract ([`spread`]); given one contract it prints as a single.
pub fn emit(shape: Shape, buy: bool, m: &Market, ts_ns: i64, rng: &mut Rng, out: &mut Vec<Print>) {
    match shape {
        Shape::Single | Shape::Spread => single(buy, m, ts_ns, rng, out),
        Shape::Sweep | Shape::Split => iso(shape, buy, m, ts_ns, rng, out),
        Shape::Block => block(buy, m, ts_ns, rng, out),
    }
}

fn single(buy: bool, m: &Market, ts_ns: i64, rng: &mut Rng, out: &mut Vec<Print>) {
    let q = m.quote;
    let x = rng.unit();
    let price = if x < 0.21 && q.ask - q.bid >= 2 {
        q.mid()
    } else if x > 0.93 {
        through(buy, q)
    } else {
        at_touch(buy, q)
    };
    let condition = if rng.chance(0.08) {
        SINGLE_LEG_AUCTION_NON_ISO
    } else {
        AUTO_EXECUTION
    };
    let size = contracts(rng.pareto(1.0, 1.15), 20_000);
    let leg = Leg {
        price,
        size,
        exchange: m.venue(rng),
        condition,
        bid: q.bid,
        ask: q.ask,
    };
    out.push(m.print(ts_ns, leg));
}

/// A sweep across venues, or a split on one venue.
fn iso(shape: Shape, buy: bool, m: &Market, ts_ns: i64, rng: &mut Rng, out: &mut Vec<Print>) {
    let q = m.quote;
    let legs = shape.legs(rng);
    let exchanges = match (shape, m.home_venue) {
        (Shape::Sweep, None) => venues::pick_distinct(rng, legs),
        (_, home) => vec![home.unwrap_or_else(|| venues::pick(rng)); legs],
    };
    let (min_size, max_gap_ns, walk_chance) = match shape {
        Shape::Sweep => (10.0, 400_000.0, 0.4),
        _ => (5.0, 250_000.0, 0.2),
    };
    let total = contracts(rng.pareto(min_size, 1.1), 25_000).max(legs as u32);
    let sizes = split_size(total, legs, rng);
    let mut price = at_touch(buy, q);
    let mut ts = ts_ns;
    for (i, (exchange, size)) in exchanges.into_iter().zip(sizes).enumerate() {
        if i > 0 {
            ts += (rng.unit() * max_gap_ns) as i64;
            if rng.chance(walk_chance) {
                price = match (buy, price > q.tick) {
                    (true, _) => price + q.tick,
                    (false, true) => price - q.tick,
                    (false, false) => price,
                };
            }
        }
        let (bid, ask) = if buy { (q.bid, price) } else { (price, q.ask) };
        let leg = Leg {
            price,
            size,
            exchange,
            condition: INTERMARKET_SWEEP,
            bid,
            ask,
        };
        out.push(m.print(ts, leg));
    }
}

fn block(buy: bool, m: &Market, ts_ns: i64, rng: &mut Rng, out: &mut Vec<Print>) {
    let q = m.quote;
    let price = if rng.chance(0.5) {
        q.mid()
    } else {
        at_touch(buy, q)
    };
    let premium = BLOCK_MIN_PREMIUM * rng.pareto(1.0, 1.6).min(100.0);
    // premium = price in dollars × size × 100 = price in cents × size.
    let size = (premium / f64::from(price.max(1)))
        .ceil()
        .clamp(100.0, f64::from(BLOCK_MAX_SIZE)) as u32;
    let condition = match rng.below(10) {
        0..=3 => SINGLE_LEG_FLOOR_TRADE,
        4..=6 => SINGLE_LEG_CROSS_NON_ISO,
        _ => SINGLE_LEG_AUCTION_NON_ISO,
    };
    let leg = Leg {
        price,
        size,
        exchange: m.venue(rng),
        condition,
        bid: q.bid,
        ask: q.ask,
    };
    out.push(m.print(ts_ns, leg));
}

/// A vertical spread: `bought` is paid up from the mid, `sold` sold down from it.
pub fn spread(bought: &Market, sold: &Market, ts_ns: i64, rng: &mut Rng, out: &mut Vec<Print>) {
    let size = contracts(rng.pareto(1.0, 1.3), 5_000);
    let exchange = bought.venue(rng);
    for (m, buy) in [(bought, true), (sold, false)] {
        let q = m.quote;
        let mid = q.mid();
        let price = if buy {
            mid + (q.ask - mid) / 2
        } else {
            mid - (mid - q.bid) / 2
        };
        let leg = Leg {
            price,
            size,
            exchange,
            condition: MULTI_LEG_AUTO,
            bid: q.bid,
            ask: q.ask,
        };
        out.push(m.print(ts_ns, leg));
    }
}

/// At the ask for a buyer, at the bid for a seller.
fn at_touch(buy: bool, q: Quote) -> u32 {
    if buy {
        q.ask
    } else {
        q.bid
    }
}

/// One or two ticks through the touch: above the ask, or below the bid while
/// that stays positive.
fn through(buy: bool, q: Quote) -> u32 {
    if buy {
        q.ask + q.tick
    } else {
        q.bid
            .checked_sub(q.tick)
            .filter(|p| *p > 0)
            .unwrap_or(q.bid)
    }
}

/// A size in contracts from a continuous draw: at least 1, at most `max`.
fn contracts(x: f64, max: u32) -> u32 {
    x.floor().clamp(1.0, f64::from(max)) as u32
}

/// Splits `total` contracts (at least `legs`) over `legs` legs at random, each at least 1.
fn split_size(total: u32, legs: usize, rng: &mut Rng) -> Vec<u32> {
    let weights: Vec<f64> = (0..legs).map(|_| 0.2 + rng.unit()).collect();
    let sum: f64 = weights.iter().sum();
    let spare = f64::from(total - legs as u32);
    let mut sizes: Vec<u32> = weights
        .iter()
        .map(|w| 1 + (spare * w / sum).floor() as u32)
        .collect();
    let assigned: u32 = sizes.iter().sum();
    sizes[0] += total - assigned;
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::date::Date;
    use flowtape_core::occ::Right;

    fn market(bid: u32, ask: u32, tick: u32, home_venue: Option<u16>) -> Market {
        let expiry = Date::from_ymd(2026, 5, 15).unwrap_or_else(|e| panic!("{e}"));
        Market {
            contract: Contract::new("TSLA", expiry, Right::Call, 450_000)
                .unwrap_or_else(|e| panic!("{e}")),
            quote: Quote { bid, ask, tick },
            spot: 431.27,
            oi: 5_000,
            home_venue,
        }
    }

    #[test]
    fn the_mix_is_a_distribution() {
        let total: f64 = MIX.iter().map(|m| m.share).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let m = Shape::mean_prints_per_order();
        assert!(m > 1.2 && m < 1.5, "{m}");
    }

    #[test]
    fn buy_sweeps_walk_up_across_distinct_venues() {
        let mut rng = Rng::new(4);
        for _ in 0..200 {
            let mut out = Vec::new();
            emit(
                Shape::Sweep,
                true,
                &market(250, 255, 5, None),
                1_000,
                &mut rng,
                &mut out,
            );
            assert!((2..=8).contains(&out.len()));
            let mut venues: Vec<u16> = out.iter().map(|p| p.exchange).collect();
            venues.sort_unstable();
            venues.dedup();
            assert_eq!(venues.len(), out.len());
            assert!(out
                .windows(2)
                .all(|w| w[1].price >= w[0].price && w[1].ts_ns >= w[0].ts_ns));
            assert!(out
                .iter()
                .all(|p| p.conditions == [INTERMARKET_SWEEP] && p.price >= 2.55));
            assert!(out.last().is_some_and(|p| p.ts_ns - 1_000 <= 3_000_000));
        }
    }

    #[test]
    fn index_sweeps_stay_on_the_home_venue_and_sells_stay_positive() {
        let mut rng = Rng::new(5);
        let mut out = Vec::new();
        for _ in 0..100 {
            emit(
                Shape::Sweep,
                false,
                &market(5, 10, 5, Some(302)),
                0,
                &mut rng,
                &mut out,
            );
        }
        assert!(out.iter().all(|p| p.exchange == 302 && p.price > 0.0));
    }

    #[test]
    fn blocks_are_big_and_sizes_split_exactly() {
        let mut rng = Rng::new(6);
        for _ in 0..100 {
            let mut out = Vec::new();
            emit(
                Shape::Block,
                true,
                &market(1240, 1250, 5, None),
                0,
                &mut rng,
                &mut out,
            );
            assert!(
                out[0].premium() >= BLOCK_MIN_PREMIUM,
                "{}",
                out[0].premium()
            );
        }
        for total in [3, 10, 977] {
            let sizes = split_size(total, 3, &mut rng);
            assert_eq!(sizes.iter().sum::<u32>(), total);
            assert!(sizes.iter().all(|s| *s >= 1));
        }
    }
}
