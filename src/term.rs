//! The terminal: raw mode and the alternate screen, always given back.
//!
//! [`Term::enter`] takes the terminal and installs a panic hook that restores
//! it before the panic message prints; dropping the [`Term`] restores it on
//! every other exit path (quit, error, SIGTERM handled by the run loop).
//! Frames are wrapped in synchronized-update codes so terminals, tmux and SSH
//! show whole frames, never half-drawn ones.

use std::io::{self, BufWriter, Stdout, Write};

use crossterm::cursor::{Hide, Show};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, BeginSynchronizedUpdate, EndSynchronizedUpdate,
    EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{execute, queue};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use crate::app::App;
use crate::ui::{self, Skin};

/// The terminal in raw mode on the alternate screen.
pub struct Term {
    /// Buffered: a frame is thousands of small escape-code writes, which go
    /// out as a few large writes when the frame is flushed.
    terminal: Terminal<CrosstermBackend<BufWriter<Stdout>>>,
    /// The screen's size, as of the start or the last [`Term::resize`]. The
    /// viewport is fixed to it, so that drawing does not ask the terminal
    /// for its size every frame (crossterm opens `/dev/tty` to ask); the run
    /// loop calls [`Term::resize`] on every resize event.
    area: Rect,
}

/// The screen's size now.
fn screen() -> io::Result<Rect> {
    let (width, height) = crossterm::terminal::size()?;
    Ok(Rect::new(0, 0, width, height))
}

/// Room for a whole full-screen frame of escape codes.
const FRAME_BUFFER: usize = 256 * 1024;

/// Leaves raw mode and the alternate screen. Safe to call more than once.
pub fn restore() -> io::Result<()> {
    let raw = disable_raw_mode();
    let mut out = io::stdout();
    let screen = execute!(out, EndSynchronizedUpdate, LeaveAlternateScreen, Show);
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
        enable_raw_mode()?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, Hide) {
            let _ = restore();
            return Err(e);
        }
        let out = BufWriter::with_capacity(FRAME_BUFFER, out);
        let start = screen().and_then(|area| {
            let options = TerminalOptions {
                viewport: Viewport::Fixed(area),
            };
            Ok((
                Terminal::with_options(CrosstermBackend::new(out), options)?,
                area,
            ))
        });
        let (terminal, area) = start.inspect_err(|_| {
            let _ = restore();
        })?;
        Ok(Term { terminal, area })
    }

    /// Rows and columns (as of the last resize).
    pub fn area(&self) -> io::Result<Rect> {
        Ok(self.area)
    }

    /// Draws one frame inside a synchronized update.
    pub fn draw(&mut self, app: &App, skin: &Skin) -> io::Result<()> {
        queue!(self.terminal.backend_mut(), BeginSynchronizedUpdate)?;
        let drawn = self.terminal.draw(|f| ui::draw(f, app, skin)).map(|_| ());
        let end = execute!(self.terminal.backend_mut(), EndSynchronizedUpdate);
        drawn.and(end)
    }

    /// Picks up a new size at once (the next draw repaints everything).
    pub fn resize(&mut self) -> io::Result<()> {
        self.area = screen()?;
        self.terminal.resize(self.area)
    }

    /// Rings the terminal bell.
    pub fn bell(&mut self) -> io::Result<()> {
        let out = self.terminal.backend_mut();
        out.write_all(b"\x07")?;
        out.flush()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = restore();
    }
}
