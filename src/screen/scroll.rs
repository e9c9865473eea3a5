//! Finding a band of rows that moved between two frames, and moving it with
//! the terminal's own scrolling.
//!
//! [`find`] compares the rows the terminal shows with the next frame's and
//! returns the [`Shift`] that leaves the fewest cells to redraw, if it saves
//! more than the escape codes cost. [`Shift::write`] emits it (a DECSTBM
//! scroll region, insert or delete line, the region reset) and
//! [`Shift::apply`] moves the presenter's copy of the screen the same way.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};

use ratatui::buffer::{Buffer, Cell};

/// A band of rows `top..=bottom` (screen rows, 0-based) moved by `by` rows:
/// down when positive (the rows that enter at the top are blank), up when
/// negative (they enter at the bottom).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    pub top: u16,
    pub bottom: u16,
    pub by: i16,
}

/// A scroll costs about this many cells' worth of bytes (its escape codes).
const SCROLL_COST: usize = 12;
/// Row distances tried at most per frame (the most promising ones).
const CANDIDATES: usize = 3;

impl Shift {
    /// The escape codes: set the scroll region, insert (down) or delete (up)
    /// lines at its top, and give the whole screen back as the region.
    /// Insert and delete line scroll only inside the region, and every
    /// xterm-like terminal and tmux has them. The lines that come in take the
    /// current background, so the caller sends this with no colours set.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let (top, bottom) = (self.top + 1, self.bottom + 1);
        let op = if self.by > 0 { 'L' } else { 'M' };
        write!(
            out,
            "\x1b[{top};{bottom}r\x1b[{top};1H\x1b[{}{op}\x1b[r",
            self.by.unsigned_abs()
        )
    }

    /// Moves `buf`'s rows as the terminal moves them; rows that come in are blank.
    pub fn apply(&self, buf: &mut Buffer) {
        let width = usize::from(buf.area.width);
        let (top, bottom) = (usize::from(self.top), usize::from(self.bottom));
        let n = usize::from(self.by.unsigned_abs());
        let band = &mut buf.content[top * width..(bottom + 1) * width];
        if self.by > 0 {
            band.rotate_right(n * width);
            band[..n * width].fill(Cell::EMPTY);
        } else {
            band.rotate_left(n * width);
            let len = band.len();
            band[len - n * width..].fill(Cell::EMPTY);
        }
    }
}

/// The rows of a buffer.
fn rows(buf: &Buffer) -> impl Iterator<Item = &[Cell]> {
    buf.content.chunks(usize::from(buf.area.width.max(1)))
}

fn row_hash(row: &[Cell]) -> u64 {
    let mut h = DefaultHasher::new();
    row.hash(&mut h);
    h.finish()
}

/// Cells that differ between two rows.
fn differing(a: &[Cell], b: &[Cell]) -> usize {
    a.iter().zip(b).filter(|(a, b)| a != b).count()
}

/// The shift that saves the most redrawing of `next` over `shown`, if any
/// saves more than it costs. Both buffers must have the same area.
pub fn find(shown: &Buffer, next: &Buffer) -> Option<Shift> {
    if shown.area != next.area || next.area.height < 2 {
        return None;
    }
    let old: Vec<&[Cell]> = rows(shown).collect();
    let new: Vec<&[Cell]> = rows(next).collect();
    let height = new.len();
    let old_hash: Vec<u64> = old.iter().map(|r| row_hash(r)).collect();
    let new_hash: Vec<u64> = new.iter().map(|r| row_hash(r)).collect();
    // Cost of each next row without a shift, and coming in blank.
    let same: Vec<usize> = (0..height).map(|y| differing(old[y], new[y])).collect();
    let blank: Vec<usize> = new
        .iter()
        .map(|r| r.iter().filter(|c| **c != Cell::EMPTY).count())
        .collect();
    candidates(&old, &new, &old_hash, &new_hash)
        .into_iter()
        .filter_map(|by| {
            let moved = |y: usize| -> usize {
                let from = y as isize - by;
                let from = from as usize;
                if old_hash[from] == new_hash[y] && old[from] == new[y] {
                    0
                } else {
                    differing(old[from], new[y])
                }
            };
            let (top, bottom, gain) = if by > 0 {
                best_band(by as usize, &same, &blank, moved)
            } else {
                // Upward is downward with the rows numbered from the bottom.
                let flip = |v: &[usize]| v.iter().rev().copied().collect::<Vec<_>>();
                let (t, b, gain) = best_band(by.unsigned_abs(), &flip(&same), &flip(&blank), |r| {
                    moved(height - 1 - r)
                });
                (height - 1 - b, height - 1 - t, gain)
            };
            let shift = Shift {
                top: top as u16,
                bottom: bottom as u16,
                by: by as i16,
            };
            (gain > SCROLL_COST).then_some((gain, shift))
        })
        .max_by_key(|(gain, _)| *gain)
        .map(|(_, shift)| shift)
}

/// Row distances (next row minus shown row) at which rows with content
/// reappear, the most content first. Blank and one-colour rows say nothing
/// about movement and are left out.
fn candidates(old: &[&[Cell]], new: &[&[Cell]], old_hash: &[u64], new_hash: &[u64]) -> Vec<isize> {
    let plain = |row: &[Cell]| row.iter().all(|c| c == &row[0]);
    let mut votes: std::collections::HashMap<isize, usize> = Default::default();
    for (y, row) in new.iter().enumerate() {
        if plain(row) {
            continue;
        }
        for (from, h) in old_hash.iter().enumerate() {
            if *h == new_hash[y] && from != y && old[from] == *row {
                *votes.entry(y as isize - from as isize).or_default() += row.len();
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

/// For a downward shift by `by`: the region `top..=bottom` whose scrolling
/// saves the most cells, and the cells saved. In it, rows `top+by..=bottom`
/// show what the rows `by` above showed (cost `moved(y)`) and rows
/// `top..top+by` come in blank (cost `blank[y]`), instead of costing `same[y]`.
fn best_band(
    by: usize,
    same: &[usize],
    blank: &[usize],
    moved: impl Fn(usize) -> usize,
) -> (usize, usize, usize) {
    let height = same.len();
    if by == 0 || by >= height {
        return (0, 0, 0);
    }
    let gain = |y: usize| same[y] as isize - moved(y) as isize;
    // best_from[s]: the most that rows s..=b save, over every b >= s.
    let mut best_from = vec![(0isize, 0usize); height + 1];
    let mut next_best = (isize::MIN, height);
    for s in (by..height).rev() {
        let g = gain(s);
        best_from[s] = if next_best.0 > 0 {
            (g + next_best.0, next_best.1)
        } else {
            (g, s)
        };
        next_best = best_from[s];
    }
    let entering = |top: usize| -> isize {
        (top..top + by)
            .map(|y| same[y] as isize - blank[y] as isize)
            .sum()
    };
    (0..height - by)
        .map(|top| {
            let (saved, bottom) = best_from[top + by];
            (top, bottom, entering(top) + saved)
        })
        .max_by_key(|(_, _, saved)| *saved)
        .map_or((0, 0, 0), |(top, bottom, saved)| {
            (top, bottom, saved.max(0) as usize)
        })
}
