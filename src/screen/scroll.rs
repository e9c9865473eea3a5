//! Finding a block of rows that moved between two frames, and moving it with
//! the terminal's own scrolling.
//!
//! [`find`] compares the rows the terminal shows with the next frame's and
//! returns the [`Shift`] that leaves the fewest cells to redraw, if it saves
//! more than the escape codes cost. A shift spans whole rows, or, where the
//! terminal has left/right margins (`margins`), it may span a range of
//! columns: a tape then scrolls without moving a popup over it.
//! [`Shift::write`] emits it (a DECSTBM scroll region, DECSLRM margins if it
//! has columns, insert or delete line, the margins reset) and
//! [`Shift::apply`] moves the presenter's copy of the screen the same way.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};

use ratatui::buffer::{Buffer, Cell, CellWidth};

/// A band of rows `top..=bottom` (screen rows, 0-based) moved by `by` rows:
/// down when positive (the rows that enter at the top are blank), up when
/// negative (they enter at the bottom); only the columns `left..=right` of
/// `columns` when set (left/right margins), else whole rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    pub top: u16,
    pub bottom: u16,
    pub by: i16,
    pub columns: Option<(u16, u16)>,
}

/// A scroll costs about this many bytes (its escape codes).
const SCROLL_COST: isize = 12;
/// Setting and resetting left/right margins costs about this many more bytes.
const MARGIN_COST: isize = 12;
/// Row distances tried at most per frame (the most promising ones).
const CANDIDATES: usize = 3;
/// Rows are compared in pieces this many columns wide, so that a band that
/// moved beside one that stayed is still found.
const PIECE: usize = 16;

impl Shift {
    /// The escape codes: set the scroll region unless `region_set` (the
    /// terminal has it from the last shift), then scroll it down (SD, `CSI
    /// n T`) or up (SU, `CSI n S`); or, for a band of columns, set the
    /// margins, insert (down) or delete (up) lines at the band's top left,
    /// and reset the margins. The region stays set: nothing else the
    /// presenter sends depends on it (it moves the cursor to absolute
    /// positions), and the next shift of the same band saves setting it
    /// again. SD, SU, insert and delete line scroll only inside the region,
    /// and every xterm-like terminal and tmux has them; margins need DECLRMM
    /// on (see [`super::probe`]), and are reset at once because
    /// cursor-forward stops at them. The lines that come in take the current
    /// background, so the caller sends this with no colours set.
    pub fn write(&self, out: &mut impl Write, region_set: bool) -> io::Result<()> {
        let (top, bottom) = (self.top + 1, self.bottom + 1);
        if !region_set {
            write!(out, "\x1b[{top};{bottom}r")?;
        }
        let n = match self.by.unsigned_abs() {
            1 => String::new(),
            n => n.to_string(),
        };
        match self.columns {
            // Scroll down (SD) or up (SU) within the region: no cursor move.
            None => {
                let op = if self.by > 0 { 'T' } else { 'S' };
                write!(out, "\x1b[{n}{op}")
            }
            // Insert or delete lines at the region's top left, within the
            // margins.
            Some((left, right)) => {
                let op = if self.by > 0 { 'L' } else { 'M' };
                let (left, right) = (left + 1, right + 1);
                write!(
                    out,
                    "\x1b[{left};{right}s\x1b[{top};{left}H\x1b[{n}{op}\x1b[s"
                )
            }
        }
    }

    /// The scroll region the shift sets (rows, 0-based).
    pub fn region(&self) -> (u16, u16) {
        (self.top, self.bottom)
    }

    /// Moves `buf`'s cells as the terminal moves them; cells that come in are blank.
    pub fn apply(&self, buf: &mut Buffer) {
        let width = usize::from(buf.area.width);
        let (left, right) = self.columns.map_or((0, width.saturating_sub(1)), |(l, r)| {
            (usize::from(l), usize::from(r))
        });
        let (top, bottom) = (usize::from(self.top), usize::from(self.bottom));
        let n = usize::from(self.by.unsigned_abs());
        let span = |y: usize| y * width + left..y * width + right + 1;
        let rows: Vec<usize> = if self.by > 0 {
            (top..=bottom).rev().collect()
        } else {
            (top..=bottom).collect()
        };
        for y in rows {
            let from = if self.by > 0 {
                y.checked_sub(n).filter(|f| *f >= top)
            } else {
                Some(y + n).filter(|f| *f <= bottom)
            };
            match from {
                Some(from) => {
                    let moved = buf.content[span(from)].to_vec();
                    buf.content[span(y)].clone_from_slice(&moved);
                }
                None => buf.content[span(y)].fill(Cell::EMPTY),
            }
        }
    }
}

/// The rows of a buffer.
fn rows(buf: &Buffer) -> Vec<&[Cell]> {
    buf.content
        .chunks(usize::from(buf.area.width.max(1)))
        .collect()
}

fn hash(cells: &[Cell]) -> u64 {
    let mut h = DefaultHasher::new();
    cells.hash(&mut h);
    h.finish()
}

/// The shift that saves the most redrawing of `next` over `shown`, if any
/// saves more than it costs; with `margins`, it may cover a range of columns.
/// Both buffers must have the same area.
pub fn find(shown: &Buffer, next: &Buffer, margins: bool) -> Option<Shift> {
    if shown.area != next.area || next.area.height < 2 || next.area.width == 0 {
        return None;
    }
    let old = rows(shown);
    let new = rows(next);
    candidates(&old, &new)
        .into_iter()
        .filter_map(|by| Gains::of(&old, &new, by).best(shown, margins))
        .max_by_key(|(gain, _)| *gain)
        .map(|(_, shift)| shift)
}

/// Row distances (next row minus shown row) at which pieces of rows with
/// content reappear, the most content first. One-cell-kind pieces (blank,
/// one colour) say nothing about movement and are left out.
fn candidates(old: &[&[Cell]], new: &[&[Cell]]) -> Vec<isize> {
    let plain = |p: &[Cell]| p.iter().all(|c| c == &p[0]);
    let mut seen: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    for (y, row) in old.iter().enumerate() {
        for (i, piece) in row.chunks(PIECE).enumerate() {
            if !plain(piece) {
                seen.entry((i, hash(piece))).or_default().push(y);
            }
        }
    }
    let mut votes: HashMap<isize, usize> = HashMap::new();
    for (y, row) in new.iter().enumerate() {
        for (i, piece) in row.chunks(PIECE).enumerate() {
            if plain(piece) {
                continue;
            }
            let Some(froms) = seen.get(&(i, hash(piece))) else {
                continue;
            };
            let weight = piece.iter().filter(|c| **c != Cell::EMPTY).count();
            for &from in froms {
                if from != y && old[from].chunks(PIECE).nth(i) == Some(piece) {
                    *votes.entry(y as isize - from as isize).or_default() += weight;
                }
            }
        }
    }
    let mut ranked: Vec<(isize, usize)> = votes.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(CANDIDATES)
        .map(|(d, _)| d)
        .collect()
}

/// What scrolling by one distance saves, cell by cell, with the rows
/// numbered in the direction of the shift (from the bottom for an upward
/// one), so that rows always enter at the band's first row.
struct Gains {
    by: i16,
    height: usize,
    width: usize,
    /// Per row, prefix sums over columns of the bytes saved (a cell costs
    /// its symbol's bytes) if the row shows what the row `n` before it
    /// showed (`width + 1` entries a row).
    moved: Vec<isize>,
    /// The same if the row comes in blank.
    entering: Vec<isize>,
}

impl Gains {
    fn of(old: &[&[Cell]], new: &[&[Cell]], by: isize) -> Gains {
        let height = new.len();
        let width = new[0].len();
        let n = by.unsigned_abs();
        let screen_row = |r: usize| if by > 0 { r } else { height - 1 - r };
        let mut moved = vec![0; height * (width + 1)];
        let mut entering = vec![0; height * (width + 1)];
        for r in 0..height {
            let y = screen_row(r);
            let from = (r >= n).then(|| old[screen_row(r - n)]);
            let at = r * (width + 1);
            for x in 0..width {
                let want = &new[y][x];
                // A cell to draw costs about its bytes.
                let draw = want.symbol().len().max(1) as isize;
                let cost = |shows: &Cell| if shows == want { 0 } else { draw };
                let same = cost(&old[y][x]);
                let m = from.map_or(0, |f| same - cost(&f[x]));
                let e = same - cost(&Cell::EMPTY);
                moved[at + x + 1] = moved[at + x] + m;
                entering[at + x + 1] = entering[at + x] + e;
            }
        }
        Gains {
            by: by as i16,
            height,
            width,
            moved,
            entering,
        }
    }

    fn n(&self) -> usize {
        usize::from(self.by.unsigned_abs())
    }

    /// Cells saved by row `r` (from `table`: moved or entering) over the
    /// columns `left..=right`.
    fn row(&self, table: &[isize], r: usize, (left, right): (usize, usize)) -> isize {
        let at = r * (self.width + 1);
        table[at + right + 1] - table[at + left]
    }

    /// The best band for `columns`: first and last row (in shift order) and
    /// the cells saved.
    fn band(&self, columns: (usize, usize)) -> (usize, usize, isize) {
        let n = self.n();
        if n == 0 || n >= self.height {
            return (0, 0, 0);
        }
        let moved: Vec<isize> = (0..self.height)
            .map(|r| self.row(&self.moved, r, columns))
            .collect();
        let entering: Vec<isize> = (0..self.height)
            .map(|r| self.row(&self.entering, r, columns))
            .collect();
        best_band(n, &moved, &entering)
    }

    /// The best columns for the band `first..=last` (shift order): the run
    /// of columns saving the most, and that.
    fn columns(&self, first: usize, last: usize) -> (usize, usize, isize) {
        let n = self.n();
        let saved = |x: usize| -> isize {
            (first..=last)
                .map(|r| {
                    let table = if r < first + n {
                        &self.entering
                    } else {
                        &self.moved
                    };
                    self.row(table, r, (x, x))
                })
                .sum()
        };
        let mut best = (0, 0, isize::MIN);
        let (mut start, mut run) = (0, 0);
        for x in 0..self.width {
            if run <= 0 {
                (start, run) = (x, 0);
            }
            run += saved(x);
            if run > best.2 {
                best = (start, x, run);
            }
        }
        best
    }

    /// The shift for a band in shift order over `columns`.
    fn shift(&self, first: usize, last: usize, columns: (usize, usize)) -> Shift {
        let (top, bottom) = if self.by > 0 {
            (first, last)
        } else {
            (self.height - 1 - last, self.height - 1 - first)
        };
        let full = columns == (0, self.width - 1);
        Shift {
            top: top as u16,
            bottom: bottom as u16,
            by: self.by,
            columns: (!full).then_some((columns.0 as u16, columns.1 as u16)),
        }
    }

    /// The shift at this distance saving the most net of its cost, if it
    /// saves anything: whole rows, or with `margins` also the columns that
    /// moved (searched twice over: columns for the band, band for the
    /// columns).
    fn best(&self, shown: &Buffer, margins: bool) -> Option<(isize, Shift)> {
        let full = (0, self.width - 1);
        let (first, last, saved) = self.band(full);
        let mut best = (saved - SCROLL_COST, self.shift(first, last, full));
        if margins {
            let (mut first, mut last) = (first, last);
            for _ in 0..2 {
                let (left, right, _) = self.columns(first, last);
                let (f, l, saved) = self.band((left, right));
                (first, last) = (f, l);
                let shift = self.shift(first, last, (left, right));
                let net = saved
                    - SCROLL_COST
                    - if shift.columns.is_some() {
                        MARGIN_COST
                    } else {
                        0
                    };
                if net > best.0 && !splits_wide(shown, &shift) {
                    best = (net, shift);
                }
            }
        }
        (best.0 > 0).then_some(best)
    }
}

/// Whether a wide character the terminal shows straddles the shift's left or
/// right edge (terminals differ in what moving half of one does).
fn splits_wide(shown: &Buffer, shift: &Shift) -> bool {
    let Some((left, right)) = shift.columns else {
        return false;
    };
    let straddles = |y: u16, edge: u16| {
        (edge.saturating_sub(3)..edge).any(|x| {
            let w = shown[(x, y)].cell_width();
            w > 1 && x + w > edge
        })
    };
    (shift.top..=shift.bottom)
        .any(|y| straddles(y, left) || (right + 1 < shown.area.width && straddles(y, right + 1)))
}

/// For a downward shift by `n`: the region `top..=bottom` whose scrolling
/// saves the most cells, and the cells saved. In it, rows `top..top+n` come
/// in blank (saving `entering[y]`) and rows `top+n..=bottom` show what the
/// rows `n` above showed (saving `moved[y]`).
fn best_band(n: usize, moved: &[isize], entering: &[isize]) -> (usize, usize, isize) {
    let height = moved.len();
    // best_from[s]: the most that rows s..=b save, over every b >= s.
    let mut best_from = vec![(0isize, 0usize); height + 1];
    let mut next_best = (isize::MIN, height);
    for s in (n..height).rev() {
        let g = moved[s];
        best_from[s] = if next_best.0 > 0 {
            (g + next_best.0, next_best.1)
        } else {
            (g, s)
        };
        next_best = best_from[s];
    }
    (0..height - n)
        .map(|top| {
            let (saved, bottom) = best_from[top + n];
            let entered: isize = entering[top..top + n].iter().sum();
            (top, bottom, entered + saved)
        })
        .max_by_key(|(_, _, saved)| *saved)
        .unwrap_or((0, 0, 0))
}
