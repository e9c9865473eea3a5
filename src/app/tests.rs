//! Key-driven flows on the real app state.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowtape_core::event::Tag;
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;

use super::testing::{app, app_with, config, event, loss_status, push};
use super::*;

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        app.on_key(key(c));
    }
}

fn syms(app: &App) -> Vec<String> {
    (0..app.displayed_len())
        .filter_map(|i| app.row(i).map(|(_, e)| e.event.sym.clone()))
        .collect()
}

#[test]
fn newest_is_on_top() {
    let app = app();
    assert_eq!(
        syms(&app),
        vec!["META", "AAPL", "AMD", "QQQ", "TSLA", "SPY", "NVDA", "AAPL"]
    );
}

#[test]
fn typing_a_filter_and_applying_it_filters_the_rows() {
    let mut app = app();
    app.on_key(key('/'));
    typed(&mut app, "AAPL premium>=100k");
    assert!(matches!(&app.mode, Mode::Filter(l) if l.error.is_none()));
    let effect = app.on_key(code(KeyCode::Enter));
    assert_eq!(effect, vec![Effect::Subscribe("AAPL premium>=100k".into())]);
    assert_eq!(app.mode, Mode::Tape);
    assert_eq!(syms(&app), vec!["AAPL"]);
    assert_eq!(app.row(0).map(|(_, e)| e.event.premium), Some(310_000.0));
    assert_eq!(app.filter_text(), "AAPL premium>=100k");
}

#[test]
fn an_invalid_filter_shows_its_error_and_is_not_applied() {
    let mut app = app();
    app.on_key(key('/'));
    typed(&mut app, "AAPL premum>=1m");
    let Mode::Filter(line) = &app.mode else {
        panic!("filter line closed")
    };
    let (column, message) = line.error.clone().unwrap_or_default();
    assert_eq!(column, 6);
    assert!(
        message.contains("premum") && message.contains("premium"),
        "{message}"
    );
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![],
        "Enter does not apply a bad filter"
    );
    assert!(matches!(app.mode, Mode::Filter(_)));
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Tape);
    assert_eq!(app.displayed_len(), 8, "the old filter is kept");
}

#[test]
fn filter_history_and_presets_come_back_with_up() {
    let mut app = app();
    app.on_key(key('/'));
    typed(&mut app, "TSLA");
    app.on_key(code(KeyCode::Enter));
    app.on_key(key('/'));
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    typed(&mut app, "sw");
    app.on_key(code(KeyCode::Up));
    assert!(matches!(&app.mode, Mode::Filter(l) if l.editor.text() == "TSLA"));
    app.on_key(code(KeyCode::Up));
    assert!(matches!(&app.mode, Mode::Filter(l) if l.editor.text() == "premium>=1m"));
    app.on_key(code(KeyCode::Down));
    app.on_key(code(KeyCode::Down));
    assert!(
        matches!(&app.mode, Mode::Filter(l) if l.editor.text() == "sw"),
        "the draft comes back"
    );
}

#[test]
fn pause_freezes_and_counts_then_resumes_live() {
    let mut app = app();
    app.on_key(key(' '));
    assert!(app.is_paused());
    push(&mut app, event("ZZZ", 20));
    push(&mut app, event("YYY", 21));
    assert_eq!(app.new_while_paused(), 2);
    assert_eq!(
        app.row(0).map(|(_, e)| e.event.sym.as_str()),
        Some("META"),
        "frozen"
    );
    app.on_key(key(' '));
    assert!(!app.is_paused());
    assert_eq!(app.new_while_paused(), 0);
    assert_eq!(app.row(0).map(|(_, e)| e.event.sym.as_str()), Some("YYY"));
    assert_eq!(app.selected(), 0);
}

#[test]
fn selection_stays_on_its_event_while_new_ones_arrive() {
    let mut app = app();
    app.on_key(key('j'));
    app.on_key(key('j'));
    let before = app.selected_entry().map(|(s, _)| s);
    push(&mut app, event("NEW", 30));
    assert_eq!(app.selected_entry().map(|(s, _)| s), before);
    app.on_key(key('g'));
    push(&mut app, event("NEWER", 31));
    assert_eq!(
        app.selected_entry().map(|(_, e)| e.event.sym.as_str()),
        Some("NEWER"),
        "at the top it follows live"
    );
    app.on_key(key('G'));
    assert_eq!(app.selected(), app.displayed_len() - 1);
}

#[test]
fn quick_toggles_narrow_and_widen() {
    let mut app = app();
    app.on_key(key('p'));
    assert!(app.filtered_events().all(|e| e.right == Right::Put));
    assert_eq!(app.toggles().labels(), vec!["puts"]);
    app.on_key(key('c'));
    assert!(app.filtered_events().all(|e| e.right == Right::Call));
    app.on_key(key('s'));
    assert_eq!(syms(&app), vec!["AAPL", "NVDA"]);
    app.on_key(key('u'));
    assert_eq!(syms(&app), vec!["NVDA"]);
    assert!(app.filtered_events().all(|e| e.tags.contains(Tag::Unusual)));
    for c in ['c', 's', 'u'] {
        app.on_key(key(c));
    }
    assert_eq!(app.displayed_len(), 8);
}

#[test]
fn adding_a_ticker_to_a_watchlist_narrows_the_tape_and_saves() {
    let mut app = app();
    app.on_key(code(KeyCode::Tab));
    assert_eq!(
        app.active_watchlist().map(|w| w.name.as_str()),
        Some("mega")
    );
    assert_eq!(syms(&app), vec!["AAPL", "NVDA", "AAPL"]);
    app.on_key(key('w'));
    typed(&mut app, "tsla");
    app.on_key(code(KeyCode::Enter));
    let effect = app.on_key(code(KeyCode::Esc));
    let want = vec!["AAPL".to_string(), "NVDA".to_string(), "TSLA".to_string()];
    match &effect[..] {
        [Effect::SaveWatchlists { lists, .. }, Effect::Subscribe(f)] => {
            assert_eq!(lists[0].tickers, want);
            assert_eq!(f, "AAPL NVDA TSLA", "the gateway gets the new list");
        }
        other => panic!("not saved: {other:?}"),
    }
    assert_eq!(syms(&app), vec!["AAPL", "TSLA", "NVDA", "AAPL"]);
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.active_watchlist(), None);
    assert_eq!(app.displayed_len(), 8);
}

#[test]
fn watchlist_editor_removes_and_rejects_junk() {
    let mut app = app();
    app.on_key(key('w'));
    app.on_key(code(KeyCode::Delete));
    typed(&mut app, "$$$");
    app.on_key(code(KeyCode::Enter));
    assert!(app.message.as_ref().is_some_and(|m| m.error));
    assert!(matches!(
        &app.on_key(code(KeyCode::Esc))[..],
        [Effect::SaveWatchlists { lists, .. }] if *lists == app.watchlists
    ));
    assert_eq!(app.watchlists[0].tickers, vec!["NVDA".to_string()]);
}

#[test]
fn alerts_highlight_and_ring_once_live() {
    let mut cfg = config();
    cfg.alerts = vec![crate::config::AlertRule {
        name: "whale".into(),
        expr: "premium>=1m".into(),
        filter: Filter::parse("premium>=1m").unwrap_or_default(),
        bell: true,
    }];
    let mut app = app_with(cfg);
    assert!(app
        .row(5)
        .is_some_and(|(_, e)| e.alert && e.event.sym == "SPY"));
    assert!(app.row(0).is_some_and(|(_, e)| !e.alert));
    let mut big = event("BIG", 40);
    big.premium = 2e6;
    assert!(push(&mut app, big.clone()), "a live alert rings");
    app.replaying = true;
    big.id = format!("{}-1", super::testing::t0());
    assert!(!push(&mut app, big), "a replayed one does not");
}

#[test]
fn connection_states_follow_the_client() {
    let mut app = app();
    let now = app.now_ms();
    let connecting = |s: &str| ClientEvent::Connecting { server: s.into() };
    let lost = |s: &str, r: &str| ClientEvent::Disconnected {
        server: s.into(),
        reason: r.into(),
    };
    app.on_client(lost("ws://a", "connection reset"), now + 1_000);
    app.on_client(connecting("ws://b"), now + 2_000);
    let reconnecting = |server: &str, reason: &str| Conn::Reconnecting {
        server: server.into(),
        since_ms: now + 1_000,
        reason: reason.into(),
    };
    assert_eq!(app.conn, reconnecting("ws://b", "connection reset"));
    app.on_client(lost("ws://b", "refused"), now + 5_000);
    app.on_client(connecting("ws://a"), now + 6_000);
    assert_eq!(
        app.conn,
        reconnecting("ws://a", "refused"),
        "down since the first loss"
    );
    app.on_client(
        ClientEvent::Connected {
            server: "ws://a".into(),
        },
        now + 7_000,
    );
    assert_eq!(
        app.conn,
        Conn::Live {
            server: "ws://a".into()
        }
    );
    let error = ServerMessage::Error {
        code: flowtape_core::protocol::ErrorCode::BadFilter,
        message: "bad filter".into(),
        id: None,
    };
    app.on_client(ClientEvent::Server(Box::new(error)), now + 8_000);
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.error && m.text.contains("bad filter")));
    app.on_client(
        ClientEvent::Failed {
            reason: "gave up".into(),
        },
        now + 9_000,
    );
    assert_eq!(
        app.conn,
        Conn::Offline {
            reason: "gave up".into()
        }
    );
}

#[test]
fn a_loss_of_history_stays_until_dismissed_or_old() {
    let mut app = app();
    let now = app.now_ms();
    app.on_client(loss_status(now - 5_000, Some(now - 2_000)), now);
    let loss = app.loss.map(|l| (l.range.after.ms, l.at_ms));
    assert_eq!(loss, Some(((now - 5_000) as u64, now)));
    assert!(app.message.is_none(), "shown once, on the status line");
    // It outlives an ordinary notice, then goes.
    app.tick(now + INFO_TTL_MS);
    assert!(app.loss.is_some());
    assert!(app.tick(now + LOSS_TTL_MS));
    assert!(app.loss.is_none());
    // Esc dismisses it.
    app.on_client(loss_status(now, None), now + LOSS_TTL_MS);
    assert!(app.loss.is_some());
    app.on_key(code(KeyCode::Esc));
    assert!(app.loss.is_none());
}

#[test]
fn the_ring_keeps_the_last_n() {
    let mut cfg = config();
    cfg.buffer_size = 5;
    let app = app_with(cfg);
    assert_eq!(app.tape().len(), 5);
    assert_eq!(syms(&app), vec!["META", "AAPL", "AMD", "QQQ", "TSLA"]);
}

#[test]
fn refiltering_100k_events_is_fast_enough_to_feel_instant() {
    // Not a timing assertion (those flake on shared machines): this checks
    // that re-filtering a full 100k buffer does the right thing; the time is
    // printed for `cargo test -- --nocapture`.
    let mut cfg = config();
    cfg.buffer_size = 100_000;
    let mut app = App::new(cfg, 0);
    let base = super::testing::sample_events();
    for i in 0..100_000 {
        let mut e = base[i % base.len()].clone();
        e.ts += i as i64;
        app.push(Cursor::new(i as u64 + 1, 0), e);
    }
    let start = std::time::Instant::now();
    let f = Filter::parse("sweep premium>=100k").unwrap_or_default();
    app.apply_filter("sweep premium>=100k".into(), f);
    eprintln!("re-filtered 100k events in {:?}", start.elapsed());
    assert_eq!(app.displayed_len(), 25_000);
}
