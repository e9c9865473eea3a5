//! The flow panel's day parts: the heading that says the figures are the
//! day's (today's, or a past day's while replaying or time travelling: date
//! and "as of" in New York time; or why the gateway has none for that day),
//! the day's top contracts by premium and its totals. Pure functions of
//! their inputs.

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

/// The panel border's heading: `· Today 2026-12-07 · as of 14:03:05 ET`
/// (or `Day 2026-11-20`).
pub fn heading(r: &DayReport, today: bool, skin: &Skin) -> Vec<Span<'static>> {
    vec![
        day_heading(r.date, today, skin),
        Span::styled(
            format!("{} as of {} ET ", skin.glyphs.dot, format::time_s(r.as_of)),
            skin.theme.dim(),
        ),
    ]
}

/// `· Today 2026-12-07` (or `· Day 2026-11-20`), alone for a past day the
/// gateway has no totals for.
pub fn day_heading(date: Date, today: bool, skin: &Skin) -> Span<'static> {
    Span::styled(
        format!("{} {} ", skin.glyphs.dot, title(date, today)),
        skin.theme.header(),
    )
}

/// Why the gateway sent no totals for a past day (the `day:` prefix
/// dropped), wrapped at `width`.
pub fn refusal(message: &str, width: usize, skin: &Skin) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let why = message
        .strip_prefix(DAY_ERROR_PREFIX)
        .unwrap_or(message)
        .trim();
    let mut lines = Vec::new();
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

/// A line for each of the day's top contracts by premium, `width` wide.
pub fn contracts(r: &DayReport, skin: &Skin, width: usize) -> Vec<Line<'static>> {
    let t = &skin.theme;
    if r.contracts.is_empty() {
        return vec![Line::from(Span::styled("no flow yet today", t.dim()))];
    }
    let money_width = 8;
    let label_width = width.saturating_sub(money_width + 1);
    r.contracts
        .iter()
        .map(|c| {
            let (label, right) = contract_label(&c.occ);
            let style = right.map_or_else(|| t.dim(), |r| t.right(r));
            let label: String = label.chars().take(label_width).collect();
            Line::from(vec![
                Span::styled(format!("{label:<label_width$}"), style),
                Span::raw(format!(
                    " {:>money_width$}",
                    format::money(dollars(c.premium))
                )),
            ])
        })
        .collect()
}

/// How many contracts and tickers traded, and the day's premium.
pub fn totals(r: &DayReport, skin: &Skin) -> Vec<Line<'static>> {
    let t = &skin.theme;
    let s = &r.totals;
    vec![
        Line::from(Span::styled(
            format!(
                "{} contracts, {} tickers",
                format::count(s.contracts),
                format::count(s.tickers)
            ),
            t.dim(),
        )),
        Line::from(vec![
            Span::styled("Premium ", t.header()),
            Span::raw(format::money(dollars(s.premium().total()))),
        ]),
    ]
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
