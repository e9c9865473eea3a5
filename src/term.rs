//! The terminal: raw mode and the alternate screen, always given back.
//!
//! [`Term::enter`] takes the terminal and installs a panic hook that restores
//! it before the panic message prints; dropping the [`Term`] restores it on
//! every other exit path (quit, error, SIGTERM handled by the run loop).
//! Frames are rendered in memory and written by a [`FrameWriter`] thread,
//! which sends only what changed (scrolling rows that moved), wrapped in
//! synchronized-update codes, and skips to the newest frame when the output
//! backs up (see [`crate::screen`]). On entering, before the event reader
//! starts, it asks the terminal once whether it has left/right margins
//! ([`probe`]) and scrolls only the tape's columns where it has.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EndSynchronizedUpdate, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use crossterm::{execute, queue};
use ratatui::layout::Rect;

use crate::app::App;
use crate::screen::presenter::Presenter;
use crate::screen::probe;
use crate::screen::writer::FrameWriter;
use crate::screen::Canvas;
use crate::ui::{self, Skin};

/// The terminal in raw mode on the alternate screen.
pub struct Term {
    canvas: Canvas,
    /// Always `Some` until dropped (taken to end the thread before restoring).
    writer: Option<FrameWriter>,
}

/// The screen's size now.
fn screen() -> io::Result<Rect> {
    let (width, height) = crossterm::terminal::size()?;
    Ok(Rect::new(0, 0, width, height))
}

/// The codes that give the terminal back: end a synchronized update left
/// open, left/right margin mode off (which drops the margins; terminals
/// without it ignore this), the whole screen as scroll region, plain
/// colours, the main screen, the cursor.
pub fn write_restore(out: &mut impl Write) -> io::Result<()> {
    queue!(out, EndSynchronizedUpdate)?;
    out.write_all(b"\x1b[?69l\x1b[r\x1b[0m")?;
    queue!(out, LeaveAlternateScreen, Show)?;
    out.flush()
}

/// Set when the terminal is given back, so that a frame still on its way
/// (from the writer thread, as a panic restores the terminal) is not drawn
/// over the main screen.
static RESTORED: AtomicBool = AtomicBool::new(false);

/// Standard output for frames: each frame is one locked write, refused once
/// the terminal has been given back.
struct FrameOut;

impl FrameOut {
    fn locked<T>(
        with: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut out = io::stdout().lock();
        if RESTORED.load(Ordering::SeqCst) {
            return Err(io::Error::other("the terminal has been restored"));
        }
        with(&mut out)
    }
}

impl Write for FrameOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        FrameOut::locked(|out| out.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        FrameOut::locked(|out| out.write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        FrameOut::locked(|out| out.flush())
    }
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
pub fn restore() -> io::Result<()> {
    let raw = disable_raw_mode();
    let mut out = io::stdout().lock();
    RESTORED.store(true, Ordering::SeqCst);
    let screen = write_restore(&mut out);
    raw.and(screen)
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = restore();
        previous(info);
    }));
}

impl Term {
    pub fn enter() -> io::Result<Term> {
        install_panic_hook();
        RESTORED.store(false, Ordering::SeqCst);
        enable_raw_mode()?;
        let start = execute!(io::stdout(), EnterAlternateScreen, Hide)
            .and_then(|()| screen())
            .and_then(|area| {
                let presenter = if probe::ask_margins(&mut io::stdout()) {
                    Presenter::with_margins()
                } else {
                    Presenter::new()
                };
                Ok((area, FrameWriter::spawn(FrameOut, presenter)?))
            });
        let (area, writer) = start.inspect_err(|_| {
            let _ = restore();
        })?;
        Ok(Term {
            canvas: Canvas::new(area),
            writer: Some(writer),
        })
    }

    /// Rows and columns (as of the last resize).
    pub fn area(&self) -> io::Result<Rect> {
        Ok(self.canvas.area())
    }

    fn writer(&self) -> io::Result<&FrameWriter> {
        self.writer
            .as_ref()
            .ok_or_else(|| io::Error::other("the terminal's writer has stopped"))
    }

    /// Renders one frame and hands it to the writer (which shows it as soon
    /// as the terminal takes it, unless a newer frame comes first).
    pub fn draw(&mut self, app: &App, skin: &Skin) -> io::Result<()> {
        let frame = self.canvas.render(|f| ui::draw(f, app, skin));
        self.writer()?.submit(frame)
    }

    /// Picks up a new size at once (the next draw repaints everything).
    pub fn resize(&mut self) -> io::Result<()> {
        self.canvas = Canvas::new(screen()?);
        self.writer()?.repaint()
    }

    /// Rings the terminal bell.
    pub fn bell(&mut self) -> io::Result<()> {
        self.writer()?.bell()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // The writer's last frame goes out before the terminal is given back.
        drop(self.writer.take());
        let _ = restore();
    }
}
