//! The side panel's day section: the heading that says the figures are the
//! day's (today's, or a past day's while replaying or time travelling: date
//! and "as of" in New York time; or why the gateway has none for that day)
//! and the day's top contracts by premium. Pure functions of their inputs.

use flowtape_core::date::Date;
use flowtape_core::day::DayReport;
use flowtape_core::occ::{Contract, Right};
use ratatui::text::{Line, Span};

use super::Skin;
use crate::client::DAY_ERROR_PREFIX;
use crate::format;

/// Cents as dollars.
pub fn dollars(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// `Today 2026-12-07` (or, for a past day, `Day 2026-11-20`).
fn title(date: Date, today: bool) -> String {
    format!("{} {date}", if today { "Today" } else { "Day" })
}

/// `Today 2026-12-07` (or `Day 2026-11-20`) and `as of 14:03:05 ET`.
pub fn heading(r: &DayReport, today: bool, skin: &Skin) -> Vec<Line<'static>> {
    let t = &skin.theme;
    vec![
        Line::from(Span::styled(title(r.date, today), t.header())),
        Line::from(Span::styled(
            format!("as of {} ET", format::time_s(r.as_of)),
            t.dim(),
        )),
    ]
}

/// A past day's heading and why the gateway sent no totals for it (the
/// `day:` prefix dropped), wrapped at `width`.
pub fn refusal(date: Date, message: &str, width: usize, skin: &Skin) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let why = message
        .strip_prefix(DAY_ERROR_PREFIX)
        .unwrap_or(message)
        .trim();
    let mut lines = vec![Line::from(Span::styled(title(date, false), t.header()))];
    let mut line = String::new();
    for word in why.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(Line::from(Span::styled(
                std::mem::take(&mut line),
                t.error(),
            )));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(Line::from(Span::styled(line, t.error())));
    }
    lines
}

/// `SPY 500P 12/18` from an unpadded OSI symbol, with its right; the symbol
/// as given if it does not parse.
fn contract_label(occ: &str) -> (String, Option<Right>) {
    match Contract::parse(occ) {
        Ok(c) => (
            format!(
                "{} {}{} {:02}/{:02}",
                c.underlying(),
                format::strike(c.strike()),
                c.right.letter(),
                c.expiry.month(),
                c.expiry.day()
            ),
            Some(c.right),
        ),
        Err(_) => (occ.to_string(), None),
    }
}

/// The day's top contracts by premium, as many as fit the panel's rows.
pub fn contracts(r: &DayReport, skin: &Skin, width: usize) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let mut lines = vec![Line::from(Span::styled(
        "Top contracts by premium",
        t.header(),
    ))];
    let money_width = 8;
    let label_width = width.saturating_sub(money_width + 1);
    for c in &r.contracts {
        let (label, right) = contract_label(&c.occ);
        let style = right.map_or_else(|| t.dim(), |r| t.right(r));
        let label: String = label.chars().take(label_width).collect();
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<label_width$}"), style),
            Span::raw(format!(
                " {:>money_width$}",
                format::money(dollars(c.premium))
            )),
        ]));
    }
    if r.contracts.is_empty() {
        lines.push(Line::from(Span::styled("no flow yet today", t.dim())));
    }
    lines.push(Line::default());
    let s = &r.totals;
    lines.push(Line::from(Span::styled(
        format!(
            "{} contracts, {} tickers",
            format::count(s.contracts),
            format::count(s.tickers)
        ),
        t.dim(),
    )));
    lines.push(Line::from(vec![
        Span::styled("Premium ", t.header()),
        Span::raw(format::money(dollars(s.premium().total()))),
    ]));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_read_as_ticker_strike_right_expiry() {
        assert_eq!(
            contract_label("SPY261218P00500000"),
            ("SPY 500P 12/18".to_string(), Some(Right::Put))
        );
        assert_eq!(
            contract_label("SPXW261207C06012500"),
            ("SPX 6012.5C 12/07".to_string(), Some(Right::Call))
        );
        assert_eq!(contract_label("junk"), ("junk".to_string(), None));
        assert_eq!(dollars(123_456), 1234.56);
    }
}
