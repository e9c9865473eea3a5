//! Flow detection: raw prints in, classified and scored flow events out.
//!
//! This is the pure core of the processor. It does no I/O, spawns nothing and
//! never reads the wall clock, so the same prints always give the same events;
//! the processor wraps it in the loop that reads raw streams and publishes.
//!
//! - [`Detector`] is the entry point: `push` prints with their stream entry
//!   ids, `flush_due` with the feed time, and handle the [`Detected`] results.
//!   Each result names every entry it covers, and [`Detector::oldest_open`]
//!   the first one still held, so the caller acknowledges exactly what has
//!   been reflected in events.
//! - [`sweep`] groups ISO legs on one contract into sweeps and splits.
//! - [`side`] judges fills against the NBBO; [`enrich`] describes an order as
//!   an event; [`iv`] solves Black-Scholes for implied volatility.
//! - [`volume`] and [`repeat`] are the detector's bounded day memory;
//!   [`tags`] applies the judgement tags; [`mod@score`] is the 0–100 score, which
//!   uses only the event's own fields so a client can explain it.
//! - [`config`] holds every threshold.
//!
//! The rules are in `docs/detection.md`; the score formula in `docs/scoring.md`.

pub mod config;
mod detector;
pub mod enrich;
pub mod iv;
pub mod repeat;
pub mod score;
pub mod side;
pub mod sweep;
pub mod tags;
pub mod volume;

pub use config::{ConfigError, DetectionConfig};
pub use detector::{Detected, Detector};
pub use score::{
    score, score_breakdown, score_breakdown_with, ScoreBreakdown, ScoreComponent, ScoreConfig,
    ScoreConfigError, SCORE_VERSION,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
