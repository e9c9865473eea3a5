//! Rendering: a pure function of the [`App`] state.
//!
//! [`draw`] paints one frame from the state, the [`Skin`] (theme and glyphs)
//! and nothing else, so the same state always gives the same screen; tests
//! render into ratatui's `TestBackend`. [`layout`] is shared with the run loop,
//! which tells the app how many tape rows fit. The pieces: [`status`] (top
//! line), [`tape`] (the table), [`panel`] (the flow panel under it), [`popup`] (help,
//! detail, filter line, watchlist editor), [`replay`] (its status segment)
//! and the hint bar here.

pub mod day;
pub mod history;
pub mod panel;
pub mod popup;
pub mod replay;
pub mod status;
pub mod tape;
#[cfg(test)]
mod tests;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::app::{App, Mode};
use crate::keymap::{Action, EDITOR_KEYS, TIME_PROMPT_KEYS, WATCHLIST_KEYS};
use crate::theme::Theme;

/// Narrowest screen that gets the flow panel under the tape.
const PANEL_MIN_WIDTH: u16 = 100;
/// Lowest screen that gets it: the tape keeps at least 12 rows.
const PANEL_MIN_HEIGHT: u16 = 24;

/// The characters a frame is drawn with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Glyphs {
    pub up: &'static str,
    pub down: &'static str,
    pub golden: &'static str,
    pub alert: &'static str,
    pub bar: &'static str,
    pub bar_empty: &'static str,
    pub sep: &'static str,
    /// Between the parts of a heading (`Flow · Today …`).
    pub dot: &'static str,
    /// Between the two ends of a time range.
    pub range: &'static str,
    /// Before a replay's speed (`×10`).
    pub times: &'static str,
    pub border: border::Set<'static>,
    pub enter: &'static str,
}

const ASCII_BORDER: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Glyphs {
    pub const UNICODE: Glyphs = Glyphs {
        up: "▲",
        down: "▼",
        golden: "★",
        alert: "!",
        bar: "█",
        bar_empty: "░",
        sep: " │ ",
        dot: "·",
        range: "–",
        times: "×",
        border: border::ROUNDED,
        enter: "⏎",
    };

    /// No box-drawing or other non-ASCII glyphs.
    pub const ASCII: Glyphs = Glyphs {
        up: "^",
        down: "v",
        golden: "*",
        alert: "!",
        bar: "#",
        bar_empty: ".",
        sep: " | ",
        dot: "-",
        range: "-",
        times: "x",
        border: ASCII_BORDER,
        enter: "Enter",
    };
}

/// How the frame looks: colours and glyphs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skin {
    pub theme: Theme,
    pub glyphs: Glyphs,
}

impl Skin {
    pub fn new(theme: Theme, ascii: bool) -> Skin {
        Skin {
            theme,
            glyphs: if ascii {
                Glyphs::ASCII
            } else {
                Glyphs::UNICODE
            },
        }
    }

    /// A bordered block in this skin's glyphs.
    pub fn block<'a>(&self, title: impl Into<Line<'a>>) -> Block<'a> {
        Block::default()
            .borders(Borders::ALL)
            .border_set(self.glyphs.border)
            .border_style(self.theme.border())
            .title(title.into().style(self.theme.header()))
    }
}

/// Where each part of the screen goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    pub status: Rect,
    pub tape: Rect,
    /// The flow panel, under the tape, the whole width: the tape's rows
    /// scroll as whole lines on any terminal.
    pub panel: Option<Rect>,
    /// The filter line (one row, plus one for its error).
    pub editor: Option<Rect>,
    pub message: Option<Rect>,
    pub hints: Rect,
}

/// Lays out the screen for the app's current state.
pub fn layout(area: Rect, app: &App) -> Areas {
    let editor_rows = match &app.mode {
        Mode::Filter(line) => 1 + u16::from(line.error.is_some()),
        Mode::TimePrompt(prompt) => 1 + u16::from(prompt.error.is_some()),
        _ => 0,
    };
    let message_rows = u16::from(app.message.is_some() && editor_rows == 0);
    let panel_rows =
        if app.side_panel && area.width >= PANEL_MIN_WIDTH && area.height >= PANEL_MIN_HEIGHT {
            panel::HEIGHT
        } else {
            0
        };
    let [status, tape, panel, editor, message, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(panel_rows),
        Constraint::Length(editor_rows),
        Constraint::Length(message_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    Areas {
        status,
        tape,
        panel: (panel_rows > 0).then_some(panel),
        editor: (editor_rows > 0).then_some(editor),
        message: (message_rows > 0).then_some(message),
        hints,
    }
}

/// Tape rows that fit in `area` (its height less the header).
pub fn tape_rows(area: Rect, app: &App) -> usize {
    usize::from(layout(area, app).tape.height.saturating_sub(1))
}

/// Paints one frame.
pub fn draw(frame: &mut Frame, app: &App, skin: &Skin) {
    let areas = layout(frame.area(), app);
    status::draw(frame, areas.status, app, skin);
    tape::draw(frame, areas.tape, app, skin);
    if let Some(area) = areas.panel {
        panel::draw(frame, area, app, skin);
    }
    if let Some(area) = areas.message {
        draw_message(frame, area, app, skin);
    }
    draw_hints(frame, areas.hints, app, skin);
    match &app.mode {
        Mode::Tape => {}
        Mode::Help { scroll } => popup::help(frame, app, skin, *scroll),
        Mode::Detail { cursor } => popup::detail(frame, app, skin, *cursor),
        Mode::Filter(line) => {
            if let Some(area) = areas.editor {
                popup::filter_line(frame, area, line, skin);
            }
        }
        Mode::Watchlists(ed) => popup::watchlists(frame, app, ed, skin),
        Mode::TimePrompt(prompt) => {
            if let Some(area) = areas.editor {
                history::time_prompt(frame, area, prompt, skin);
            }
        }
    }
}

fn draw_message(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    let Some(m) = &app.message else { return };
    let style = if m.error {
        skin.theme.error()
    } else {
        skin.theme.ok()
    };
    let prefix = if m.error { "error: " } else { "" };
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!("{prefix}{}", m.text),
            style,
        ))),
        area,
    );
}

/// Key hints for the current mode: `(key, label)` pairs.
pub fn hints(app: &App, skin: &Skin) -> Vec<(String, String)> {
    let fixed = |keys: &[(&str, &str)]| {
        keys.iter()
            .map(|(k, l)| (k.to_string(), l.to_string()))
            .collect()
    };
    match &app.mode {
        Mode::Tape => Action::ALL
            .iter()
            .filter(|a| !a.hint().is_empty())
            .filter_map(|a| {
                let key = app.keymap.first_key(*a)?;
                let key = if key == "Enter" {
                    skin.glyphs.enter.to_string()
                } else {
                    key
                };
                Some((key, a.hint().to_string()))
            })
            .collect(),
        Mode::Filter(_) => fixed(EDITOR_KEYS),
        Mode::Watchlists(_) => fixed(WATCHLIST_KEYS),
        Mode::TimePrompt(_) => fixed(TIME_PROMPT_KEYS),
        Mode::Help { .. } => fixed(&[("j/k", "scroll"), ("Esc", "close")]),
        Mode::Detail { .. } => fixed(&[("j/k", "next/previous event"), ("Esc", "close")]),
    }
}

fn draw_hints(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    let mut spans = Vec::new();
    for (key, label) in hints(app, skin) {
        if !spans.is_empty() {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(key, skin.theme.hint_key()));
        spans.push(Span::styled(format!(" {label}"), skin.theme.dim()));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::default()),
        area,
    );
}
