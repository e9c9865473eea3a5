//! [`SimMarket`]: a deterministic synthetic US options tape.
//!
//! The simulator is a [`PrintSource`] that never ends. From one seed it
//! produces a tape that looks like the real one:
//! - 443 real tickers with Zipf-like popularity ([`universe`]), spots that
//!   random-walk around reference prices;
//! - chains with dailies, weeklies and monthlies out to a year, strikes on the
//!   listing grid, activity concentrated near the money and in the front
//!   expiries, stable open interest ([`chain`]);
//! - NBBO quotes around a Black-Scholes value with a volatility smile, on the
//!   penny/nickel tick grid ([`quote`]);
//! - singles, ISO sweeps across 2–8 venues, single-venue splits, blocks,
//!   spreads, and runs of repeated hits on one contract ([`orders`]);
//! - a session clock with a U-shaped intraday rate and news bursts on single
//!   names ([`session`]), averaging exactly the configured rate.
//!
//! Time is virtual: order arrivals are a Poisson process whose gaps come from
//! the seeded generator, and a print's `ts_ns` is `start_ns` plus its virtual
//! offset. Two simulators with the same [`SimConfig`] produce identical tapes,
//! whatever the machine or the pace they are read at. Generation is cheap
//! (well under a microsecond per print in release builds), so 50,000 prints/s
//! is comfortable.
//!
//! The session clock is independent of the timestamps' wall time of day
//! unless `start_ns` is 09:30 New York plus `session_offset_ms` (the default
//! is). After the close the session shape simply repeats; the chains roll to
//! a new trading date when the timestamps pass New York midnight.

mod chain;
mod orders;
mod quote;
mod session;
mod universe;
mod venues;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use flowtape_core::date::{market_date, market_instant_ms, market_time_of_day_ms, Date};
use flowtape_core::event::Print;
use flowtape_core::occ::{Contract, Right};

use super::rng::Rng;
use super::{PrintSource, SourceError};
use chain::{open_interest, strike_milli, Chains, Expiry};
use orders::{Market, Shape, REPEAT_HITS, REPEAT_MEAN_GAP_S};
use quote::{fair_value, smile_vol, Quote};
use session::{Session, SESSION_NS};
use universe::Universe;

pub use universe::LISTINGS;

/// The highest mean rate the simulator accepts, prints per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Share of orders initiated by buyers.
const BUY_SHARE: f64 = 0.55;
/// Share of prints on out-of-the-money strikes.
const OTM_SHARE: f64 = 0.75;
/// Mean distance of a strike from spot, in standard deviations to expiry.
const MEAN_STRIKE_SD: f64 = 0.6;
/// 09:30, in ms after midnight.
const OPEN_MS: i64 = (9 * 60 + 30) * 60_000;
/// The cheapest option the simulator prefers for a block, in cents.
const BLOCK_MIN_PRICE_CENTS: u32 = 50;
/// Nanoseconds in a 365-day year, the clock option values are quoted in.
const CALENDAR_YEAR_NS: f64 = 365.0 * 86_400.0 * 1e9;
/// The last year whose chains the simulator lists (OSI years end at 2099).
const LAST_CHAIN_YEAR: i32 = 2098;

/// What the simulator generates.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seeds everything: the same config always produces the same tape.
    pub seed: u64,
    /// Mean prints per second over a session (the rate peaks at about three
    /// times this at the open). Positive, at most [`MAX_RATE`].
    pub rate: f64,
    /// Timestamp of the first instant of virtual time, ns since the epoch.
    /// Its New York date is the first trading date (DTE is counted from it).
    pub start_ns: i64,
    /// Where the session clock starts, ms after 09:30 New York (0 = the open;
    /// 23,400,000 would be the close, so at most 23,399,999).
    pub session_offset_ms: i64,
}

impl Default for SimConfig {
    /// Seed 1, 500 prints/s (about a real day's average), starting at the open
    /// on Wednesday 2026-05-13.
    fn default() -> SimConfig {
        let open = Date::from_ymd(2026, 5, 13).map_or(0, |d| market_instant_ms(d, 9, 30));
        SimConfig {
            seed: 1,
            rate: 500.0,
            start_ns: open * 1_000_000,
            session_offset_ms: 0,
        }
    }
}

/// A [`SimConfig`] the simulator cannot run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SimConfigError {
    #[error("sim rate must be a positive number of prints per second up to {MAX_RATE}, got {0}")]
    Rate(f64),
    #[error(
        "sim start must fall in the years 2000 to {LAST_CHAIN_YEAR}, got {0} ns since the epoch"
    )]
    Start(i64),
    #[error("sim session offset must be 0 to 23399999 ms after 09:30, got {0}")]
    SessionOffset(i64),
}

impl SimConfig {
    /// This config with its timestamps starting at `now_ns` and, during market
    /// hours, its session clock set to the New York time of day, so a live sim
    /// is busy at the open and the close when the real market is. Outside
    /// market hours the session clock starts at the open.
    pub fn starting_at(self, now_ns: i64) -> SimConfig {
        let since_open_ms = market_time_of_day_ms(now_ns.div_euclid(1_000_000)) - OPEN_MS;
        let session_ms = SESSION_NS / 1_000_000;
        SimConfig {
            start_ns: now_ns,
            session_offset_ms: if (0..session_ms).contains(&since_open_ms) {
                since_open_ms
            } else {
                0
            },
            ..self
        }
    }

    pub fn validate(&self) -> Result<(), SimConfigError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(SimConfigError::Rate(self.rate));
        }
        let year = market_date(self.start_ns.div_euclid(1_000_000)).year();
        if !(2000..=LAST_CHAIN_YEAR).contains(&year) {
            return Err(SimConfigError::Start(self.start_ns));
        }
        if !(0..SESSION_NS / 1_000_000).contains(&self.session_offset_ms) {
            return Err(SimConfigError::SessionOffset(self.session_offset_ms));
        }
        Ok(())
    }
}

/// A generated print waiting for earlier ones: ordered by time, then by
/// generation order.
struct Pending {
    print: Print,
    order: u64,
}

impl Pending {
    fn key(&self) -> (i64, u64) {
        (self.print.ts_ns, self.order)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A run of repeated hits: someone keeps hitting one contract the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    underlying: usize,
    contract: Contract,
    shape: Shape,
    buy: bool,
    /// Hits still to come.
    remaining: u64,
}

/// The synthetic options market. See the module docs.
pub struct SimMarket {
    config: SimConfig,
    rng: Rng,
    universe: Universe,
    chains: Chains,
    /// When the chains roll to the next trading date (ts, ns).
    next_roll_ns: i64,
    session: Session,
    /// Which session (counted from the start) the bursts were drawn for.
    session_index: i64,
    /// Fresh orders per second per unit of session intensity.
    orders_per_s: f64,
    /// Virtual time (ns after `start_ns`) of the next fresh order.
    next_order_ns: i64,
    /// Scheduled hits: (virtual time, generation order, run).
    repeats: BinaryHeap<Reverse<(i64, u64, Run)>>,
    pending: BinaryHeap<Reverse<Pending>>,
    /// Generation counter, for stable ordering of equal timestamps.
    generated: u64,
    seq: u64,
    scratch: Vec<Print>,
}

impl SimMarket {
    pub fn new(config: SimConfig) -> Result<SimMarket, SimConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.seed);
        let universe = Universe::new();
        let session = Session::new(&mut rng, universe.newsworthy());
        let date = market_date(config.start_ns.div_euclid(1_000_000));
        let mut sim = SimMarket {
            rng,
            universe,
            chains: Chains::new(date),
            next_roll_ns: next_midnight_ns(date),
            session,
            session_index: 0,
            orders_per_s: config.rate / Shape::mean_prints_per_order(),
            next_order_ns: 0,
            repeats: BinaryHeap::new(),
            pending: BinaryHeap::new(),
            generated: 0,
            seq: 0,
            scratch: Vec::with_capacity(16),
            config,
        };
        sim.next_order_ns = sim.gap_after(0);
        Ok(sim)
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Virtual time into the current session for virtual time `at_ns`,
    /// drawing new bursts when a new session begins.
    fn session_clock(&mut self, at_ns: i64) -> i64 {
        let clock = (self.config.session_offset_ms * 1_000_000).saturating_add(at_ns);
        let index = clock.div_euclid(SESSION_NS);
        if index != self.session_index {
            self.session_index = index;
            self.session.draw_bursts(&mut self.rng);
        }
        clock.rem_euclid(SESSION_NS)
    }

    /// The gap from one fresh order at `at_ns` to the next.
    fn gap_after(&mut self, at_ns: i64) -> i64 {
        let into = self.session_clock(at_ns);
        let per_s = self.orders_per_s * self.session.intensity(into).total;
        let gap_s = self.rng.exp1() / per_s;
        (gap_s * 1e9).min(1e15) as i64
    }

    /// Rolls the chains to the trading date of `ts_ns` once it passes midnight.
    fn roll_chains(&mut self, ts_ns: i64) {
        if ts_ns < self.next_roll_ns {
            return;
        }
        let date = market_date(ts_ns.div_euclid(1_000_000));
        if date.year() > LAST_CHAIN_YEAR {
            self.next_roll_ns = i64::MAX;
            return;
        }
        self.chains = Chains::new(date);
        self.next_roll_ns = next_midnight_ns(date);
    }

    /// Places the fresh order due at `next_order_ns`.
    fn fresh_order(&mut self) {
        let at_ns = self.next_order_ns;
        let ts_ns = self.config.start_ns.saturating_add(at_ns);
        self.roll_chains(ts_ns);
        let into = self.session_clock(at_ns);
        let underlying = match self.session.intensity(into).burst {
            Some((name, share)) if self.rng.chance(share) => name,
            _ => self.universe.pick(&mut self.rng),
        };
        let shape = Shape::pick(&mut self.rng);
        let buy = self.rng.chance(BUY_SHARE);
        if let Some((contract, expiry, market)) = self.order_market(underlying, shape, at_ns) {
            match shape {
                Shape::Spread => {
                    let wing = self.wing(underlying, contract, &expiry, at_ns);
                    orders::spread(&market, &wing, ts_ns, &mut self.rng, &mut self.scratch);
                }
                _ => orders::emit(shape, buy, &market, ts_ns, &mut self.rng, &mut self.scratch),
            }
            if self.rng.chance(shape.repeat_chance()) {
                let run = Run {
                    underlying,
                    contract,
                    shape,
                    buy,
                    remaining: self.rng.range(REPEAT_HITS.0, REPEAT_HITS.1),
                };
                self.schedule_hit(at_ns, run);
            }
            self.queue_scratch();
        }
        self.next_order_ns = at_ns.saturating_add(self.gap_after(at_ns));
    }

    /// Schedules the next hit of `run` a random gap after `after_ns`.
    fn schedule_hit(&mut self, after_ns: i64, run: Run) {
        let gap_ns = (self.rng.exp1() * REPEAT_MEAN_GAP_S * 1e9) as i64;
        self.generated += 1;
        let at_ns = after_ns.saturating_add(gap_ns.max(1));
        self.repeats.push(Reverse((at_ns, self.generated, run)));
    }

    /// Places the hit of `run` due at `at_ns`.
    fn repeat_order(&mut self, at_ns: i64, run: Run) {
        let ts_ns = self.config.start_ns.saturating_add(at_ns);
        self.roll_chains(ts_ns);
        // A contract that expired before today's chains is not traded any more.
        if run.contract.expiry < self.chains.date {
            return;
        }
        let expiry = Expiry::new(run.contract.expiry, self.chains.date);
        let market = self.market(run.underlying, run.contract, &expiry, at_ns);
        let out = &mut self.scratch;
        orders::emit(run.shape, run.buy, &market, ts_ns, &mut self.rng, out);
        self.queue_scratch();
        if run.remaining > 1 {
            let remaining = run.remaining - 1;
            self.schedule_hit(at_ns, Run { remaining, ..run });
        }
    }

    fn queue_scratch(&mut self) {
        for print in self.scratch.drain(..) {
            self.generated += 1;
            self.pending.push(Reverse(Pending {
                print,
                order: self.generated,
            }));
        }
    }

    /// The contract and market for a new order. Blocks go to strikes nearer
    /// the money, and move closer still until the option is worth at least
    /// [`BLOCK_MIN_PRICE_CENTS`] (institutions do not block penny options).
    fn order_market(
        &mut self,
        underlying: usize,
        shape: Shape,
        at_ns: i64,
    ) -> Option<(Contract, Expiry, Market)> {
        let attempts: &[f64] = if shape == Shape::Block {
            &[0.5, 0.2, 0.0]
        } else {
            &[1.0]
        };
        let mut chosen = None;
        for closeness in attempts {
            if let Some((contract, expiry)) = self.pick_contract(underlying, at_ns, *closeness) {
                let market = self.market(underlying, contract, &expiry, at_ns);
                let rich = market.quote.mid() >= BLOCK_MIN_PRICE_CENTS;
                chosen = Some((contract, expiry, market));
                if rich {
                    break;
                }
            }
        }
        chosen
    }

    /// A contract on `underlying` for a new order: a front-weighted expiry and
    /// a strike mostly out of the money, `closeness` scaling the distance.
    fn pick_contract(
        &mut self,
        underlying: usize,
        at_ns: i64,
        closeness: f64,
    ) -> Option<(Contract, Expiry)> {
        let rng = &mut self.rng;
        let name = &mut self.universe.names[underlying];
        let spot = name.spot_at(at_ns, rng);
        let expiry = self.chains.table(name.cycle).pick(rng);
        let right = if rng.chance(name.call_share) {
            Right::Call
        } else {
            Right::Put
        };
        let sd = name.iv * (expiry.dte.max(1) as f64 / 365.0).sqrt();
        let distance = rng.exp1() * MEAN_STRIKE_SD * sd * closeness;
        let otm = if rng.chance(OTM_SHARE) {
            distance
        } else {
            -0.5 * distance
        };
        let up = if right == Right::Call { otm } else { -otm };
        let strike = strike_milli(spot * up.exp(), spot, expiry.dte, name.strike_step_milli);
        let root = if expiry.monthly {
            name.root
        } else {
            name.weekly_root
        };
        Contract::new(root, expiry.date, right, strike)
            .ok()
            .map(|c| (c, expiry))
    }

    /// The other leg of a vertical spread on `contract`: one to three strikes
    /// further out of the money.
    fn wing(
        &mut self,
        underlying: usize,
        contract: Contract,
        expiry: &Expiry,
        at_ns: i64,
    ) -> Market {
        let step = self.universe.names[underlying].strike_step_milli * self.rng.range(1, 3) as u32;
        let strike_milli = match contract.right {
            Right::Call => contract.strike_milli.saturating_add(step),
            Right::Put if contract.strike_milli > step => contract.strike_milli - step,
            Right::Put => contract.strike_milli + step,
        };
        let wing = Contract::new(
            contract.root.as_str(),
            contract.expiry,
            contract.right,
            strike_milli,
        )
        .unwrap_or(contract);
        self.market(underlying, wing, expiry, at_ns)
    }

    /// The market in `contract` at virtual time `at_ns`.
    fn market(
        &mut self,
        underlying: usize,
        contract: Contract,
        expiry: &Expiry,
        at_ns: i64,
    ) -> Market {
        let name = &mut self.universe.names[underlying];
        let spot = name.spot_at(at_ns, &mut self.rng);
        let ts_ns = self.config.start_ns.saturating_add(at_ns);
        let years = expiry.close_ns.saturating_sub(ts_ns) as f64 / CALENDAR_YEAR_NS;
        let strike = contract.strike();
        let vol = smile_vol(name.iv, spot, strike, years.max(0.0));
        let fair = fair_value(contract.right, spot, strike, years, vol);
        Market {
            contract,
            quote: Quote::around(fair, name.ticks, name.spread_frac),
            spot: (spot * 100.0).round() / 100.0,
            oi: open_interest(
                self.config.seed,
                &contract,
                name.reference,
                name.oi_scale,
                expiry,
            ),
            home_venue: name.home_venue,
        }
    }
}

impl PrintSource for SimMarket {
    fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
        loop {
            let next_repeat = self.repeats.peek().map(|Reverse((at_ns, _, _))| *at_ns);
            let next_order = next_repeat.map_or(self.next_order_ns, |r| r.min(self.next_order_ns));
            let horizon = self.config.start_ns.saturating_add(next_order);
            if self
                .pending
                .peek()
                .is_some_and(|Reverse(p)| p.print.ts_ns <= horizon)
            {
                if let Some(Reverse(mut pending)) = self.pending.pop() {
                    self.seq += 1;
                    pending.print.seq = self.seq;
                    return Some(Ok(pending.print));
                }
            }
            match next_repeat {
                Some(at_ns) if at_ns < self.next_order_ns => {
                    if let Some(Reverse((at_ns, _, run))) = self.repeats.pop() {
                        self.repeat_order(at_ns, run);
                    }
                }
                _ => self.fresh_order(),
            }
        }
    }
}

/// 00:00 New York on the day after `date`, ns since the epoch.
fn next_midnight_ns(date: Date) -> i64 {
    market_instant_ms(date.add_days(1), 0, 0).saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests;
