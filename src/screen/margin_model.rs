//! A small model of an xterm screen with left/right margins, for tests: the
//! `vt100` crate has no DECSLRM, so the presenter's margin path is checked
//! against this. It keeps symbols only (colours and attributes move with
//! their cells, so the `vt100` tests of the whole-row path cover them) and
//! knows just what the presenter sends: printing, CUP, CHA, CUF, ECH, ED 2,
//! IL, DL, SD, SU, DECSTBM, DECSLRM and DECLRMM (mode 69); the rest is
//! ignored.

use ratatui::buffer::{Buffer, CellWidth};
use ratatui::text::Span;

pub struct MarginModel {
    width: usize,
    height: usize,
    /// Symbols; `None` for the second column of a wide character.
    cells: Vec<Option<String>>,
    x: usize,
    y: usize,
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
    /// DECLRMM: `CSI s` sets margins instead of saving the cursor.
    lrmm: bool,
}

impl MarginModel {
    pub fn new(width: u16, height: u16) -> MarginModel {
        let (width, height) = (usize::from(width), usize::from(height));
        MarginModel {
            width,
            height,
            cells: vec![Some(" ".into()); width * height],
            x: 0,
            y: 0,
            top: 0,
            bottom: height - 1,
            left: 0,
            right: width - 1,
            lrmm: false,
        }
    }

    pub fn lrmm(&self) -> bool {
        self.lrmm
    }

    pub fn process(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                if chars.next_if_eq(&'[').is_none() {
                    chars.next();
                    continue;
                }
                let mut params = String::new();
                while let Some(p) = chars.next_if(|c| !c.is_ascii_alphabetic()) {
                    params.push(p);
                }
                if let Some(op) = chars.next() {
                    self.csi(&params, op);
                }
            } else if !c.is_control() {
                self.print(c);
            }
        }
    }

    /// The first cell where the model's screen is not `buf`'s symbols.
    pub fn mismatch(&self, buf: &Buffer) -> Option<String> {
        for y in 0..self.height {
            let mut x = 0;
            while x < self.width {
                let want = &buf[(x as u16, y as u16)];
                let got = self.cells[y * self.width + x].as_deref().unwrap_or("");
                if got != want.symbol() {
                    return Some(format!(
                        "cell {x},{y}: the model shows {got:?}, the frame has {:?}\n{}",
                        want.symbol(),
                        self.contents()
                    ));
                }
                x += usize::from(want.cell_width()).max(1);
            }
        }
        None
    }

    fn contents(&self) -> String {
        self.cells
            .chunks(self.width)
            .map(|row| row.iter().flatten().map(String::as_str).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn csi(&mut self, params: &str, op: char) {
        if let Some(mode) = params.strip_prefix('?') {
            if mode == "69" && (op == 'h' || op == 'l') {
                self.lrmm = op == 'h';
                (self.left, self.right) = (0, self.width - 1);
            }
            return;
        }
        if params.contains('$') {
            return;
        }
        let nums: Vec<usize> = params.split(';').map(|p| p.parse().unwrap_or(0)).collect();
        let arg = |i: usize, default: usize| match nums.get(i) {
            Some(0) | None => default,
            Some(n) => *n,
        };
        match op {
            'H' => {
                self.y = (arg(0, 1) - 1).min(self.height - 1);
                self.x = (arg(1, 1) - 1).min(self.width - 1);
            }
            'G' => self.x = (arg(0, 1) - 1).min(self.width - 1),
            'C' => self.x = (self.x + arg(0, 1)).min(self.width - 1),
            'X' => {
                for x in self.x..(self.x + arg(0, 1)).min(self.width) {
                    self.put(x, " ", false);
                }
            }
            'J' if arg(0, 0) == 2 => self.cells.fill(Some(" ".into())),
            'L' | 'M' => self.scroll_lines(arg(0, 1), op == 'L'),
            'T' | 'S' => self.shift(self.top, arg(0, 1), op == 'T'),
            'r' => {
                self.top = arg(0, 1) - 1;
                self.bottom = arg(1, self.height) - 1;
                (self.x, self.y) = (0, 0);
            }
            's' if self.lrmm => {
                self.left = arg(0, 1) - 1;
                self.right = arg(1, self.width) - 1;
                (self.x, self.y) = (0, 0);
            }
            _ => {}
        }
    }

    /// IL (`insert`) or DL at the cursor, inside the scroll region and margins.
    fn scroll_lines(&mut self, n: usize, insert: bool) {
        let inside = (self.top..=self.bottom).contains(&self.y)
            && (self.left..=self.right).contains(&self.x);
        if !inside {
            return;
        }
        self.shift(self.y, n, insert);
        self.x = self.left;
    }

    /// Moves the rows from `first` to the region's bottom, inside the
    /// margins, `n` rows down (blank rows coming in at `first`) or up: what
    /// IL and DL do from the cursor's row, and SD and SU from the region's top.
    fn shift(&mut self, first: usize, n: usize, down: bool) {
        let span = |y: usize| y * self.width + self.left..y * self.width + self.right + 1;
        let band: Vec<usize> = (first..=self.bottom).collect();
        let order: Vec<usize> = if down {
            band.iter().rev().copied().collect()
        } else {
            band
        };
        for y in order {
            let from = if down {
                y.checked_sub(n).filter(|f| *f >= first)
            } else {
                Some(y + n).filter(|f| *f <= self.bottom)
            };
            match from {
                Some(from) => {
                    let moved = self.cells[span(from)].to_vec();
                    self.cells[span(y)].clone_from_slice(&moved);
                }
                None => self.cells[span(y)].fill(Some(" ".into())),
            }
        }
    }

    /// Puts `symbol` (`wide`: two columns) at (`x`, cursor row), blanking
    /// what is left of any wide character it overwrites part of.
    fn put(&mut self, x: usize, symbol: &str, wide: bool) {
        let w = if wide { 2 } else { 1 };
        let at = self.y * self.width + x;
        if self.cells[at].is_none() && x > 0 {
            self.cells[at - 1] = Some(" ".into());
        }
        if x + w < self.width && self.cells[at + w].is_none() {
            self.cells[at + w] = Some(" ".into());
        }
        self.cells[at] = Some(symbol.into());
        if wide {
            self.cells[at + 1] = None;
        }
    }

    fn print(&mut self, c: char) {
        let symbol = c.to_string();
        let wide = Span::raw(symbol.as_str()).width() > 1;
        let w = if wide { 2 } else { 1 };
        if self.x + w > self.width {
            return;
        }
        self.put(self.x, &symbol, wide);
        self.x += w;
    }
}
