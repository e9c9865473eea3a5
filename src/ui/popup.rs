//! Popups and the filter line: help, event detail, watchlist editor.
//!
//! The help is generated from the keymap that dispatches keys, plus the
//! fixed editing keys of the filter line and watchlist editor.

use flowtape_core::cursor::Cursor;
use flowtape_core::detect::score_breakdown;
use flowtape_core::event::Sentiment;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::tape::tag_words;
use super::Skin;
use crate::app::{App, FilterLine, WatchEditor};
use crate::format;
use crate::keymap::{Action, EDITOR_KEYS, WATCHLIST_KEYS};

/// A rectangle of at most `w`×`h` centred in `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The help text, one line per key, in sections.
pub fn help_lines<'a>(app: &App, skin: &Skin) -> Vec<Line<'a>> {
    let t = &skin.theme;
    let key_w = 16;
    let entry = |keys: String, what: &str| {
        Line::from(vec![
            Span::styled(format!("  {keys:<key_w$} "), t.hint_key()),
            Span::raw(what.to_string()),
        ])
    };
    let mut lines = vec![Line::from(Span::styled("Tape", t.header()))];
    for a in Action::ALL {
        let keys = app.keymap.keys_label(*a);
        if !keys.is_empty() {
            lines.push(entry(keys, a.help()));
        }
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Filter line", t.header())));
    lines.extend(EDITOR_KEYS.iter().map(|(k, w)| entry(k.to_string(), w)));
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Watchlist editor", t.header())));
    lines.extend(WATCHLIST_KEYS.iter().map(|(k, w)| entry(k.to_string(), w)));
    lines.push(entry(
        "Ctrl-n".into(),
        "new watchlist named by the typed text",
    ));
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Markers", t.header())));
    let g = &skin.glyphs;
    lines.push(entry(format!("{}/{}", g.up, g.down), "bullish / bearish"));
    lines.push(entry(
        g.golden.to_string(),
        "golden sweep (row highlighted)",
    ));
    lines.push(entry(g.alert.to_string(), "matched an alert rule"));
    lines.push(entry(
        "GOLD UOA".into(),
        "golden, unusual (volume over open interest)",
    ));
    lines.push(entry(
        "OPEN RPT".into(),
        "opening (size over open interest), repeat hit",
    ));
    lines.push(entry("SWEEP".into(), "sweeps are upper-case and bold"));
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Filter language", t.header())));
    for ex in [
        ("AAPL TSLA -SPY", "tickers (OR), exclusions"),
        ("calls puts", "right"),
        ("sweep block", "kind (OR among kinds)"),
        ("golden unusual", "tags; also opening, bull, bear"),
        ("premium>=250k", "premium size price strike dte"),
        ("score>=70 iv<50%", "score otm iv voloi; > >= < <= ="),
        ("side:ask", "side: ask bid mid aa bb"),
        ("exp:2026-12-18", "expiry"),
        ("occ:NVDA261218C00200000", "one contract (OSI symbol)"),
        ("sweep or block", "either; terms side by side bind tighter"),
        ("(AAPL or TSLA) calls", "parentheses group"),
        (
            "notable",
            "preset: golden, unusual, $100k+ sweep/block, $500k+",
        ),
    ] {
        lines.push(entry(ex.0.to_string(), ex.1));
    }
    lines
}

pub fn help(frame: &mut Frame, app: &App, skin: &Skin, scroll: u16) {
    let lines = help_lines(app, skin);
    let area = centered(frame.area(), 76, lines.len() as u16 + 2);
    let block = skin.block(" Help: j/k scroll, Esc close ");
    frame.render_widget(Clear, area);
    let max_scroll = (lines.len() as u16).saturating_sub(area.height.saturating_sub(2));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((scroll.min(max_scroll), 0)),
        area,
    );
}

/// The detail text of the event with this cursor.
pub fn detail_lines<'a>(app: &'a App, skin: &Skin, cursor: Cursor) -> Vec<Line<'a>> {
    let t = &skin.theme;
    let Some(entry) = app.tape().get(cursor) else {
        return vec![Line::from(Span::styled(
            "This event has left the buffer.",
            t.dim(),
        ))];
    };
    let e = &entry.event;
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<12}"), t.header()),
            Span::raw(v),
        ])
    };
    let date = flowtape_core::date::market_date(e.ts);
    let dir = match e.sentiment {
        Sentiment::Bull => format!("{} bullish", skin.glyphs.up),
        Sentiment::Bear => format!("{} bearish", skin.glyphs.down),
        Sentiment::Neutral => "neutral".to_string(),
    };
    let exchanges = e
        .exchanges
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines = vec![
        kv(
            "Contract",
            format!(
                "{}  ({})",
                e.occ,
                if e.right.letter() == 'C' {
                    "call"
                } else {
                    "put"
                }
            ),
        ),
        kv("Expiry", format!("{}  ({} DTE)", e.expiry, e.dte)),
        kv("Strike", format::strike(e.strike)),
        kv("Time", format!("{date} {} New York", format::time_ms(e.ts))),
        kv(
            "Fill",
            format!(
                "{} x {} = {}",
                format::count(e.size),
                format::price(e.price),
                format::money(e.premium)
            ),
        ),
        kv("Side", format!("{}  {dir}", e.side.code())),
        kv(
            "NBBO",
            format!(
                "{} x {}",
                format::opt_price(e.bid),
                format::opt_price(e.ask)
            ),
        ),
        kv(
            "Kind",
            format!(
                "{} in {} leg{}",
                e.kind.name(),
                e.legs,
                if e.legs == 1 { "" } else { "s" }
            ),
        ),
        kv(
            "Exchanges",
            if exchanges.is_empty() {
                format::MISSING.to_string()
            } else {
                exchanges
            },
        ),
        kv(
            "Spot",
            format!(
                "{}  OTM {}",
                format::opt_price(e.spot),
                format::signed_pct(e.otm)
            ),
        ),
        kv(
            "Volume",
            format!(
                "{} day  OI {}  vol/OI {}",
                format::count(e.vol),
                e.oi.map_or_else(|| format::MISSING.to_string(), format::count),
                format::ratio(e.vol_oi())
            ),
        ),
        kv("IV", format::iv(e.iv)),
        kv(
            "Tags",
            if e.tags.is_empty() {
                format::MISSING.to_string()
            } else {
                tag_words(e)
            },
        ),
    ];
    if entry.alert {
        lines.push(kv("Alert", "matched an alert rule".into()));
    }
    lines.push(kv(
        "Cursor",
        if e.id.is_empty() {
            format::MISSING.to_string()
        } else {
            e.id.clone()
        },
    ));
    let b = score_breakdown(e);
    let recomputed = if b.total == e.score {
        String::new()
    } else {
        format!("  (v{} at default weights: {})", b.version, b.total)
    };
    lines.push(Line::default());
    lines.push(Line::from(vec![
        Span::styled(format!("{:<12}", "Score"), t.header()),
        Span::styled(e.score.to_string(), t.header().add_modifier(Modifier::BOLD)),
        Span::raw(recomputed),
    ]));
    for c in &b.components {
        let frac = if c.max > 0.0 { c.points / c.max } else { 0.0 };
        let n = (frac.clamp(0.0, 1.0) * 10.0).round() as usize;
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  {:<12}{:>5.1} / {:<3.0} ",
                c.name, c.points, c.max
            )),
            Span::styled(skin.glyphs.bar.repeat(n), t.ok()),
            Span::styled(skin.glyphs.bar_empty.repeat(10 - n), t.dim()),
        ]));
    }
    lines
}

pub fn detail(frame: &mut Frame, app: &App, skin: &Skin, cursor: Cursor) {
    let lines = detail_lines(app, skin, cursor);
    let title = app
        .tape()
        .get(cursor)
        .map(|en| {
            let e = &en.event;
            format!(
                " {} {} {} {} ",
                e.sym,
                format::expiry_short(&e.expiry),
                format::strike(e.strike),
                e.right.letter()
            )
        })
        .unwrap_or_else(|| " Event ".into());
    let area = centered(frame.area(), 64, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(skin.block(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The filter line: `/ text`, and under it the error with a caret at its column.
pub fn filter_line(frame: &mut Frame, area: Rect, line: &FilterLine, skin: &Skin) {
    let t = &skin.theme;
    let [input, error] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let style = if line.error.is_some() {
        t.error()
    } else {
        t.ok()
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("/ ", style),
            Span::raw(line.editor.text()),
        ])),
        input,
    );
    let x = input
        .x
        .saturating_add(2)
        .saturating_add(line.editor.cursor() as u16);
    frame.set_cursor_position(Position {
        x: x.min(input.right().saturating_sub(1)),
        y: input.y,
    });
    if let Some((column, message)) = &line.error {
        let pad = " ".repeat(column.saturating_sub(1) + 2);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::raw(pad),
                Span::styled(format!("^ {message}"), t.error()),
            ])),
            error,
        );
    }
}

pub fn watchlists(frame: &mut Frame, app: &App, ed: &WatchEditor, skin: &Skin) {
    let t = &skin.theme;
    let mut names: Vec<Span> = Vec::new();
    for (i, w) in app.watchlists.iter().enumerate() {
        if i > 0 {
            names.push(Span::raw(skin.glyphs.sep));
        }
        let s = if i == ed.list {
            t.selected().add_modifier(Modifier::BOLD)
        } else {
            t.dim()
        };
        names.push(Span::styled(w.name.clone(), s));
    }
    let mut lines = vec![Line::from(names), Line::default()];
    let tickers = app
        .watchlists
        .get(ed.list)
        .map(|w| w.tickers.as_slice())
        .unwrap_or_default();
    if tickers.is_empty() {
        lines.push(Line::from(Span::styled(
            "  (empty: type a ticker and press Enter)",
            t.dim(),
        )));
    }
    for (i, tk) in tickers.iter().enumerate() {
        let s = if i == ed.sel {
            t.selected()
        } else {
            ratatui::style::Style::default()
        };
        lines.push(Line::from(Span::styled(format!("  {tk:<8}"), s)));
    }
    lines.push(Line::default());
    lines.push(Line::from(vec![
        Span::styled("add: ", t.header()),
        Span::raw(ed.input.text()),
    ]));
    let height = (lines.len() as u16 + 2).min(frame.area().height);
    let area = centered(frame.area(), 44, height);
    frame.render_widget(Clear, area);
    let block = skin.block(" Watchlists ");
    let inner = block.inner(area);
    let skip = lines.len().saturating_sub(usize::from(inner.height));
    let shown: Vec<Line> = lines.into_iter().skip(skip).collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
    let cursor_x = inner.x + 5 + ed.input.cursor() as u16;
    frame.set_cursor_position(Position {
        x: cursor_x.min(inner.right().saturating_sub(1)),
        y: inner.bottom().saturating_sub(1),
    });
}
