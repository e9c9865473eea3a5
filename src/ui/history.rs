//! What scroll-back and time travel add to the screen: the jump-to-time
//! prompt, the marker row under the oldest row, and the status segment
//! that says the tape is read from a time.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::Skin;
use crate::app::history::TimePrompt;
use crate::app::App;
use flowtape_core::clock::format_ny;

const PROMPT: &str = "Jump to time (NY): ";

/// The prompt line, and the parser's error under it.
pub fn time_prompt(frame: &mut Frame, area: Rect, prompt: &TimePrompt, skin: &Skin) {
    let t = &skin.theme;
    let [input, error] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let style = if prompt.error.is_some() {
        t.error()
    } else {
        t.ok()
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(PROMPT, style),
            Span::raw(prompt.editor.text()),
        ])),
        input,
    );
    let x = input
        .x
        .saturating_add(PROMPT.len() as u16)
        .saturating_add(prompt.editor.cursor() as u16);
    frame.set_cursor_position(Position {
        x: x.min(input.right().saturating_sub(1)),
        y: input.y,
    });
    if let Some(message) = &prompt.error {
        frame.render_widget(
            Paragraph::new(Span::styled(message.as_str(), t.error())),
            error,
        );
    }
}

/// Paints the scroll-back marker in row `y` of `area`, if there is one.
pub fn marker(frame: &mut Frame, area: Rect, y: u16, app: &App, skin: &Skin) {
    let Some(text) = app.history_marker() else {
        return;
    };
    if y >= area.bottom() {
        return;
    }
    let row = Rect {
        y,
        height: 1,
        ..area
    };
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!("── {text} ──"),
            skin.theme.dim(),
        )))
        .centered(),
        row,
    );
}

/// The status segment while time travelling: from when, and how back.
pub fn status(app: &App, skin: &Skin) -> Option<Span<'static>> {
    let from = app.travelling_from()?;
    let when = format_ny(from);
    let today = format_ny(app.now_ms());
    // The date only when it is not today's (in New York).
    let when = match (when.split_once(' '), today.split_once(' ')) {
        (Some((day, time)), Some((now_day, _))) if day == now_day => time.to_string(),
        _ => when,
    };
    let tail = app
        .travel_marker()
        .map_or(String::new(), |m| format!("; {m}"));
    Some(Span::styled(
        format!("FROM {when} (Esc for live{tail})"),
        skin.theme.warn().add_modifier(Modifier::REVERSED),
    ))
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use flowtape_core::cursor::Cursor;

    use super::super::tests::{key, live_app, render, skin, text};
    use crate::app::testing::{event, history_page, t0};
    use crate::app::Effect;

    fn request_id(effects: &[Effect]) -> String {
        match effects {
            [Effect::History(r)] => r.id.clone().unwrap_or_default(),
            other => panic!("not one history request: {other:?}"),
        }
    }

    #[test]
    fn a_scroll_back_page_arrives_below_the_oldest_row() {
        let mut a = live_app();
        let s = skin("default", false);
        let id = request_id(&a.on_key(key('G')));
        let before = text(&render(&mut a, &s, 120, 14));
        assert!(before.contains("── loading older… ──"), "{before}");
        insta::assert_snapshot!("scroll_back_loading", before);
        let now = a.now_ms();
        let next = Cursor::new(t0() as u64 - 40_000, 0);
        a.on_client(
            history_page(
                &id,
                vec![event("OLD1", -30), event("OLD2", -20)],
                true,
                Some(next),
            ),
            now,
        );
        let after = text(&render(&mut a, &s, 120, 14));
        assert!(!after.contains("loading older"), "{after}");
        insta::assert_snapshot!("scroll_back_page_arrived", after);
        // The last page: the start of the stream's history.
        let id = request_id(&a.on_key(key('G')));
        a.on_client(history_page(&id, Vec::new(), false, None), now);
        let end = text(&render(&mut a, &s, 120, 16));
        assert!(end.contains("── start of the stream's history ──"), "{end}");
    }

    #[test]
    fn the_jump_to_time_prompt_and_its_error() {
        let mut a = live_app();
        let s = skin("default", false);
        a.on_key(key('t'));
        for c in "10:1".chars() {
            a.on_key(key(c));
        }
        let prompt = text(&render(&mut a, &s, 120, 14));
        assert!(prompt.contains("Jump to time (NY): 10:1"), "{prompt}");
        insta::assert_snapshot!("time_prompt", prompt);
        a.on_key(key('x'));
        a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        let error = text(&render(&mut a, &s, 120, 14));
        assert!(error.contains("\"10:1x\" is not a time"), "{error}");
        insta::assert_snapshot!("time_prompt_error", error);
        // Fixed: the tape from then, and the status line says so.
        a.on_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
        a.on_key(key('4'));
        let id = request_id(&a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
        let now = a.now_ms();
        a.on_client(
            history_page(
                &id,
                vec![event("T1", -60), event("T2", -50)],
                true,
                Some(Cursor::new(t0() as u64 - 50_000, 0)),
            ),
            now,
        );
        let travel = text(&render(&mut a, &s, 160, 10));
        assert!(
            travel.contains("FROM 10:14:00 ET (Esc for live)"),
            "{travel}"
        );
        insta::assert_snapshot!("time_travel", travel);
    }
}
