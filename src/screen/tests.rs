//! The bytes the presenter writes, fed to a VT100/xterm screen model (the
//! `vt100` crate): after every frame the model's screen must be the frame,
//! symbol for symbol, with the same colours and modifiers (of those that
//! show: a blank's foreground, bold, dim and italic do not). The margin path
//! (left/right margins, which `vt100` lacks) is fed to [`MarginModel`] and
//! checked symbol for symbol.

use std::io::{self, Write};
use std::sync::mpsc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use crossterm::style::Colored;
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use super::margin_model::MarginModel;
use super::presenter::Presenter;
use super::scroll::{self, Shift};
use super::writer::FrameWriter;
use super::{Canvas, Frame};
use crate::app::testing::{app_with, config, event, push, with_day};
use crate::app::App;
use crate::theme::Theme;
use crate::ui::{self, Skin};

/// The colour the model shows for a ratatui colour, as crossterm sends it.
fn model_colour(c: Color) -> vt100::Color {
    if Colored::ansi_color_disabled_memoized() {
        return vt100::Color::Default;
    }
    let idx = |i| vt100::Color::Idx(i);
    match c {
        Color::Reset => vt100::Color::Default,
        Color::Black => idx(0),
        Color::Red => idx(1),
        Color::Green => idx(2),
        Color::Yellow => idx(3),
        Color::Blue => idx(4),
        Color::Magenta => idx(5),
        Color::Cyan => idx(6),
        Color::Gray => idx(7),
        Color::DarkGray => idx(8),
        Color::LightRed => idx(9),
        Color::LightGreen => idx(10),
        Color::LightYellow => idx(11),
        Color::LightBlue => idx(12),
        Color::LightMagenta => idx(13),
        Color::LightCyan => idx(14),
        Color::White => idx(15),
        Color::Indexed(i) => idx(i),
        Color::Rgb(r, g, b) => vt100::Color::Rgb(r, g, b),
    }
}

/// A terminal model of `rows` by `cols`, its cursor hidden as `Term::enter` leaves it.
fn model(rows: u16, cols: u16) -> vt100::Parser {
    let n = |v: u16| std::num::NonZeroU16::new(v).unwrap_or(std::num::NonZeroU16::MIN);
    let mut model = vt100::Parser::new(n(rows), n(cols), 0);
    model.process(b"\x1b[?25l");
    model
}

/// Panics, naming the first cell where the model's screen is not `buf`.
fn assert_screen(model: &vt100::Parser, buf: &Buffer, when: &str) {
    let screen = model.screen();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let got = screen
                .cell(y, x)
                .unwrap_or_else(|| panic!("{when}: no cell {x},{y} in the model"));
            if got.is_wide_continuation() {
                continue;
            }
            let want = &buf[(x, y)];
            let symbol = if got.contents().is_empty() {
                " "
            } else {
                got.contents()
            };
            let m = want.modifier;
            // The foreground, bold, dim and italic do not show on a blank
            // (unless reversed, when the foreground is its background).
            let ink_shows = symbol != " " || m.contains(Modifier::REVERSED);
            let ink = !ink_shows
                || (got.fgcolor() == model_colour(want.fg)
                    && got.bold() == m.contains(Modifier::BOLD)
                    && got.dim() == m.contains(Modifier::DIM)
                    && got.italic() == m.contains(Modifier::ITALIC));
            let same = symbol == want.symbol()
                && ink
                && got.bgcolor() == model_colour(want.bg)
                && got.underline() == m.contains(Modifier::UNDERLINED)
                && got.inverse() == m.contains(Modifier::REVERSED);
            assert!(
                same,
                "{when}: cell {x},{y}: the terminal shows {symbol:?} {:?}/{:?} \
                 bold {} dim {} inverse {}, the frame has {want:?}\nscreen:\n{}",
                got.fgcolor(),
                got.bgcolor(),
                got.bold(),
                got.dim(),
                got.inverse(),
                screen.contents()
            );
        }
    }
}

/// The terminal a test writes to: `vt100`'s model, or the margin model
/// for a presenter that uses margins.
enum Terminal {
    Vt100(Box<vt100::Parser>),
    Margins(MarginModel),
}

/// A terminal model with a presenter writing to it.
struct Screen {
    model: Terminal,
    presenter: Presenter,
    /// Bytes of the last frame.
    last: Vec<u8>,
}

impl Screen {
    fn new(area: Rect) -> Screen {
        Screen {
            model: Terminal::Vt100(Box::new(model(area.height, area.width))),
            presenter: Presenter::new(),
            last: Vec::new(),
        }
    }

    fn with_margins(area: Rect) -> Screen {
        Screen {
            model: Terminal::Margins(MarginModel::new(area.width, area.height)),
            presenter: Presenter::with_margins(),
            last: Vec::new(),
        }
    }

    /// A new terminal of the same kind, `area` big, showing something stale.
    fn resized(&mut self, area: Rect) {
        self.model = match self.model {
            Terminal::Vt100(_) => Terminal::Vt100(Box::new(model(area.height, area.width))),
            Terminal::Margins(_) => Terminal::Margins(MarginModel::new(area.width, area.height)),
        };
        self.process(b"stale text");
    }

    fn process(&mut self, bytes: &[u8]) {
        match &mut self.model {
            Terminal::Vt100(m) => m.process(bytes),
            Terminal::Margins(m) => m.process(bytes),
        }
    }

    fn show(&mut self, frame: &Frame, when: &str) {
        self.last.clear();
        self.presenter
            .present(frame, &mut self.last)
            .unwrap_or_else(|e| panic!("{when}: {e}"));
        let bytes = std::mem::take(&mut self.last);
        self.process(&bytes);
        self.last = bytes;
        match &self.model {
            Terminal::Vt100(model) => {
                assert_screen(model, &frame.buffer, when);
                let want = frame.cursor.map(|p| (p.y, p.x));
                let screen = model.screen();
                let got = (!screen.hide_cursor()).then(|| screen.cursor_position());
                assert_eq!(got, want, "{when}: cursor");
            }
            Terminal::Margins(model) => {
                if let Some(wrong) = model.mismatch(&frame.buffer) {
                    panic!("{when}: {wrong}");
                }
            }
        }
    }

    /// Whether the last frame inserted or deleted lines (only scrolling does).
    fn scrolled(&self) -> bool {
        let text = String::from_utf8_lossy(&self.last);
        text.split("\x1b[").skip(1).any(|seq| {
            seq.trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with(['L', 'M', 'T', 'S'])
        })
    }

    /// Whether the last frame scrolled only some columns.
    fn scrolled_columns(&self) -> bool {
        String::from_utf8_lossy(&self.last).contains("\x1b[s")
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The app's frame on `canvas`, the tape fitted to it.
fn render(canvas: &mut Canvas, app: &mut App, skin: &Skin) -> Frame {
    app.set_page(ui::tape_rows(canvas.area(), app));
    canvas.render(|f| ui::draw(f, app, skin))
}

/// Non-blank cells of the tape's newest row.
fn visible(buf: &Buffer, tape: Rect) -> usize {
    (tape.x..tape.right())
        .filter(|x| buf[(*x, tape.y + 1)].symbol() != " ")
        .count()
}

/// Rows arriving, the selection moving, popups opening and closing, the
/// filter line's cursor, a resize: the terminal shows every frame exactly.
fn run_session(theme: &str, side_panel: bool, area: Rect, margins: bool) {
    let skin = Skin::new(Theme::builtin(theme).unwrap_or_default(), false);
    let mut app = app_with(crate::app::AppConfig {
        side_panel,
        ..config()
    });
    let mut canvas = Canvas::new(area);
    let mut screen = if margins {
        Screen::with_margins(area)
    } else {
        Screen::new(area)
    };
    let frame = render(&mut canvas, &mut app, &skin);
    screen.show(&frame, "first frame");

    let syms = ["MSFT", "GOOG", "NFLX", "SPY", "IWM", "AMZN"];
    for (i, sym) in syms.iter().enumerate() {
        push(&mut app, event(sym, 10 + i as i64));
        let frame = render(&mut canvas, &mut app, &skin);
        screen.show(&frame, &format!("row {sym} arrived"));
        assert!(screen.scrolled(), "a new row scrolls the tape");
        if !margins {
            assert!(!screen.scrolled_columns(), "no margins without asking");
        }
    }
    for i in 0..3 {
        push(&mut app, event("XLF", 20 + i));
    }
    let frame = render(&mut canvas, &mut app, &skin);
    screen.show(&frame, "three rows at once");

    let steps: [(&str, KeyCode); 9] = [
        ("selection down", KeyCode::Char('j')),
        ("selection down again", KeyCode::Char('j')),
        ("selection up", KeyCode::Char('k')),
        ("help open", KeyCode::Char('?')),
        ("help closed", KeyCode::Esc),
        ("detail open", KeyCode::Enter),
        ("detail closed", KeyCode::Esc),
        ("filter line open", KeyCode::Char('/')),
        ("filter typed", KeyCode::Char('p')),
    ];
    for (when, code) in steps {
        app.on_key(key(code));
        let frame = render(&mut canvas, &mut app, &skin);
        screen.show(&frame, when);
    }
    app.on_key(key(KeyCode::Esc));
    push(&mut app, event("DIA", 30));
    let frame = render(&mut canvas, &mut app, &skin);
    screen.show(&frame, "filter closed, a row arrived while scrolled down");

    let smaller = Rect::new(0, 0, area.width - 7, area.height - 3);
    canvas = Canvas::new(smaller);
    // (A resized terminal keeps whatever it likes; the repaint must not care.)
    screen.resized(smaller);
    let frame = render(&mut canvas, &mut app, &skin);
    screen.show(&frame, "resized");
    push(&mut app, event("QQQ", 31));
    let frame = render(&mut canvas, &mut app, &skin);
    screen.show(&frame, "row after resize");
}

#[test]
fn the_terminal_shows_every_frame_with_the_flow_panel() {
    run_session("default", true, Rect::new(0, 0, 160, 30), false);
}

#[test]
fn the_terminal_with_margins_shows_every_frame_with_the_flow_panel() {
    run_session("default", true, Rect::new(0, 0, 160, 30), true);
}

#[test]
fn the_terminal_with_margins_shows_every_frame_without_the_flow_panel() {
    run_session("default", false, Rect::new(0, 0, 120, 24), true);
}

#[test]
fn the_terminal_shows_every_frame_without_the_flow_panel() {
    run_session("default", false, Rect::new(0, 0, 120, 24), false);
}

#[test]
fn the_terminal_shows_every_frame_in_the_no_color_skin() {
    run_session("mono", true, Rect::new(0, 0, 200, 50), false);
}

/// Bytes ratatui's own diff on the crossterm backend sends for `frames`
/// (the TUI's way before the presenter), for the last frame.
fn old_way(frames: &[&Frame]) -> usize {
    use ratatui::backend::{Backend, CrosstermBackend};
    let mut shown = Buffer::empty(frames[0].buffer.area);
    let mut last = Vec::new();
    for f in frames {
        last.clear();
        let diff = shown.diff(&f.buffer);
        CrosstermBackend::new(&mut last)
            .draw(diff.into_iter())
            .unwrap_or_else(|e| panic!("{e}"));
        shown = f.buffer.clone();
    }
    last.len()
}

/// The bytes a new row costs at 200×50, and the row's visible characters,
/// with the flow panel or not, on a terminal with margins or not.
fn new_row_bytes(side_panel: bool, margins: bool) -> (usize, usize, String) {
    let skin = Skin::new(Theme::builtin("default").unwrap_or_default(), false);
    let mut app = app_with(crate::app::AppConfig {
        side_panel,
        ..config()
    });
    let area = Rect::new(0, 0, 200, 50);
    let mut canvas = Canvas::new(area);
    let mut screen = if margins {
        Screen::with_margins(area)
    } else {
        Screen::new(area)
    };
    // A full tape, and the day's totals from the server: the panel changes
    // when they come again (every 5 s), not with each row.
    let syms = ["SPY", "QQQ", "TSLA", "NVDA", "AAPL", "AMD", "META"];
    for i in 0..60 {
        push(&mut app, event(syms[i % syms.len()], i as i64));
    }
    with_day(&mut app);
    let before = render(&mut canvas, &mut app, &skin);
    screen.show(&before, "first frame");
    // A first new row sets the scroll region; the terminal keeps it for
    // every row after: the second one is what each new row costs.
    push(&mut app, event("SPY", 100));
    let first = render(&mut canvas, &mut app, &skin);
    screen.show(&first, "a row arrived");
    push(&mut app, event("SPY", 101));
    let after = render(&mut canvas, &mut app, &skin);
    screen.show(&after, "another row arrived");
    let row = visible(&after.buffer, ui::layout(area, &app).tape);
    let sent = String::from_utf8_lossy(&screen.last).into_owned();
    (screen.last.len(), row, sent)
}

/// The most a new row may cost: three times its visible characters (the
/// target for a terminal over SSH), all the frame's bytes counted: the row
/// with its colours and cursor moves, the scroll, and the status line's
/// changed figures.
fn budget(row: usize) -> usize {
    3 * row
}

/// A new row costs little more than itself (the selection, following live,
/// is marked in the header), where ratatui's diff redraws the whole tape;
/// the flow panel under the tape is not sent again.
#[test]
fn a_new_row_costs_at_most_three_times_its_characters() {
    for (panel, margins) in [(false, false), (true, false), (true, true)] {
        let (bytes, row, sent) = new_row_bytes(panel, margins);
        assert!(
            bytes <= budget(row),
            "panel {panel}, margins {margins}: a new row of {row} visible characters \
             took {bytes} bytes: {sent:?}"
        );
    }
}

#[test]
fn ratatuis_diff_sends_the_whole_tape_for_a_new_row() {
    let skin = Skin::new(Theme::builtin("default").unwrap_or_default(), false);
    let mut app = app_with(crate::app::AppConfig {
        side_panel: false,
        ..config()
    });
    let mut canvas = Canvas::new(Rect::new(0, 0, 200, 50));
    let before = render(&mut canvas, &mut app, &skin);
    push(&mut app, event("MSFT", 10));
    let after = render(&mut canvas, &mut app, &skin);
    let (bytes, _, _) = new_row_bytes(false, false);
    let old = old_way(&[&before, &after]);
    assert!(bytes * 5 < old, "{bytes} bytes, ratatui's diff {old}");
}

/// A buffer of `rows` (text, colour) lines, `width` wide.
fn lines(width: u16, rows: &[(&str, Color)]) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, width, rows.len() as u16));
    for (y, (text, colour)) in rows.iter().enumerate() {
        buf.set_string(0, y as u16, text, Style::default().fg(*colour));
    }
    buf
}

fn frame(buffer: Buffer) -> Frame {
    Frame {
        buffer,
        cursor: None,
    }
}

#[test]
fn a_band_moving_up_or_down_is_scrolled_and_the_rest_stays() {
    let a = ("header that stays", Color::Yellow);
    let rows = [
        ("first row of the tape, long", Color::Green),
        ("second row of the tape, long", Color::Red),
        ("third row of the tape, long", Color::Cyan),
        ("fourth row of the tape, long", Color::Blue),
    ];
    let foot = ("footer that stays", Color::Magenta);
    let before = lines(40, &[a, rows[0], rows[1], rows[2], rows[3], foot]);
    let down = lines(
        40,
        &[
            a,
            ("a new row", Color::White),
            rows[0],
            rows[1],
            rows[2],
            foot,
        ],
    );
    let up = lines(
        40,
        &[a, rows[1], rows[2], rows[3], ("", Color::Reset), foot],
    );
    assert_eq!(
        scroll::find(&before, &down, false),
        Some(Shift {
            top: 1,
            bottom: 4,
            by: 1,
            columns: None
        })
    );
    assert_eq!(
        scroll::find(&before, &up, false),
        Some(Shift {
            top: 1,
            bottom: 4,
            by: -1,
            columns: None
        })
    );
    for (next, when) in [(down, "down"), (up, "up")] {
        let mut screen = Screen::new(before.area);
        screen.show(&frame(before.clone()), "before");
        screen.show(&frame(next), when);
        assert!(screen.scrolled(), "{when}: scrolled");
    }
}

#[test]
fn nothing_changed_sends_nothing() {
    let buf = lines(20, &[("same", Color::Red), ("rows", Color::Blue)]);
    let mut presenter = Presenter::new();
    let mut out = Vec::new();
    presenter
        .present(&frame(buf.clone()), &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.is_empty());
    out.clear();
    presenter
        .present(&frame(buf), &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.is_empty(), "sent {:?}", String::from_utf8_lossy(&out));
}

/// Random screens of wide and narrow text whose bands move, change and
/// swap colours: the terminal always ends up showing the frame.
fn random_frames(margins: bool) {
    let mut rng = fastrand::Rng::with_seed(16);
    let words = [
        "株式",
        "期権",
        "abc",
        "▲ up",
        "★",
        "x",
        "流れ",
        "  ",
        "CALL",
        "            ",
    ];
    let colours = [Color::Red, Color::Green, Color::Reset, Color::Indexed(208)];
    let area = Rect::new(0, 0, 23, 12);
    let random_row = |rng: &mut fastrand::Rng, buf: &mut Buffer, y: u16| {
        for x in 0..area.width {
            buf[(x, y)] = Cell::EMPTY;
        }
        let mut x = 0;
        while x < area.width {
            let word = words[rng.usize(..words.len())];
            let style = Style::default()
                .fg(colours[rng.usize(..colours.len())])
                .bg(colours[rng.usize(..colours.len())]);
            let style = if rng.bool() {
                style.add_modifier(Modifier::BOLD)
            } else {
                style
            };
            let (next, _) = buf.set_stringn(x, y, word, usize::from(area.width - x), style);
            x = next + 1;
        }
    };
    let mut buf = Buffer::empty(area);
    for y in 0..area.height {
        random_row(&mut rng, &mut buf, y);
    }
    let mut screen = if margins {
        Screen::with_margins(area)
    } else {
        Screen::new(area)
    };
    screen.show(&frame(buf.clone()), "first");
    for step in 0..300 {
        let top = rng.u16(..area.height - 1);
        let bottom = rng.u16(top + 1..area.height);
        let by = rng.i16(1..=(bottom - top) as i16) * if rng.bool() { 1 } else { -1 };
        let left = rng.u16(..area.width);
        let columns = (margins && rng.bool()).then(|| (left, rng.u16(left..area.width)));
        Shift {
            top,
            bottom,
            by,
            columns,
        }
        .apply(&mut buf);
        for _ in 0..rng.usize(..4) {
            let y = rng.u16(..area.height);
            random_row(&mut rng, &mut buf, y);
        }
        screen.show(&frame(buf.clone()), &format!("step {step}"));
    }
}

#[test]
fn random_frames_with_wide_characters_show_exactly() {
    random_frames(false);
}

/// The same with margins: bands of columns move too.
#[test]
fn random_frames_with_wide_characters_show_exactly_with_margins() {
    random_frames(true);
}

/// The codes `Term` sends on exit give back the whole screen as scroll
/// region (and the main screen and cursor), whatever was set before.
#[test]
fn the_restore_codes_reset_the_scroll_region() {
    let mut model = model(5, 10);
    model.process(b"\x1b[?1049h\x1b[?25l\x1b[2;3r");
    let mut out = Vec::new();
    crate::term::write_restore(&mut out).unwrap_or_else(|e| panic!("{e}"));
    model.process(&out);
    assert!(!model.screen().alternate_screen());
    assert!(!model.screen().hide_cursor());
    // With the whole screen as region, line feeds at the bottom scroll row 0 away.
    model.process(b"\x1b[Htop\x1b[5;1H\n\n");
    assert_ne!(model.screen().contents_between(0, 0, 0, 3), "top");
    assert!(!String::from_utf8_lossy(&out).contains("\x1b[2;3r"));
    // Left/right margin mode, and with it the margins, goes too.
    let mut margins = MarginModel::new(10, 5);
    margins.process(b"\x1b[?69h\x1b[2;5s");
    margins.process(&out);
    assert!(!margins.lrmm());
}

/// A writer that blocks until the test lets it go, and tells when it is
/// blocked; it keeps each write apart (the frame writer writes a frame at once).
struct Gate {
    entered: mpsc::Sender<()>,
    open: mpsc::Receiver<()>,
    writes: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.entered.send(());
        self.open
            .recv()
            .map_err(|_| io::Error::other("the gate was dropped"))?;
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_blocked_terminal_gets_the_newest_frame_not_a_backlog() {
    let (entered_tx, entered) = mpsc::channel();
    let (open, open_rx) = mpsc::channel();
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = FrameWriter::spawn(
        Gate {
            entered: entered_tx,
            open: open_rx,
            writes: writes.clone(),
        },
        Presenter::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let numbered = |n: usize| frame(lines(30, &[(&format!("frame {n}"), Color::Green)]));
    writer.submit(numbered(1)).unwrap_or_else(|e| panic!("{e}"));
    // The thread is now stuck writing frame 1, as over a stalled link.
    entered.recv().unwrap_or_else(|e| panic!("{e}"));
    for n in 2..=100 {
        writer.submit(numbered(n)).unwrap_or_else(|e| panic!("{e}"));
    }
    // Let every write through from now on.
    for _ in 0..10 {
        let _ = open.send(());
    }
    drop(writer);
    let writes = writes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let bytes = writes.concat();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(
        writes.len(),
        2,
        "frame 1, then straight to frame 100: {text:?}"
    );
    let mut model = model(1, 30);
    model.process(&bytes);
    assert_eq!(model.screen().contents(), "frame 100");
}

#[test]
fn a_failed_write_is_reported_by_the_next_submit() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let writer = FrameWriter::spawn(Broken, Presenter::new()).unwrap_or_else(|e| panic!("{e}"));
    let f = frame(lines(10, &[("x", Color::Red)]));
    writer.submit(f.clone()).unwrap_or_else(|e| panic!("{e}"));
    // The thread stops at the error; a later submit tells of it.
    let mut failed = None;
    for _ in 0..1_000_000 {
        if let Err(e) = writer.submit(f.clone()) {
            failed = Some(e);
            break;
        }
        std::thread::yield_now();
    }
    let e = failed.unwrap_or_else(|| panic!("the write error was never reported"));
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}
