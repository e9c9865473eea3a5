//! Drawing to the terminal in few bytes, for links where every byte counts
//! (SSH).
//!
//! The UI is rendered by ratatui as ever, into a [`Frame`] on a [`Canvas`]
//! (no terminal involved); the [`writer`] thread hands the newest frame to
//! the [`presenter`], which scrolls rows that moved with the terminal's own
//! scrolling ([`scroll`]) and draws only the cells that still differ. Where
//! the terminal says it has left/right margins ([`probe`]), a scroll may move
//! only the columns that moved (the tape beside a popup that stays).

pub mod cells;
#[cfg(test)]
mod margin_model;
pub mod presenter;
pub mod probe;
pub mod scroll;
#[cfg(test)]
mod tests;
pub mod writer;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::{Terminal, TerminalOptions, Viewport};

/// One whole screen: every cell, and where the cursor shows (`None`: hidden).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub buffer: Buffer,
    pub cursor: Option<Position>,
}

/// Renders frames with ratatui into memory: a `Terminal` over ratatui's
/// in-memory backend, so widgets, layout and cursor handling are ratatui's own.
pub struct Canvas {
    terminal: Terminal<TestBackend>,
    area: Rect,
}

impl Canvas {
    pub fn new(area: Rect) -> Canvas {
        let backend = TestBackend::new(area.width, area.height);
        let options = TerminalOptions {
            viewport: Viewport::Fixed(area),
        };
        let terminal = match Terminal::with_options(backend, options) {
            Ok(t) => t,
            Err(never) => match never {},
        };
        Canvas { terminal, area }
    }

    pub fn area(&self) -> Rect {
        self.area
    }

    /// Renders one frame with `draw`.
    pub fn render(&mut self, draw: impl FnOnce(&mut ratatui::Frame)) -> Frame {
        let buffer = match self.terminal.draw(draw) {
            Ok(done) => done.buffer.clone(),
            Err(never) => match never {},
        };
        let backend = self.terminal.backend();
        let cursor = backend.cursor_visible().then(|| backend.cursor_position());
        Frame { buffer, cursor }
    }
}
