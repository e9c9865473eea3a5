//! Option chains: which expiries and strikes trade, and their open interest.
//!
//! Expiries are built for the New York trading date: every weekday for two
//! weeks and Fridays for two months on daily-cycle names (SPY, QQQ, IWM, the
//! indexes), Fridays for six weeks on weekly names, and the twelve monthlies
//! (third Fridays) on every name, so expiries run from 0 to about a year.
//! Exchange holidays are not modelled. Activity is drawn heavily towards the
//! front: an expiry's weight falls as `(1 + dte)^-1.25`, monthlies get a boost,
//! and same-day expiries on daily names a bigger one.
//!
//! Strikes sit on the name's grid near the money and on a coarser grid far
//! from it or far out in time. Open interest is a pure function of the seed
//! and the contract (so it is stable all day without a table), heaviest at
//! the money and in monthlies, with log-normal noise.

use crate::feed::rng::{splitmix64, Rng};
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_core::occ::{Contract, MAX_STRIKE_MILLI};

use super::universe::ExpiryCycle;

/// Days of dailies listed ahead on daily-cycle names.
const DAILY_DAYS: i64 = 14;
/// Days of Fridays listed ahead on daily-cycle names.
const DAILY_CYCLE_FRIDAY_DAYS: i64 = 60;
/// Days of Fridays listed ahead on weekly names.
const WEEKLY_DAYS: i64 = 42;
/// Monthly expiries listed on every name.
const MONTHLIES: u32 = 12;

/// One listed expiry, as seen from the chain's trading date.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expiry {
    pub date: Date,
    /// 16:00 New York on the expiry date, ns since the epoch.
    pub close_ns: i64,
    /// Calendar days from the trading date.
    pub dte: i64,
    /// A standard third-Friday expiry.
    pub monthly: bool,
}

impl Expiry {
    /// The expiry on `date`, seen from trading date `today`.
    pub fn new(date: Date, today: Date) -> Expiry {
        Expiry {
            date,
            close_ns: market_instant_ms(date, 16, 0).saturating_mul(1_000_000),
            dte: today.days_until(date),
            monthly: is_third_friday(date),
        }
    }
}

/// The expiries of one cycle, with a sampler weighted to the front.
#[derive(Clone, Debug)]
pub struct ExpiryTable {
    pub expiries: Vec<Expiry>,
    cumulative: Vec<f64>,
}

impl ExpiryTable {
    fn new(cycle: ExpiryCycle, today: Date) -> ExpiryTable {
        let mut dates: Vec<Date> = Vec::new();
        let weekday = |d: &Date| d.weekday() < 5;
        let friday = |d: &Date| d.weekday() == 4;
        match cycle {
            ExpiryCycle::Daily => {
                dates.extend((0..=DAILY_DAYS).map(|n| today.add_days(n)).filter(weekday));
                dates.extend(
                    (0..=DAILY_CYCLE_FRIDAY_DAYS)
                        .map(|n| today.add_days(n))
                        .filter(friday),
                );
            }
            ExpiryCycle::Weekly => {
                dates.extend((0..=WEEKLY_DAYS).map(|n| today.add_days(n)).filter(friday))
            }
            ExpiryCycle::Monthly => {}
        }
        dates.extend(monthlies(today));
        dates.sort_unstable();
        dates.dedup();
        let expiries: Vec<Expiry> = dates
            .into_iter()
            .map(|date| Expiry::new(date, today))
            .collect();
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = expiries
            .iter()
            .map(|e| {
                let mut w = (1.0 + e.dte as f64).powf(-1.25);
                if e.monthly {
                    w *= 1.6;
                }
                if e.dte == 0 && cycle == ExpiryCycle::Daily {
                    w *= 2.5;
                }
                total += w;
                total
            })
            .collect();
        for c in &mut cumulative {
            *c /= total;
        }
        ExpiryTable {
            expiries,
            cumulative,
        }
    }

    /// An expiry drawn by activity.
    pub fn pick(&self, rng: &mut Rng) -> Expiry {
        let u = rng.unit();
        let i = self.cumulative.partition_point(|c| *c <= u);
        self.expiries[i.min(self.expiries.len() - 1)]
    }
}

/// The listed expiries of every cycle for one trading date.
#[derive(Clone, Debug)]
pub struct Chains {
    pub date: Date,
    daily: ExpiryTable,
    weekly: ExpiryTable,
    monthly: ExpiryTable,
}

impl Chains {
    pub fn new(date: Date) -> Chains {
        Chains {
            date,
            daily: ExpiryTable::new(ExpiryCycle::Daily, date),
            weekly: ExpiryTable::new(ExpiryCycle::Weekly, date),
            monthly: ExpiryTable::new(ExpiryCycle::Monthly, date),
        }
    }

    pub fn table(&self, cycle: ExpiryCycle) -> &ExpiryTable {
        match cycle {
            ExpiryCycle::Daily => &self.daily,
            ExpiryCycle::Weekly => &self.weekly,
            ExpiryCycle::Monthly => &self.monthly,
        }
    }
}

fn is_third_friday(d: Date) -> bool {
    d.weekday() == 4 && (15..=21).contains(&d.day())
}

/// The next [`MONTHLIES`] third Fridays on or after `today`.
fn monthlies(today: Date) -> impl Iterator<Item = Date> {
    (0..=MONTHLIES)
        .filter_map(move |i| {
            let months = today.month() - 1 + i;
            let (year, month) = (today.year() + (months / 12) as i32, months % 12 + 1);
            let first = Date::from_ymd(year, month, 1).ok()?;
            let to_friday = (4 + 7 - i64::from(first.weekday())) % 7;
            let third = first.add_days(to_friday + 14);
            (third >= today).then_some(third)
        })
        .take(MONTHLIES as usize)
}

/// The listed strike (× 1000) nearest `target` for a name whose near-the-money
/// grid is `step_milli`: the grid is five times coarser (twice, for grids of
/// $2.50 and up) beyond 10% from spot or 45 days out. Never below one step.
pub fn strike_milli(target: f64, spot: f64, dte: i64, step_milli: u32) -> u32 {
    let far = (target / spot).ln().abs() > 0.10 || dte > 45;
    let step = match (far, step_milli < 2_500) {
        (false, _) => step_milli,
        (true, true) => step_milli * 5,
        (true, false) => step_milli * 2,
    };
    let step_f = f64::from(step);
    let steps = (target * 1000.0 / step_f)
        .round()
        .clamp(1.0, f64::from(MAX_STRIKE_MILLI / step));
    steps as u32 * step
}

/// Start-of-day open interest of `contract`: deterministic in the seed and the
/// contract. `reference` is the underlying's reference price (not the live
/// spot, so OI does not move intraday) and `scale` the OI of an at-the-money
/// monthly on that name before noise.
pub fn open_interest(
    seed: u64,
    contract: &Contract,
    reference: f64,
    scale: f64,
    expiry: &Expiry,
) -> u64 {
    let mut h = seed ^ 0x0F1A_77A9_E000_0000;
    for b in contract.root.as_str().bytes() {
        h = splitmix64(&mut h) ^ u64::from(b);
    }
    h ^= (contract.expiry.days_since_epoch() as u64) << 32 | u64::from(contract.strike_milli);
    h = splitmix64(&mut h) ^ contract.right.letter() as u64;
    let u1 = ((splitmix64(&mut h) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let u2 = (splitmix64(&mut h) >> 11) as f64 / (1u64 << 53) as f64;
    let noise = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let years = expiry.dte.max(0) as f64 / 365.0;
    let moneyness = (contract.strike() / reference).ln().abs();
    let near = (-moneyness / (0.04 + 0.3 * years.sqrt())).exp();
    let term = if expiry.monthly { 2.0 } else { 1.0 } * if expiry.dte == 0 { 0.5 } else { 1.0 };
    (scale * near * term * (0.7 * noise).exp()).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::occ::Right;

    fn date(y: i32, m: u32, d: u32) -> Date {
        Date::from_ymd(y, m, d).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn daily_names_list_every_weekday_then_fridays_then_monthlies() {
        let wed = date(2026, 5, 13);
        let chains = Chains::new(wed);
        let daily: Vec<Expiry> = chains.table(ExpiryCycle::Daily).expiries.clone();
        assert_eq!(daily[0].dte, 0);
        assert!(daily.iter().all(|e| e.date.weekday() < 5));
        assert!(
            daily.iter().any(|e| e.date == date(2026, 5, 14)),
            "Thursday daily"
        );
        let weekly = &chains.table(ExpiryCycle::Weekly).expiries;
        assert_eq!(weekly[0].date, date(2026, 5, 15));
        assert!(weekly[0].monthly, "May 15 2026 is the third Friday");
        assert!(weekly.iter().all(|e| e.date.weekday() == 4));
        let monthly = &chains.table(ExpiryCycle::Monthly).expiries;
        assert_eq!(monthly.len(), 12);
        assert!(monthly.iter().all(|e| e.monthly));
        assert!(monthly.last().is_some_and(|e| (300..=380).contains(&e.dte)));
    }

    #[test]
    fn front_expiries_draw_most_activity() {
        let chains = Chains::new(date(2026, 5, 13));
        let mut rng = Rng::new(1);
        let picks: Vec<Expiry> = (0..10_000)
            .map(|_| chains.table(ExpiryCycle::Daily).pick(&mut rng))
            .collect();
        let within_a_week = picks.iter().filter(|e| e.dte <= 7).count();
        let zero = picks.iter().filter(|e| e.dte == 0).count();
        assert!(
            within_a_week > 6_000 && zero > 2_000,
            "{within_a_week} {zero}"
        );
        assert!(picks.iter().any(|e| e.dte > 180));
    }

    #[test]
    fn strikes_snap_to_the_grid() {
        assert_eq!(strike_milli(601.4, 600.0, 0, 1_000), 601_000);
        assert_eq!(
            strike_milli(702.0, 600.0, 0, 1_000),
            700_000,
            "far OTM: $5 grid"
        );
        assert_eq!(strike_milli(263.7, 260.0, 3, 2_500), 262_500);
        assert_eq!(
            strike_milli(263.7, 260.0, 90, 2_500),
            265_000,
            "long-dated: $5 grid"
        );
        assert_eq!(
            strike_milli(0.01, 3.0, 0, 500),
            2_500,
            "never below one step"
        );
    }

    #[test]
    fn open_interest_is_stable_and_heaviest_at_the_money() {
        let expiry = Chains::new(date(2026, 5, 13))
            .table(ExpiryCycle::Monthly)
            .expiries[1];
        let oi = |strike: u32| {
            let c = Contract::new("AAPL", expiry.date, Right::Call, strike * 1000)
                .unwrap_or_else(|e| panic!("{e}"));
            open_interest(1, &c, 260.0, 10_000.0, &expiry)
        };
        assert_eq!(oi(260), oi(260));
        let near: u64 = (250..=270).step_by(5).map(oi).sum();
        let far: u64 = (350..=370).step_by(5).map(oi).sum();
        assert!(near > 5 * far, "{near} vs {far}");
    }
}
