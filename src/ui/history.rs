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
        .map_or(String::new(), |m| format!(", {m}"));
    Some(Span::styled(
        format!("FROM {when} (Esc for live{tail})"),
        skin.theme.warn().add_modifier(Modifier::REVERSED),
    ))
}
