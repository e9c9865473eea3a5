//! Where a fill sits against the NBBO, and what that says about direction.
//!
//! [`side_of`] places a price against the quote the feed carried with the
//! print; [`sentiment_of`] turns the side and the option's right into a
//! directional read. The rules, with the reasons for each, are in
//! `docs/detection.md`.

use crate::event::{Sentiment, Side};
use crate::occ::Right;

use super::config::DetectionConfig;

/// Slack for float rounding when comparing a position in the spread with the
/// near fraction: (1.01 − 1.00) / (1.05 − 1.00) is 0.2000000000000009.
const POSITION_EPSILON: f64 = 1e-9;

/// A quote that a fill can be judged against: both sides present and finite,
/// a positive ask, a bid of zero or more (a zero bid is a real "no bid"
/// market, common for cheap far out-of-the-money options) and not crossed.
fn usable_quote(bid: Option<f64>, ask: Option<f64>) -> Option<(f64, f64)> {
    let (bid, ask) = (bid?, ask?);
    let sane = bid.is_finite() && ask.is_finite() && bid >= 0.0 && ask > 0.0 && bid <= ask;
    sane.then_some((bid, ask))
}

/// The side of a fill at `price` against the quote `bid`/`ask`.
///
/// - No usable quote, or a price that is not a positive number: `Unknown`.
/// - More than `side_tolerance` above the ask: `AboveAsk`; below the bid: `BelowBid`.
/// - Within `side_tolerance` of both sides (a locked market): `Mid`, the
///   aggressor cannot be told.
/// - Within `side_tolerance` of the ask: `Ask`; of the bid: `Bid`.
/// - Otherwise by position in the spread, 0 at the bid and 1 at the ask:
///   at least `1 − side_near_fraction` is `Ask`, at most `side_near_fraction`
///   is `Bid`, anything between is `Mid`.
pub fn side_of(price: f64, bid: Option<f64>, ask: Option<f64>, config: &DetectionConfig) -> Side {
    if !(price.is_finite() && price > 0.0) {
        return Side::Unknown;
    }
    let Some((bid, ask)) = usable_quote(bid, ask) else {
        return Side::Unknown;
    };
    let tol = config.side_tolerance;
    if price > ask + tol {
        return Side::AboveAsk;
    }
    if price < bid - tol {
        return Side::BelowBid;
    }
    let at_ask = (price - ask).abs() <= tol;
    let at_bid = (price - bid).abs() <= tol;
    match (at_ask, at_bid) {
        (true, true) => return Side::Mid,
        (true, false) => return Side::Ask,
        (false, true) => return Side::Bid,
        (false, false) => {}
    }
    // Here bid − tol ≤ price ≤ ask + tol and price is more than tol from both,
    // so the spread is wider than 2 × tol and the division is safe.
    let position = (price - bid) / (ask - bid);
    let near = config.side_near_fraction;
    if position >= 1.0 - near - POSITION_EPSILON {
        Side::Ask
    } else if position <= near + POSITION_EPSILON {
        Side::Bid
    } else {
        Side::Mid
    }
}

/// The directional read of a fill: buying calls or selling puts is bullish,
/// buying puts or selling calls bearish. Mid, unknown and spread legs
/// (`multi_leg`, whose direction depends on the other legs) are neutral.
pub fn sentiment_of(right: Right, side: Side, multi_leg: bool) -> Sentiment {
    if multi_leg {
        return Sentiment::Neutral;
    }
    match (right, side.is_ask(), side.is_bid()) {
        (Right::Call, true, _) | (Right::Put, _, true) => Sentiment::Bull,
        (Right::Put, true, _) | (Right::Call, _, true) => Sentiment::Bear,
        _ => Sentiment::Neutral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(price: f64, bid: Option<f64>, ask: Option<f64>) -> Side {
        side_of(price, bid, ask, &DetectionConfig::default())
    }

    #[test]
    fn every_side_against_a_normal_quote() {
        let (b, a) = (Some(1.00), Some(1.10));
        assert_eq!(side(1.15, b, a), Side::AboveAsk);
        assert_eq!(side(1.10, b, a), Side::Ask);
        assert_eq!(side(1.08, b, a), Side::Ask, "position 0.8 is near the ask");
        assert_eq!(side(1.07, b, a), Side::Mid);
        assert_eq!(side(1.05, b, a), Side::Mid);
        assert_eq!(side(1.03, b, a), Side::Mid);
        assert_eq!(side(1.02, b, a), Side::Bid, "position 0.2 is near the bid");
        assert_eq!(side(1.00, b, a), Side::Bid);
        assert_eq!(side(0.95, b, a), Side::BelowBid);
    }

    #[test]
    fn equality_is_within_half_a_tick() {
        let (b, a) = (Some(1.00), Some(1.01));
        assert_eq!(side(1.01, b, a), Side::Ask);
        assert_eq!(side(1.014, b, a), Side::Ask);
        assert_eq!(side(1.02, b, a), Side::AboveAsk);
        assert_eq!(side(1.00, b, a), Side::Bid);
        assert_eq!(side(0.99, b, a), Side::BelowBid);
        // A near-side fraction of a five-cent spread is computed without float surprises.
        assert_eq!(side(1.01, Some(1.00), Some(1.05)), Side::Bid);
        assert_eq!(side(1.04, Some(1.00), Some(1.05)), Side::Ask);
    }

    #[test]
    fn locked_market_is_mid_and_bad_quotes_are_unknown() {
        assert_eq!(side(2.00, Some(2.00), Some(2.00)), Side::Mid);
        assert_eq!(side(2.05, Some(2.00), Some(2.00)), Side::AboveAsk);
        assert_eq!(side(1.00, None, Some(1.10)), Side::Unknown, "missing bid");
        assert_eq!(side(1.00, Some(1.00), None), Side::Unknown, "missing ask");
        assert_eq!(side(1.00, None, None), Side::Unknown);
        assert_eq!(side(1.00, Some(1.20), Some(1.10)), Side::Unknown, "crossed");
        assert_eq!(side(1.00, Some(0.90), Some(0.0)), Side::Unknown, "zero ask");
        assert_eq!(
            side(1.00, Some(-0.1), Some(1.10)),
            Side::Unknown,
            "negative bid"
        );
        assert_eq!(side(1.00, Some(f64::NAN), Some(1.10)), Side::Unknown);
        assert_eq!(
            side(f64::NAN, Some(1.00), Some(1.10)),
            Side::Unknown,
            "bad price"
        );
        assert_eq!(
            side(0.0, Some(1.00), Some(1.10)),
            Side::Unknown,
            "zero price"
        );
    }

    #[test]
    fn a_zero_bid_is_a_real_market() {
        assert_eq!(side(0.05, Some(0.0), Some(0.05)), Side::Ask);
        assert_eq!(side(0.01, Some(0.0), Some(0.05)), Side::Bid);
    }

    #[test]
    fn sentiment_table() {
        use Sentiment::{Bear, Bull, Neutral};
        let cases = [
            (Right::Call, Side::AboveAsk, Bull),
            (Right::Call, Side::Ask, Bull),
            (Right::Call, Side::Mid, Neutral),
            (Right::Call, Side::Bid, Bear),
            (Right::Call, Side::BelowBid, Bear),
            (Right::Call, Side::Unknown, Neutral),
            (Right::Put, Side::AboveAsk, Bear),
            (Right::Put, Side::Ask, Bear),
            (Right::Put, Side::Mid, Neutral),
            (Right::Put, Side::Bid, Bull),
            (Right::Put, Side::BelowBid, Bull),
            (Right::Put, Side::Unknown, Neutral),
        ];
        for (right, side, want) in cases {
            assert_eq!(sentiment_of(right, side, false), want, "{right:?} {side:?}");
            assert_eq!(
                sentiment_of(right, side, true),
                Neutral,
                "spread leg {right:?} {side:?}"
            );
        }
    }
}
