//! Whole-screen snapshots and style checks, on a fixed clock and fixed events.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowtape_core::protocol::{FeedHealth, FeedStatus};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

use super::*;
use crate::app::testing::{app, app_with, config, t0, with_day};
use crate::app::App;
use crate::theme::Theme;

pub(super) fn skin(theme: &str, ascii: bool) -> Skin {
    Skin::new(Theme::builtin(theme).unwrap_or_default(), ascii)
}

pub(super) fn render(app: &mut App, skin: &Skin, w: u16, h: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("{e}"));
    app.set_page(tape_rows(Rect::new(0, 0, w, h), app));
    term.draw(|f| draw(f, app, skin))
        .unwrap_or_else(|e| panic!("{e}"));
    term.backend().buffer().clone()
}

/// The buffer as plain text, one line per row, trailing spaces trimmed.
pub(super) fn text(buf: &Buffer) -> String {
    let w = usize::from(buf.area.width);
    buf.content
        .chunks(w)
        .map(|row| {
            row.iter()
                .map(|c| c.symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

/// The row of the screen whose text contains `needle`.
fn row_of(buf: &Buffer, needle: &str) -> u16 {
    let t = text(buf);
    t.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{t}")) as u16
}

/// The first cell on row `y` whose symbol is `sym`.
fn cell_at<'a>(buf: &'a Buffer, y: u16, sym: &str) -> &'a ratatui::buffer::Cell {
    (0..buf.area.width)
        .map(|x| &buf[(x, y)])
        .find(|c| c.symbol() == sym)
        .unwrap_or_else(|| panic!("no {sym:?} on row {y}"))
}

pub(super) fn live_app() -> App {
    let mut a = app();
    a.feed = Some(FeedStatus {
        state: FeedHealth::Ok,
        reason: String::new(),
        since: t0(),
    });
    a
}

#[test]
fn tape_with_rows_wide() {
    let mut a = live_app();
    a.side_panel = true;
    insta::assert_snapshot!(text(&render(&mut a, &skin("default", false), 160, 24)));
}

/// The flow panel goes under the tape, across the screen, where the tape
/// keeps room: at least 100 columns and 24 rows.
#[test]
fn the_flow_panel_is_a_band_under_the_tape_where_it_fits() {
    let mut a = live_app();
    a.side_panel = true;
    let at = |w, h, a: &App| layout(Rect::new(0, 0, w, h), a);
    let big = at(200, 50, &a);
    let panel = big.panel.unwrap_or_else(|| panic!("no panel at 200x50"));
    assert_eq!((panel.x, panel.width), (0, 200), "across the screen");
    assert_eq!(panel.y, big.tape.bottom(), "right under the tape");
    assert_eq!(big.tape.width, 200, "the tape keeps every column");
    assert_eq!(panel.height, panel::HEIGHT);
    assert!(at(100, 24, &a).panel.is_some());
    assert!(at(99, 50, &a).panel.is_none(), "too narrow");
    assert!(at(200, 23, &a).panel.is_none(), "too low");
    a.side_panel = false;
    assert!(at(200, 50, &a).panel.is_none(), "hidden");
}

#[test]
fn tape_at_80_columns_keeps_the_essentials() {
    let mut a = live_app();
    let buf = render(&mut a, &skin("default", false), 80, 24);
    let t = text(&buf);
    for col in [
        "TIME", "SYM", "EXPIRY", "STRIKE", "C/P", "SIDE", "PREM", "KIND", "TAGS", "SCORE",
    ] {
        assert!(
            t.lines().nth(1).is_some_and(|h| h.contains(col)),
            "{col} missing:\n{t}"
        );
    }
    insta::assert_snapshot!(t);
}

#[test]
fn status_line_paused_filtered_and_reconnecting() {
    let mut a = live_app();
    a.on_key(key(' '));
    a.on_key(key('s'));
    a.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    let mut sweep = crate::app::testing::event("AAPL", 8);
    sweep.kind = flowtape_core::event::Kind::Sweep;
    crate::app::testing::push(&mut a, sweep);
    let mut other = crate::app::testing::event("ZZZ", 8);
    other.id = format!("{}-1", t0() + 8_000);
    crate::app::testing::push(&mut a, other);
    a.conn = crate::app::Conn::Reconnecting {
        server: "ws://10.0.0.2:8765/ws".into(),
        since_ms: a.now_ms() - 12_000,
        reason:
            "cannot connect to ws://10.0.0.2:8765/ws: IO error: Connection refused (os error 111)"
                .into(),
    };
    let buf = render(&mut a, &skin("default", false), 200, 3);
    insta::assert_snapshot!(text(&buf).lines().next().unwrap_or_default().to_string());
}

#[test]
fn status_line_shows_lost_history_until_dismissed() {
    let mut a = live_app();
    let now = a.now_ms();
    a.on_client(
        crate::app::testing::loss_status(now - 7_000, Some(now - 4_000)),
        now,
    );
    let buf = render(&mut a, &skin("default", false), 160, 24);
    let row = row_of(&buf, "HISTORY LOST");
    assert_eq!(row, 0, "on the status line");
    insta::assert_snapshot!(text(&buf));
    // Reversed in the error colour, so it cannot be missed.
    let cell = cell_at(&buf, row, "H");
    assert!(cell.modifier.contains(Modifier::REVERSED));
    // Open-ended in ASCII; gone after Esc.
    a.on_client(crate::app::testing::loss_status(now - 7_000, None), now);
    let line = text(&render(&mut a, &skin("default", true), 160, 3));
    assert!(line.contains("HISTORY LOST after 10:15:02 (Esc)"), "{line}");
    a.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    let line = text(&render(&mut a, &skin("default", false), 160, 3));
    assert!(!line.contains("HISTORY LOST"), "{line}");
}

#[test]
fn help_popup_is_generated_from_the_keymap() {
    let mut a = live_app();
    a.on_key(key('?'));
    let buf = render(&mut a, &skin("default", false), 100, 72);
    let t = text(&buf);
    for action in crate::keymap::Action::ALL {
        assert!(t.contains(action.help()), "{action:?} missing from help");
    }
    for word in ["sweep or block", "occ:NVDA261218C00200000", "notable"] {
        assert!(
            t.contains(word),
            "{word:?} missing from the filter language"
        );
    }
    insta::assert_snapshot!(t);
}

#[test]
fn help_follows_key_overrides() {
    let overrides = [("side_panel".to_string(), vec!["f2".to_string()])].into();
    let mut cfg = config();
    cfg.keymap = crate::keymap::Keymap::with_overrides(&overrides).unwrap_or_default();
    let mut a = app_with(cfg);
    a.on_key(key('?'));
    let t = text(&render(&mut a, &skin("default", false), 100, 50));
    assert!(
        t.lines()
            .any(|l| l.contains("F2") && l.contains("flow panel")),
        "{t}"
    );
    assert!(
        !t.lines()
            .any(|l| l.trim_start().starts_with("a ") && l.contains("flow panel")),
        "{t}"
    );
}

#[test]
fn detail_popup_shows_contract_legs_nbbo_and_score() {
    let mut a = live_app();
    for _ in 0..6 {
        a.on_key(key('j'));
    }
    a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let t = text(&render(&mut a, &skin("default", false), 100, 40));
    for want in [
        "NVDA250117C00150000",
        "sweep in 6 legs",
        "1, 4, 7, 9, 11, 15",
        "NBBO",
        "2.10 x 2.15",
        "premium",
        "golden",
    ] {
        assert!(t.contains(want), "{want:?} missing:\n{t}");
    }
    insta::assert_snapshot!(t);
}

#[test]
fn filter_line_shows_the_error_under_its_column() {
    let mut a = live_app();
    a.on_key(key('/'));
    for c in "AAPL premum>=1m".chars() {
        a.on_key(key(c));
    }
    let t = text(&render(&mut a, &skin("default", false), 100, 12));
    let lines: Vec<&str> = t.lines().collect();
    let input = lines
        .iter()
        .position(|l| l.starts_with("/ AAPL premum"))
        .unwrap_or_else(|| panic!("{t}"));
    let caret = lines[input + 1];
    assert_eq!(caret.find('^'), Some(2 + 5), "caret under column 6:\n{t}");
    assert!(caret.contains("did you mean `premium`"), "{t}");
}

#[test]
fn watchlist_editor_screen() {
    let mut a = live_app();
    a.on_key(key('w'));
    for c in "tsla".chars() {
        a.on_key(key(c));
    }
    insta::assert_snapshot!(text(&render(&mut a, &skin("default", false), 80, 20)));
}

#[test]
fn no_color_has_no_colour_but_keeps_markers_and_reverse_selection() {
    let mut a = live_app();
    let s = Skin::new(Theme::builtin("mono").unwrap_or_default(), false);
    let buf = render(&mut a, &s, 120, 14);
    for cell in buf.content.iter() {
        assert!(
            matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset),
            "coloured cell {cell:?}"
        );
    }
    let top = row_of(&buf, "META");
    assert!(
        buf[(0, top - 1)].modifier.contains(Modifier::REVERSED),
        "the live selection's mark is reverse video"
    );
    let t = text(&buf);
    assert!(
        t.contains("★ ")
            && t.contains("▲")
            && t.contains("▼")
            && t.contains("SWEEP")
            && t.contains("GOLD"),
        "{t}"
    );
    insta::assert_snapshot!(t);
}

/// Whether every cell of row `y` is drawn reversed.
fn reversed(buf: &Buffer, y: u16) -> Vec<bool> {
    (0..buf.area.width)
        .map(|x| buf[(x, y)].modifier.contains(Modifier::REVERSED))
        .collect()
}

#[test]
fn following_live_marks_the_selection_in_the_gutter_and_moving_reverses_the_row() {
    let mut a = live_app();
    let s = skin("default", false);
    let buf = render(&mut a, &s, 120, 14);
    let top = row_of(&buf, "META");
    let header = reversed(&buf, top - 1);
    assert!(
        header[0],
        "the header's gutter cell, over the newest row, marks the selection"
    );
    assert!(header[1..].iter().all(|r| !r), "the header's gutter alone");
    assert!(
        reversed(&buf, top).iter().all(|r| !r),
        "following live, no row is marked: a new row changes no other"
    );
    a.on_key(key('j'));
    let buf = render(&mut a, &s, 120, 14);
    let second = row_of(&buf, "AAPL");
    assert!(
        reversed(&buf, second).iter().all(|r| *r),
        "a moved selection reverses the whole row"
    );
    assert!(reversed(&buf, top).iter().all(|r| !r));
    a.on_key(key('k'));
    a.on_key(key(' '));
    let buf = render(&mut a, &s, 120, 14);
    assert!(
        reversed(&buf, top).iter().all(|r| *r),
        "paused, the top row is selected whole"
    );
}

#[test]
fn ascii_mode_draws_no_box_or_arrow_glyphs() {
    let mut a = live_app();
    a.side_panel = true;
    a.on_key(key('?'));
    let buf = render(&mut a, &skin("basic16", true), 120, 30);
    let t = text(&buf);
    assert!(t.is_ascii(), "non-ASCII on screen:\n{t}");
    a.on_key(key('?'));
    let t = text(&render(&mut a, &skin("basic16", true), 120, 14));
    assert!(t.is_ascii(), "{t}");
    assert!(t.contains("^ AAPL") && t.contains("v SPY"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn calls_are_green_puts_red_and_golden_is_highlighted() {
    let mut a = live_app();
    let s = skin("basic16", false);
    let buf = render(&mut a, &s, 120, 14);
    let call_row = row_of(&buf, "META");
    let put_row = row_of(&buf, "AMD");
    assert_eq!(cell_at(&buf, call_row, "C").fg, Color::Green);
    assert_eq!(cell_at(&buf, put_row, "P").fg, Color::Red);
    let golden = row_of(&buf, "NVDA");
    let g = cell_at(&buf, golden, "N");
    assert_eq!(g.bg, Color::Yellow, "golden rows are highlighted");
    assert!(g.modifier.contains(Modifier::BOLD));
    let block = row_of(&buf, "SPY");
    let prem = cell_at(&buf, block, "$");
    assert!(
        prem.modifier
            .contains(Modifier::BOLD | Modifier::UNDERLINED),
        "$1M+ premium is emphasized"
    );

    let red_up = Skin::new(
        Theme::builtin("basic16")
            .unwrap_or_default()
            .with_convention(crate::theme::Convention::RedUp),
        false,
    );
    let buf = render(&mut a, &red_up, 120, 14);
    assert_eq!(cell_at(&buf, call_row, "C").fg, Color::Red);
    assert_eq!(cell_at(&buf, put_row, "P").fg, Color::Green);
}

#[test]
fn empty_tape_says_it_is_waiting() {
    let mut a = App::new(config(), t0());
    let t = text(&render(&mut a, &skin("default", false), 80, 8));
    assert!(
        t.contains("CONNECTING 127.0.0.1:8765") && t.contains("waiting for events"),
        "{t}"
    );
}

/// `i` seconds after the sample tape's start, a small single print that the
/// notable view leaves out.
fn small_print(sym: &str, i: i64, premium: f64) -> flowtape_core::event::FlowEvent {
    let mut e = crate::app::testing::event(sym, i);
    e.id = format!("{}-1", t0() + i * 1000);
    e.ts += 400;
    e.occ = format!("{sym}241227C00020000");
    e.strike = 20.0;
    e.size = 4;
    e.price = premium / 400.0;
    e.premium = premium;
    e.score = 12;
    e
}

#[test]
fn a_watchlist_switch_fills_the_tape_from_the_backfill() {
    let mut a = live_app();
    a.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    let at_once = text(&render(&mut a, &skin("default", false), 120, 14));
    assert!(at_once.contains("list: mega"), "{at_once}");
    insta::assert_snapshot!("watchlist_switch_at_once", at_once);
    // The gateway's backfill for "AAPL NVDA": older events, and the ones
    // already held (not shown twice).
    let mut block = crate::app::testing::event("NVDA", -20);
    block.kind = flowtape_core::event::Kind::Block;
    block.right = flowtape_core::occ::Right::Put;
    block.occ = "NVDA241227P00140000".into();
    block.strike = 140.0;
    block.premium = 420_000.0;
    block.sentiment = flowtape_core::event::Sentiment::Bear;
    let mut sweep = crate::app::testing::event("AAPL", -40);
    sweep.kind = flowtape_core::event::Kind::Sweep;
    sweep.legs = 4;
    sweep.premium = 96_000.0;
    let mut fill = vec![
        sweep,
        crate::app::testing::event("NVDA", -30),
        block,
        crate::app::testing::event("AAPL", -10),
    ];
    fill.extend(
        crate::app::testing::sample_events()
            .into_iter()
            .filter(|e| e.sym == "AAPL" || e.sym == "NVDA"),
    );
    crate::app::testing::backfill(&mut a, "AAPL NVDA", fill);
    let filled = text(&render(&mut a, &skin("default", false), 120, 14));
    assert!(filled.contains("7/12"), "{filled}");
    insta::assert_snapshot!("watchlist_switch_filled_from_backfill", filled);
}

#[test]
fn the_default_view_is_notable_flow_and_v_shows_all_prints() {
    let mut cfg = config();
    cfg.view = crate::app::scope::View::Notable;
    let mut a = app_with(cfg);
    a.feed = live_app().feed;
    for (sym, i, premium) in [("F", 1, 640.0), ("SOFI", 3, 1_200.0), ("INTC", 5, 3_100.0)] {
        crate::app::testing::push(&mut a, small_print(sym, i, premium));
    }
    let notable = text(&render(&mut a, &skin("default", false), 120, 16));
    let status = notable.lines().next().unwrap_or_default();
    assert!(status.contains("view: notable"), "{status}");
    assert!(
        !notable.contains("SOFI") && !notable.contains("AMD"),
        "{notable}"
    );
    insta::assert_snapshot!("notable_view", notable);
    a.on_key(key('v'));
    let all = text(&render(&mut a, &skin("default", false), 120, 16));
    let status = all.lines().next().unwrap_or_default();
    assert!(status.contains("view: all prints"), "{status}");
    assert!(all.contains("SOFI") && all.contains("AMD"), "{all}");
    insta::assert_snapshot!("all_prints_view", all);
    a.on_key(key('v'));
    let back = text(&render(&mut a, &skin("default", false), 120, 16));
    assert_eq!(back, notable, "the same key goes back");
}

#[test]
fn the_flow_panel_shows_the_days_totals_once_the_server_sends_them() {
    let mut a = live_app();
    a.side_panel = true;
    let before = text(&render(&mut a, &skin("default", false), 160, 30));
    assert!(
        before.contains("In view: net premium by ticker"),
        "{before}"
    );
    with_day(&mut a);
    let t = text(&render(&mut a, &skin("default", false), 160, 30));
    for want in [
        "Today 2024-12-20",
        "as of 10:14:57 ET",
        "Net premium by ticker",
        "C/P premium $6.0M / $3.4M  1.75",
    ] {
        assert!(t.contains(want), "{want:?} missing:\n{t}");
    }
    assert!(!t.contains("In view"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn d_shows_the_days_top_contracts_and_back() {
    let mut a = live_app();
    with_day(&mut a);
    assert!(!a.side_panel);
    a.on_key(key('d'));
    assert!(a.side_panel, "d opens the flow panel");
    let t = text(&render(&mut a, &skin("default", false), 160, 30));
    let spy = row_of(
        &render(&mut a, &skin("default", false), 160, 30),
        "SPY 590C 12/20",
    );
    let tsla = row_of(
        &render(&mut a, &skin("default", false), 160, 30),
        "TSLA 400P 12/27",
    );
    assert!(spy < tsla, "ranked by premium:\n{t}");
    assert!(t.contains("Top contracts by premium"), "{t}");
    insta::assert_snapshot!(t);
    a.on_key(key('d'));
    let t = text(&render(&mut a, &skin("default", false), 160, 30));
    assert!(t.contains("Net premium by ticker"), "{t}");
}

#[test]
fn the_contracts_view_waits_for_the_server_without_day_totals() {
    let mut a = live_app();
    a.on_key(key('d'));
    let t = text(&render(&mut a, &skin("default", false), 160, 30));
    assert!(t.contains("waiting for the day's totals"), "{t}");
}

#[test]
fn the_day_panel_key_follows_overrides() {
    let overrides = [("day_panel".to_string(), vec!["D".to_string()])].into();
    let mut cfg = config();
    cfg.keymap = crate::keymap::Keymap::with_overrides(&overrides).unwrap_or_default();
    let mut a = app_with(cfg);
    with_day(&mut a);
    a.on_key(key('d'));
    assert!(!a.side_panel, "d is no longer bound");
    a.on_key(key('D'));
    let t = text(&render(&mut a, &skin("default", false), 160, 30));
    assert!(t.contains("Top contracts by premium"), "{t}");
    a.on_key(key('?'));
    let t = text(&render(&mut a, &skin("default", false), 100, 72));
    assert!(
        t.lines()
            .any(|l| l.trim_start().starts_with("│  D ") && l.contains("top contracts")),
        "{t}"
    );
}
