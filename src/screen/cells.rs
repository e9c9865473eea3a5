//! Writing changed cells in few bytes.
//!
//! [`write`] takes the cells that differ (ratatui's buffer diff) and emits
//! them with the shortest cursor moves (reprinting a short run of unchanged
//! cells, blanks in whatever pen shows them alike, cursor forward, column
//! only, or a full move), long runs of plain
//! blanks erased (ECH) rather than printed, and one SGR sequence
//! per style change that sets only what changed, or resets and sets what
//! the cell has where that is shorter. Colours are written as
//! crossterm writes them (256-colour indices for the named colours), and not
//! at all when `NO_COLOR` is set, as crossterm does. It assumes the terminal
//! starts with no colours or attributes set, and leaves it so.

use std::io::{self, Write};

use crossterm::style::Colored;
use ratatui::buffer::{Buffer, Cell, CellDiffOption, CellWidth};
use ratatui::style::{Color, Modifier};

/// The colours and attributes a cell is drawn with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pen {
    fg: Color,
    bg: Color,
    underline: Color,
    modifier: Modifier,
}

impl Pen {
    fn of(cell: &Cell, colour: bool) -> Pen {
        let c = |c: Color| if colour { c } else { Color::Reset };
        Pen {
            fg: c(cell.fg),
            bg: c(cell.bg),
            underline: c(cell.underline_color),
            modifier: cell.modifier,
        }
    }
}

/// SGR codes that turn modifiers on and off. Bold and dim share one off
/// code, and so do the two blinks.
const MODIFIERS: [(Modifier, u8, u8); 9] = [
    (Modifier::BOLD, 1, 22),
    (Modifier::DIM, 2, 22),
    (Modifier::ITALIC, 3, 23),
    (Modifier::UNDERLINED, 4, 24),
    (Modifier::SLOW_BLINK, 5, 25),
    (Modifier::RAPID_BLINK, 6, 25),
    (Modifier::REVERSED, 7, 27),
    (Modifier::HIDDEN, 8, 28),
    (Modifier::CROSSED_OUT, 9, 29),
];

/// The 256-colour index of a named colour (crossterm's mapping).
fn index(c: Color) -> Option<u8> {
    Some(match c {
        Color::Black => 0,
        Color::Red => 1,
        Color::Green => 2,
        Color::Yellow => 3,
        Color::Blue => 4,
        Color::Magenta => 5,
        Color::Cyan => 6,
        Color::Gray => 7,
        Color::DarkGray => 8,
        Color::LightRed => 9,
        Color::LightGreen => 10,
        Color::LightYellow => 11,
        Color::LightBlue => 12,
        Color::LightMagenta => 13,
        Color::LightCyan => 14,
        Color::White => 15,
        Color::Indexed(i) => i,
        Color::Reset | Color::Rgb(..) => return None,
    })
}

/// SGR parameters for colour `c` in the slot whose base is 38 (foreground),
/// 48 (background) or 58 (underline).
fn colour(params: &mut Vec<String>, base: u8, c: Color) {
    params.push(match (c, index(c)) {
        (_, Some(i)) => format!("{base};5;{i}"),
        (Color::Rgb(r, g, b), _) => format!("{base};2;{r};{g};{b}"),
        _ => format!("{}", base + 1),
    });
}

/// The SGR sequence that changes the terminal's pen from `from` to `to`:
/// what changed, or a reset and what `to` sets, whichever is shorter (a
/// bare reset, `CSI m`, back to no colours or attributes).
fn sgr(out: &mut Vec<u8>, from: Pen, to: Pen) {
    let changed = params(from, to).join(";");
    if changed.is_empty() {
        return;
    }
    let fresh = params(Pen::default(), to);
    let reset = if fresh.is_empty() {
        String::new()
    } else {
        format!("0;{}", fresh.join(";"))
    };
    let shortest = if reset.len() < changed.len() {
        reset
    } else {
        changed
    };
    out.extend_from_slice(b"\x1b[");
    out.extend_from_slice(shortest.as_bytes());
    out.push(b'm');
}

/// The SGR parameters that change the pen from `from` to `to`.
fn params(from: Pen, to: Pen) -> Vec<String> {
    let mut params = Vec::new();
    let removed = from.modifier - to.modifier;
    let mut on = to.modifier - from.modifier;
    for (m, _, off) in MODIFIERS {
        if removed.contains(m) && !params.contains(&off.to_string()) {
            params.push(off.to_string());
        }
    }
    // An off code shared by two modifiers turns both off; keep the other.
    for (m, _, off) in MODIFIERS {
        if to.modifier.contains(m) && params.contains(&off.to_string()) {
            on |= m;
        }
    }
    for (m, code, _) in MODIFIERS {
        if on.contains(m) {
            params.push(code.to_string());
        }
    }
    if from.fg != to.fg {
        colour(&mut params, 38, to.fg);
    }
    if from.bg != to.bg {
        colour(&mut params, 48, to.bg);
    }
    if from.underline != to.underline {
        colour(&mut params, 58, to.underline);
    }
    params
}

/// Decimal digits of `n`.
fn digits(n: u16) -> usize {
    n.to_string().len()
}

/// A run of this many blank cells or more is erased (ECH) rather than
/// printed: `CSI n X` and `CSI n C` cost about eight bytes.
const ERASE_RUN: usize = 9;

/// Modifiers that show on a blank cell.
const VISIBLE_ON_BLANK: Modifier = Modifier::REVERSED
    .union(Modifier::UNDERLINED)
    .union(Modifier::SLOW_BLINK)
    .union(Modifier::RAPID_BLINK)
    .union(Modifier::CROSSED_OUT);

/// What shows of a blank cell drawn with `pen`: its background, and the
/// modifiers that show on a blank with the colours they show in.
fn blank_look(pen: Pen) -> (Color, Option<Color>, Option<Color>, Modifier) {
    let m = pen.modifier & VISIBLE_ON_BLANK;
    (
        pen.bg,
        m.contains(Modifier::REVERSED).then_some(pen.fg),
        m.contains(Modifier::UNDERLINED).then_some(pen.underline),
        m,
    )
}

/// Whether the terminal showing blank `shown` already shows blank `next`:
/// they differ only in what does not show on a blank (foreground, bold).
pub fn same_blank(shown: &Cell, next: &Cell) -> bool {
    let colour = !Colored::ansi_color_disabled_memoized();
    shown.symbol() == " "
        && next.symbol() == " "
        && blank_look(Pen::of(shown, colour)) == blank_look(Pen::of(next, colour))
}

/// Whether printing `cell` in `pen` shows it as it is: its own pen, or a
/// blank whose look is the same in both (the foreground and bold do not
/// show on a blank).
fn looks_same_in(cell: &Cell, pen: Pen, colour: bool) -> bool {
    let own = Pen::of(cell, colour);
    own == pen || (cell.symbol() == " " && blank_look(own) == blank_look(pen))
}

/// The blank cells from `cells[i]` on, one after another on its row, in one
/// pen that shows nothing on a blank (no background, no reverse or
/// underline), so that erasing them in that pen draws them on any terminal.
fn blank_run(cells: &[(u16, u16, &Cell)], i: usize, colour: bool) -> usize {
    let (x0, y0, first) = cells[i];
    let pen = Pen::of(first, colour);
    if pen.bg != Color::Reset || pen.modifier.intersects(VISIBLE_ON_BLANK) {
        return 0;
    }
    cells[i..]
        .iter()
        .enumerate()
        .take_while(|(k, (x, y, c))| {
            *y == y0
                && usize::from(*x) == usize::from(x0) + k
                && c.symbol() == " "
                && Pen::of(c, colour) == pen
        })
        .count()
}

/// Writes `cells` (in screen order, as a buffer diff yields them) of the
/// frame `next`.
pub fn write<'a>(
    cells: impl IntoIterator<Item = (u16, u16, &'a Cell)>,
    next: &Buffer,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let cells: Vec<(u16, u16, &Cell)> = cells.into_iter().collect();
    let colour = !Colored::ansi_color_disabled_memoized();
    let width = next.area.width;
    let mut pen = Pen::default();
    // Where the cursor is; `None` when unknown (after the last column).
    let mut at: Option<(u16, u16)> = None;
    let mut i = 0;
    while i < cells.len() {
        let (x, y, cell) = cells[i];
        match at {
            Some(p) if p == (x, y) => {}
            Some((cx, cy)) if cy == y && cx < x => {
                let gap = (cx..x).map(|gx| &next[(gx, y)]);
                let reprint: Option<usize> = gap
                    .map(|c| {
                        (c.cell_width() == 1
                            && c.diff_option == CellDiffOption::None
                            && looks_same_in(c, pen, colour))
                        .then_some(c.symbol().len())
                    })
                    .sum();
                let forward = 3 + digits(x - cx);
                match reprint {
                    Some(n) if n <= forward => {
                        for gx in cx..x {
                            out.extend_from_slice(next[(gx, y)].symbol().as_bytes());
                        }
                    }
                    _ => write!(out, "\x1b[{}C", x - cx)?,
                }
            }
            Some((_, cy)) if cy == y => write!(out, "\x1b[{}G", x + 1)?,
            _ if x == 0 => write!(out, "\x1b[{}H", y + 1)?,
            _ => write!(out, "\x1b[{};{}H", y + 1, x + 1)?,
        }
        let want = Pen::of(cell, colour);
        if want != pen {
            sgr(out, pen, want);
            pen = want;
        }
        let run = blank_run(&cells, i, colour);
        if run >= ERASE_RUN {
            // Erasing leaves the cursor where it is.
            write!(out, "\x1b[{run}X")?;
            at = Some((x, y));
            i += run;
            continue;
        }
        out.extend_from_slice(cell.symbol().as_bytes());
        let end = x.saturating_add(cell.cell_width().max(1));
        at = (end < width).then_some((end, y));
        i += 1;
    }
    if pen != Pen::default() {
        out.extend_from_slice(b"\x1b[m");
    }
    Ok(())
}
