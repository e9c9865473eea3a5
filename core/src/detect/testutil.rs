//! Crafted contracts, prints and events for the tests of this module.

use crate::conditions::INTERMARKET_SWEEP;
use crate::date::{market_instant_ms, Date};
use crate::event::{FlowEvent, Print};
use crate::occ::{Contract, Right};

/// The trading day of the tests: Tuesday 2026-03-17.
pub fn trade_date() -> Date {
    Date::from_ymd(2026, 3, 17).unwrap_or_else(|e| panic!("{e}"))
}

/// Options in the tests expire Friday 2026-03-20, three days after the trade date.
pub fn expiry() -> Date {
    Date::from_ymd(2026, 3, 20).unwrap_or_else(|e| panic!("{e}"))
}

pub fn contract(root: &str, right: Right, strike: f64) -> Contract {
    Contract::new(root, expiry(), right, (strike * 1000.0).round() as u32)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// 10:00 New York on the trade date plus `ms`, in nanoseconds.
pub fn at_ms(ms: i64) -> i64 {
    (market_instant_ms(trade_date(), 10, 0) + ms) * 1_000_000
}

/// A plain (non-ISO) print on exchange 1 at `at_ms(ms)`, quoted 0.05 under its
/// price to the price itself (so it is at the ask), without spot or OI.
pub fn print(contract: Contract, ms: i64, price: f64, size: u32) -> Print {
    Print {
        contract,
        price,
        size,
        exchange: 1,
        conditions: Vec::new(),
        ts_ns: at_ms(ms),
        seq: 0,
        bid: Some(price - 0.05),
        ask: Some(price),
        spot: None,
        oi: None,
    }
}

/// An ISO leg of `print(..)` on `exchange`.
pub fn iso(contract: Contract, ms: i64, exchange: u16, price: f64, size: u32) -> Print {
    Print {
        exchange,
        conditions: vec![INTERMARKET_SWEEP],
        ..print(contract, ms, price, size)
    }
}

/// A plausible complete event, for the score tests: the shared fixture, unscored.
pub fn sample_event() -> FlowEvent {
    FlowEvent {
        score: 0,
        ..crate::event::sample_event()
    }
}
