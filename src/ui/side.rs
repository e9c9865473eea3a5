//! The side panel: where the money is going.
//!
//! Top tickers by net premium (bullish minus bearish) with bars, the
//! call/put premium ratio, the bull/bear split and a flow-rate sparkline, all
//! over the events in view.

use flowtape_core::event::Sentiment;
use flowtape_core::occ::Right;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

use super::Skin;
use crate::app::App;
use crate::format;

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
    let g = &skin.glyphs;
    let block = skin.block(" Flow ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let agg = app.tape().aggregates();
    let top = agg.top_tickers(TOP_N);
    let mut lines: Vec<Line> = vec![Line::from(Span::styled(
        "Net premium by ticker",
        t.header(),
    ))];
    let max = top.iter().map(|(_, f)| f.net.abs()).fold(0.0, f64::max);
    let bar_width = usize::from(inner.width.saturating_sub(17));
    for (sym, flow) in &top {
        let (marker, style) = if flow.net.abs() < 0.5 {
            (" ", t.dim())
        } else if flow.net > 0.0 {
            (g.up, t.sentiment(Sentiment::Bull))
        } else {
            (g.down, t.sentiment(Sentiment::Bear))
        };
        let frac = if max > 0.0 { flow.net.abs() / max } else { 0.0 };
        lines.push(Line::from(vec![
            Span::raw(format!("{sym:<6}")),
            Span::styled(marker, style),
            Span::raw(format!("{:>8} ", format::money(flow.net))),
            Span::styled(bar(frac, bar_width, g.bar), style),
        ]));
    }
    if top.is_empty() {
        lines.push(Line::from(Span::styled("no flow yet", t.dim())));
    }
    lines.push(Line::default());
    let ratio = agg
        .call_put_ratio()
        .map_or_else(|| format::MISSING.to_string(), |r| format!("{r:.2}"));
    lines.push(Line::from(vec![
        Span::styled("C/P premium ", t.header()),
        Span::styled(format::money(agg.call_premium), t.right(Right::Call)),
        Span::raw(" / "),
        Span::styled(format::money(agg.put_premium), t.right(Right::Put)),
        Span::raw(format!("  {ratio}")),
    ]));
    let width = usize::from(inner.width.saturating_sub(12));
    let split = match agg.bull_share() {
        Some(bull) => {
            let n = (bull * width as f64).round() as usize;
            vec![
                Span::styled(
                    format!("{} {:>3.0}% ", g.up, bull * 100.0),
                    t.sentiment(Sentiment::Bull),
                ),
                Span::styled(g.bar.repeat(n), t.sentiment(Sentiment::Bull)),
                Span::styled(
                    g.bar_empty.repeat(width - n.min(width)),
                    t.sentiment(Sentiment::Bear),
                ),
                Span::styled(format!(" {}", g.down), t.sentiment(Sentiment::Bear)),
            ]
        }
        None => vec![Span::styled(format!("{} - / - {}", g.up, g.down), t.dim())],
    };
    lines.push(Line::from(Span::styled("Bull/bear premium", t.header())));
    lines.push(Line::from(split));
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
        let spark = Sparkline::default()
            .data(&data)
            .style(t.ok())
            .bar_set(if g.bar == "#" {
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
