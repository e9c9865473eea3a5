//! Fixed events and a fixed clock for tests, so snapshots never move.

use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_core::detect::score_breakdown;
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use flowtape_core::filter::{Filter, Presets};
use flowtape_core::occ::Right;
use flowtape_core::protocol::{EventItem, LostRange, ServerMessage};

use super::scope::View;
use super::{App, AppConfig};
use crate::client::{ClientEvent, Received};
use crate::config::WatchlistConfig;
use crate::keymap::Keymap;

/// 2024-12-20 10:15:00.000 New York time.
pub fn t0() -> i64 {
    let d = Date::from_ymd(2024, 12, 20).unwrap_or_else(|e| panic!("{e}"));
    market_instant_ms(d, 10, 15)
}

/// The cursor an event's `id` names (as the gateway sends it).
pub fn cursor_of(e: &FlowEvent) -> Cursor {
    e.id.parse()
        .unwrap_or_else(|err| panic!("{:?} is not a cursor: {err:?}", e.id))
}

/// Buffers `e` under the cursor its `id` names.
pub fn push(app: &mut App, e: FlowEvent) -> bool {
    app.push(cursor_of(&e), e)
}

/// A plain call bought at the ask, `i` seconds after [`t0`].
pub fn event(sym: &str, i: i64) -> FlowEvent {
    FlowEvent {
        id: format!("{}-0", t0() + i * 1000),
        ts: t0() + i * 1000 + 123,
        sym: sym.to_string(),
        occ: format!("{sym}241227C00190000"),
        expiry: "2024-12-27".into(),
        strike: 190.0,
        right: Right::Call,
        side: Side::Ask,
        size: 120,
        price: 2.15,
        premium: 25_800.0,
        kind: Kind::Single,
        legs: 1,
        exchanges: vec![4],
        spot: Some(185.2),
        otm: Some(2.59),
        dte: 7,
        oi: Some(800),
        vol: 2400,
        iv: Some(0.31),
        bid: Some(2.1),
        ask: Some(2.15),
        tags: Tags::EMPTY,
        sentiment: Sentiment::Bull,
        score: 41,
    }
}

/// A varied tape of eight events, oldest first: a golden sweep, a $1M+ put
/// block, an unusual opening call, index puts and plain singles.
pub fn sample_events() -> Vec<FlowEvent> {
    let mut v = Vec::new();
    v.push(event("AAPL", 0));

    let mut e = event("NVDA", 1);
    e.occ = "NVDA250117C00150000".into();
    e.expiry = "2025-01-17".into();
    e.strike = 150.0;
    e.kind = Kind::Sweep;
    e.legs = 6;
    e.exchanges = vec![1, 4, 7, 9, 11, 15];
    e.size = 2_500;
    e.price = 4.1;
    e.premium = 1_025_000.0;
    e.tags = Tags::EMPTY.with(Tag::Golden).with(Tag::Unusual);
    e.score = 93;
    v.push(e);

    let mut e = event("SPY", 2);
    e.occ = "SPY241220P00590000".into();
    e.expiry = "2024-12-20".into();
    e.strike = 590.0;
    e.right = Right::Put;
    e.side = Side::Ask;
    e.kind = Kind::Block;
    e.size = 5_000;
    e.price = 3.05;
    e.premium = 1_525_000.0;
    e.spot = Some(594.3);
    e.otm = Some(0.72);
    e.dte = 0;
    e.sentiment = Sentiment::Bear;
    e.score = 77;
    v.push(e);

    let mut e = event("TSLA", 3);
    e.occ = "TSLA250321C00500000".into();
    e.expiry = "2025-03-21".into();
    e.strike = 500.0;
    e.size = 900;
    e.price = 14.6;
    e.premium = 1_314_000.0 / 10.0;
    e.tags = Tags::EMPTY.with(Tag::Unusual).with(Tag::Opening);
    e.oi = Some(300);
    e.vol = 1_500;
    e.score = 68;
    v.push(e);

    let mut e = event("QQQ", 4);
    e.occ = "QQQ241224P00520000".into();
    e.expiry = "2024-12-24".into();
    e.strike = 520.0;
    e.right = Right::Put;
    e.side = Side::Bid;
    e.sentiment = Sentiment::Bull;
    e.kind = Kind::Split;
    e.legs = 3;
    e.size = 400;
    e.price = 1.12;
    e.premium = 44_800.0;
    e.iv = None;
    e.score = 22;
    v.push(e);

    let mut e = event("AMD", 5);
    e.occ = "AMD241227P00120000".into();
    e.strike = 120.0;
    e.right = Right::Put;
    e.side = Side::Mid;
    e.sentiment = Sentiment::Neutral;
    e.premium = 9_500.0;
    e.oi = None;
    e.score = 8;
    v.push(e);

    let mut e = event("AAPL", 6);
    e.strike = 187.5;
    e.occ = "AAPL241227C00187500".into();
    e.kind = Kind::Sweep;
    e.legs = 3;
    e.premium = 310_000.0;
    e.score = 71;
    v.push(e);

    let mut e = event("META", 7);
    e.occ = "META241227C00650000".into();
    e.strike = 650.0;
    e.tags = Tags::EMPTY.with(Tag::Repeat);
    v.push(e);
    // Scores as the pipeline would compute them.
    for e in &mut v {
        e.score = score_breakdown(e).total;
    }
    v
}

pub fn config() -> AppConfig {
    AppConfig {
        buffer_size: 1_000,
        view: View::All,
        filter_text: String::new(),
        filter: Filter::default(),
        filter_presets: Presets::builtin().clone(),
        keymap: Keymap::default(),
        watchlists: vec![WatchlistConfig {
            name: "mega".into(),
            tickers: vec!["AAPL".into(), "NVDA".into()],
        }],
        presets: vec![("whales".into(), "premium>=1m".into())],
        alerts: Vec::new(),
        side_panel: false,
        server: "ws://127.0.0.1:8765/ws".into(),
    }
}

/// A connected, live app holding [`sample_events`], its clock 2 s after the newest.
pub fn app_with(cfg: AppConfig) -> App {
    let now = t0() + 9_000;
    let mut app = App::new(cfg, now);
    app.conn = super::Conn::Live {
        server: "ws://127.0.0.1:8765/ws".into(),
    };
    app.replaying = false;
    for e in sample_events() {
        push(&mut app, e);
    }
    app
}

pub fn app() -> App {
    app_with(config())
}

/// What the client hands over for a gateway's answer to a fresh subscribe:
/// the boundary, the backfill (oldest first), then `live`.
pub fn backfill(app: &mut App, filter: &str, events: Vec<FlowEvent>) {
    let now = app.now_ms();
    app.on_client(
        ClientEvent::Subscribed {
            filter: filter.to_string(),
            resumed: false,
        },
        now,
    );
    let items = events
        .into_iter()
        .map(|e| Received {
            cursor: cursor_of(&e),
            event: e,
            raw: None,
        })
        .collect::<Vec<_>>();
    if !items.is_empty() {
        app.on_client(ClientEvent::Events(items), now);
    }
    app.on_client(
        ClientEvent::Server(Box::new(ServerMessage::Status {
            feed: None,
            retention: None,
            notice: None,
            lost: None,
            live: true,
        })),
        now,
    );
}

/// A status telling of lost history, as the gateway sends it.
pub fn loss_status(after_ms: i64, before_ms: Option<i64>) -> ClientEvent {
    let c = |ms: i64| Cursor::new(ms as u64, 0);
    let range = LostRange {
        after: c(after_ms),
        before: before_ms.map(c),
    };
    ClientEvent::Server(Box::new(ServerMessage::Status {
        feed: None,
        retention: None,
        notice: Some(range.notice()),
        lost: Some(range),
        live: false,
    }))
}

/// A history page answering the request `id`, as the client hands it over.
pub fn history_page(
    id: &str,
    events: Vec<FlowEvent>,
    more: bool,
    next: Option<Cursor>,
) -> ClientEvent {
    ClientEvent::Server(Box::new(ServerMessage::Page {
        id: Some(id.to_string()),
        events: events
            .into_iter()
            .map(|e| EventItem {
                cursor: cursor_of(&e),
                event: e,
            })
            .collect(),
        more,
        next,
        notice: None,
    }))
}

/// The day's totals a gateway would send at `as_of`: SPY bought, TSLA sold,
/// contracts of both ranked by premium.
pub fn day_report(as_of: i64) -> flowtape_core::day::DayReport {
    let mut t = flowtape_core::day::DayTotals::default();
    for (field, dollars) in [
        ("SPY:call", 4_200_000),
        ("SPY:put", 1_100_000),
        ("SPY:bull", 3_900_000),
        ("SPY:bear", 600_000),
        ("TSLA:call", 800_000),
        ("TSLA:put", 2_300_000),
        ("TSLA:bull", 300_000),
        ("TSLA:bear", 2_000_000),
        ("NVDA:call", 950_000),
        ("NVDA:bull", 450_000),
        ("NVDA:bear", 450_000),
        ("SPY241220C00590000", 2_500_000),
        ("SPY241220C00595000", 1_700_000),
        ("SPY241220P00580000", 1_100_000),
        ("TSLA241227P00400000", 2_300_000),
        ("TSLA241220C00450000", 800_000),
        ("NVDA250117C00150000", 950_000),
    ] {
        t.add(field, dollars * 100);
    }
    let date = flowtape_core::date::market_date(as_of);
    t.report(date, as_of, 20)
}

/// The app as it is once the gateway sent the day's totals (as of 3 s before [`t0`]).
pub fn with_day(a: &mut App) {
    let day = ServerMessage::Day(day_report(t0() - 3_000));
    a.on_client(ClientEvent::Server(Box::new(day)), t0());
}
