//! The status segment of a replay: the replayed market time and speed
//! (`REPLAY 2026-11-20 10:31:05 ET ×10`), then whether it is paused, an
//! idle gap just skipped, or where playback stopped (the day's end, the
//! live edge).

use flowtape_core::clock::format_ny;
use ratatui::style::Modifier;
use ratatui::text::Span;

use super::Skin;
use crate::app::replay::Stop;
use crate::app::App;
use crate::format;

/// The segment, while replaying.
pub fn status(app: &App, skin: &Skin) -> Option<Span<'static>> {
    let replay = app.replay()?;
    let at = app.replay_time()?;
    let mut text = format!(
        "REPLAY {} {}{}",
        format_ny(at),
        skin.glyphs.times,
        replay.clock.speed()
    );
    if replay.clock.is_paused() {
        text.push_str(" PAUSED");
    }
    match replay.stop {
        Some(Stop::DayEnd) => text.push_str(&format!("; end of {}", replay.date)),
        Some(Stop::LiveEdge) => text.push_str("; caught up with live"),
        None => {
            if let Some(gap) = app.replay_skipped() {
                text.push_str(&format!("; skipped {} idle", format::age(gap)));
            }
        }
    }
    text.push_str(" (Esc for live)");
    Some(Span::styled(
        text,
        skin.theme.warn().add_modifier(Modifier::REVERSED),
    ))
}
