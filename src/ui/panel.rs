//! The flow panel, a band under the tape: where the money is going.
//!
//! Its border names the day (or says the figures are the events in view);
//! inside, side by side: the tickers by net premium (bullish minus bearish)
//! with bars, in as many columns as fit (`d`: the day's top contracts
//! instead), the call/put premium and ratio with the bull/bear split, and a
//! flow-rate sparkline. The figures are the day's, from the server ([`day`]),
//! once it has sent them; until then the events in view. Under the tape, not
//! beside it, so that the tape's rows scroll as whole lines on every terminal
//! and the panel is never sent again for a new row.

use flowtape_core::day::DayReport;
use flowtape_core::event::Sentiment;
use flowtape_core::occ::Right;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

use super::{day, Skin};
use crate::app::day::DayView;
use crate::app::App;
use crate::format;

/// Rows of the panel, its border included.
pub const HEIGHT: u16 = 9;
/// Width of the summary (call/put, bull/bear, the day's counts).
const SUMMARY_WIDTH: u16 = 34;
/// Width of the flow-rate sparkline.
const RATE_WIDTH: u16 = 30;
/// Seconds a sparkline bar spans: it moves once in that time, so 30 bars
/// cover 2½ minutes and cost a redraw every 5 s, not every second.
const RATE_STEP_S: i64 = 5;
/// Rows of the sparkline at most.
const RATE_ROWS: u16 = 4;
/// Columns between the panel's sections, and between its list's columns.
const GAP: u16 = 3;
/// Narrowest column of the ticker (or contract) list.
const ENTRY_WIDTH: u16 = 32;
/// Widest a contract entry is drawn (label and premium).
const CONTRACT_WIDTH: usize = 28;
/// Width of a ticker entry before its bar: `SPY   ▲   $3.3M `.
const TICKER_TEXT: usize = 16;

const ASCII_BARS: symbols::bar::Set<'static> = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "=",
    five_eighths: "=",
    half: "-",
    three_eighths: "-",
    one_quarter: "_",
    one_eighth: "_",
    empty: " ",
};

/// A bar of `frac` (0–1) of `width` cells.
fn bar(frac: f64, width: usize, glyph: &str) -> String {
    let n = (frac.clamp(0.0, 1.0) * width as f64).round() as usize;
    glyph.repeat(n.max(usize::from(frac > 0.0)))
}

/// Draws the panel in `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    let report = app.day_report();
    // Why the gateway sent no totals for the day shown, if it said.
    let refused = report.is_none().then(|| app.day_error()).flatten();
    let mut title = vec![Span::styled(" Flow ", skin.theme.header())];
    match (report, refused) {
        (Some(r), _) => title.extend(day::heading(r, app.day_asked().is_none(), skin)),
        (None, Some(_)) => title.push(day::day_heading(app.day_shown(), false, skin)),
        (None, None) => {}
    }
    let block = skin.block(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [list, summary_area, rate] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(SUMMARY_WIDTH),
        Constraint::Length(RATE_WIDTH),
    ])
    .spacing(GAP)
    .areas(inner);

    let figures = report.map_or_else(|| Figures::in_view(app), Figures::of_day);
    let t = &skin.theme;
    let columns = Columns::of(list);
    let (heading, entries) = match (app.day.view, report) {
        (DayView::Tickers, _) => (
            Line::from(Span::styled(figures.title, t.header())),
            tickers(&figures.tickers, columns.width, skin),
        ),
        (DayView::Contracts, Some(r)) => (
            Line::from(Span::styled("Top contracts by premium", t.header())),
            day::contracts(r, skin, columns.width.min(CONTRACT_WIDTH)),
        ),
        (DayView::Contracts, None) => (
            Line::from(vec![
                Span::styled("Top contracts by premium", t.header()),
                Span::styled(": waiting for the day's totals from the server", t.dim()),
            ]),
            Vec::new(),
        ),
    };
    columns.draw(frame, list, heading, entries);

    let width = usize::from(summary_area.width);
    let mut lines = refused.map_or_else(Vec::new, |why| day::refusal(why, width, skin));
    lines.extend(summary(&figures, skin, width));
    if let Some(r) = report {
        lines.push(Line::default());
        lines.extend(day::totals(r, skin));
    }
    frame.render_widget(Paragraph::new(lines), summary_area);
    draw_rate(frame, rate, app, skin);
}

/// The list's columns: as many of at least [`ENTRY_WIDTH`] as fit, under
/// one heading.
struct Columns {
    count: u16,
    width: usize,
}

impl Columns {
    fn of(area: Rect) -> Columns {
        let count = ((area.width + GAP) / (ENTRY_WIDTH + GAP)).max(1);
        let width = area.width.saturating_sub(GAP * (count - 1)) / count;
        Columns {
            count,
            width: usize::from(width),
        }
    }

    /// The heading on the first row, then `entries` down each column in
    /// turn, as many as fit.
    fn draw(
        &self,
        frame: &mut Frame,
        area: Rect,
        heading: Line<'static>,
        entries: Vec<Line<'static>>,
    ) {
        let [head, body] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        frame.render_widget(Paragraph::new(heading), head);
        let rows = usize::from(body.height).max(1);
        let areas = Layout::horizontal(vec![Constraint::Fill(1); usize::from(self.count)])
            .spacing(GAP)
            .split(body);
        let mut entries = entries.into_iter();
        for col in areas.iter() {
            let lines: Vec<Line> = entries.by_ref().take(rows).collect();
            frame.render_widget(Paragraph::new(lines), *col);
        }
    }
}

/// The premium figures the panel shows, in dollars: the day's from the
/// server, or the buffer's.
struct Figures {
    title: &'static str,
    /// Ticker and net premium, largest absolute net first.
    tickers: Vec<(String, f64)>,
    call: f64,
    put: f64,
    ratio: Option<f64>,
    bull_share: Option<f64>,
}

impl Figures {
    /// The day's, of the top tickers by premium the server sent.
    fn of_day(r: &DayReport) -> Figures {
        let mut tickers: Vec<(String, f64)> = r
            .tickers
            .iter()
            .map(|t| (t.sym.clone(), day::dollars(t.premium.net())))
            .collect();
        tickers.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
        let p = r.totals.premium();
        Figures {
            title: "Net premium by ticker",
            tickers,
            call: day::dollars(p.call),
            put: day::dollars(p.put),
            ratio: p.call_put_ratio(),
            bull_share: p.bull_share(),
        }
    }

    /// The buffer's, over the events in view.
    fn in_view(app: &App) -> Figures {
        let agg = app.tape().aggregates();
        Figures {
            title: "In view: net premium by ticker",
            tickers: agg
                .top_tickers(usize::try_from(crate::client::DAY_TOP).unwrap_or(usize::MAX))
                .into_iter()
                .map(|(sym, flow)| (sym.to_string(), flow.net))
                .collect(),
            call: agg.call_premium,
            put: agg.put_premium,
            ratio: agg.call_put_ratio(),
            bull_share: agg.bull_share(),
        }
    }
}

/// A line for each ticker, `width` wide: net premium with a bar scaled to
/// the largest.
fn tickers(tickers: &[(String, f64)], width: usize, skin: &Skin) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let g = &skin.glyphs;
    if tickers.is_empty() {
        return vec![Line::from(Span::styled("no flow yet", t.dim()))];
    }
    let max = tickers.iter().map(|(_, net)| net.abs()).fold(0.0, f64::max);
    let bar_width = width.saturating_sub(TICKER_TEXT);
    tickers
        .iter()
        .map(|(sym, net)| {
            let (marker, style) = if net.abs() < 0.5 {
                (" ", t.dim())
            } else if *net > 0.0 {
                (g.up, t.sentiment(Sentiment::Bull))
            } else {
                (g.down, t.sentiment(Sentiment::Bear))
            };
            let frac = if max > 0.0 { net.abs() / max } else { 0.0 };
            Line::from(vec![
                Span::raw(format!("{sym:<6}")),
                Span::styled(marker, style),
                Span::raw(format!("{:>8} ", format::money(*net))),
                Span::styled(bar(frac, bar_width, g.bar), style),
            ])
        })
        .collect()
}

/// Calls/puts with their ratio, and the bull/bear split, `width` wide.
fn summary(f: &Figures, skin: &Skin, width: usize) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let g = &skin.glyphs;
    let ratio = f
        .ratio
        .map_or_else(|| format::MISSING.to_string(), |r| format!("{r:.2}"));
    let split_width = width.saturating_sub(12);
    let split = match f.bull_share {
        Some(bull) => {
            let n = (bull * split_width as f64).round() as usize;
            vec![
                Span::styled(
                    format!("{} {:>3.0}% ", g.up, bull * 100.0),
                    t.sentiment(Sentiment::Bull),
                ),
                Span::styled(g.bar.repeat(n), t.sentiment(Sentiment::Bull)),
                Span::styled(
                    g.bar_empty.repeat(split_width - n.min(split_width)),
                    t.sentiment(Sentiment::Bear),
                ),
                Span::styled(format!(" {}", g.down), t.sentiment(Sentiment::Bear)),
            ]
        }
        None => vec![Span::styled(format!("{} - / - {}", g.up, g.down), t.dim())],
    };
    vec![
        Line::from(vec![
            Span::styled("C/P premium ", t.header()),
            Span::styled(format::money(f.call), t.right(Right::Call)),
            Span::raw(" / "),
            Span::styled(format::money(f.put), t.right(Right::Put)),
            Span::raw(format!("  {ratio}")),
        ]),
        Line::from(Span::styled("Bull/bear premium", t.header())),
        Line::from(split),
    ]
}

/// The flow rate: arrivals in each [`RATE_STEP_S`] seconds, a bar each.
/// Its title is fixed (the rate itself is on the status line), so only the
/// bars change, once a step.
fn draw_rate(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    let t = &skin.theme;
    let [title, spark] =
        Layout::vertical([Constraint::Length(1), Constraint::Max(RATE_ROWS)]).areas(area);
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!("Flow rate, {RATE_STEP_S} s a bar"),
            t.header(),
        ))),
        title,
    );
    if spark.height == 0 {
        return;
    }
    let data = app.rate_series(usize::from(spark.width), RATE_STEP_S);
    let bars = if skin.glyphs.bar == "#" {
        ASCII_BARS
    } else {
        symbols::bar::NINE_LEVELS
    };
    frame.render_widget(
        Sparkline::default().data(&data).style(t.ok()).bar_set(bars),
        spark,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_and_never_vanish() {
        assert_eq!(bar(1.0, 10, "#"), "##########");
        assert_eq!(bar(0.5, 10, "#"), "#####");
        assert_eq!(
            bar(0.001, 10, "#"),
            "#",
            "a small non-zero flow still shows"
        );
        assert_eq!(bar(0.0, 10, "#"), "");
    }

    #[test]
    fn the_list_takes_as_many_columns_as_fit() {
        let cols = |w| {
            let c = Columns::of(Rect::new(0, 0, w, 7));
            (c.count, c.width)
        };
        assert_eq!(cols(20), (1, 20), "one column however narrow");
        assert_eq!(cols(66), (1, 66));
        assert_eq!(cols(67), (2, 32));
        assert_eq!(cols(128), (3, 40));
    }
}
