use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowtape_core::clock::position_before;
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_core::event::FlowEvent;
use flowtape_core::protocol::{ErrorCode, HistoryRequest, ServerMessage};

use super::*;
use crate::app::testing::{app, event, history_page, t0};
use crate::client::ClientEvent;

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

/// The one history request among `effects`.
fn request(effects: impl IntoIterator<Item = Effect>) -> HistoryRequest {
    match effects.into_iter().collect::<Vec<_>>().as_slice() {
        [Effect::History(r)] => r.clone(),
        other => panic!("not one history request: {other:?}"),
    }
}

fn id(r: &HistoryRequest) -> String {
    r.id.clone().unwrap_or_default()
}

/// The fresh subscription that starts the replay's reading.
fn subscribed(a: &mut App) -> HistoryRequest {
    let now = a.now_ms();
    let filter = a.subscribed_filter().to_string();
    request(a.on_client(
        ClientEvent::Subscribed {
            filter,
            resumed: false,
        },
        now,
    ))
}

fn page(a: &mut App, r: &HistoryRequest, events: Vec<FlowEvent>, more: bool) -> Option<Effect> {
    let now = a.now_ms();
    let next = events.last().map(crate::app::testing::cursor_of);
    a.on_client(history_page(&id(r), events, more, next), now)
}

/// An event at `ts` (its cursor at the same ms).
fn at(sym: &str, ts: i64) -> FlowEvent {
    let mut e = event(sym, 0);
    e.ts = ts;
    e.id = format!("{ts}-0");
    e
}

fn syms(a: &App) -> Vec<String> {
    (0..a.displayed_len())
        .filter_map(|i| a.row(i).map(|(_, e)| e.event.sym.clone()))
        .collect()
}

#[test]
fn events_play_when_the_replay_clock_reaches_their_time() {
    let mut a = app();
    let now = a.now_ms();
    let start = t0() - 4_000;
    a.start_replay(ReplayStart {
        at_ms: start,
        speed: 10,
    });
    assert_eq!(a.displayed_len(), 0, "the replay's own tape");
    let r = subscribed(&mut a);
    assert_eq!(r.after, Some(position_before(start)));
    assert_eq!(
        r.filter.as_deref(),
        Some(a.subscribed_filter()),
        "the scope"
    );
    let events: Vec<FlowEvent> = (-3..=3).map(|i| event(&format!("E{}", i + 3), i)).collect();
    // Fewer than PREFETCH_BELOW wait: the next page is asked for at once.
    let next = request(page(&mut a, &r, events, true));
    assert_eq!(next.after.map(|c| c.ms), Some((t0() + 3_000) as u64));
    assert_eq!(a.displayed_len(), 0, "nothing due yet");
    // E0 is at start + 1.123 s of market time: 113 ms of wall time at 10×.
    assert_eq!(a.replay_wake_in_ms(), Some(113));
    a.tick(now + 112);
    assert_eq!(a.displayed_len(), 0);
    a.tick(now + 113);
    assert_eq!(syms(&a), ["E0"]);
    // 0.7 s later: 7 s of market time, up to E5 (at t0 + 2.123 s).
    a.tick(now + 700);
    assert_eq!(syms(&a), ["E5", "E4", "E3", "E2", "E1", "E0"]);
    assert_eq!(a.replay_time(), Some(start + 7_000));
    // Live events do not enter the replay's tape.
    crate::app::testing::push(&mut a, event("LIVE", 8));
    assert_eq!(a.displayed_len(), 6);
    // Esc: back to live.
    a.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(a.replay().is_none());
    assert_eq!(syms(&a).first().map(String::as_str), Some("LIVE"));
}

#[test]
fn pause_speed_and_seek_keys_drive_the_clock() {
    let mut a = app();
    let now = a.now_ms();
    let start = t0() - 60_000;
    a.start_replay(ReplayStart {
        at_ms: start,
        speed: 10,
    });
    let r = subscribed(&mut a);
    page(
        &mut a,
        &r,
        vec![at("A", start + 5_000), at("B", start + 20_000)],
        false,
    );
    a.on_key(key(' '));
    a.tick(now + 10_000);
    assert!(a.replay().is_some_and(|r| r.clock.is_paused()));
    assert_eq!(a.replay_time(), Some(start), "paused from the start");
    assert_eq!(a.displayed_len(), 0);
    assert_eq!(a.replay_wake_in_ms(), None, "nothing to wake for");
    a.on_key(key(' '));
    a.on_key(key('>'));
    assert_eq!(a.replay().map(|r| r.clock.speed()), Some(30));
    a.tick(now + 10_500);
    assert_eq!(a.replay_time(), Some(start + 15_000), "30× from the resume");
    assert_eq!(syms(&a), ["A"]);
    a.on_key(key('<'));
    a.on_key(key('<'));
    assert_eq!(a.replay().map(|r| r.clock.speed()), Some(5));
    // Seek back 5 min: reading starts afresh from there.
    let back = request(a.on_key(key('[')));
    assert_eq!(back.after, Some(position_before(start + 15_000 - SEEK_MS)));
    assert_eq!(a.displayed_len(), 0);
    // Forward again; then past now: kept at now.
    let ahead = request(a.on_key(key(']')));
    assert_eq!(ahead.after, Some(position_before(start + 15_000)));
    let ahead = request(a.on_key(key(']')));
    assert_eq!(ahead.after, Some(position_before(now + 10_500)));
    // `t` seeks within the replayed day.
    a.on_key(key('t'));
    for c in "10:00".chars() {
        a.on_key(key(c));
    }
    let sought = request(a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    let ten = market_instant_ms(
        Date::from_ymd(2024, 12, 20).unwrap_or_else(|e| panic!("{e}")),
        10,
        0,
    );
    assert_eq!(sought.after, Some(position_before(ten)));
    assert_eq!(a.replay_time(), Some(ten));
}

#[test]
fn idle_gaps_are_skipped_and_said() {
    let mut a = app();
    let now = a.now_ms();
    let start = t0() - 3_600_000;
    a.start_replay(ReplayStart {
        at_ms: start,
        speed: 10,
    });
    let r = subscribed(&mut a);
    page(&mut a, &r, vec![at("LATE", start + 1_800_000)], true);
    a.tick(now);
    assert_eq!(a.replay_time(), Some(start + 1_800_000), "straight to it");
    assert_eq!(syms(&a), ["LATE"]);
    assert_eq!(a.replay_skipped(), Some(1_800_000));
    a.tick(now + INFO_TTL_MS + 1);
    assert_eq!(a.replay_skipped(), None, "said for a while");
}

#[test]
fn playback_stops_at_the_end_of_the_day() {
    let mut a = app();
    let now = a.now_ms();
    let day = Date::from_ymd(2024, 12, 19).unwrap_or_else(|e| panic!("{e}"));
    let midnight = market_instant_ms(day.add_days(1), 0, 0);
    a.start_replay(ReplayStart {
        at_ms: midnight - 10_000,
        speed: 10,
    });
    assert_eq!(a.replay().map(|r| r.date), Some(day));
    let r = subscribed(&mut a);
    let more = page(
        &mut a,
        &r,
        vec![
            at("LAST", midnight - 5_000),
            at("NEXTDAY", midnight + 5_000),
        ],
        true,
    );
    assert_eq!(more, None, "what is queued reaches past the day's end");
    a.tick(now + 2_000);
    assert_eq!(syms(&a), ["LAST"]);
    assert_eq!(a.replay().and_then(|r| r.stop), Some(Stop::DayEnd));
    assert_eq!(a.replay_time(), Some(midnight));
}

#[test]
fn playback_stops_at_the_live_edge() {
    let mut a = app();
    let now = a.now_ms();
    a.start_replay(ReplayStart {
        at_ms: now - 2_000,
        speed: 10,
    });
    let r = subscribed(&mut a);
    assert_eq!(page(&mut a, &r, vec![at("NEW", now - 1_000)], false), None);
    a.tick(now + 300);
    assert_eq!(syms(&a), ["NEW"]);
    assert_eq!(a.replay().and_then(|r| r.stop), Some(Stop::LiveEdge));
    assert_eq!(a.replay_time(), Some(now + 300), "never past now");
}

#[test]
fn a_new_scope_reads_on_from_the_last_event_played_with_its_filter() {
    let mut a = app();
    let now = a.now_ms();
    a.start_replay(ReplayStart {
        at_ms: t0() - 4_000,
        speed: 10,
    });
    let r = subscribed(&mut a);
    let events: Vec<FlowEvent> = (-3..=3).map(|i| event("AAPL", i)).collect();
    page(&mut a, &r, events, true);
    a.tick(now + 500);
    let played = a.replay().and_then(|r| r.tape.newest_cursor());
    assert!(matches!(
        a.on_key(key('p')).as_slice(),
        [Effect::Subscribe(_)]
    ));
    assert_eq!(a.displayed_len(), 0, "calls do not pass puts only");
    let r = subscribed(&mut a);
    assert_eq!(r.after, played);
    assert_eq!(r.filter.as_deref(), Some(a.subscribed_filter()));
    assert!(
        a.subscribed_filter().contains("put"),
        "{}",
        a.subscribed_filter()
    );
}

#[test]
fn a_past_day_replayed_asks_for_that_days_totals_and_shows_a_refusal() {
    let mut a = app();
    assert_eq!(a.day_asked(), None, "live: today's");
    let day = Date::from_ymd(2024, 12, 18).unwrap_or_else(|e| panic!("{e}"));
    a.start_replay(ReplayStart {
        at_ms: market_instant_ms(day, 9, 30),
        speed: 10,
    });
    assert_eq!(a.day_asked(), Some(day));
    let now = a.now_ms();
    let refusal = ServerMessage::Error {
        code: ErrorCode::BadField,
        message: "day: 2024-12-18 is not archived".into(),
        id: None,
    };
    a.on_client(ClientEvent::Server(Box::new(refusal)), now);
    assert_eq!(a.day_error(), Some("day: 2024-12-18 is not archived"));
    assert!(a.message.is_none(), "in the panel, not the status line");
    a.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert_eq!(a.day_asked(), None);
    assert_eq!(a.day_error(), None);
    // Time travel to another day asks for that day's too.
    a.on_key(key('t'));
    for c in "2024-12-19 15:00".chars() {
        a.on_key(key(c));
    }
    request(a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert_eq!(a.day_asked(), Some(day.add_days(1)));
}
