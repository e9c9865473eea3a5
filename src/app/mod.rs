//! The client's state and how keys and server messages change it.
//!
//! [`App`] owns everything the screen shows: the [`tape::Tape`] (ring buffer
//! and filtered view), the [`scope::Scope`] (filter, quick toggles and active
//! watchlist), selection and scrolling, pause, the popups, the connection and
//! feed state and the clock. It does no I/O: [`App::on_key`] and
//! [`App::on_client`] return an [`Effect`] for the run loop to carry out
//! (quit, send the filter, ring the bell, export, save watchlists), and the
//! time is passed in, so tests drive it with a fixed clock. Rendering
//! (`crate::ui`) only reads it. A loss of history the gateway reports
//! stays on the status line until `Esc` or [`LOSS_TTL_MS`].

pub mod editor;
pub mod scope;
pub mod stats;
pub mod tape;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::HashSet;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;
use flowtape_core::protocol::{FeedStatus, LostRange, ServerMessage};

use crate::client::ClientEvent;
use crate::config::{AlertRule, WatchlistConfig};
use crate::keymap::{Action, Keymap};
use editor::LineEditor;
use scope::Scope;
use stats::RateMeter;
use tape::{Entry, Tape};

/// Filter history kept for Up/Down in the filter line.
const HISTORY_MAX: usize = 100;
/// How long an informational message stays in the status line.
pub const INFO_TTL_MS: i64 = 6_000;
/// How long a loss of history stays on the status line unless dismissed.
pub const LOSS_TTL_MS: i64 = 10 * 60_000;

/// Something for the run loop to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Quit,
    /// Send this filter to the gateway.
    SendFilter(String),
    /// Ring the terminal bell.
    Bell,
    /// Write the filtered tape to a CSV file.
    Export,
    /// Write the watchlists to the config file.
    SaveWatchlists(Vec<WatchlistConfig>),
}

/// The connection as the status line shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conn {
    Connecting {
        server: String,
    },
    Live {
        server: String,
    },
    /// Down since `since_ms` (the last failure: `reason`); trying `server` next.
    Reconnecting {
        server: String,
        since_ms: i64,
        reason: String,
    },
    /// Given up.
    Offline {
        reason: String,
    },
}

/// A line for the status bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
    pub at_ms: i64,
}

/// A loss of history the gateway reported, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    pub range: LostRange,
    pub at_ms: i64,
}

/// The filter line being edited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterLine {
    pub editor: LineEditor,
    /// The parse error of the current text: 1-based column and message.
    pub error: Option<(usize, String)>,
    /// Position in history-then-presets while browsing with Up/Down.
    hist_pos: Option<usize>,
    /// What was typed before browsing.
    draft: String,
}

/// The watchlist editor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchEditor {
    /// Index of the list being edited.
    pub list: usize,
    pub input: LineEditor,
    /// Selected ticker in the list.
    pub sel: usize,
    dirty: bool,
}

/// Which screen has the keyboard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Tape,
    Help {
        scroll: u16,
    },
    /// Details of the event with this sequence number.
    Detail {
        seq: u64,
    },
    Filter(FilterLine),
    Watchlists(WatchEditor),
}

/// What [`App::new`] needs.
#[derive(Debug)]
pub struct AppConfig {
    pub buffer_size: usize,
    pub filter_text: String,
    pub filter: Filter,
    pub keymap: Keymap,
    pub watchlists: Vec<WatchlistConfig>,
    pub presets: Vec<(String, String)>,
    pub alerts: Vec<AlertRule>,
    pub side_panel: bool,
    pub server: String,
}

/// The whole client state.
#[derive(Debug)]
pub struct App {
    pub keymap: Keymap,
    tape: Tape,
    scope: Scope,
    pub mode: Mode,
    /// Selected row, counted from the top (newest) of the displayed rows.
    sel: usize,
    /// First displayed row.
    offset: usize,
    /// Rows the tape area can show, as last laid out.
    page: usize,
    /// While paused: rows with a sequence number from here on are held back.
    paused_at: Option<u64>,
    pub watchlists: Vec<WatchlistConfig>,
    active_watchlist: Option<usize>,
    presets: Vec<(String, String)>,
    history: Vec<String>,
    alerts: Vec<AlertRule>,
    pub side_panel: bool,
    pub conn: Conn,
    /// True from connect until the server says the replay is over.
    replaying: bool,
    pub feed: Option<FeedStatus>,
    pub message: Option<Message>,
    /// The latest loss of history, until dismissed or [`LOSS_TTL_MS`] old.
    pub loss: Option<Loss>,
    rate: RateMeter,
    now_ms: i64,
}

impl App {
    pub fn new(cfg: AppConfig, now_ms: i64) -> App {
        App {
            keymap: cfg.keymap,
            tape: Tape::new(cfg.buffer_size),
            scope: Scope {
                filter_text: cfg.filter_text,
                filter: cfg.filter,
                ..Scope::default()
            },
            mode: Mode::Tape,
            sel: 0,
            offset: 0,
            page: 20,
            paused_at: None,
            watchlists: cfg.watchlists,
            active_watchlist: None,
            presets: cfg.presets,
            history: Vec::new(),
            alerts: cfg.alerts,
            side_panel: cfg.side_panel,
            conn: Conn::Connecting { server: cfg.server },
            replaying: true,
            feed: None,
            message: None,
            loss: None,
            rate: RateMeter::default(),
            now_ms,
        }
    }

    // ----- reading -----

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    pub fn filter_text(&self) -> &str {
        &self.scope.filter_text
    }

    pub fn toggles(&self) -> scope::Toggles {
        self.scope.toggles
    }

    pub fn active_watchlist(&self) -> Option<&WatchlistConfig> {
        self.active_watchlist.and_then(|i| self.watchlists.get(i))
    }

    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Matching events that arrived since the pause.
    pub fn new_while_paused(&self) -> usize {
        self.paused_at
            .map_or(0, |at| self.tape.view_len() - self.tape.view_len_before(at))
    }

    /// Rows the tape displays (the frozen part of the view while paused).
    pub fn displayed_len(&self) -> usize {
        match self.paused_at {
            Some(at) => self.tape.view_len_before(at),
            None => self.tape.view_len(),
        }
    }

    /// The displayed row `i` from the top, with its sequence number.
    pub fn row(&self, i: usize) -> Option<(u64, &Entry)> {
        let seq = self.tape.view_from_top(self.displayed_len(), i)?;
        self.tape.get(seq).map(|e| (seq, e))
    }

    pub fn selected(&self) -> usize {
        self.sel
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn selected_entry(&self) -> Option<(u64, &Entry)> {
        self.row(self.sel)
    }

    pub fn events_per_second(&self) -> f64 {
        self.rate.per_second(self.now_ms)
    }

    pub fn rate_series(&self, n: usize) -> Vec<u64> {
        self.rate.series(self.now_ms, n)
    }

    /// Milliseconds between the newest event's trade time and now.
    pub fn newest_age_ms(&self) -> Option<i64> {
        self.tape.newest().map(|e| self.now_ms - e.event.ts)
    }

    pub fn is_replaying(&self) -> bool {
        self.replaying
    }

    /// The filter history, newest first, then the presets not already in it.
    fn recall_list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.history.iter().rev().cloned().collect();
        for (_, p) in &self.presets {
            if !v.contains(p) {
                v.push(p.clone());
            }
        }
        v
    }

    pub fn presets(&self) -> &[(String, String)] {
        &self.presets
    }

    /// The filtered tape, oldest first, for export.
    pub fn filtered_events(&self) -> impl Iterator<Item = &FlowEvent> + '_ {
        self.tape.view_entries().map(|e| &e.event)
    }

    // ----- clock, layout, notices -----

    /// Advances the clock. Returns whether anything on screen depends on the
    /// new time (so a redraw is due).
    pub fn tick(&mut self, now_ms: i64) -> bool {
        let changed_second = now_ms.div_euclid(1000) != self.now_ms.div_euclid(1000);
        self.now_ms = now_ms;
        if self.loss.is_some_and(|l| now_ms - l.at_ms >= LOSS_TTL_MS) {
            self.loss = None;
            return true;
        }
        if let Some(m) = &self.message {
            if !m.error && now_ms - m.at_ms >= INFO_TTL_MS {
                self.message = None;
                return true;
            }
        }
        changed_second
    }

    /// Tells the app how many tape rows fit, so paging and scrolling match the screen.
    pub fn set_page(&mut self, rows: usize) {
        self.page = rows.max(1);
        self.clamp_selection();
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
            at_ms: self.now_ms,
        });
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
            at_ms: self.now_ms,
        });
    }

    // ----- incoming -----

    /// Applies one client event.
    pub fn on_client(&mut self, ev: ClientEvent, now_ms: i64) -> Option<Effect> {
        self.now_ms = now_ms;
        match ev {
            ClientEvent::Connecting { server } => {
                self.conn = match std::mem::replace(
                    &mut self.conn,
                    Conn::Connecting {
                        server: String::new(),
                    },
                ) {
                    Conn::Live { .. } => Conn::Reconnecting {
                        server,
                        since_ms: now_ms,
                        reason: String::new(),
                    },
                    Conn::Reconnecting {
                        since_ms, reason, ..
                    } => Conn::Reconnecting {
                        server,
                        since_ms,
                        reason,
                    },
                    Conn::Connecting { .. } | Conn::Offline { .. } => Conn::Connecting { server },
                };
                None
            }
            ClientEvent::Connected { server } => {
                self.conn = Conn::Live { server };
                self.replaying = true;
                None
            }
            ClientEvent::Disconnected { server, reason } => {
                tracing::warn!(%server, %reason, "disconnected");
                let since_ms = match self.conn {
                    Conn::Reconnecting { since_ms, .. } => since_ms,
                    _ => now_ms,
                };
                self.conn = Conn::Reconnecting {
                    server,
                    since_ms,
                    reason,
                };
                None
            }
            ClientEvent::Failed { reason } => {
                self.error(reason.clone());
                self.conn = Conn::Offline { reason };
                None
            }
            ClientEvent::Events(items) => {
                let mut bell = false;
                for item in items {
                    bell |= self.push(item.event);
                }
                bell.then_some(Effect::Bell)
            }
            ClientEvent::Server(m) => self.on_message(*m),
        }
    }

    fn on_message(&mut self, m: ServerMessage) -> Option<Effect> {
        match m {
            ServerMessage::Event { event, .. } => self.push(event).then_some(Effect::Bell),
            ServerMessage::Events { events } => {
                let mut bell = false;
                for item in events {
                    bell |= self.push(item.event);
                }
                bell.then_some(Effect::Bell)
            }
            ServerMessage::Status {
                feed,
                notice,
                lost,
                live,
                ..
            } => {
                if let Some(f) = feed {
                    self.feed = Some(f);
                }
                match lost {
                    // The status line shows it; the notice says the same.
                    Some(range) => {
                        tracing::warn!(?range, "the gateway reports history lost");
                        self.loss = Some(Loss {
                            range,
                            at_ms: self.now_ms,
                        });
                    }
                    None => {
                        if let Some(n) = notice {
                            self.info(n);
                        }
                    }
                }
                if live {
                    self.replaying = false;
                }
                None
            }
            ServerMessage::Error { code, message } => {
                self.error(format!("server: {message} ({code:?})"));
                None
            }
            ServerMessage::Pong => None,
        }
    }

    /// Buffers one event. Returns whether it should ring the bell.
    pub fn push(&mut self, event: FlowEvent) -> bool {
        self.rate.record(self.now_ms, 1);
        let mut alert = false;
        let mut bell = false;
        for rule in &self.alerts {
            if rule.filter.matches(&event) {
                alert = true;
                bell |= rule.bell;
            }
        }
        let in_view = self.scope.matches(&event);
        self.tape.push(Entry { event, alert }, in_view);
        // Keep the selected event under the cursor when the user has scrolled
        // away from the top; at the top, follow the live edge.
        if self.paused_at.is_none() && in_view && self.sel > 0 {
            self.sel += 1;
            self.offset += 1;
        }
        self.clamp_selection();
        bell && !self.replaying
    }

    // ----- keys -----

    /// Applies one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Some(Effect::Quit);
        }
        match std::mem::take(&mut self.mode) {
            Mode::Tape => {
                let action = self.keymap.action(&key)?;
                self.on_action(action)
            }
            Mode::Help { scroll } => {
                self.mode = match self.keymap.action(&key) {
                    Some(Action::Down) => Mode::Help {
                        scroll: scroll.saturating_add(1),
                    },
                    Some(Action::Up) => Mode::Help {
                        scroll: scroll.saturating_sub(1),
                    },
                    Some(Action::PageDown) => Mode::Help {
                        scroll: scroll.saturating_add(10),
                    },
                    Some(Action::PageUp) => Mode::Help {
                        scroll: scroll.saturating_sub(10),
                    },
                    Some(Action::Help | Action::Live | Action::Quit) => Mode::Tape,
                    _ => Mode::Help { scroll },
                };
                None
            }
            Mode::Detail { seq } => {
                match self.keymap.action(&key) {
                    Some(Action::Detail | Action::Live | Action::Quit) => self.mode = Mode::Tape,
                    Some(a @ (Action::Down | Action::Up)) => {
                        self.on_action(a);
                        let seq = self.selected_entry().map_or(seq, |(s, _)| s);
                        self.mode = Mode::Detail { seq };
                    }
                    _ => self.mode = Mode::Detail { seq },
                }
                None
            }
            Mode::Filter(line) => self.on_filter_key(line, &key),
            Mode::Watchlists(ed) => self.on_watch_key(ed, &key),
        }
    }

    fn on_action(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            Action::Filter => {
                let mut line = FilterLine {
                    editor: LineEditor::with_text(&self.scope.filter_text),
                    ..FilterLine::default()
                };
                line.error = validate(line.editor.text());
                self.mode = Mode::Filter(line);
            }
            Action::Live => {
                self.paused_at = None;
                self.sel = 0;
                self.offset = 0;
                self.message = None;
                self.loss = None;
            }
            Action::Down => self.move_by(1),
            Action::Up => self.move_by(-1),
            Action::PageDown => self.move_by(self.page as i64),
            Action::PageUp => self.move_by(-(self.page as i64)),
            Action::Top => {
                self.sel = 0;
                self.offset = 0;
            }
            Action::Bottom => self.move_by(i64::MAX / 2),
            Action::Pause => match self.paused_at {
                Some(_) => {
                    self.paused_at = None;
                    self.sel = 0;
                    self.offset = 0;
                }
                None => self.paused_at = Some(self.tape.next_seq()),
            },
            Action::Detail => {
                if let Some((seq, _)) = self.selected_entry() {
                    self.mode = Mode::Detail { seq };
                }
            }
            Action::CallsOnly => {
                self.scope.toggles.toggle_right(Right::Call);
                self.refilter();
            }
            Action::PutsOnly => {
                self.scope.toggles.toggle_right(Right::Put);
                self.refilter();
            }
            Action::SweepsOnly => {
                self.scope.toggles.sweeps = !self.scope.toggles.sweeps;
                self.refilter();
            }
            Action::UnusualOnly => {
                self.scope.toggles.unusual = !self.scope.toggles.unusual;
                self.refilter();
            }
            Action::Watchlists => {
                if self.watchlists.is_empty() {
                    self.watchlists.push(WatchlistConfig {
                        name: "watchlist".into(),
                        tickers: Vec::new(),
                    });
                }
                let list = self.active_watchlist.unwrap_or(0);
                self.mode = Mode::Watchlists(WatchEditor {
                    list,
                    ..WatchEditor::default()
                });
            }
            Action::NextWatchlist => {
                self.active_watchlist = match self.active_watchlist {
                    None if !self.watchlists.is_empty() => Some(0),
                    Some(i) if i + 1 < self.watchlists.len() => Some(i + 1),
                    _ => None,
                };
                self.refilter();
            }
            Action::Export => return Some(Effect::Export),
            Action::SidePanel => self.side_panel = !self.side_panel,
        }
        None
    }

    fn move_by(&mut self, delta: i64) {
        let len = self.displayed_len();
        if len == 0 {
            self.sel = 0;
            self.offset = 0;
            return;
        }
        let target = (self.sel as i64)
            .saturating_add(delta)
            .clamp(0, len as i64 - 1);
        self.sel = target as usize;
        self.scroll_to_selection();
    }

    fn scroll_to_selection(&mut self) {
        if self.sel < self.offset {
            self.offset = self.sel;
        } else if self.sel >= self.offset + self.page {
            self.offset = self.sel + 1 - self.page;
        }
    }

    fn clamp_selection(&mut self) {
        let len = self.displayed_len();
        self.sel = self.sel.min(len.saturating_sub(1));
        self.offset = self.offset.min(self.sel);
        self.scroll_to_selection();
    }

    /// Re-applies the scope to the whole buffer and goes back to the top.
    fn refilter(&mut self) {
        self.scope.watch = self
            .active_watchlist
            .and_then(|i| self.watchlists.get(i))
            .map(|w| w.tickers.iter().cloned().collect::<HashSet<String>>());
        let scope = &self.scope;
        self.tape.refilter(|e| scope.matches(e));
        self.sel = 0;
        self.offset = 0;
    }

    /// Applies a filter expression that already parsed.
    pub fn apply_filter(&mut self, text: String, filter: Filter) -> Effect {
        if !text.trim().is_empty() {
            self.history.retain(|h| *h != text);
            self.history.push(text.clone());
            if self.history.len() > HISTORY_MAX {
                self.history.remove(0);
            }
        }
        self.scope.filter = filter;
        self.scope.filter_text = text.clone();
        self.refilter();
        Effect::SendFilter(text)
    }

    fn on_filter_key(&mut self, mut line: FilterLine, key: &KeyEvent) -> Option<Effect> {
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Enter => {
                let text = line.editor.text().trim().to_string();
                return match Filter::parse(&text) {
                    Ok(f) => Some(self.apply_filter(text, f)),
                    Err(e) => {
                        line.error = Some((e.column, e.to_string()));
                        self.mode = Mode::Filter(line);
                        None
                    }
                };
            }
            KeyCode::Up | KeyCode::Down => {
                let list = self.recall_list();
                let next = match (key.code, line.hist_pos) {
                    (KeyCode::Up, None) if !list.is_empty() => Some(0),
                    (KeyCode::Up, Some(i)) => Some((i + 1).min(list.len().saturating_sub(1))),
                    (KeyCode::Down, Some(0)) | (KeyCode::Down, None) => None,
                    (KeyCode::Down, Some(i)) => Some(i - 1),
                    _ => line.hist_pos,
                };
                if line.hist_pos.is_none() {
                    line.draft = line.editor.text().to_string();
                }
                let text = next
                    .and_then(|i| list.get(i).cloned())
                    .unwrap_or_else(|| line.draft.clone());
                line.hist_pos = next;
                line.editor.set(&text);
                line.error = validate(&text);
            }
            _ => {
                if line.editor.edit(key) {
                    line.hist_pos = None;
                    line.error = validate(line.editor.text());
                }
            }
        }
        self.mode = Mode::Filter(line);
        None
    }

    fn on_watch_key(&mut self, mut ed: WatchEditor, key: &KeyEvent) -> Option<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.watchlists.get(ed.list).map(|l| l.tickers.len())?;
        match key.code {
            KeyCode::Esc => {
                if self.active_watchlist == Some(ed.list) {
                    self.refilter();
                }
                return ed
                    .dirty
                    .then(|| Effect::SaveWatchlists(self.watchlists.clone()));
            }
            KeyCode::Enter => {
                let typed = ed.input.text().trim().to_ascii_uppercase();
                if is_ticker(&typed) {
                    let tickers = &mut self.watchlists[ed.list].tickers;
                    if !tickers.contains(&typed) {
                        tickers.push(typed.clone());
                        ed.dirty = true;
                    }
                    ed.sel = tickers.iter().position(|t| *t == typed).unwrap_or(0);
                    ed.input.set("");
                } else if !typed.is_empty() {
                    self.error(format!(
                        "{typed:?} is not a ticker: 1 to 6 letters, digits or dots"
                    ));
                }
            }
            KeyCode::Char('n') if ctrl => {
                let name = ed.input.text().trim().to_string();
                if name.is_empty() || self.watchlists.iter().any(|w| w.name == name) {
                    self.error("type a new list's name, then Ctrl-n");
                } else {
                    self.watchlists.push(WatchlistConfig {
                        name,
                        tickers: Vec::new(),
                    });
                    ed = WatchEditor {
                        list: self.watchlists.len() - 1,
                        dirty: true,
                        ..WatchEditor::default()
                    };
                }
            }
            KeyCode::Delete if ed.sel < len => {
                self.watchlists[ed.list].tickers.remove(ed.sel);
                ed.sel = ed.sel.min(len.saturating_sub(2));
                ed.dirty = true;
            }
            KeyCode::Up => ed.sel = ed.sel.saturating_sub(1),
            KeyCode::Down => ed.sel = (ed.sel + 1).min(len.saturating_sub(1)),
            KeyCode::Tab => {
                ed.list = (ed.list + 1) % self.watchlists.len();
                ed.sel = 0;
            }
            _ => {
                ed.input.edit(key);
            }
        }
        self.mode = Mode::Watchlists(ed);
        None
    }
}

/// Whether `s` is shaped like a ticker: 1–6 letters, digits or dots, starting with a letter.
fn is_ticker(s: &str) -> bool {
    (1..=6).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// The parse error of a filter text, as (column, message).
fn validate(text: &str) -> Option<(usize, String)> {
    Filter::parse(text).err().map(|e| (e.column, e.to_string()))
}

#[cfg(test)]
mod tests;
