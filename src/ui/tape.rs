//! The tape: a table of events, newest on top.
//!
//! Only the visible window of rows is built. Columns have a priority; on a
//! narrow terminal the least important drop out first and the tags column
//! takes what is left, so at 80 columns time, symbol, expiry, strike, C/P,
//! side, premium, kind, tags and score remain. Every colour has a text or
//! modifier twin: C/P letters, ▲/▼ (^/v), ★ (*) for golden, ! for an alert,
//! tag words, bold sweeps and premium tiers, reverse-video selection.

use flowtape_server::event::{FlowEvent, Kind, Sentiment, Tag};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
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

fn cell<'a>(col: Col, entry: &'a Entry, skin: &Skin) -> Cell<'a> {
    let e = &entry.event;
    let t = &skin.theme;
    let g = &skin.glyphs;
    let text: Line<'a> = match col {
        Col::Mark => {
            if entry.alert {
                Line::from(Span::styled(g.alert, t.error()))
            } else if e.tags.contains(Tag::Golden) {
                Line::from(g.golden)
            } else {
                Line::from(" ")
            }
        }
        Col::Time => Line::from(format::time_ms(e.ts)),
        Col::Sym => {
            let marker = match e.sentiment {
                Sentiment::Bull => g.up,
                Sentiment::Bear => g.down,
                Sentiment::Neutral => " ",
            };
            Line::from(vec![
                Span::styled(marker, t.sentiment(e.sentiment)),
                Span::raw(" "),
                Span::styled(
                    e.sym.as_str(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
            ])
        }
        Col::Expiry => Line::from(format::expiry_short(&e.expiry)),
        Col::Strike => Line::from(format::strike(e.strike)),
        Col::Right => Line::from(Span::styled(
            e.right.letter().to_string(),
            t.right(e.right).add_modifier(Modifier::BOLD),
        )),
        Col::Side => Line::from(e.side.code()),
        Col::Size => Line::from(format::count(e.size)),
        Col::Price => Line::from(format::price(e.price)),
        Col::Premium => Line::from(Span::styled(format::money(e.premium), t.premium(e.premium))),
        Col::Spot => Line::from(format::opt_price(e.spot)),
        Col::Otm => Line::from(format::signed_pct(e.otm)),
        Col::VolOi => Line::from(format::ratio(e.vol_oi())),
        Col::Iv => Line::from(format::iv(e.iv)),
        Col::Kind => Line::from(match e.kind {
            Kind::Sweep => "SWEEP".to_string(),
            k => k.name().to_string(),
        }),
        Col::Tags => Line::from(Span::styled(tag_words(e), t.tags())),
        Col::Score => Line::from(e.score.to_string()),
    };
    let text = if col.right_aligned() {
        text.right_aligned()
    } else {
        text
    };
    Cell::from(text)
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

pub fn draw(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let cols = columns_for(area.width);
    let rows_fit = usize::from(area.height.saturating_sub(1));
    let start = window_start(app, rows_fit);
    let rows: Vec<Row> = (start..start + rows_fit)
        .map_while(|i| app.row(i).map(|(_, entry)| (i, entry)))
        .map(|(i, entry)| {
            let mut style = row_style(entry, skin);
            if i == app.selected() {
                style = style.patch(skin.theme.selected());
            }
            Row::new(cols.iter().map(|c| cell(*c, entry, skin))).style(style)
        })
        .collect();
    let header = Row::new(cols.iter().map(|c| {
        let l = Line::from(c.title());
        Cell::from(if c.right_aligned() {
            l.right_aligned()
        } else {
            l
        })
    }))
    .style(skin.theme.header());
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| {
            if *c == Col::Tags {
                Constraint::Fill(1)
            } else {
                Constraint::Length(c.width())
            }
        })
        .collect();
    if rows.is_empty() {
        let [head, body] =
            ratatui::layout::Layout::vertical([Constraint::Length(1), Constraint::Min(0)])
                .areas(area);
        frame.render_widget(Table::new(Vec::<Row>::new(), widths).header(header), head);
        let why = if app.tape().is_empty() {
            "waiting for events..."
        } else {
            "no events match the filter"
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(why, skin.theme.dim())).centered()),
            body,
        );
        return;
    }
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
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
