//! The client's state and how keys and server messages change it.
//!
//! [`App`] owns everything the screen shows: the [`tape::Tape`] (buffer and
//! filtered view), the [`scope::Scope`] (view, filter, quick toggles, active
//! watchlist and drill-down focus), selection and scrolling, pause, the
//! popups, the connection and feed state, the day's totals from the
//! gateway ([`day`]) and the clock. It does no I/O:
//! [`App::on_key`] and [`App::on_client`] return [`Effect`]s for the run loop
//! to carry out (quit, subscribe with a new scope, ring the bell, export,
//! save watchlists), and the time is passed in, so tests drive it with a
//! fixed clock. Rendering (`crate::ui`) only reads it. Changing the scope is
//! in `rescope`. A loss of history the gateway reports stays on the status
//! line until `Esc` or [`LOSS_TTL_MS`].

pub mod day;
pub mod editor;
pub mod history;
pub mod replay;
mod rescope;
pub mod scope;
pub mod stats;
pub mod tape;
#[cfg(test)]
pub(crate) mod testing;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, Date};
use flowtape_core::day::DayReport;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::{Filter, Presets};
use flowtape_core::protocol::{FeedStatus, HistoryRequest, LostRange, ServerMessage};

use crate::client::{ClientEvent, Received, DAY_ERROR_PREFIX};
use crate::config::{AlertRule, WatchlistConfig};
use crate::keymap::{Action, Keymap};
use editor::LineEditor;
use history::{Past, TimePrompt};
use scope::{Focus, Scope, Toggles, View};
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
    /// Subscribe again with this filter, the whole scope, and a backfill.
    Subscribe(String),
    /// Ring the terminal bell.
    Bell,
    /// Write the filtered tape to a CSV file.
    Export,
    /// Write the watchlists to the config file, then say `done`.
    SaveWatchlists {
        lists: Vec<WatchlistConfig>,
        done: String,
    },
    /// Ask the gateway for a page of history ([`history`]).
    History(HistoryRequest),
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
    /// Details of the event with this cursor.
    Detail {
        cursor: Cursor,
    },
    Filter(FilterLine),
    Watchlists(WatchEditor),
    /// The jump-to-time prompt.
    TimePrompt(TimePrompt),
}

/// What [`App::new`] needs.
#[derive(Debug)]
pub struct AppConfig {
    pub buffer_size: usize,
    pub view: View,
    pub filter_text: String,
    /// `filter_text`, parsed with `filter_presets`.
    pub filter: Filter,
    /// What preset words in filters stand for; `notable` is the notable view.
    pub filter_presets: Presets,
    pub keymap: Keymap,
    pub watchlists: Vec<WatchlistConfig>,
    /// Named filters offered in the filter line.
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
    filter_presets: Presets,
    /// The filter last asked of the gateway: the scope's wire filter.
    subscribed: String,
    /// A backfill for the current scope is coming: its first event sets the
    /// tape's floor.
    floor_pending: bool,
    pub mode: Mode,
    /// Selected row, counted from the top (newest) of the displayed rows.
    sel: usize,
    /// First displayed row.
    offset: usize,
    /// Rows the tape area can show, as last laid out.
    page: usize,
    /// While paused: rows with a cursor after this one are held back.
    paused_at: Option<Cursor>,
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
    /// The day's totals from the gateway, and the panel's view of them.
    pub day: day::DayState,
    /// Scroll-back and time travel.
    past: Past,
}

impl App {
    pub fn new(cfg: AppConfig, now_ms: i64) -> App {
        let scope = Scope {
            view: cfg.view,
            notable: Filter::parse_with("notable", &cfg.filter_presets).unwrap_or_default(),
            filter_text: cfg.filter_text,
            filter: cfg.filter,
            toggles: Toggles::default(),
            watch: None,
            focus: Focus::default(),
        };
        // Without a watchlist or focus, every part is the canonical form of
        // a parsed filter, so this cannot fail.
        let subscribed = scope.wire_filter().unwrap_or_default();
        App {
            keymap: cfg.keymap,
            tape: Tape::new(cfg.buffer_size),
            scope,
            filter_presets: cfg.filter_presets,
            subscribed,
            floor_pending: false,
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
            day: day::DayState::default(),
            past: Past::new(cfg.buffer_size),
        }
    }

    // ----- reading -----

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The tape on screen: the live one, or the one read from a time.
    pub fn tape(&self) -> &Tape {
        self.shown()
    }

    pub fn filter_text(&self) -> &str {
        &self.scope.filter_text
    }

    pub fn toggles(&self) -> Toggles {
        self.scope.toggles
    }

    pub fn view(&self) -> View {
        self.scope.view
    }

    pub fn focus(&self) -> &Focus {
        &self.scope.focus
    }

    /// The filter the gateway is asked for: the whole scope (view, filter,
    /// watchlist, toggles, focus) in canonical form.
    pub fn subscribed_filter(&self) -> &str {
        &self.subscribed
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
            .map_or(0, |at| self.tape.view_len() - self.tape.view_len_upto(at))
    }

    /// Rows the tape displays (the frozen part of the view while paused).
    pub fn displayed_len(&self) -> usize {
        match self.paused_at {
            Some(at) => self.shown().view_len_upto(at),
            None => self.shown().view_len(),
        }
    }

    /// The displayed row `i` from the top, with its cursor.
    pub fn row(&self, i: usize) -> Option<(Cursor, &Entry)> {
        let cursor = self.shown().view_from_top(self.displayed_len(), i)?;
        self.shown().get(cursor).map(|e| (cursor, e))
    }

    pub fn selected(&self) -> usize {
        self.sel
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn selected_entry(&self) -> Option<(Cursor, &Entry)> {
        self.row(self.sel)
    }

    pub fn events_per_second(&self) -> f64 {
        self.rate.per_second(self.now_ms)
    }

    /// Arrivals in each of the last `n` complete spans of `step_s` seconds.
    pub fn rate_series(&self, n: usize, step_s: i64) -> Vec<u64> {
        self.rate.series(self.now_ms, n, step_s)
    }

    /// Milliseconds between the newest event's trade time and now.
    pub fn newest_age_ms(&self) -> Option<i64> {
        self.tape.newest().map(|e| self.now_ms - e.event.ts)
    }

    /// The trading day the flow panel's totals are for: the day replayed
    /// or travelled to, else today (New York).
    pub fn day_shown(&self) -> Date {
        match (self.replay(), self.travelling_from()) {
            (Some(r), _) => r.date,
            (None, Some(from)) => market_date(from),
            (None, None) => market_date(self.now_ms),
        }
    }

    /// The day to ask the gateway's totals for, when it is not today.
    pub fn day_asked(&self) -> Option<Date> {
        let day = self.day_shown();
        (day != market_date(self.now_ms)).then_some(day)
    }

    /// The gateway's totals for [`App::day_shown`], if it sent them.
    pub fn day_report(&self) -> Option<&DayReport> {
        self.day.report_for(self.day_shown())
    }

    /// Why the gateway sent no totals for [`App::day_shown`], if it said.
    pub fn day_error(&self) -> Option<&str> {
        self.day.error_for(self.day_shown())
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
        let played = self.advance_replay();
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
        changed_second || played
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
            ClientEvent::Subscribed { filter, resumed } => {
                self.replaying = true;
                self.past.forget_requests();
                if !resumed {
                    // A new scope: what was read back belongs to the old one.
                    self.end_travel();
                    self.past.live = history::Pager::default();
                }
                self.floor_pending = !resumed && filter == self.subscribed;
                self.replay_rescoped(!resumed)
            }
            ClientEvent::Disconnected { server, reason } => {
                tracing::warn!(%server, %reason, "disconnected");
                self.past.forget_requests();
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
            ClientEvent::Events(items) => self.receive(items).then_some(Effect::Bell),
            ClientEvent::Server(m) => self.on_message(*m),
        }
    }

    fn on_message(&mut self, m: ServerMessage) -> Option<Effect> {
        let received = |cursor, event| Received {
            cursor,
            event,
            raw: None,
        };
        match m {
            ServerMessage::Event { cursor, event } => self
                .receive(vec![received(cursor, event)])
                .then_some(Effect::Bell),
            ServerMessage::Events { events } => {
                let items = events
                    .into_iter()
                    .map(|i| received(i.cursor, i.event))
                    .collect();
                self.receive(items).then_some(Effect::Bell)
            }
            ServerMessage::Status {
                feed,
                notice,
                lost,
                live,
                retention,
            } => {
                if let Some(f) = feed {
                    self.feed = Some(f);
                }
                if let Some(r) = retention {
                    self.past.retention_s = r.max_age_s;
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
                    if std::mem::take(&mut self.floor_pending) {
                        // The backfill was empty: nothing buffered is known
                        // to be complete for this scope.
                        if let Some(newest) = self.tape.newest_cursor() {
                            self.keeping_selection(|app| app.tape.set_floor(newest.successor()));
                        }
                    }
                }
                None
            }
            ServerMessage::Error { message, .. } if message.starts_with(DAY_ERROR_PREFIX) => {
                // Only a past day's refusals are handed over: the panel says it.
                self.day.refused(self.day_shown(), message);
                None
            }
            ServerMessage::Error { code, message, id } => {
                // Asked again when the user next reaches that edge.
                match id {
                    Some(id) => self.past.forget_request(&id),
                    // A gateway that names no request: any page may be refused.
                    None if history::refuses_a_page(code) => self.past.forget_requests(),
                    None => {}
                }
                self.error(format!("server: {message} ({code:?})"));
                None
            }
            ServerMessage::Pong => None,
            ServerMessage::Day(report) => {
                self.day.receive(report, self.day_shown());
                None
            }
            ServerMessage::Page {
                id,
                events,
                more,
                next,
                notice,
            } => {
                let page = history::PageIn {
                    id,
                    events,
                    more,
                    next,
                    notice,
                };
                if self.replay_awaits(page.id.as_deref()) {
                    return self.on_replay_page(page);
                }
                self.on_page(page);
                None
            }
        }
    }

    /// Buffers one event. Returns whether it should ring the bell.
    pub fn push(&mut self, cursor: Cursor, event: FlowEvent) -> bool {
        self.receive(vec![Received {
            cursor,
            event,
            raw: None,
        }])
    }

    /// Buffers events, merging them by cursor into what is held (the first
    /// of a backfill for the current scope sets the tape's floor). Returns
    /// whether one of them should ring the bell.
    fn receive(&mut self, items: Vec<Received>) -> bool {
        let floor = match items.first() {
            Some(first) if self.floor_pending => {
                self.floor_pending = false;
                Some(first.cursor)
            }
            _ => None,
        };
        let mut bell = false;
        let mut entries = Vec::with_capacity(items.len());
        for Received { cursor, event, .. } in items {
            if self.tape.contains(cursor) {
                continue;
            }
            if !self.replaying {
                self.rate.record(self.now_ms, 1);
            }
            let mut alert = false;
            for rule in &self.alerts {
                if rule.filter.matches(&event) {
                    alert = true;
                    bell |= rule.bell;
                }
            }
            entries.push(Entry {
                cursor,
                event,
                alert,
            });
        }
        self.keeping_selection(|app| {
            if let Some(floor) = floor {
                app.tape.set_floor(floor);
            }
            let scope = &app.scope;
            app.tape.insert(entries, |e| scope.matches(e));
        });
        bell && !self.replaying
    }

    /// Changes the tape with `change`, keeping the selected event under the
    /// cursor when the user has scrolled away from the top or paused; at the
    /// top, the tape follows the live edge. Returns whether the selected
    /// event is still displayed (or none was kept).
    fn keeping_selection(&mut self, change: impl FnOnce(&mut App)) -> bool {
        let anchor = if self.sel > 0 || self.paused_at.is_some() {
            self.selected_entry()
                .map(|(c, _)| (c, self.sel - self.offset))
        } else {
            None
        };
        change(self);
        let kept = match anchor {
            None => true,
            Some((cursor, row)) => {
                match self
                    .shown()
                    .view_position_from_top(self.displayed_len(), cursor)
                {
                    Some(i) => {
                        self.sel = i;
                        self.offset = i.saturating_sub(row);
                        true
                    }
                    None => false,
                }
            }
        };
        self.clamp_selection();
        kept
    }

    // ----- keys -----

    /// Applies one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return vec![Effect::Quit];
        }
        match std::mem::take(&mut self.mode) {
            Mode::Tape => match self.keymap.action(&key) {
                Some(action) => self.on_action(action),
                None => Vec::new(),
            },
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
                Vec::new()
            }
            Mode::Detail { cursor } => {
                match self.keymap.action(&key) {
                    Some(Action::Detail | Action::Live | Action::Quit) => self.mode = Mode::Tape,
                    Some(a @ (Action::Down | Action::Up)) => {
                        self.on_action(a);
                        let cursor = self.selected_entry().map_or(cursor, |(c, _)| c);
                        self.mode = Mode::Detail { cursor };
                    }
                    _ => self.mode = Mode::Detail { cursor },
                }
                Vec::new()
            }
            Mode::Filter(line) => self.on_filter_key(line, &key).into_iter().collect(),
            Mode::Watchlists(ed) => self.on_watch_key(ed, &key),
            Mode::TimePrompt(prompt) => self.on_time_key(prompt, &key).into_iter().collect(),
        }
    }

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        let effect = match action {
            Action::Quit => Some(Effect::Quit),
            Action::Help => {
                self.mode = Mode::Help { scroll: 0 };
                None
            }
            Action::Filter => {
                let mut line = FilterLine {
                    editor: LineEditor::with_text(&self.scope.filter_text),
                    ..FilterLine::default()
                };
                line.error = self.validate(line.editor.text());
                self.mode = Mode::Filter(line);
                None
            }
            Action::Live => {
                self.end_replay();
                self.end_travel();
                self.paused_at = None;
                self.sel = 0;
                self.offset = 0;
                self.message = None;
                self.loss = None;
                None
            }
            Action::Down => self.move_by(1),
            Action::Up => self.move_by(-1),
            Action::PageDown => self.move_by(self.page as i64),
            Action::PageUp => self.move_by(-(self.page as i64)),
            Action::Top => {
                if self.travelling_from().is_none() {
                    // At the live edge: the scroll-back's extra room goes.
                    self.end_travel();
                }
                self.sel = 0;
                self.offset = 0;
                None
            }
            Action::Bottom => self.move_by(i64::MAX / 2),
            Action::Pause if self.past.replay.is_some() => {
                self.replay_pause();
                None
            }
            Action::Pause => {
                match self.paused_at {
                    Some(_) => {
                        self.paused_at = None;
                        self.sel = 0;
                        self.offset = 0;
                    }
                    None => {
                        self.paused_at = Some(self.tape.newest_cursor().unwrap_or(Cursor::ZERO))
                    }
                }
                None
            }
            Action::Detail => {
                if let Some((cursor, _)) = self.selected_entry() {
                    self.mode = Mode::Detail { cursor };
                }
                None
            }
            Action::CallsOnly | Action::PutsOnly | Action::SweepsOnly | Action::UnusualOnly => {
                self.toggle(action)
            }
            Action::View => self.change_scope(|s| s.view = s.view.toggled()),
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
                None
            }
            Action::NextWatchlist => {
                self.active_watchlist = match self.active_watchlist {
                    None if !self.watchlists.is_empty() => Some(0),
                    Some(i) if i + 1 < self.watchlists.len() => Some(i + 1),
                    _ => None,
                };
                self.watch_active()
            }
            Action::FocusTicker => self.focus_ticker(),
            Action::FocusContract => self.focus_contract(),
            Action::AddToWatchlist => return self.add_selected_to_watchlist(),
            Action::Export => Some(Effect::Export),
            Action::SidePanel => {
                self.side_panel = !self.side_panel;
                None
            }
            Action::DayPanel => {
                self.day.cycle();
                self.side_panel = true;
                None
            }
            Action::TimeTravel => {
                self.open_time_prompt();
                None
            }
            Action::Faster | Action::Slower => {
                self.replay_speed(action == Action::Faster);
                None
            }
            Action::SeekForward => self.replay_seek_by(replay::SEEK_MS),
            Action::SeekBack => self.replay_seek_by(-replay::SEEK_MS),
        };
        effect.into_iter().collect()
    }

    fn move_by(&mut self, delta: i64) -> Option<Effect> {
        let len = self.displayed_len();
        if len == 0 {
            self.sel = 0;
            self.offset = 0;
            return (delta > 0).then(|| self.page_back()).flatten();
        }
        let wanted = (self.sel as i64).saturating_add(delta);
        let target = wanted.clamp(0, len as i64 - 1);
        self.sel = target as usize;
        self.scroll_to_selection();
        // Past the oldest row: older history; past the newest while time
        // travelling: newer.
        if wanted > target || (delta > 0 && target == len as i64 - 1) {
            return self.page_back();
        }
        if wanted < 0 {
            return self.page_forward();
        }
        None
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

    /// Applies a filter expression that already parsed (with the app's
    /// presets).
    pub fn apply_filter(&mut self, text: String, filter: Filter) -> Option<Effect> {
        if !text.trim().is_empty() {
            self.history.retain(|h| *h != text);
            self.history.push(text.clone());
            if self.history.len() > HISTORY_MAX {
                self.history.remove(0);
            }
        }
        self.change_scope(|s| {
            s.filter = filter;
            s.filter_text = text;
        })
    }

    fn on_filter_key(&mut self, mut line: FilterLine, key: &KeyEvent) -> Option<Effect> {
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Enter => {
                let text = line.editor.text().trim().to_string();
                return match Filter::parse_with(&text, &self.filter_presets) {
                    Ok(f) => self.apply_filter(text, f),
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
                line.error = self.validate(&text);
            }
            _ => {
                if line.editor.edit(key) {
                    line.hist_pos = None;
                    line.error = self.validate(line.editor.text());
                }
            }
        }
        self.mode = Mode::Filter(line);
        None
    }

    fn on_watch_key(&mut self, mut ed: WatchEditor, key: &KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let Some(len) = self.watchlists.get(ed.list).map(|l| l.tickers.len()) else {
            return Vec::new();
        };
        match key.code {
            KeyCode::Esc => {
                let save = ed.dirty.then(|| Effect::SaveWatchlists {
                    lists: self.watchlists.clone(),
                    done: "watchlists saved".into(),
                });
                return save.into_iter().chain(self.watch_active()).collect();
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
        Vec::new()
    }

    /// The parse error of a filter text, as (column, message).
    fn validate(&self, text: &str) -> Option<(usize, String)> {
        Filter::parse_with(text, &self.filter_presets)
            .err()
            .map(|e| (e.column, e.to_string()))
    }
}

/// Whether `s` is shaped like a ticker: 1–6 letters, digits or dots, starting with a letter.
fn is_ticker(s: &str) -> bool {
    (1..=6).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

#[cfg(test)]
mod tests;
