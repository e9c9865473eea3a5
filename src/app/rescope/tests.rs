//! Scope changes: applied at once to the buffer, sent to the gateway as one
//! filter with a backfill, and the backfill merged in by cursor.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Kind};

use super::super::scope::View;
use super::super::testing::{app, app_with, backfill, config, event, push, sample_events};
use super::super::{App, Effect};

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn tab() -> KeyEvent {
    KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)
}

fn syms(app: &App) -> Vec<String> {
    (0..app.displayed_len())
        .filter_map(|i| app.row(i).map(|(_, e)| e.event.sym.clone()))
        .collect()
}

fn cursors(app: &App) -> Vec<Cursor> {
    (0..app.displayed_len())
        .filter_map(|i| app.row(i).map(|(c, _)| c))
        .collect()
}

/// An event `i` seconds before [`t0`] (older than the sample tape).
fn older(sym: &str, i: i64) -> FlowEvent {
    event(sym, -i)
}

#[test]
fn a_watchlist_switch_shows_the_buffer_at_once_then_fills_from_the_backfill() {
    let mut app = app();
    let effects = app.on_key(tab());
    assert_eq!(effects, vec![Effect::Subscribe("AAPL NVDA".into())]);
    assert_eq!(app.subscribed_filter(), "AAPL NVDA");
    assert_eq!(syms(&app), vec!["AAPL", "NVDA", "AAPL"], "at once, locally");
    // The backfill overlaps what is held and goes back further.
    let mut fill = vec![older("NVDA", 30), older("AAPL", 20), older("AAPL", 10)];
    fill.extend(
        sample_events()
            .into_iter()
            .filter(|e| e.sym == "AAPL" || e.sym == "NVDA"),
    );
    backfill(&mut app, "AAPL NVDA", fill);
    assert_eq!(
        syms(&app),
        vec!["AAPL", "NVDA", "AAPL", "AAPL", "AAPL", "NVDA"],
        "no duplicates, in stream order"
    );
    let c = cursors(&app);
    assert!(c.windows(2).all(|w| w[0] > w[1]), "newest first: {c:?}");
    assert!(!app.is_replaying());
}

#[test]
fn switching_back_is_instant_and_drops_what_may_have_holes() {
    let mut app = app();
    app.on_key(tab());
    backfill(
        &mut app,
        "AAPL NVDA",
        vec![older("NVDA", 30), older("AAPL", 20)],
    );
    // Back to every ticker: the buffer is shown at once ...
    app.on_key(tab());
    assert_eq!(app.active_watchlist(), None);
    assert_eq!(app.subscribed_filter(), "");
    assert_eq!(app.displayed_len(), 10);
    // ... and the backfill's first event is the floor: the older events,
    // from the narrower scope, are no longer shown.
    backfill(&mut app, "", sample_events()[3..].to_vec());
    assert_eq!(
        syms(&app),
        vec!["META", "AAPL", "AMD", "QQQ", "TSLA"],
        "from the backfill's oldest on"
    );
}

#[test]
fn an_empty_backfill_leaves_nothing_of_the_old_buffer() {
    let mut app = app();
    app.on_key(key('/'));
    for c in "ZZZ".chars() {
        app.on_key(key(c));
    }
    let effects = app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(effects, vec![Effect::Subscribe("ZZZ".into())]);
    push(&mut app, event("ZZZ", -50));
    assert_eq!(app.displayed_len(), 1);
    backfill(&mut app, "ZZZ", Vec::new());
    assert_eq!(app.displayed_len(), 0);
    push(&mut app, event("ZZZ", 50));
    assert_eq!(syms(&app), vec!["ZZZ"], "live events come in as usual");
}

#[test]
fn a_stale_subscription_does_not_set_the_floor() {
    let mut app = app();
    app.on_key(key('c'));
    app.on_key(key('p'));
    // The answer to the first change arrives after the second was asked for.
    backfill(&mut app, "calls", vec![event("AMD", 5)]);
    assert_eq!(
        syms(&app),
        vec!["AMD", "QQQ", "SPY"],
        "puts only, nothing hidden"
    );
}

#[test]
fn the_selected_event_stays_selected_across_scope_changes_and_backfills() {
    let mut app = app();
    for _ in 0..4 {
        app.on_key(key('j'));
    }
    let selected = |app: &App| app.selected_entry().map(|(_, e)| e.event.sym.clone());
    assert_eq!(selected(&app).as_deref(), Some("TSLA"));
    app.on_key(key('c'));
    assert_eq!(selected(&app).as_deref(), Some("TSLA"), "still shown, kept");
    backfill(
        &mut app,
        "calls",
        vec![older("MSFT", 9), event("TSLA", 3), event("META", 7)],
    );
    assert_eq!(selected(&app).as_deref(), Some("TSLA"));
    app.on_key(key('p'));
    assert_eq!(app.selected(), 0, "gone from view: back to the top");
}

#[test]
fn the_view_key_switches_between_notable_flow_and_all_prints() {
    let mut cfg = config();
    cfg.view = View::Notable;
    let mut app = app_with(cfg);
    let notable = app.subscribed_filter().to_string();
    assert!(notable.contains("sweep") && notable.contains("premium>=100k"));
    assert!(!syms(&app).contains(&"AMD".to_string()), "a $9.5k single");
    let effects = app.on_key(key('v'));
    assert_eq!(app.view(), View::All);
    assert_eq!(effects, vec![Effect::Subscribe(String::new())]);
    assert_eq!(app.displayed_len(), 8);
    let effects = app.on_key(key('v'));
    assert_eq!(effects, vec![Effect::Subscribe(notable)]);
}

#[test]
fn drill_down_narrows_to_the_ticker_and_the_contract_and_back() {
    let mut app = app();
    // The older AAPL: its own contract, not the sweep's.
    for _ in 0..7 {
        app.on_key(key('j'));
    }
    let effects = app.on_key(key('f'));
    assert_eq!(effects, vec![Effect::Subscribe("AAPL".into())]);
    assert_eq!(syms(&app), vec!["AAPL", "AAPL"]);
    assert_eq!(app.focus().label(), Some("AAPL"));
    let effects = app.on_key(key('F'));
    assert_eq!(
        effects,
        vec![Effect::Subscribe("AAPL occ:AAPL241227C00190000".into())]
    );
    assert_eq!(app.displayed_len(), 1);
    assert_eq!(app.focus().label(), Some("AAPL241227C00190000"));
    // The same keys go back, one step each.
    app.on_key(key('F'));
    assert_eq!(app.subscribed_filter(), "AAPL");
    app.on_key(key('f'));
    assert_eq!(app.subscribed_filter(), "");
    assert_eq!(app.displayed_len(), 8);
}

#[test]
fn a_row_without_a_valid_contract_is_not_narrowed_to() {
    let mut app = app();
    let mut odd = event("ODD", 20);
    odd.occ = "ODD C 5".into();
    push(&mut app, odd);
    assert_eq!(app.on_key(key('F')), vec![]);
    assert!(app.message.as_ref().is_some_and(|m| m.error));
    assert_eq!(app.displayed_len(), 9, "nothing changed");
}

#[test]
fn plus_adds_the_rows_ticker_to_the_watchlist_and_saves() {
    let mut app = app();
    // META is not on "mega" (AAPL, NVDA); no list is active: the first.
    let effects = app.on_key(key('+'));
    match &effects[..] {
        [Effect::SaveWatchlists { lists, done }] => {
            assert_eq!(lists[0].tickers, vec!["AAPL", "NVDA", "META"]);
            assert_eq!(done, "added META to watchlist mega");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.on_key(key('+')), vec![], "already there");
    // With no lists at all, one is made.
    let mut cfg = config();
    cfg.watchlists.clear();
    let mut app = app_with(cfg);
    let effects = app.on_key(key('+'));
    assert!(matches!(
        &effects[..],
        [Effect::SaveWatchlists { lists, .. }] if lists.len() == 1 && lists[0].tickers == ["META"]
    ));
}

#[test]
fn a_sweep_pushed_while_scrolled_keeps_the_selection() {
    let mut app = app();
    app.on_key(key('j'));
    let before = app.selected_entry().map(|(c, _)| c);
    let mut e = event("NEW", 40);
    e.kind = Kind::Sweep;
    push(&mut app, e);
    assert_eq!(app.selected_entry().map(|(c, _)| c), before);
    assert_eq!(app.selected(), 2);
}
