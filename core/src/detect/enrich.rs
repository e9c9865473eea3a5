//! Describing an order as a flow event, from its prints alone.
//!
//! [`describe`] fills every [`FlowEvent`] field that follows from the prints
//! and the contract: time, symbol, kind, size, VWAP, premium, venues, side,
//! sentiment, spot, OTM %, DTE, open interest, implied volatility and quote.
//! Values the feed did not give stay `None`; nothing is estimated. The fields
//! that need the detector's memory (day volume, tags, score) are filled in by
//! the detector afterwards.

use crate::date::{market_date, Date};
use crate::event::{FlowEvent, Kind, Tags};
use crate::occ::Right;

use super::config::DetectionConfig;
use super::iv::{implied_vol, years_to_expiry};
use super::side::{sentiment_of, side_of};
use super::sweep::Order;

/// The shape of an order: two or more ISO legs are a sweep when they hit two
/// or more venues and a split on one; a lone print (ISO or not) is a block at
/// or over either block threshold, and a single otherwise.
pub fn kind_of(order: &Order, config: &DetectionConfig) -> Kind {
    let legs = order.legs();
    if legs.len() >= 2 {
        let first_venue = order.first().exchange;
        return if legs.iter().any(|p| p.exchange != first_venue) {
            Kind::Sweep
        } else {
            Kind::Split
        };
    }
    let first = order.first();
    if u64::from(first.size) >= config.block_min_size || first.premium() >= config.block_min_premium
    {
        Kind::Block
    } else {
        Kind::Single
    }
}

/// Signed percent out of the money: calls (strike − spot) / spot, puts
/// (spot − strike) / spot, × 100. `None` without a spot.
pub fn otm_percent(right: Right, strike: f64, spot: Option<f64>) -> Option<f64> {
    let spot = spot?;
    let distance = match right {
        Right::Call => strike - spot,
        Right::Put => spot - strike,
    };
    Some(distance / spot * 100.0)
}

/// Calendar days from the trade's New York market date to expiry.
pub fn days_to_expiry(ts_ms: i64, expiry: Date) -> i32 {
    let days = market_date(ts_ms).days_until(expiry);
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

/// A positive finite price as the feed gave it, or `None`.
fn positive(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite() && *x > 0.0)
}

/// A finite quote side as the feed gave it (a zero bid is a real quote), or `None`.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// The event an order makes, with `vol` 0, no tags and score 0: those need
/// the detector's day volume and repeat memory. `id` is left empty for the
/// stream to assign.
///
/// Time, quote and side come from the earliest leg (side is the VWAP judged
/// against that leg's NBBO, so it can be checked from the event's own `price`,
/// `bid` and `ask`); spot and open interest from the earliest leg that
/// carries them.
/// Rounds to `places` decimals: the event carries what is meaningful (cents
/// of premium, basis points of percentages), not float noise.
fn round_to(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

pub fn describe(order: &Order, config: &DetectionConfig) -> FlowEvent {
    let first = order.first();
    let contract = first.contract;
    let legs = order.legs();
    let size: u64 = legs.iter().map(|p| u64::from(p.size)).sum();
    let premium: f64 = legs.iter().map(|p| p.premium()).sum();
    let price = if size > 0 {
        legs.iter()
            .map(|p| p.price * f64::from(p.size))
            .sum::<f64>()
            / size as f64
    } else {
        first.price
    };
    let mut exchanges: Vec<u16> = legs.iter().map(|p| p.exchange).collect();
    exchanges.sort_unstable();
    exchanges.dedup();

    let ts = first.ts_ms();
    let strike = contract.strike();
    let spot = legs.iter().find_map(|p| positive(p.spot));
    let oi = legs.iter().find_map(|p| p.oi);
    let (bid, ask) = (finite(first.bid), finite(first.ask));
    let side = side_of(price, bid, ask, config);
    let years = years_to_expiry(ts, contract.expiry);
    let iv = spot.and_then(|s| {
        implied_vol(
            contract.right,
            price,
            s,
            strike,
            years,
            config.risk_free_rate,
        )
    });

    FlowEvent {
        id: String::new(),
        ts,
        sym: contract.underlying().to_string(),
        occ: contract.osi(),
        expiry: contract.expiry.to_string(),
        strike,
        right: contract.right,
        side,
        size,
        price: round_to(price, 4),
        premium: round_to(premium, 2),
        kind: kind_of(order, config),
        legs: u32::try_from(legs.len()).unwrap_or(u32::MAX),
        exchanges,
        spot,
        otm: otm_percent(contract.right, strike, spot).map(|v| round_to(v, 2)),
        dte: days_to_expiry(ts, contract.expiry),
        oi,
        vol: 0,
        iv: iv.map(|v| round_to(v, 4)),
        bid,
        ask,
        tags: Tags::EMPTY,
        sentiment: sentiment_of(contract.right, side, order.is_multi_leg()),
        score: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otm_is_signed_by_right() {
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(near(otm_percent(Right::Call, 110.0, Some(100.0)), 10.0));
        assert!(near(otm_percent(Right::Call, 90.0, Some(100.0)), -10.0));
        assert!(near(otm_percent(Right::Put, 90.0, Some(100.0)), 10.0));
        assert!(near(otm_percent(Right::Put, 110.0, Some(100.0)), -10.0));
        assert_eq!(otm_percent(Right::Put, 110.0, None), None);
    }

    #[test]
    fn dte_counts_from_the_new_york_date() {
        let expiry = Date::from_ymd(2026, 3, 20).unwrap_or_else(|e| panic!("{e}"));
        let thursday_evening =
            crate::date::market_instant_ms(Date::from_ymd(2026, 3, 19).unwrap_or(expiry), 23, 0);
        assert_eq!(
            days_to_expiry(thursday_evening, expiry),
            1,
            "already Friday in UTC"
        );
        assert_eq!(
            days_to_expiry(crate::date::market_instant_ms(expiry, 9, 30), expiry),
            0
        );
    }
}
