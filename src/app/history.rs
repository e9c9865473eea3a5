//! Scroll-back and time travel: `history` pages from the gateway.
//!
//! - Scrolling past the oldest row asks for the page before the tape's floor
//!   (from there up, the tape holds every event of the scope); the page goes
//!   below and lowers the floor to where the gateway stopped reading, so
//!   pages join without a gap, and, keyed by cursor, without a duplicate.
//! - `t` asks for a time ([`TimePrompt`]); the tape then shows a [`Travel`]:
//!   its own tape, read forwards from that time with `after` pages when the
//!   selection reaches its newest end, and backwards as above. Live events
//!   keep filling the live tape meanwhile; `Esc` goes back to it.
//! - One request per edge is in flight; a page whose id is not the one
//!   awaited (the scope changed, the link dropped) is dropped.
//! - Bounds: while scrolled back the live tape may hold [`SCROLLBACK_FACTOR`]
//!   times its configured size (back at the live edge it is cut to size
//!   again, oldest first); a travel tape holds as much. Past that, no more
//!   pages are loaded and the marker row says so.

use flowtape_core::clock::{format_ny, parse_time, position_at, position_before};
use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::{ErrorCode, EventItem, HistoryRequest};

use super::editor::LineEditor;
use super::replay::Replay;
use super::tape::{Entry, Tape};
use super::{App, Effect, Mode};

/// Events asked for per page.
pub const PAGE: u32 = 200;
/// How many times its configured size a tape may grow to with history.
pub const SCROLLBACK_FACTOR: usize = 4;

/// One end of a tape that pages extend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Edge {
    #[default]
    Idle,
    /// The request with this id is in flight.
    Loading(String),
    /// Nothing more that way: the stream's start, or (forwards) live.
    End,
    /// The tape is as large as it may grow.
    Full,
}

/// A tape's scroll-back: its older edge. The next page starts at the
/// tape's floor, which each page lowers to the gateway's `next`, so a sparse
/// scope never rescans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pager {
    pub edge: Edge,
}

/// The tape read from a time the user typed.
#[derive(Debug)]
pub struct Travel {
    pub from_ms: i64,
    pub tape: Tape,
    pub back: Pager,
    pub forward: Edge,
    /// Where the next forward page starts.
    next_after: Cursor,
    /// The first page has not come yet (it puts the selection at its start).
    placed: bool,
}

/// The jump-to-time prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimePrompt {
    pub editor: LineEditor,
    /// Why the typed time was refused.
    pub error: Option<String>,
}

/// Scroll-back and time-travel state.
#[derive(Debug, Default)]
pub struct Past {
    pub live: Pager,
    pub travel: Option<Travel>,
    /// A replay at N× ([`super::replay`]); shown over the travel and live tapes.
    pub replay: Option<Replay>,
    /// The stream's age limit, as the gateway said (0: unknown or none).
    pub retention_s: u64,
    /// The live tape's configured size.
    base_cap: usize,
    seq: u64,
}

impl Past {
    pub fn new(base_cap: usize) -> Past {
        Past {
            base_cap,
            ..Past::default()
        }
    }

    /// The live tape's configured size.
    pub fn base_cap(&self) -> usize {
        self.base_cap
    }

    pub(super) fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("h{}", self.seq)
    }

    /// Forgets requests in flight: their answers will not come, or belong
    /// to another scope.
    pub fn forget_requests(&mut self) {
        self.forget_where(|_| true);
    }

    /// Forgets the request `id` the gateway refused; the others stay in
    /// flight.
    pub fn forget_request(&mut self, id: &str) {
        self.forget_where(|loading| loading == id);
    }

    /// Sets every edge loading a request that `refused` picks back to idle.
    fn forget_where(&mut self, refused: impl Fn(&str) -> bool) {
        let reset = |e: &mut Edge| {
            if matches!(e, Edge::Loading(l) if refused(l)) {
                *e = Edge::Idle;
            }
        };
        reset(&mut self.live.edge);
        if let Some(t) = &mut self.travel {
            reset(&mut t.back.edge);
            reset(&mut t.forward);
        }
        if let Some(r) = &mut self.replay {
            reset(&mut r.forward);
        }
    }
}

/// Whether an error with `code` and no request id (from a gateway that
/// names none) may be the answer to a page request: the requests in flight
/// are then forgotten.
pub fn refuses_a_page(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadHistory
            | ErrorCode::BadCursor
            | ErrorCode::HistoryUnavailable
            | ErrorCode::RateLimited
    )
}

/// A page as the app receives it.
#[derive(Debug)]
pub struct PageIn {
    pub id: Option<String>,
    pub events: Vec<EventItem>,
    pub more: bool,
    pub next: Option<Cursor>,
    pub notice: Option<String>,
}

impl App {
    /// The tape on screen: the replay's, the travel's, or the live one.
    pub(super) fn shown(&self) -> &Tape {
        if let Some(r) = &self.past.replay {
            return &r.tape;
        }
        self.past.travel.as_ref().map_or(&self.tape, |t| &t.tape)
    }

    /// The time the tape is read from, while time travelling.
    pub fn travelling_from(&self) -> Option<i64> {
        self.past.travel.as_ref().map(|t| t.from_ms)
    }

    /// The row under the oldest one: what the scroll-back is doing.
    pub fn history_marker(&self) -> Option<String> {
        let (edge, len) = match &self.past.travel {
            Some(t) => (&t.back.edge, t.tape.len()),
            None => (&self.past.live.edge, self.tape.len()),
        };
        match edge {
            Edge::Idle => None,
            Edge::Loading(_) => Some("loading older…".into()),
            Edge::End => Some(match self.past.retention_s {
                0 => "start of the stream's history".into(),
                s if s % 3600 == 0 => {
                    format!("start of the stream's history (retention {} h)", s / 3600)
                }
                s => format!("start of the stream's history (retention {} min)", s / 60),
            }),
            Edge::Full => Some(format!(
                "scroll-back holds {len} events, its limit; Esc for live"
            )),
        }
    }

    /// The row over the newest one while time travelling.
    pub fn travel_marker(&self) -> Option<&'static str> {
        match &self.past.travel.as_ref()?.forward {
            Edge::Loading(_) => Some("loading newer…"),
            Edge::End => Some("caught up with live"),
            Edge::Idle | Edge::Full => None,
        }
    }

    /// Asks for the page before the shown tape's oldest complete position.
    pub(super) fn page_back(&mut self) -> Option<Effect> {
        if self.replaying && self.past.travel.is_none()
            || self.floor_pending
            || self.past.replay.is_some()
        {
            return None;
        }
        let cap = self.past.base_cap * SCROLLBACK_FACTOR;
        let now = self.now_ms;
        let id = self.past.next_id();
        let (tape, pager) = match &mut self.past.travel {
            Some(t) => (&mut t.tape, &mut t.back),
            None => (&mut self.tape, &mut self.past.live),
        };
        if pager.edge != Edge::Idle {
            return None;
        }
        if tape.len() >= cap {
            pager.edge = Edge::Full;
            return None;
        }
        let before = tape
            .floor()
            .or(tape.oldest_in_view())
            .unwrap_or_else(|| position_at(now));
        pager.edge = Edge::Loading(id.clone());
        tape.set_capacity(cap);
        Some(Effect::History(HistoryRequest {
            before: Some(before),
            limit: Some(PAGE),
            id: Some(id),
            ..HistoryRequest::default()
        }))
    }

    /// Asks for the travel tape's next page forwards.
    pub(super) fn page_forward(&mut self) -> Option<Effect> {
        let id = self.past.next_id();
        let t = self.past.travel.as_mut()?;
        if t.forward != Edge::Idle {
            return None;
        }
        if t.tape.len() >= t.tape.capacity() {
            t.forward = Edge::Full;
            return None;
        }
        t.forward = Edge::Loading(id.clone());
        Some(Effect::History(HistoryRequest {
            after: Some(t.next_after),
            limit: Some(PAGE),
            id: Some(id),
            ..HistoryRequest::default()
        }))
    }

    /// Back to the live tape, cut to its configured size.
    pub(super) fn end_travel(&mut self) {
        self.past.travel = None;
        self.tape.set_capacity(self.past.base_cap);
        // Cut to size, the tape no longer reaches the start (or the bound).
        let cut = self.tape.len() > self.past.base_cap;
        if self.past.live.edge == Edge::Full || (cut && self.past.live.edge == Edge::End) {
            self.past.live.edge = Edge::Idle;
        }
    }

    /// Starts reading the scope from `at_ms`.
    fn start_travel(&mut self, at_ms: i64) -> Option<Effect> {
        let mut tape = Tape::new(self.past.base_cap * SCROLLBACK_FACTOR);
        tape.set_floor(position_at(at_ms));
        self.past.travel = Some(Travel {
            from_ms: at_ms,
            tape,
            back: Pager::default(),
            forward: Edge::Idle,
            next_after: position_before(at_ms),
            placed: false,
        });
        self.paused_at = None;
        self.sel = 0;
        self.offset = 0;
        self.page_forward()
    }

    /// Applies a page: below the shown tape's floor, or (travelling) on top.
    pub(super) fn on_page(&mut self, page: PageIn) {
        let Some(id) = page.id else { return };
        if let Some(n) = &page.notice {
            self.info(n.clone());
        }
        let loading = Edge::Loading(id);
        let entries: Vec<Entry> = page
            .events
            .into_iter()
            .map(|i| Entry {
                alert: self.alerts.iter().any(|r| r.filter.matches(&i.event)),
                cursor: i.cursor,
                event: i.event,
            })
            .collect();
        let live_back = self.past.live.edge == loading;
        let (travel_back, travel_forward) = match &self.past.travel {
            Some(t) => (t.back.edge == loading, t.forward == loading),
            None => (false, false),
        };
        if live_back || travel_back {
            let floor = if page.more {
                page.next.unwrap_or(Cursor::ZERO)
            } else {
                Cursor::ZERO
            };
            self.keeping_selection(|app| {
                let (tape, pager) = match (&mut app.past.travel, travel_back) {
                    (Some(t), true) => (&mut t.tape, &mut t.back),
                    _ => (&mut app.tape, &mut app.past.live),
                };
                let scope = &app.scope;
                tape.extend_back(entries, floor, |e| scope.matches(e));
                pager.edge = if page.more { Edge::Idle } else { Edge::End };
            });
        } else if travel_forward {
            self.keeping_selection(|app| {
                let Some(t) = &mut app.past.travel else {
                    return;
                };
                let scope = &app.scope;
                t.tape.insert(entries, |e| scope.matches(e));
                match (page.more, page.next) {
                    (true, Some(next)) => {
                        t.next_after = next;
                        t.forward = Edge::Idle;
                    }
                    _ => t.forward = Edge::End,
                }
            });
            if let Some(t) = &mut self.past.travel {
                if !std::mem::replace(&mut t.placed, true) {
                    // Start at the time asked for: the oldest row.
                    self.sel = self.displayed_len().saturating_sub(1);
                    self.offset = self.sel.saturating_sub(self.page.saturating_sub(1));
                }
            }
            if self
                .past
                .travel
                .as_ref()
                .is_some_and(|t| t.forward == Edge::End)
            {
                self.back_to_live();
            }
        }
    }

    /// The travel tape read up to the live edge: the live tape takes over,
    /// the selected event staying selected (at the same row) if the live
    /// tape holds it, else the selection goes to the newest row.
    fn back_to_live(&mut self) {
        let anchor = self
            .selected_entry()
            .map(|(c, _)| (c, self.sel - self.offset));
        self.end_travel();
        self.paused_at = None;
        let kept = anchor.and_then(|(cursor, row)| {
            self.tape
                .view_position_from_top(self.displayed_len(), cursor)
                .map(|i| (i, row))
        });
        let (sel, offset) = kept.map_or((0, 0), |(i, row)| (i, i.saturating_sub(row)));
        self.sel = sel;
        self.offset = offset;
        self.clamp_selection();
        self.info("caught up with live");
    }

    /// Opens the jump-to-time prompt.
    pub(super) fn open_time_prompt(&mut self) {
        self.mode = Mode::TimePrompt(TimePrompt::default());
    }

    /// One key in the jump-to-time prompt.
    pub(super) fn on_time_key(
        &mut self,
        mut prompt: TimePrompt,
        key: &crossterm::event::KeyEvent,
    ) -> Option<Effect> {
        use crossterm::event::KeyCode;
        match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter if self.past.replay.is_some() => {
                match self.replay_parse_time(prompt.editor.text()) {
                    Some(Ok(at_ms)) => {
                        self.info(format!("replaying from {}", format_ny(at_ms)));
                        self.replay_seek_to(at_ms)
                    }
                    Some(Err(e)) => {
                        prompt.error = Some(e);
                        self.mode = Mode::TimePrompt(prompt);
                        None
                    }
                    None => None,
                }
            }
            KeyCode::Enter => match parse_time(prompt.editor.text(), self.now_ms) {
                Ok(at_ms) => {
                    self.info(format!("reading from {}", format_ny(at_ms)));
                    self.start_travel(at_ms)
                }
                Err(e) => {
                    prompt.error = Some(e.to_string());
                    self.mode = Mode::TimePrompt(prompt);
                    None
                }
            },
            _ => {
                if prompt.editor.edit(key) {
                    prompt.error = None;
                }
                self.mode = Mode::TimePrompt(prompt);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use flowtape_core::protocol::{Retention, ServerMessage};

    use super::*;
    use crate::app::testing::{app, cursor_of, event, history_page as page, push, t0};
    use crate::client::ClientEvent;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    /// The one history request among `effects`.
    fn request(effects: &[Effect]) -> HistoryRequest {
        match effects {
            [Effect::History(r)] => r.clone(),
            other => panic!("not one history request: {other:?}"),
        }
    }

    fn retention(app: &mut App, max_age_s: u64) {
        let now = app.now_ms();
        let status = ServerMessage::Status {
            feed: None,
            retention: Some(Retention {
                max_events: 1_000_000,
                max_age_s,
                oldest: None,
                max_backfill: 5_000,
            }),
            notice: None,
            lost: None,
            live: false,
        };
        app.on_client(ClientEvent::Server(Box::new(status)), now);
    }

    fn cursors(app: &App) -> Vec<Cursor> {
        (0..app.displayed_len())
            .filter_map(|i| app.row(i).map(|(c, _)| c))
            .collect()
    }

    fn selected(app: &App) -> Option<Cursor> {
        app.selected_entry().map(|(c, _)| c)
    }

    #[test]
    fn scrolling_past_the_oldest_row_pages_back_without_gap_or_duplicate() {
        let mut a = app();
        retention(&mut a, 86_400);
        let oldest = cursors(&a).last().copied().unwrap_or_default();
        // To the bottom: the page before the oldest row is asked for.
        let r = request(&a.on_key(key('G')));
        assert_eq!(r.before, Some(oldest));
        assert_eq!((r.after, r.limit, r.filter), (None, Some(PAGE), None));
        let id = r.id.clone().unwrap_or_default();
        assert_eq!(a.history_marker().as_deref(), Some("loading older…"));
        // Only one request per edge in flight.
        assert!(a.on_key(key('j')).is_empty());
        // Live events keep coming at the top; the selection stays put.
        push(&mut a, event("LIVE", 20));
        assert_eq!(selected(&a), Some(oldest));
        // The page: two older events and one already held (no duplicate).
        let next = Cursor::new(t0() as u64 - 60_000, 0);
        let older = vec![event("OLD", -30), event("OLD", -10), event("LIVE", 20)];
        let now = a.now_ms();
        a.on_client(page(&id, older, true, Some(next)), now);
        assert_eq!(a.history_marker(), None);
        assert_eq!(selected(&a), Some(oldest), "the page went below");
        let all = cursors(&a);
        assert_eq!(all.len(), 8 + 1 + 2);
        assert!(
            all.windows(2).all(|w| w[0] > w[1]),
            "newest first, once each"
        );
        assert_eq!(all[all.len() - 1], Cursor::new(t0() as u64 - 30_000, 0));
        // A stale page (another id) changes nothing.
        a.on_client(page("h999", vec![event("STALE", -40)], true, None), now);
        assert_eq!(cursors(&a), all);
        // Down to the new bottom: the next page starts where the last stopped.
        let r = request(&a.on_key(key('G')));
        assert_eq!(r.before, Some(next));
        let id = r.id.unwrap_or_default();
        a.on_client(page(&id, Vec::new(), false, None), now);
        assert_eq!(
            a.history_marker().as_deref(),
            Some("start of the stream's history (retention 24 h)")
        );
        assert!(a.on_key(key('j')).is_empty(), "nothing older to ask for");
        // Back to live: the scroll-back's extra room goes.
        a.on_key(code(KeyCode::Esc));
        assert_eq!(a.tape().capacity(), 1_000);
        assert_eq!(a.selected(), 0);
    }

    #[test]
    fn a_new_scope_or_a_dropped_link_forgets_the_request_in_flight() {
        let mut a = app();
        let id = request(&a.on_key(key('G'))).id.unwrap_or_default();
        let now = a.now_ms();
        a.on_client(
            ClientEvent::Disconnected {
                server: "ws://x".into(),
                reason: "gone".into(),
            },
            now,
        );
        assert_eq!(a.history_marker(), None);
        // Its answer, should it come, is not taken.
        a.on_client(page(&id, vec![event("OLD", -30)], true, None), now);
        assert_eq!(cursors(&a).len(), 8);
    }

    #[test]
    fn jump_to_time_reads_the_scope_from_then_and_esc_goes_back_to_live() {
        let mut a = app();
        // Now is 10:15:09 ET; a bad time keeps the text and says why.
        a.on_key(key('t'));
        for c in "25:00".chars() {
            a.on_key(key(c));
        }
        assert!(a.on_key(code(KeyCode::Enter)).is_empty());
        let Mode::TimePrompt(p) = &a.mode else {
            panic!("the prompt closed")
        };
        assert_eq!(p.editor.text(), "25:00");
        assert!(
            p.error.as_deref().is_some_and(|e| e.contains("HH:MM")),
            "{p:?}"
        );
        // A time in the future says so.
        for _ in 0..5 {
            a.on_key(code(KeyCode::Backspace));
        }
        for c in "10:16".chars() {
            a.on_key(key(c));
        }
        a.on_key(code(KeyCode::Enter));
        let Mode::TimePrompt(p) = &a.mode else {
            panic!("the prompt closed")
        };
        assert!(p
            .error
            .as_deref()
            .is_some_and(|e| e.contains("in the future")));
        // 10:14: the page after the position just before 10:14:00.
        for _ in 0..5 {
            a.on_key(code(KeyCode::Backspace));
        }
        for c in "10:14".chars() {
            a.on_key(key(c));
        }
        let r = request(&a.on_key(code(KeyCode::Enter)));
        let at = t0() - 60_000;
        assert_eq!(r.after, Some(position_before(at)));
        assert_eq!(a.mode, Mode::Tape);
        assert_eq!(a.travelling_from(), Some(at));
        let now = a.now_ms();
        let from_then = vec![event("T1", -60), event("T2", -50), event("T3", -40)];
        let next = Cursor::new((t0() - 40_000) as u64, 0);
        a.on_client(
            page(r.id.as_deref().unwrap_or(""), from_then, true, Some(next)),
            now,
        );
        let rows: Vec<String> = (0..a.displayed_len())
            .filter_map(|i| a.row(i).map(|(_, e)| e.event.sym.clone()))
            .collect();
        assert_eq!(rows, ["T3", "T2", "T1"]);
        assert_eq!(a.selected(), 2, "starting at the time asked for");
        // Live events go to the live tape, not this one.
        push(&mut a, event("LIVE", 20));
        assert_eq!(a.displayed_len(), 3);
        // Up past the newest row: the next page forwards.
        for _ in 0..2 {
            assert!(a.on_key(key('k')).is_empty());
        }
        let r = request(&a.on_key(key('k')));
        assert_eq!(r.after, Some(next));
        a.on_client(
            page(
                r.id.as_deref().unwrap_or(""),
                vec![event("T4", -30)],
                false,
                None,
            ),
            now,
        );
        // The live edge: back on the live tape by itself, with what came
        // meanwhile.
        assert_eq!(a.travelling_from(), None);
        assert_eq!(
            a.row(0).map(|(_, e)| e.event.sym.clone()).as_deref(),
            Some("LIVE")
        );
        assert_eq!(a.selected(), 0);
        assert_eq!(
            a.message.as_ref().map(|m| m.text.as_str()),
            Some("caught up with live")
        );
    }

    #[test]
    fn a_travel_reaching_the_live_edge_goes_back_to_live_keeping_the_selection() {
        let mut a = app();
        // Back to 10:15:03: TSLA, QQQ and AMD of the sample tape.
        a.on_key(key('t'));
        for c in "10:15:03".chars() {
            a.on_key(key(c));
        }
        let r = request(&a.on_key(code(KeyCode::Enter)));
        let now = a.now_ms();
        let samples = crate::app::testing::sample_events();
        let next = cursor_of(&samples[5]);
        a.on_client(
            page(
                r.id.as_deref().unwrap_or(""),
                samples[3..6].to_vec(),
                true,
                Some(next),
            ),
            now,
        );
        // A live event meanwhile, and QQQ selected in the travel tape.
        push(&mut a, event("LIVE", 20));
        assert!(a.on_key(key('k')).is_empty());
        assert_eq!(
            a.selected_entry()
                .map(|(_, e)| e.event.sym.clone())
                .as_deref(),
            Some("QQQ")
        );
        // Up past the newest: the next page forwards, which ends at the
        // live edge.
        assert!(a.on_key(key('k')).is_empty());
        let r = request(&a.on_key(key('k')));
        assert_eq!(r.after, Some(next));
        // Selected again: QQQ, one row under the newest.
        a.on_key(key('j'));
        let selected = a.selected_entry().map(|(c, _)| c);
        a.on_client(
            page(
                r.id.as_deref().unwrap_or(""),
                samples[6..].to_vec(),
                false,
                None,
            ),
            now,
        );
        assert_eq!(a.travelling_from(), None, "back to live by itself");
        assert_eq!(a.selected_entry().map(|(c, _)| c), selected, "kept");
        // In the live tape QQQ is under LIVE, META, AAPL and AMD.
        assert_eq!(a.selected(), 4);
        assert_eq!(
            a.row(0).map(|(_, e)| e.event.sym.clone()).as_deref(),
            Some("LIVE")
        );
    }

    #[test]
    fn t_is_in_the_keymap_and_can_be_moved() {
        use crate::keymap::{Action, Keymap};
        assert_eq!(
            Keymap::default().action(&key('t')),
            Some(Action::TimeTravel)
        );
        let overrides = [("time_travel".to_string(), vec!["T".to_string()])].into();
        let moved = Keymap::with_overrides(&overrides).unwrap_or_default();
        assert_eq!(moved.action(&key('T')), Some(Action::TimeTravel));
        assert_eq!(moved.action(&key('t')), None);
    }

    #[test]
    fn a_refused_page_can_be_asked_for_again() {
        let mut a = app();
        assert!(matches!(
            a.on_key(key('G')).as_slice(),
            [Effect::History(_)]
        ));
        assert!(a.on_key(key('j')).is_empty(), "one in flight");
        let refusal = ServerMessage::Error {
            code: ErrorCode::HistoryUnavailable,
            message: "the event store is unavailable; ask for the page again shortly".into(),
            id: None,
        };
        let now = a.now_ms();
        a.on_client(ClientEvent::Server(Box::new(refusal)), now);
        assert_eq!(a.history_marker(), None);
        assert!(matches!(
            a.on_key(key('j')).as_slice(),
            [Effect::History(_)]
        ));
    }

    #[test]
    fn a_refusal_that_names_its_request_frees_only_that_one() {
        let mut a = app();
        let id = match a.on_key(key('G')).as_slice() {
            [Effect::History(req)] => req.id.clone().unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        let refuse = |a: &mut App, id: &str| {
            let refusal = ServerMessage::Error {
                code: ErrorCode::RateLimited,
                message: "too many history requests; slow down".into(),
                id: Some(id.to_string()),
            };
            let now = a.now_ms();
            a.on_client(ClientEvent::Server(Box::new(refusal)), now);
        };
        refuse(&mut a, "not-ours");
        assert!(a.on_key(key('j')).is_empty(), "still in flight");
        refuse(&mut a, &id);
        assert!(matches!(
            a.on_key(key('j')).as_slice(),
            [Effect::History(_)]
        ));
    }
}
