//! The side panel: where the money is going.
//!
//! Top tickers by net premium (bullish minus bearish) with bars, the
//! call/put premium ratio, the bull/bear split and a flow-rate sparkline.
//! The figures are the day's, from the server ([`day`]), once it has sent
//! them, labelled with the date and "as of"; until then the events in view,
//! labelled "In view". `d` switches to the day's top contracts.

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
use flowtape_core::day::DayReport;

/// Rows of top tickers at most.
const TOP_N: usize = 10;

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

pub fn draw(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    let t = &skin.theme;
    let block = skin.block(" Flow ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let report = app.day_report();
    let mut lines = match (report, app.day_error()) {
        (Some(r), _) => day::heading(r, app.day_asked().is_none(), skin),
        (None, Some(why)) => day::refusal(app.day_shown(), why, width, skin),
        (None, None) => Vec::new(),
    };
    match (app.day.view, report) {
        (DayView::Contracts, Some(r)) => lines.extend(day::contracts(r, skin, width)),
        (DayView::Contracts, None) => {
            lines.push(Line::from(Span::styled(
                "Top contracts by premium",
                t.header(),
            )));
            lines.push(Line::from(Span::styled(
                "waiting for the day's totals",
                t.dim(),
            )));
            lines.push(Line::from(Span::styled("from the server", t.dim())));
        }
        (DayView::Tickers, Some(r)) => lines.extend(figures(&Figures::of_day(r), skin, width)),
        (DayView::Tickers, None) => {
            lines.extend(figures(&Figures::in_view(app), skin, width));
        }
    }
    lines.push(Line::default());
    let rate_title = Line::from(Span::styled(
        format!("Flow rate {:.0}/s", app.events_per_second()),
        t.header(),
    ));
    lines.push(rate_title);

    let text_rows = lines.len() as u16;
    let [text_area, spark_area] = Layout::vertical([
        Constraint::Length(text_rows.min(inner.height)),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(lines), text_area);
    if spark_area.height > 0 {
        let data = app.rate_series(usize::from(spark_area.width));
        let spark =
            Sparkline::default()
                .data(&data)
                .style(t.ok())
                .bar_set(if skin.glyphs.bar == "#" {
                    ASCII_BARS
                } else {
                    symbols::bar::NINE_LEVELS
                });
        frame.render_widget(
            spark,
            Rect {
                height: spark_area.height.min(4),
                ..spark_area
            },
        );
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
        tickers.truncate(TOP_N);
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
                .top_tickers(TOP_N)
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

/// Net premium by ticker with bars, calls/puts with their ratio, and the
/// bull/bear split.
fn figures(f: &Figures, skin: &Skin, width: usize) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let g = &skin.glyphs;
    let mut lines: Vec<Line> = vec![Line::from(Span::styled(f.title, t.header()))];
    let max = f
        .tickers
        .iter()
        .map(|(_, net)| net.abs())
        .fold(0.0, f64::max);
    let bar_width = width.saturating_sub(17);
    for (sym, net) in &f.tickers {
        let (marker, style) = if net.abs() < 0.5 {
            (" ", t.dim())
        } else if *net > 0.0 {
            (g.up, t.sentiment(Sentiment::Bull))
        } else {
            (g.down, t.sentiment(Sentiment::Bear))
        };
        let frac = if max > 0.0 { net.abs() / max } else { 0.0 };
        lines.push(Line::from(vec![
            Span::raw(format!("{sym:<6}")),
            Span::styled(marker, style),
            Span::raw(format!("{:>8} ", format::money(*net))),
            Span::styled(bar(frac, bar_width, g.bar), style),
        ]));
    }
    if f.tickers.is_empty() {
        lines.push(Line::from(Span::styled("no flow yet", t.dim())));
    }
    lines.push(Line::default());
    let ratio = f
        .ratio
        .map_or_else(|| format::MISSING.to_string(), |r| format!("{r:.2}"));
    lines.push(Line::from(vec![
        Span::styled("C/P premium ", t.header()),
        Span::styled(format::money(f.call), t.right(Right::Call)),
        Span::raw(" / "),
        Span::styled(format::money(f.put), t.right(Right::Put)),
        Span::raw(format!("  {ratio}")),
    ]));
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
    lines.push(Line::from(Span::styled("Bull/bear premium", t.header())));
    lines.push(Line::from(split));
    lines
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
}
