//! Bytes the TUI sends to the terminal, old way and new: the real app fed by
//! the `--demo` server (the in-process node and simulated market at
//! `flowtape::run::DEMO_RATE`, the real client), drawn at 30 frames a second
//! on a 200×50 screen when something changed, as the run loop does. Each
//! frame goes both through ratatui's `Terminal` on the crossterm backend with
//! synchronized-update codes (the TUI before `flowtape::screen`) and through
//! the `screen` presenter twice: as for tmux and terminals without
//! left/right margins (whole-row scrolling), and as for a terminal with them
//! (xterm); the bytes are counted, not written.
//!
//! Reported per view: new rows a second, the visible (non-blank) characters
//! of a tape row (the tape's columns only), and for each path bytes a second and bytes per new row
//! (all bytes over all new rows); for the presenter also the bytes of the
//! frames that brought rows over those rows (leaving out frames that only
//! moved the status line's clock and rate), and that over the visible
//! characters.
//!
//! Run: `cargo run --release --example render_bytes [SECONDS]` (default 30).
//! The figures are in docs/tui.md ("Over SSH").

use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use crossterm::{execute, queue};
use flowtape::app::scope::View;
use flowtape::app::{App, AppConfig};
use flowtape::client::{self, Backoff, ClientEvent, ClientOptions};
use flowtape::config::{DEFAULT_BACKFILL, DEFAULT_BUFFER};
use flowtape::keymap::Keymap;
use flowtape::run::now_ms;
use flowtape::screen::presenter::Presenter;
use flowtape::screen::Canvas;
use flowtape::theme::Theme;
use flowtape::ui::{self, Skin};
use flowtape_core::filter::{Filter, Presets};
use flowtape_server::node::Node;
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tokio::sync::mpsc;
use tokio::time::Instant;

const SCREEN: Rect = Rect::new(0, 0, 200, 50);
const FPS: f64 = 30.0;
/// Time for the sim and the backfill to settle before counting.
const WARM_UP: Duration = Duration::from_secs(3);

/// Counts the bytes written through it.
#[derive(Clone, Default)]
struct Counter(Rc<std::cell::Cell<u64>>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.set(self.0.get() + buf.len() as u64);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The presenter on one kind of terminal, and what it sent.
struct Path {
    presenter: Presenter,
    bytes: u64,
    /// Bytes in the frames that brought new rows.
    row_frame_bytes: u64,
}

impl Path {
    fn new(presenter: Presenter) -> Path {
        Path {
            presenter,
            bytes: 0,
            row_frame_bytes: 0,
        }
    }

    /// Presents `frame`, counting its bytes when `counting`.
    fn present(&mut self, frame: &flowtape::screen::Frame, counting: bool, with_rows: bool) {
        let mut bytes = Vec::new();
        self.presenter
            .present(frame, &mut bytes)
            .unwrap_or_else(|e| fail(e));
        if counting {
            self.bytes += bytes.len() as u64;
            if with_rows {
                self.row_frame_bytes += bytes.len() as u64;
            }
        }
    }
}

/// One view of the tape, drawn every way.
struct Run {
    name: String,
    app: App,
    events: mpsc::Receiver<ClientEvent>,
    canvas: Canvas,
    old: Terminal<CrosstermBackend<Counter>>,
    old_bytes: Counter,
    /// Whole-row scrolling (tmux, terminals without margins).
    rows_path: Path,
    /// Left/right margins (xterm).
    margins_path: Path,
    rows: u64,
    /// Visible characters of the newest tape row, summed over frames that had new rows.
    visible: u64,
    visible_frames: u64,
}

fn fail(e: impl std::fmt::Display) -> ! {
    panic!("{e}")
}

impl Run {
    fn start(url: &str, name: &str, view: View, filter_text: &str, side_panel: bool) -> Run {
        let filter = Filter::parse(filter_text).unwrap_or_else(|e| fail(e));
        let app = App::new(
            AppConfig {
                buffer_size: DEFAULT_BUFFER,
                view,
                filter_text: filter_text.to_string(),
                filter,
                filter_presets: Presets::builtin().clone(),
                keymap: Keymap::default(),
                watchlists: Vec::new(),
                presets: Vec::new(),
                alerts: Vec::new(),
                side_panel,
                server: url.to_string(),
            },
            now_ms(),
        );
        let options = ClientOptions {
            servers: vec![url.to_string()],
            token: None,
            filter: app.subscribed_filter().to_string(),
            backfill: Some(DEFAULT_BACKFILL),
            since: None,
            backoff: Backoff::default(),
            max_failures: None,
            fail_fast: false,
            keep_raw: false,
            trust: Default::default(),
            // As the TUI asks, so the flow panel changes as it does.
            day_every: Some(client::DAY_EVERY),
        };
        let (_cmd_tx, cmd_rx) = mpsc::channel(16);
        let (ev_tx, events) = mpsc::channel(4_096);
        let pace = Duration::from_secs_f64(1.0 / FPS);
        tokio::spawn(async move {
            let _keep = _cmd_tx;
            client::run_paced(options, pace, cmd_rx, ev_tx).await
        });
        let old_bytes = Counter::default();
        let old = Terminal::with_options(
            CrosstermBackend::new(old_bytes.clone()),
            TerminalOptions {
                viewport: Viewport::Fixed(SCREEN),
            },
        )
        .unwrap_or_else(|e| fail(e));
        Run {
            name: name.to_string(),
            app,
            events,
            canvas: Canvas::new(SCREEN),
            old,
            old_bytes,
            rows_path: Path::new(Presenter::new()),
            margins_path: Path::new(Presenter::with_margins()),
            rows: 0,
            visible: 0,
            visible_frames: 0,
        }
    }

    /// Takes in what arrived and draws a frame if something changed.
    fn frame(&mut self, skin: &Skin, counting: bool) {
        let now = now_ms();
        let mut rows = 0;
        let mut dirty = self.app.tick(now);
        while let Ok(ev) = self.events.try_recv() {
            if let ClientEvent::Events(items) = &ev {
                rows += items.len() as u64;
            }
            self.app.on_client(ev, now);
            dirty = true;
        }
        if !dirty {
            return;
        }
        let app = &mut self.app;
        app.set_page(ui::tape_rows(SCREEN, app));
        let old = self.old.backend_mut();
        let drawn = queue!(old, BeginSynchronizedUpdate)
            .and_then(|()| self.old.draw(|f| ui::draw(f, app, skin)).map(|_| ()))
            .and_then(|()| execute!(self.old.backend_mut(), EndSynchronizedUpdate));
        drawn.unwrap_or_else(|e| fail(e));
        let frame = self.canvas.render(|f| ui::draw(f, app, skin));
        self.rows_path.present(&frame, counting, rows > 0);
        self.margins_path.present(&frame, counting, rows > 0);
        if !counting {
            return;
        }
        self.rows += rows;
        if rows > 0 {
            self.visible += visible(&frame.buffer, ui::layout(SCREEN, app).tape);
            self.visible_frames += 1;
        }
    }
}

/// Non-blank cells of the tape's newest row (`tape` is the tape's area).
fn visible(buf: &Buffer, tape: Rect) -> u64 {
    let y = tape.y + 1;
    (tape.x..tape.right())
        .filter(|x| buf[(*x, y)].symbol() != " ")
        .count() as u64
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| fail(format!("seconds {s:?}: {e}")))
        })
        .unwrap_or(30);
    let node = Node::start_demo(flowtape::run::DEMO_RATE)
        .await
        .unwrap_or_else(|e| fail(e));
    let addr = node.gateway_addr().unwrap_or_else(|| fail("no gateway"));
    let url = format!("ws://{addr}/ws");
    let skin = Skin::new(Theme::builtin("default").unwrap_or_default(), false);
    let views = [
        ("notable (default)", View::Notable, ""),
        ("premium>=100k", View::All, "premium>=100k"),
        ("all prints", View::All, ""),
    ];
    let mut runs: Vec<Run> = [true, false]
        .into_iter()
        .flat_map(|panel| {
            views.iter().map(move |(name, view, filter)| {
                let name = format!("{name}{}", if panel { "" } else { ", no panel" });
                (name, *view, *filter, panel)
            })
        })
        .map(|(name, view, filter, panel)| Run::start(&url, &name, view, filter, panel))
        .collect();
    let start = Instant::now() + WARM_UP;
    let end = start + Duration::from_secs(seconds);
    let mut clock = tokio::time::interval(Duration::from_secs_f64(1.0 / FPS));
    let mut old_at_start = vec![0; runs.len()];
    let mut started = false;
    while Instant::now() < end {
        clock.tick().await;
        let counting = Instant::now() >= start;
        if counting && !started {
            started = true;
            for (run, at) in runs.iter().zip(&mut old_at_start) {
                *at = run.old_bytes.0.get();
            }
        }
        for run in &mut runs {
            run.frame(&skin, counting);
        }
    }
    println!(
        "demo sim at {} prints/s (mean), {}×{} at {FPS} fps, {seconds} s after {} s warm-up",
        flowtape::run::DEMO_RATE,
        SCREEN.width,
        SCREEN.height,
        WARM_UP.as_secs()
    );
    println!(
        "| view | new rows/s | visible chars | old B/s | old B/row | rows: B/s | B/row | B/row (frames with rows) | ÷ visible | margins: B/s | B/row | B/row (frames with rows) | ÷ visible |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (run, at) in runs.iter().zip(old_at_start) {
        let old = run.old_bytes.0.get() - at;
        let per_s = |n: u64| n as f64 / seconds as f64;
        let per_row = |n: u64| n as f64 / run.rows.max(1) as f64;
        let chars = run.visible as f64 / run.visible_frames.max(1) as f64;
        let path = |p: &Path| {
            format!(
                "{:.0} | {:.0} | {:.0} | {:.1}",
                per_s(p.bytes),
                per_row(p.bytes),
                per_row(p.row_frame_bytes),
                per_row(p.row_frame_bytes) / chars.max(1.0)
            )
        };
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {} |",
            run.name,
            per_s(run.rows),
            chars,
            per_s(old),
            per_row(old),
            path(&run.rows_path),
            path(&run.margins_path),
        );
    }
    node.shutdown();
    node.wait().await;
}
