//! The status line: connection, lost history, pause, feed, scope (always
//! the view: `view: notable` or `view: all prints`), then what changes as
//! rows arrive (throughput, latency, counts), last and in fixed widths, so
//! that a new row rewrites a few of its digits, not the line after them.

use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::FeedHealth;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::Skin;
use crate::app::{App, Conn};
use crate::format;

/// `ws://host:port/path` → `host:port`, for a short status line.
pub fn short_server(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The most specific part of an error chain: `a: b: Connection refused` → `Connection refused`.
fn last_clause(reason: &str) -> &str {
    reason.rsplit(": ").next().unwrap_or(reason).trim()
}

/// An age in seconds with one decimal under 10 s: `0.4s`, `3.2s`, `42s`, `3m05s`.
fn latency(ms: i64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms.max(0) as f64 / 1000.0)
    } else {
        format::age(ms)
    }
}

/// The spans of the status line, in order.
pub fn spans<'a>(app: &'a App, skin: &Skin) -> Vec<Span<'a>> {
    let t = &skin.theme;
    let now = app.now_ms();
    let mut segs: Vec<Span<'a>> = Vec::new();
    segs.push(match &app.conn {
        Conn::Live { server } if app.is_replaying() => {
            Span::styled(format!("LIVE {} (replaying)", short_server(server)), t.ok())
        }
        Conn::Live { server } => Span::styled(format!("LIVE {}", short_server(server)), t.ok()),
        Conn::Connecting { server } => {
            Span::styled(format!("CONNECTING {}", short_server(server)), t.warn())
        }
        Conn::Reconnecting {
            server,
            since_ms,
            reason,
        } => {
            let why = last_clause(reason);
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            let age = format::age(now - since_ms);
            Span::styled(
                format!("RECONNECTING for {age} {}{why}", short_server(server)),
                t.warn(),
            )
        }
        Conn::Offline { reason } => {
            Span::styled(format!("OFFLINE ({})", last_clause(reason)), t.error())
        }
    });
    if let Some(loss) = &app.loss {
        let time = |c: Cursor| format::time_s(i64::try_from(c.ms).unwrap_or(i64::MAX));
        let span = match loss.range.before {
            Some(before) => format!(
                "{}{}{}",
                time(loss.range.after),
                skin.glyphs.range,
                time(before)
            ),
            None => format!("after {}", time(loss.range.after)),
        };
        segs.push(Span::styled(
            format!("HISTORY LOST {span} (Esc)"),
            t.error().add_modifier(Modifier::REVERSED),
        ));
    }
    segs.extend(super::history::status(app, skin));
    segs.extend(super::replay::status(app, skin));
    if app.is_paused() {
        segs.push(Span::styled(
            format!("PAUSED +{} new", app.new_while_paused()),
            t.warn().add_modifier(Modifier::REVERSED),
        ));
    }
    if let Some(feed) = &app.feed {
        let (word, style) = match feed.state {
            FeedHealth::Ok => ("feed ok", t.ok()),
            FeedHealth::Degraded => ("feed DEGRADED", t.warn()),
            FeedHealth::Down => ("feed DOWN", t.error()),
        };
        let text = if feed.reason.is_empty() || feed.state == FeedHealth::Ok {
            word.to_string()
        } else {
            format!("{word}: {}", feed.reason)
        };
        segs.push(Span::styled(text, style));
    }
    segs.push(Span::styled(
        format!("view: {}", app.view().label()),
        t.header(),
    ));
    let filter = app.filter_text();
    if !filter.is_empty() {
        segs.push(Span::raw(format!("filter: {filter}")));
    }
    let toggles = app.toggles().labels();
    if !toggles.is_empty() {
        segs.push(Span::styled(
            format!("only: {}", toggles.join(" ")),
            t.warn(),
        ));
    }
    if let Some(w) = app.active_watchlist() {
        segs.push(Span::styled(format!("list: {}", w.name), t.warn()));
    }
    if let Some(focus) = app.focus().label() {
        segs.push(Span::styled(format!("focus: {focus}"), t.warn()));
    }
    segs.push(Span::raw(format!("{:>5.0} ev/s", app.events_per_second())));
    if let Some(age) = app.newest_age_ms() {
        segs.push(Span::raw(format!("age {:>5}", latency(age))));
    }
    segs.push(Span::raw(format!(
        "{}/{}",
        format::count(app.displayed_len() as u64),
        format::count(app.tape().len() as u64)
    )));
    let mut out = Vec::with_capacity(segs.len() * 2);
    for (i, s) in segs.into_iter().enumerate() {
        if i > 0 {
            out.push(Span::raw(skin.glyphs.sep));
        }
        out.push(s);
    }
    out
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, skin: &Skin) {
    frame.render_widget(
        Paragraph::new(Line::from(spans(app, skin))).style(skin.theme.status()),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_shortened() {
        assert_eq!(short_server("ws://127.0.0.1:8765/ws"), "127.0.0.1:8765");
        assert_eq!(short_server("wss://flow.example/ws/v1"), "flow.example");
        assert_eq!(short_server("garbage"), "garbage");
        assert_eq!(latency(420), "0.4s");
        assert_eq!(latency(42_000), "42s");
        assert_eq!(
            last_clause("cannot connect to ws://x: IO error: refused"),
            "refused"
        );
    }
}
