//! The presenter: turns each new frame into the fewest bytes that take the
//! terminal from what it shows to that frame.
//!
//! It keeps the buffer the terminal shows. For a frame of the same size it
//! first scrolls a band of rows that moved ([`scroll::find`]; only the
//! columns that moved, on a terminal with left/right margins), then draws
//! the cells that still differ ([`cells::write`]); a frame of a new
//! size, the first frame, or one after [`Presenter::invalidate`] clears the
//! screen and draws everything. Output over [`SYNC_ABOVE`] bytes is wrapped
//! in synchronized-update codes; a frame that changes nothing produces no
//! bytes.

use std::io::{self, Write};

use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::queue;
use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use ratatui::buffer::{Buffer, Cell, CellWidth};
use ratatui::layout::Position;

use super::Frame;
use super::{cells, scroll};

/// What the terminal shows, and how to change it.
#[derive(Debug, Default)]
pub struct Presenter {
    /// The screen as the terminal shows it; `None` before the first frame
    /// and after [`Presenter::invalidate`].
    shown: Option<Buffer>,
    /// Where the cursor shows, or `None` while it is hidden (as
    /// `Term::enter` leaves it).
    cursor: Option<Position>,
    /// The scroll region the terminal has, if not the whole screen (it is
    /// left set after a scroll, see [`scroll::Shift::write`]).
    region: Option<(u16, u16)>,
    /// The terminal has left/right margins (DECLRMM, see [`super::probe`]):
    /// the presenter turns them on with its first frame and scrolls columns.
    margins: bool,
}

/// Frames larger than this are wrapped in synchronized-update codes, so
/// that the terminal shows them whole. A smaller one (a new row, a changed
/// figure) leaves in one write and is drawn in one pass; the 16 bytes of
/// codes would be a tenth of what a new row costs.
pub const SYNC_ABOVE: usize = 512;

/// Resets colours and attributes, the scroll region, and clears the screen.
const CLEAR: &[u8] = b"\x1b[0m\x1b[r\x1b[2J";
/// Turns left/right margin mode on and sets the margins to the whole width.
const MARGINS_ON: &[u8] = b"\x1b[?69h\x1b[s";

impl Presenter {
    /// A presenter for any xterm-like terminal or tmux: whole-row scrolling.
    pub fn new() -> Presenter {
        Presenter::default()
    }

    /// A presenter for a terminal that has left/right margins (DECLRMM);
    /// `Term` gives the mode back on exit ([`crate::term::write_restore`]).
    pub fn with_margins() -> Presenter {
        Presenter {
            margins: true,
            ..Presenter::default()
        }
    }

    /// Forgets what the terminal shows: the next frame is drawn whole (after
    /// a resize, when the terminal may have moved or cleared anything).
    pub fn invalidate(&mut self) {
        self.shown = None;
    }

    /// Appends to `out` the bytes that take the terminal to `frame`.
    pub fn present(&mut self, frame: &Frame, out: &mut Vec<u8>) -> io::Result<()> {
        let next = &frame.buffer;
        let mut body = Vec::new();
        let mut shown = match self.shown.take() {
            Some(shown) if shown.area == next.area => shown,
            _ => {
                if self.margins {
                    body.extend_from_slice(MARGINS_ON);
                }
                body.extend_from_slice(CLEAR);
                self.region = None;
                Buffer::empty(next.area)
            }
        };
        if let Some(shift) = scroll::find(&shown, next, self.margins) {
            shift.write(&mut body, self.region == Some(shift.region()))?;
            self.region = Some(shift.region());
            shift.apply(&mut shown);
        }
        expose_wide_damage(&mut shown, next);
        // A blank the terminal shows as the frame's (a bold row's gap after
        // a scroll brought in a plain blank line) is not sent.
        let cells: Vec<_> = shown
            .diff(next)
            .into_iter()
            .filter(|&(x, y, cell)| !cells::same_blank(&shown[(x, y)], cell))
            .collect();
        if !cells.is_empty() {
            cells::write(cells, next, &mut body)?;
        }
        self.shown = Some(next.clone());
        match (frame.cursor, self.cursor) {
            (Some(at), was) => {
                if was.is_none() {
                    queue!(body, Show)?;
                }
                if !body.is_empty() || was != Some(at) {
                    queue!(body, MoveTo(at.x, at.y))?;
                }
            }
            (None, Some(_)) => queue!(body, Hide)?,
            (None, None) => {}
        }
        self.cursor = frame.cursor;
        if body.len() > SYNC_ABOVE {
            queue!(out, BeginSynchronizedUpdate)?;
            out.write_all(&body)?;
            queue!(out, EndSynchronizedUpdate)?;
        } else {
            out.write_all(&body)?;
        }
        Ok(())
    }
}

/// A cell no frame has: the terminal's cell is unknown, so it is redrawn.
fn unknown() -> Cell {
    Cell::new("\u{E000}")
}

/// Marks as unknown the cells whose look depends on how a terminal treats a
/// wide character partly overwritten (terminals differ): the other columns
/// of a changed wide character, and a column after a new wide character
/// that covers half of an old one.
fn expose_wide_damage(shown: &mut Buffer, next: &Buffer) {
    let width = usize::from(next.area.width.max(1));
    let len = shown.content.len().min(next.content.len());
    for i in 0..len {
        if shown.content[i] == next.content[i] {
            continue;
        }
        let row_end = (i / width + 1) * width;
        let old = usize::from(shown.content[i].cell_width()).max(1);
        let new = usize::from(next.content[i].cell_width()).max(1);
        for j in i + 1..(i + old).min(row_end) {
            shown.content[j] = unknown();
        }
        // The old cell at i+new-1, if wide, loses its first half.
        if new > 1 {
            let last = i + new - 1;
            if last < row_end && shown.content[last].cell_width() > 1 {
                for j in
                    last + 1..(last + usize::from(shown.content[last].cell_width())).min(row_end)
                {
                    shown.content[j] = unknown();
                }
            }
        }
    }
}
