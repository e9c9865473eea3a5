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

#[cfg(test)]
mod tests {
    use flowtape_core::date::{market_instant_ms, Date};
    use flowtape_core::event::FlowEvent;
    use flowtape_core::protocol::{ErrorCode, ServerMessage};

    use super::super::tests::{key, live_app, render, skin, text};
    use crate::app::replay::ReplayStart;
    use crate::app::testing::{day_report, history_page, sample_events, t0};
    use crate::app::{App, Effect};
    use crate::client::ClientEvent;

    /// 2024-12-18 10:30:00 ET, two days before the app's clock.
    fn start() -> i64 {
        let day = Date::from_ymd(2024, 12, 18).unwrap_or_else(|e| panic!("{e}"));
        market_instant_ms(day, 10, 30)
    }

    /// The sample tape moved to one second after [`start`], a second apart.
    fn that_day() -> Vec<FlowEvent> {
        let shift = start() + 1_000 - t0();
        sample_events()
            .into_iter()
            .map(|mut e| {
                e.ts += shift;
                e.id = format!("{}-0", e.ts - 123);
                e
            })
            .collect()
    }

    /// A replay of [`start`] at 10× with the first page in.
    fn replaying() -> App {
        let mut a = live_app();
        a.side_panel = true;
        a.start_replay(ReplayStart {
            at_ms: start(),
            speed: 10,
        });
        let now = a.now_ms();
        let filter = a.subscribed_filter().to_string();
        let asked = a.on_client(
            ClientEvent::Subscribed {
                filter,
                resumed: false,
            },
            now,
        );
        let Some(Effect::History(r)) = asked else {
            panic!("no page asked for: {asked:?}")
        };
        let id = r.id.unwrap_or_default();
        a.on_client(history_page(&id, that_day(), false, None), now);
        // The live subscription's backfill is over.
        let live = ServerMessage::Status {
            feed: None,
            retention: None,
            notice: None,
            lost: None,
            live: true,
        };
        a.on_client(ClientEvent::Server(Box::new(live)), now);
        a
    }

    #[test]
    fn the_replay_screen_playing_and_paused() {
        let mut a = replaying();
        let s = skin("default", false);
        let now = a.now_ms();
        let day = ServerMessage::Day(day_report(start() + 3_600_000));
        a.on_client(ClientEvent::Server(Box::new(day)), now);
        a.tick(now + 500);
        let playing = text(&render(&mut a, &s, 160, 26));
        assert!(
            playing.contains("REPLAY 2024-12-18 10:30:05 ET ×10 (Esc for live)"),
            "{playing}"
        );
        assert!(playing.contains("Day 2024-12-18"), "{playing}");
        insta::assert_snapshot!("replay_playing", playing);
        a.on_key(key(' '));
        a.tick(now + 3_000);
        let paused = text(&render(&mut a, &s, 160, 26));
        assert!(
            paused.contains("REPLAY 2024-12-18 10:30:05 ET ×10 PAUSED"),
            "{paused}"
        );
        assert_eq!(a.displayed_len(), 4, "nothing more while paused");
        insta::assert_snapshot!("replay_paused", paused);
        // The end of the day: said on the status line, in ASCII too.
        a.on_key(key(' '));
        a.tick(now + 10_000_000);
        let ended = text(&render(&mut a, &skin("default", true), 160, 26));
        assert!(
            ended.contains("REPLAY 2024-12-19 00:00:00 ET x10; end of 2024-12-18"),
            "{ended}"
        );
    }

    #[test]
    fn a_past_day_the_gateway_has_no_totals_for_says_why_in_the_panel() {
        let mut a = replaying();
        let now = a.now_ms();
        let refusal = ServerMessage::Error {
            code: ErrorCode::BadField,
            message: "day: 2024-12-18 is older than the archive keeps (no archive configured)"
                .into(),
            id: None,
        };
        a.on_client(ClientEvent::Server(Box::new(refusal)), now);
        a.tick(now + 500);
        let t = text(&render(&mut a, &skin("default", false), 160, 26));
        assert!(t.contains("Day 2024-12-18"), "{t}");
        assert!(t.contains("2024-12-18 is older than the"), "{t}");
        insta::assert_snapshot!("replay_day_refused", t);
    }
}
