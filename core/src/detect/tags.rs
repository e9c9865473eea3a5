//! Judgement tags on a described event.
//!
//! Each tag is a plain rule on the event's own fields (plus, for `repeat`,
//! the number of recent hits the detector counted). Rules that need open
//! interest are not applied without it: a missing OI never becomes a tag.
//! Thresholds are in [`DetectionConfig`]; `docs/detection.md` gives the reasons.

use crate::event::{FlowEvent, Kind, Tag, Tags};

use super::config::DetectionConfig;

/// The tags an event earns.
///
/// - `unusual`: OI known, day volume above `unusual_min_vol_oi` times it,
///   day volume at least `unusual_min_volume` and premium at least
///   `unusual_min_premium`.
/// - `opening`: OI known and the event's size above `opening_min_size_oi`
///   times it (by default above the OI itself, so some of it must open new
///   positions).
/// - `golden`: a sweep of at least `golden_min_premium`, at or above the ask,
///   more than `golden_min_otm` percent out of the money.
/// - `repeat`: `repeat_hits` (this event included) reached `repeat_min_hits`.
pub fn tags_for(event: &FlowEvent, config: &DetectionConfig, repeat_hits: u32) -> Tags {
    let mut tags = Tags::EMPTY;
    if let Some(oi) = event.oi {
        let oi_times = |ratio: f64| oi as f64 * ratio;
        if event.vol as f64 > oi_times(config.unusual_min_vol_oi)
            && event.vol >= config.unusual_min_volume
            && event.premium >= config.unusual_min_premium
        {
            tags.insert(Tag::Unusual);
        }
        if event.size as f64 > oi_times(config.opening_min_size_oi) {
            tags.insert(Tag::Opening);
        }
    }
    let golden = event.kind == Kind::Sweep
        && event.premium >= config.golden_min_premium
        && event.side.is_ask()
        && event.otm.is_some_and(|otm| otm > config.golden_min_otm);
    if golden {
        tags.insert(Tag::Golden);
    }
    if repeat_hits >= config.repeat_min_hits {
        tags.insert(Tag::Repeat);
    }
    tags
}
