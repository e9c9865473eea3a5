//! The tape: a table of events, newest on top.
//!
//! Only the visible window of rows is built. Columns have a priority; on a
//! narrow terminal the least important drop out first and the tags column
//! takes what is left, so at 80 columns time, symbol, expiry, strike, C/P,
//! side, premium, kind, tags and score remain. Every colour has a text or
//! modifier twin: C/P letters, ▲/▼ (^/v), ★ (*) for golden, ! for an alert,
//! tag words, bold sweeps and premium tiers, reverse-video selection.
//! While the tape follows the live edge, the selection (always the newest
//! row, right under the header) is marked by the header's gutter cell: a
//! new row then changes no row but its own (cheap over SSH); once the user
//! moves, pauses or travels back, the whole selected row is reversed.

use flowtape_core::event::{FlowEvent, Kind, Sentiment, Tag};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Widget};
use ratatui::Frame;

use super::Skin;
use crate::app::tape::Entry;
use crate::app::App;
use crate::format;

/// A tape column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Mark,
    Time,
    Sym,
    Expiry,
    Strike,
    Right,
    Side,
    Size,
    Price,
    Premium,
    Spot,
    Otm,
    VolOi,
    Iv,
    Kind,
    Tags,
    Score,
}

impl Col {
    /// Display order.
    pub const ALL: [Col; 17] = [
        Col::Mark,
        Col::Time,
        Col::Sym,
        Col::Expiry,
        Col::Strike,
        Col::Right,
        Col::Side,
        Col::Size,
        Col::Price,
        Col::Premium,
        Col::Spot,
        Col::Otm,
        Col::VolOi,
        Col::Iv,
        Col::Kind,
        Col::Tags,
        Col::Score,
    ];

    fn title(self) -> &'static str {
        match self {
            Col::Mark => "",
            Col::Time => "TIME",
            Col::Sym => "SYM",
            Col::Expiry => "EXPIRY",
            Col::Strike => "STRIKE",
            Col::Right => "C/P",
            Col::Side => "SIDE",
            Col::Size => "SIZE",
            Col::Price => "PRICE",
            Col::Premium => "PREM",
            Col::Spot => "SPOT",
            Col::Otm => "OTM%",
            Col::VolOi => "VOL/OI",
            Col::Iv => "IV",
            Col::Kind => "KIND",
            Col::Tags => "TAGS",
            Col::Score => "SCORE",
        }
    }

    /// Width in cells (the tags column's minimum; it takes the slack).
    fn width(self) -> u16 {
        match self {
            Col::Mark => 1,
            Col::Time => 12,
            Col::Sym => 8,
            Col::Expiry => 8,
            Col::Strike => 7,
            Col::Right => 3,
            Col::Side => 4,
            Col::Size => 7,
            Col::Price => 7,
            Col::Premium => 7,
            Col::Spot => 8,
            Col::Otm => 7,
            Col::VolOi => 6,
            Col::Iv => 4,
            Col::Kind => 6,
            Col::Tags => 5,
            Col::Score => 5,
        }
    }

    /// Lower is more important; columns drop from the highest number.
    fn priority(self) -> u8 {
        match self {
            Col::Mark
            | Col::Time
            | Col::Sym
            | Col::Strike
            | Col::Right
            | Col::Premium
            | Col::Score => 0,
            Col::Expiry | Col::Side | Col::Kind | Col::Tags => 1,
            Col::Size | Col::Price => 2,
            Col::Otm | Col::VolOi => 3,
            Col::Iv => 4,
            Col::Spot => 5,
        }
    }

    fn right_aligned(self) -> bool {
        matches!(
            self,
            Col::Strike
                | Col::Size
                | Col::Price
                | Col::Premium
                | Col::Spot
                | Col::Otm
                | Col::VolOi
                | Col::Iv
                | Col::Score
        )
    }
}

/// The columns that fit in `width`, in display order.
pub fn columns_for(width: u16) -> Vec<Col> {
    let mut cols: Vec<Col> = Col::ALL.to_vec();
    let total = |cols: &[Col]| -> u32 {
        cols.iter().map(|c| u32::from(c.width())).sum::<u32>() + cols.len().saturating_sub(1) as u32
    };
    while total(&cols) > u32::from(width) {
        let Some(worst) = cols
            .iter()
            .copied()
            .filter(|c| c.priority() > 0)
            .max_by_key(|c| c.priority())
        else {
            break;
        };
        // Of equal priority, the rightmost goes first.
        let pos = cols
            .iter()
            .rposition(|c| c.priority() == worst.priority())
            .unwrap_or(0);
        cols.remove(pos);
    }
    cols
}

/// The tag words, most notable first: `GOLD UOA OPEN RPT`.
pub fn tag_words(e: &FlowEvent) -> String {
    [
        (Tag::Golden, "GOLD"),
        (Tag::Unusual, "UOA"),
        (Tag::Opening, "OPEN"),
        (Tag::Repeat, "RPT"),
    ]
    .iter()
    .filter(|(t, _)| e.tags.contains(*t))
    .map(|(_, w)| *w)
    .collect::<Vec<_>>()
    .join(" ")
}

/// The styled pieces of one cell's text, left to right.
type Pieces<'a> = Vec<(std::borrow::Cow<'a, str>, Style)>;

/// The text of one cell, as styled pieces (appended to `out`).
fn cell<'a>(col: Col, entry: &'a Entry, skin: &Skin, out: &mut Pieces<'a>) {
    let e = &entry.event;
    let t = &skin.theme;
    let g = &skin.glyphs;
    let plain = Style::default();
    let mut put = |text: std::borrow::Cow<'a, str>, style: Style| out.push((text, style));
    match col {
        Col::Mark => {
            if entry.alert {
                put(g.alert.into(), t.error());
            } else if e.tags.contains(Tag::Golden) {
                put(g.golden.into(), plain);
            } else {
                put(" ".into(), plain);
            }
        }
        Col::Time => put(format::time_ms(e.ts).into(), plain),
        Col::Sym => {
            let marker = match e.sentiment {
                Sentiment::Bull => g.up,
                Sentiment::Bear => g.down,
                Sentiment::Neutral => " ",
            };
            put(marker.into(), t.sentiment(e.sentiment));
            put(" ".into(), plain);
            put(
                e.sym.as_str().into(),
                Style::default().add_modifier(Modifier::BOLD),
            );
        }
        Col::Expiry => put(format::expiry_short(&e.expiry).into(), plain),
        Col::Strike => put(format::strike(e.strike).into(), plain),
        Col::Right => put(
            e.right.letter().to_string().into(),
            t.right(e.right).add_modifier(Modifier::BOLD),
        ),
        Col::Side => put(e.side.code().into(), plain),
        Col::Size => put(format::count(e.size).into(), plain),
        Col::Price => put(format::price(e.price).into(), plain),
        Col::Premium => put(format::money(e.premium).into(), t.premium(e.premium)),
        Col::Spot => put(format::opt_price(e.spot).into(), plain),
        Col::Otm => put(format::signed_pct(e.otm).into(), plain),
        Col::VolOi => put(format::ratio(e.vol_oi()).into(), plain),
        Col::Iv => put(format::iv(e.iv).into(), plain),
        Col::Kind => put(
            match e.kind {
                Kind::Sweep => "SWEEP",
                k => k.name(),
            }
            .into(),
            plain,
        ),
        Col::Tags => put(tag_words(e).into(), t.tags()),
        Col::Score => put(e.score.to_string().into(), plain),
    }
}

/// Paints styled pieces into a cell `width` wide at (`x`, `y`), left or
/// right aligned: exactly what ratatui's `Table` paints for a cell holding
/// a `Line` of these spans, without building the line, the cell and the
/// row. Pieces of printable ASCII that fit are written cell by cell; anything
/// else is left to ratatui's `Line`.
fn paint(buf: &mut Buffer, x: u16, y: u16, width: u16, right: bool, pieces: &Pieces<'_>) {
    let simple = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    let total: usize = pieces.iter().map(|(s, _)| s.len()).sum();
    if total == 0 {
        return;
    }
    let all_simple = pieces.iter().all(|(s, _)| simple(s));
    if !all_simple || total > usize::from(width) || x.saturating_add(width) > buf.area.right() {
        let line = Line::from(
            pieces
                .iter()
                .map(|(s, st)| Span::styled(s.as_ref(), *st))
                .collect::<Vec<_>>(),
        );
        let line = if right { line.right_aligned() } else { line };
        line.render(Rect::new(x, y, width, 1), buf);
        return;
    }
    let mut cx = if right { x + width - total as u16 } else { x };
    for (s, style) in pieces {
        for b in s.bytes() {
            buf[(cx, y)].set_char(char::from(b)).set_style(*style);
            cx += 1;
        }
    }
}

fn row_style(entry: &Entry, skin: &Skin) -> Style {
    let e = &entry.event;
    let mut style = if e.tags.contains(Tag::Golden) {
        skin.theme.golden_row()
    } else if entry.alert {
        skin.theme.alert_row()
    } else {
        Style::default()
    };
    if e.kind == Kind::Sweep {
        style = style.add_modifier(Modifier::BOLD);
    }
    style
}

/// The first row to show so that `sel` is visible in `rows` rows, starting
/// from the app's own scroll offset.
fn window_start(app: &App, rows: usize) -> usize {
    let (sel, off) = (app.selected(), app.offset());
    if sel < off {
        sel
    } else if rows > 0 && sel >= off + rows {
        sel + 1 - rows
    } else {
        off
    }
}

/// Whether the selection is the live edge: the newest row, selected while
/// new rows arrive on top (not moved, paused or travelling back).
fn follows_live(app: &App) -> bool {
    app.selected() == 0 && !app.is_paused() && app.travelling_from().is_none()
}

fn widths(cols: &[Col]) -> Vec<Constraint> {
    cols.iter()
        .map(|c| {
            if *c == Col::Tags {
                Constraint::Fill(1)
            } else {
                Constraint::Length(c.width())
            }
        })
        .collect()
}

/// Paints the tape. The result is what a ratatui `Table` (header, column
/// spacing 1, rows styled as a whole) paints, written straight into the
/// buffer: a table builds a row, its cells and their lines of spans for
/// every visible row of every frame, and styles each cell's area three
/// times over.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let cols = columns_for(area.width);
    let rows_fit = usize::from(area.height.saturating_sub(1));
    let start = window_start(app, rows_fit);
    if rows_fit == 0 || app.row(start).is_none() {
        draw_empty(frame, area, app, skin, &cols);
        return;
    }
    // The columns as a table lays them out.
    let rects = Layout::horizontal(widths(&cols))
        .flex(Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, area.width, 1));
    let buf = frame.buffer_mut();
    let mut pieces: Pieces = Vec::with_capacity(4);
    buf.set_style(Rect { height: 1, ..area }, skin.theme.header());
    for (c, r) in cols.iter().zip(rects.iter()) {
        pieces.clear();
        pieces.push((c.title().into(), Style::default()));
        paint(
            buf,
            area.x + r.x,
            area.y,
            r.width,
            c.right_aligned(),
            &pieces,
        );
    }
    let live = follows_live(app);
    let mut drawn = 0;
    for n in 0..rows_fit {
        let i = start + n;
        let Some((_, entry)) = app.row(i) else { break };
        drawn += 1;
        let y = area.y + 1 + n as u16;
        let selected = i == app.selected();
        let mut style = row_style(entry, skin);
        if selected && !live {
            style = style.patch(skin.theme.selected());
        }
        let row = Rect {
            y,
            height: 1,
            ..area
        };
        buf.set_style(row, style);
        for (c, r) in cols.iter().zip(rects.iter()) {
            pieces.clear();
            cell(*c, entry, skin, &mut pieces);
            paint(buf, area.x + r.x, y, r.width, c.right_aligned(), &pieces);
        }
    }
    if live {
        let gutter = Rect {
            width: 1,
            height: 1,
            ..area
        };
        buf.set_style(gutter, skin.theme.selected());
    }
    // Under the oldest row, when it shows: what the scroll-back is doing.
    if drawn < rows_fit {
        super::history::marker(frame, area, area.y + 1 + drawn as u16, app, skin);
    }
}

/// The header over "waiting for events..." or "no events match the filter".
fn draw_empty(frame: &mut Frame, area: Rect, app: &App, skin: &Skin, cols: &[Col]) {
    let header = Row::new(cols.iter().map(|c| {
        let l = Line::from(c.title());
        Cell::from(if c.right_aligned() {
            l.right_aligned()
        } else {
            l
        })
    }))
    .style(skin.theme.header());
    let [head, body] =
        ratatui::layout::Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        Table::new(Vec::<Row>::new(), widths(cols)).header(header),
        head,
    );
    let why = if app.tape().is_empty() {
        "waiting for events..."
    } else {
        "no events match the filter"
    };
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(why, skin.theme.dim())).centered()),
        body,
    );
    super::history::marker(frame, area, body.y + 1, app, skin);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_drop_by_priority() {
        let full = columns_for(200);
        assert_eq!(full.len(), Col::ALL.len());
        let at80 = columns_for(80);
        for c in [
            Col::Time,
            Col::Sym,
            Col::Expiry,
            Col::Strike,
            Col::Right,
            Col::Side,
            Col::Premium,
            Col::Kind,
            Col::Tags,
            Col::Score,
        ] {
            assert!(at80.contains(&c), "{c:?} missing at 80 columns: {at80:?}");
        }
        assert!(!at80.contains(&Col::Spot));
        let tiny = columns_for(30);
        assert!(tiny.iter().all(|c| c.priority() == 0));
    }
}
