//! Every threshold flow detection uses, in one place.
//!
//! [`DetectionConfig`] has documented defaults (`docs/detection.md` explains
//! each one) and deserializes from a partial table, so an operator's TOML file
//! only names what it changes; unknown keys are rejected so a typo is an error,
//! not a silently ignored setting. [`DetectionConfig::validate`] checks the
//! values that would otherwise make detection meaningless.

use serde::{Deserialize, Serialize};

use super::score::{ScoreConfig, ScoreConfigError};

/// Longest sweep window accepted. Longer windows hold every sweep back that
/// long before it is published, which defeats the point of a live tape.
pub const MAX_SWEEP_WINDOW_MS: u64 = 1_000;

/// Flow detection thresholds. See `docs/detection.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// ISO prints on one contract whose feed timestamps all fall within this
    /// many milliseconds of each other form one order (a sweep or split).
    pub sweep_window_ms: u64,
    /// A lone print of at least this many contracts is a block.
    pub block_min_size: u64,
    /// A lone print of at least this premium (USD) is a block.
    pub block_min_premium: f64,
    /// A fill within this fraction of the spread from the ask counts as at the
    /// ask (A), and from the bid as at the bid (B).
    pub side_near_fraction: f64,
    /// Prices within this many dollars of the bid or ask are equal to it: half
    /// of the smallest option tick ($0.01).
    pub side_tolerance: f64,
    /// Continuously compounded risk-free rate for implied volatility.
    pub risk_free_rate: f64,
    /// `unusual` needs the day's volume above this many times the open interest…
    pub unusual_min_vol_oi: f64,
    /// …at least this day volume (contracts)…
    pub unusual_min_volume: u64,
    /// …and at least this event premium (USD).
    pub unusual_min_premium: f64,
    /// `opening` when the event's size is above this many times the open interest.
    pub opening_min_size_oi: f64,
    /// `golden` needs a sweep of at least this premium (USD)…
    pub golden_min_premium: f64,
    /// …strictly more than this far out of the money (percent).
    pub golden_min_otm: f64,
    /// `repeat` when this many directional events (this one included) hit one
    /// contract in the same direction…
    pub repeat_min_hits: u32,
    /// …within this many milliseconds of feed time.
    pub repeat_window_ms: u64,
    /// The score's weights and scales.
    pub score: ScoreConfig,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            sweep_window_ms: 20,
            block_min_size: 1_000,
            block_min_premium: 500_000.0,
            side_near_fraction: 0.2,
            side_tolerance: 0.005,
            risk_free_rate: 0.04,
            unusual_min_vol_oi: 1.0,
            unusual_min_volume: 100,
            unusual_min_premium: 25_000.0,
            opening_min_size_oi: 1.0,
            golden_min_premium: 1_000_000.0,
            golden_min_otm: 0.0,
            repeat_min_hits: 3,
            repeat_window_ms: 300_000,
            score: ScoreConfig::default(),
        }
    }
}

/// Why a [`DetectionConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("sweep_window_ms is {0}; it must be at most {MAX_SWEEP_WINDOW_MS}")]
    SweepWindow(u64),
    #[error("side_near_fraction is {0}; it must be at least 0 and below 0.5")]
    NearFraction(f64),
    #[error("{name} is {value}; it must be a finite number, zero or more")]
    NotNonNegative { name: &'static str, value: f64 },
    #[error("risk_free_rate is {0}; it must be a finite number between -1 and 1")]
    Rate(f64),
    #[error("repeat_min_hits is {0}; it must be at least 2 (one event is not a repeat)")]
    RepeatHits(u32),
    #[error(transparent)]
    Score(#[from] ScoreConfigError),
}

impl ConfigError {
    /// The key at fault, relative to the detection table (`score.golden`).
    pub fn key(&self) -> String {
        match self {
            ConfigError::SweepWindow(_) => "sweep_window_ms".into(),
            ConfigError::NearFraction(_) => "side_near_fraction".into(),
            ConfigError::NotNonNegative { name, .. } => (*name).into(),
            ConfigError::Rate(_) => "risk_free_rate".into(),
            ConfigError::RepeatHits(_) => "repeat_min_hits".into(),
            ConfigError::Score(e) => e.key().map_or("score".into(), |k| format!("score.{k}")),
        }
    }
}

impl DetectionConfig {
    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sweep_window_ms > MAX_SWEEP_WINDOW_MS {
            return Err(ConfigError::SweepWindow(self.sweep_window_ms));
        }
        if !(0.0..0.5).contains(&self.side_near_fraction) {
            return Err(ConfigError::NearFraction(self.side_near_fraction));
        }
        let amounts = [
            ("block_min_premium", self.block_min_premium),
            ("side_tolerance", self.side_tolerance),
            ("unusual_min_vol_oi", self.unusual_min_vol_oi),
            ("unusual_min_premium", self.unusual_min_premium),
            ("opening_min_size_oi", self.opening_min_size_oi),
            ("golden_min_premium", self.golden_min_premium),
            ("golden_min_otm", self.golden_min_otm),
        ];
        for (name, value) in amounts {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ConfigError::NotNonNegative { name, value });
            }
        }
        if !(self.risk_free_rate.is_finite() && self.risk_free_rate.abs() < 1.0) {
            return Err(ConfigError::Rate(self.risk_free_rate));
        }
        if self.repeat_min_hits < 2 {
            return Err(ConfigError::RepeatHits(self.repeat_min_hits));
        }
        self.score.validate()?;
        Ok(())
    }

    /// The sweep window in nanoseconds, the unit of print timestamps.
    pub(crate) fn sweep_window_ns(&self) -> i64 {
        ms_to_ns(self.sweep_window_ms)
    }

    /// The repeat window in milliseconds, the unit of event timestamps.
    pub(crate) fn repeat_window(&self) -> i64 {
        i64::try_from(self.repeat_window_ms).unwrap_or(i64::MAX)
    }
}

fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DetectionConfig::default().validate(), Ok(()));
        assert_eq!(DetectionConfig::default().sweep_window_ns(), 20_000_000);
    }

    #[test]
    fn a_partial_table_keeps_the_other_defaults() {
        let json = r#"{"sweep_window_ms": 35, "block_min_size": 500}"#;
        let c: DetectionConfig = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.sweep_window_ms, 35);
        assert_eq!(c.block_min_size, 500);
        assert_eq!(
            c.repeat_min_hits,
            DetectionConfig::default().repeat_min_hits
        );
        assert!(serde_json::from_str::<DetectionConfig>(r#"{"sweep_windw_ms": 35}"#).is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |f: fn(&mut DetectionConfig)| {
            let mut c = DetectionConfig::default();
            f(&mut c);
            c.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(bad(|c| c.sweep_window_ms = 5_000).contains("sweep_window_ms"));
        assert!(bad(|c| c.side_near_fraction = 0.5).contains("side_near_fraction"));
        assert!(bad(|c| c.block_min_premium = f64::NAN).contains("block_min_premium"));
        assert!(bad(|c| c.golden_min_otm = -1.0).contains("golden_min_otm"));
        assert!(bad(|c| c.risk_free_rate = 2.0).contains("risk_free_rate"));
        assert!(bad(|c| c.repeat_min_hits = 1).contains("repeat_min_hits"));
        assert!(bad(|c| c.opening_min_size_oi = -1.0).contains("opening_min_size_oi"));
        assert!(bad(|c| c.score.kind = 20.0).contains("add up to 105"));
    }
}
