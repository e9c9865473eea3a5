//! The 0–100 score of a flow event.
//!
//! The score is a sum of named components, each computed from the event's own
//! fields, so anyone holding a [`FlowEvent`] (the TUI's detail popup, a test,
//! a user reading the JSON) can recompute it and show where every point came
//! from with [`score_breakdown`]. The formula is versioned
//! ([`SCORE_VERSION`]) and documented in `docs/scoring.md`; change both
//! together. The components' weights and the reference points of their
//! scales are a [`ScoreConfig`] (the server's `[detection.score]`);
//! [`score_breakdown`] uses the documented defaults.

use serde::{Deserialize, Serialize};

use crate::event::{FlowEvent, Kind, Sentiment, Side, Tag};

/// Version of the formula below, as documented in `docs/scoring.md`.
pub const SCORE_VERSION: u32 = 1;

/// The score's weights (the points each component is worth; they add up to
/// 100) and the reference points of its scales. See `docs/scoring.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreConfig {
    /// Points for premium, on a log scale from `premium_floor` up.
    pub premium: f64,
    /// Points for the kind: a sweep earns them all, a block 10/15, a split 6/15.
    pub kind: f64,
    /// Points for paying through the ask or hitting through the bid (70% at the ask or bid).
    pub aggressor: f64,
    /// Points for the order's size against open interest.
    pub size_vs_oi: f64,
    /// Points for the day's volume against open interest.
    pub vol_vs_oi: f64,
    /// Points for the `golden` tag.
    pub golden: f64,
    /// Points for the `repeat` tag.
    pub repeat: f64,
    /// Points for few days to expiry.
    pub short_dated: f64,
    /// Points for being out of the money.
    pub otm: f64,
    /// Premium (USD) earning no premium points…
    pub premium_floor: f64,
    /// …and the tenfold steps above it to full points.
    pub premium_decades: f64,
    /// Days to expiry at or under which `short_dated` is full…
    pub dte_full: f64,
    /// …and at or over which it is zero.
    pub dte_zero: f64,
    /// Percent out of the money at which `otm` is full.
    pub otm_full: f64,
    /// Day volume over open interest at which `vol_vs_oi` is full.
    pub vol_oi_full: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            premium: 30.0,
            kind: 15.0,
            aggressor: 10.0,
            size_vs_oi: 10.0,
            vol_vs_oi: 10.0,
            golden: 8.0,
            repeat: 5.0,
            short_dated: 6.0,
            otm: 6.0,
            premium_floor: 10_000.0,
            premium_decades: 3.0,
            dte_full: 7.0,
            dte_zero: 60.0,
            otm_full: 10.0,
            vol_oi_full: 2.0,
        }
    }
}

/// Why a [`ScoreConfig`] cannot be used; the message names the key.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScoreConfigError {
    #[error("score.{name} is {value}; it must be a finite number, zero or more")]
    Negative { name: &'static str, value: f64 },
    #[error("the score's weights add up to {0}; they must add up to 100 (premium + kind + aggressor + size_vs_oi + vol_vs_oi + golden + repeat + short_dated + otm)")]
    WeightSum(f64),
    #[error("score.{name} is {value}; it must be above zero")]
    NotPositive { name: &'static str, value: f64 },
    #[error("score.dte_zero ({zero}) must be above score.dte_full ({full})")]
    DteOrder { full: f64, zero: f64 },
}

impl ScoreConfigError {
    /// The key at fault, relative to the score table; `None` when it is
    /// the table as a whole (the weights' sum).
    pub fn key(&self) -> Option<&'static str> {
        match self {
            ScoreConfigError::Negative { name, .. }
            | ScoreConfigError::NotPositive { name, .. } => Some(name),
            ScoreConfigError::WeightSum(_) => None,
            ScoreConfigError::DteOrder { .. } => Some("dte_zero"),
        }
    }
}

impl ScoreConfig {
    /// The weights by component name, in the breakdown's order.
    fn weights(&self) -> [(&'static str, f64); 9] {
        [
            ("premium", self.premium),
            ("kind", self.kind),
            ("aggressor", self.aggressor),
            ("size_vs_oi", self.size_vs_oi),
            ("vol_vs_oi", self.vol_vs_oi),
            ("golden", self.golden),
            ("repeat", self.repeat),
            ("short_dated", self.short_dated),
            ("otm", self.otm),
        ]
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ScoreConfigError> {
        let weights = self.weights();
        for (name, value) in weights {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ScoreConfigError::Negative { name, value });
            }
        }
        let sum: f64 = weights.iter().map(|(_, w)| w).sum();
        if (sum - 100.0).abs() > 1e-6 {
            return Err(ScoreConfigError::WeightSum(sum));
        }
        let positive = [
            ("premium_floor", self.premium_floor),
            ("premium_decades", self.premium_decades),
            ("otm_full", self.otm_full),
            ("vol_oi_full", self.vol_oi_full),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(ScoreConfigError::NotPositive { name, value });
            }
        }
        if !(self.dte_full.is_finite() && self.dte_full >= 0.0) {
            return Err(ScoreConfigError::Negative {
                name: "dte_full",
                value: self.dte_full,
            });
        }
        if !(self.dte_zero.is_finite() && self.dte_zero > self.dte_full) {
            return Err(ScoreConfigError::DteOrder {
                full: self.dte_full,
                zero: self.dte_zero,
            });
        }
        Ok(())
    }
}

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

/// Every component of the event's score, with its points, at the default
/// weights.
pub fn score_breakdown(e: &FlowEvent) -> ScoreBreakdown {
    score_breakdown_with(e, &ScoreConfig::default())
}

/// Every component of the event's score, with its points, at `config`'s
/// weights (a [`ScoreConfig::validate`]d one).
pub fn score_breakdown_with(e: &FlowEvent, config: &ScoreConfig) -> ScoreBreakdown {
    let c = config;
    let premium = unit((e.premium.max(1.0).log10() - c.premium_floor.log10()) / c.premium_decades);
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
    let short_dated = unit((c.dte_zero - f64::from(e.dte)) / (c.dte_zero - c.dte_full));
    let otm = e.otm.map_or(0.0, |otm| unit(otm / c.otm_full));
    let flag = |tag: Tag| if e.tags.contains(tag) { 1.0 } else { 0.0 };

    let fractions: [f64; 9] = [
        premium,
        kind,
        side,
        against_oi(e.size, e.oi, 1.0),
        against_oi(e.vol, e.oi, c.vol_oi_full),
        flag(Tag::Golden),
        flag(Tag::Repeat),
        short_dated,
        otm,
    ];
    let components: Vec<ScoreComponent> = c
        .weights()
        .into_iter()
        .zip(fractions)
        .map(|((name, max), fraction)| ScoreComponent {
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

/// The event's score, 0–100, at `config`'s weights: the total of
/// [`score_breakdown_with`].
pub fn score(e: &FlowEvent, config: &ScoreConfig) -> u8 {
    score_breakdown_with(e, config).total
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
            let s = score(&e, &ScoreConfig::default());
            assert!(s >= last, "premium {premium}: {s} < {last}");
            assert!(s <= 100);
            last = s;
        }
        let nan = FlowEvent {
            premium: f64::NAN,
            ..sample_event()
        };
        assert!(score(&nan, &ScoreConfig::default()) <= 100);
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
        assert_eq!(score(&best, &ScoreConfig::default()), 100);
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
        assert_eq!(score(&worst, &ScoreConfig::default()), 0);
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
    fn weights_change_the_score_and_are_checked() {
        let e = sample_event();
        let premium_only = ScoreConfig {
            premium: 100.0,
            kind: 0.0,
            aggressor: 0.0,
            size_vs_oi: 0.0,
            vol_vs_oi: 0.0,
            golden: 0.0,
            repeat: 0.0,
            short_dated: 0.0,
            otm: 0.0,
            ..ScoreConfig::default()
        };
        assert_eq!(premium_only.validate(), Ok(()));
        let b = score_breakdown_with(&e, &premium_only);
        let premium = b.components.iter().find(|c| c.name == "premium");
        assert_eq!(premium.map(|c| c.max), Some(100.0));
        assert_eq!(
            b.total,
            premium.map_or(0.0, |c| c.points).round() as u8,
            "only premium counts"
        );
        let bad = |f: fn(&mut ScoreConfig)| {
            let mut c = ScoreConfig::default();
            f(&mut c);
            c.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(bad(|c| c.premium = 40.0).contains("add up to 110"));
        assert!(bad(|c| c.golden = -1.0).contains("score.golden"));
        assert!(bad(|c| c.premium_floor = 0.0).contains("score.premium_floor"));
        assert!(bad(|c| c.dte_zero = 5.0).contains("dte_zero"));
        assert_eq!(ScoreConfig::default().validate(), Ok(()));
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
