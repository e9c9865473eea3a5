//! The 0–100 score of a flow event.
//!
//! The score is a sum of named components, each computed from the event's own
//! fields, so anyone holding a [`FlowEvent`] (the TUI's detail popup, a test,
//! a user reading the JSON) can recompute it and show where every point came
//! from with [`score_breakdown`]. The formula is versioned
//! ([`SCORE_VERSION`]) and documented in `docs/scoring.md`; change both
//! together.

use serde::Serialize;

use crate::event::{FlowEvent, Kind, Sentiment, Side, Tag};

/// Version of the formula below, as documented in `docs/scoring.md`.
pub const SCORE_VERSION: u32 = 1;

/// Premium earning no points (USD) and the decades above it to full points.
const PREMIUM_FLOOR: f64 = 10_000.0;
const PREMIUM_DECADES: f64 = 3.0;
/// DTE at or under which the short-dated component is full, and at or over which it is zero.
const DTE_FULL: f64 = 7.0;
const DTE_ZERO: f64 = 60.0;
/// Percent out of the money at which the OTM component is full.
const OTM_FULL: f64 = 10.0;
/// Day volume over OI at which the volume component is full.
const VOL_OI_FULL: f64 = 2.0;

/// One named part of a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreComponent {
    pub name: &'static str,
    /// Points earned, between 0 and `max`.
    pub points: f64,
    pub max: f64,
}

/// Where an event's score comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreBreakdown {
    /// [`SCORE_VERSION`].
    pub version: u32,
    pub components: Vec<ScoreComponent>,
    /// The components' sum, rounded and clamped to 0–100.
    pub total: u8,
}

/// `x` clamped to 0–1; anything that is not a number counts as 0.
fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// `numerator` over open interest as a 0–1 fraction of `full`: full points when
/// OI is zero and anything traded, none when OI is unknown.
fn against_oi(numerator: u64, oi: Option<u64>, full: f64) -> f64 {
    match oi {
        None => 0.0,
        Some(0) => unit(numerator as f64),
        Some(oi) => unit(numerator as f64 / oi as f64 / full),
    }
}

/// Every component of the event's score, with its points.
pub fn score_breakdown(e: &FlowEvent) -> ScoreBreakdown {
    let premium = unit((e.premium.max(1.0).log10() - PREMIUM_FLOOR.log10()) / PREMIUM_DECADES);
    let kind = match e.kind {
        Kind::Sweep => 1.0,
        Kind::Block => 10.0 / 15.0,
        Kind::Split => 6.0 / 15.0,
        Kind::Single => 0.0,
    };
    let side = match (e.sentiment, e.side) {
        (Sentiment::Neutral, _) => 0.0,
        (_, Side::AboveAsk | Side::BelowBid) => 1.0,
        (_, Side::Ask | Side::Bid) => 0.7,
        (_, Side::Mid | Side::Unknown) => 0.0,
    };
    let short_dated = unit((DTE_ZERO - f64::from(e.dte)) / (DTE_ZERO - DTE_FULL));
    let otm = e.otm.map_or(0.0, |otm| unit(otm / OTM_FULL));
    let flag = |tag: Tag| if e.tags.contains(tag) { 1.0 } else { 0.0 };

    let parts: [(&'static str, f64, f64); 9] = [
        ("premium", 30.0, premium),
        ("kind", 15.0, kind),
        ("aggressor", 10.0, side),
        ("size_vs_oi", 10.0, against_oi(e.size, e.oi, 1.0)),
        ("vol_vs_oi", 10.0, against_oi(e.vol, e.oi, VOL_OI_FULL)),
        ("golden", 8.0, flag(Tag::Golden)),
        ("repeat", 5.0, flag(Tag::Repeat)),
        ("short_dated", 6.0, short_dated),
        ("otm", 6.0, otm),
    ];
    let components: Vec<ScoreComponent> = parts
        .into_iter()
        .map(|(name, max, fraction)| ScoreComponent {
            name,
            points: max * fraction,
            max,
        })
        .collect();
    let sum: f64 = components.iter().map(|c| c.points).sum();
    ScoreBreakdown {
        version: SCORE_VERSION,
        components,
        total: sum.round().clamp(0.0, 100.0) as u8,
    }
}

/// The event's score, 0–100: the total of [`score_breakdown`].
pub fn score(e: &FlowEvent) -> u8 {
    score_breakdown(e).total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::sample_event;
    use crate::event::Tags;

    #[test]
    fn components_add_up_to_at_most_100() {
        let max: f64 = score_breakdown(&sample_event())
            .components
            .iter()
            .map(|c| c.max)
            .sum();
        assert!((max - 100.0).abs() < 1e-9, "{max}");
    }

    #[test]
    fn monotonic_in_premium_and_bounded() {
        let mut last = 0;
        for premium in [
            0.0,
            1.0,
            5_000.0,
            10_000.0,
            50_000.0,
            250_000.0,
            1e6,
            5e6,
            1e7,
            1e9,
            f64::INFINITY,
        ] {
            let e = FlowEvent {
                premium,
                ..sample_event()
            };
            let s = score(&e);
            assert!(s >= last, "premium {premium}: {s} < {last}");
            assert!(s <= 100);
            last = s;
        }
        let nan = FlowEvent {
            premium: f64::NAN,
            ..sample_event()
        };
        assert!(score(&nan) <= 100);
    }

    #[test]
    fn extremes_hit_the_bounds() {
        let best = FlowEvent {
            premium: 5e7,
            kind: Kind::Sweep,
            side: Side::AboveAsk,
            sentiment: Sentiment::Bull,
            size: 10_000,
            vol: 50_000,
            oi: Some(100),
            tags: Tags::EMPTY.with(Tag::Golden).with(Tag::Repeat),
            dte: 0,
            otm: Some(25.0),
            ..sample_event()
        };
        assert_eq!(score(&best), 100);
        let worst = FlowEvent {
            premium: 50.0,
            kind: Kind::Single,
            side: Side::Mid,
            sentiment: Sentiment::Neutral,
            oi: None,
            tags: Tags::EMPTY,
            dte: 400,
            otm: Some(-30.0),
            ..sample_event()
        };
        assert_eq!(score(&worst), 0);
    }

    #[test]
    fn the_breakdown_explains_the_score() {
        let e = sample_event();
        let b = score_breakdown(&e);
        assert_eq!(b.version, SCORE_VERSION);
        let sum: f64 = b.components.iter().map(|c| c.points).sum();
        assert_eq!(b.total, sum.round() as u8);
        assert!(b
            .components
            .iter()
            .all(|c| (0.0..=c.max).contains(&c.points)));
        let points = |name: &str| {
            b.components
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.points)
        };
        assert_eq!(
            points("kind"),
            Some(15.0),
            "a sweep earns the full kind points"
        );
        assert_eq!(points("repeat"), Some(0.0));
    }

    #[test]
    fn kinds_rank_sweep_block_split_single() {
        let with = |kind| {
            score_breakdown(&FlowEvent {
                kind,
                ..sample_event()
            })
            .components
            .iter()
            .find(|c| c.name == "kind")
            .map_or(0.0, |c| c.points)
        };
        assert!(with(Kind::Sweep) > with(Kind::Block));
        assert!(with(Kind::Block) > with(Kind::Split));
        assert!(with(Kind::Split) > with(Kind::Single));
    }
}
