//! What a TUI receives per scope: bytes and events per second from the
//! `--demo` server (the same in-process node, memory bus and simulated market
//! at `flowtape::run::DEMO_RATE`), for the scopes the TUI sends: every print,
//! the notable view, a 5-ticker watchlist, and the watchlist in the notable
//! view. Each is one WebSocket client subscribed live with the filter the TUI
//! composes (`Scope::wire_filter`); bytes are text-frame payloads.
//!
//! Run: `cargo run --release --example scope_bandwidth [SECONDS [FILTER...]]`
//! (default 30 s); each FILTER given is measured too, as a filter alone
//! (with the built-in presets, e.g. `notable`). The figures are in docs/tui.md.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flowtape::app::scope::{Scope, View};
use flowtape_core::filter::Filter;
use flowtape_core::protocol::{ClientMessage, FrameBody, ServerFrame};
use flowtape_server::node::Node;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

/// A trader's list: two of the sim's five busiest tickers, three of the middle.
const WATCHLIST: [&str; 5] = ["TSLA", "NVDA", "AAPL", "AMD", "META"];
/// Time for the sim and the clients to settle before counting.
const WARM_UP: Duration = Duration::from_secs(3);

/// Bytes and events one client received.
#[derive(Default)]
struct Count {
    bytes: u64,
    events: u64,
}

/// Subscribes live with `filter` and counts until `end`.
async fn receive(url: String, filter: String, start: Instant, end: Instant) -> Count {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let subscribe = ClientMessage::Subscribe {
        filter,
        backfill: None,
        since: None,
    };
    let text = serde_json::to_string(&subscribe).unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::text(text))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut count = Count::default();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(end.into(), ws.next()).await {
        let Message::Text(text) = msg else { continue };
        if Instant::now() < start {
            continue;
        }
        count.bytes += text.len() as u64;
        if let Ok(Ok(FrameBody::Events(items))) =
            ServerFrame::<Box<RawValue>>::parse(text.as_str()).map(ServerFrame::into_body)
        {
            count.events += items.len() as u64;
        }
    }
    count
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args
        .next()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("seconds {s:?}: {e}")))
        .unwrap_or(30);
    let node = Node::start_demo(flowtape::run::DEMO_RATE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = node.gateway_addr().unwrap_or_else(|| panic!("no gateway"));
    let url = format!("ws://{addr}/ws");

    let notable = Filter::parse("notable").unwrap_or_else(|e| panic!("{e}"));
    let watch: BTreeSet<String> = WATCHLIST.iter().map(|t| t.to_string()).collect();
    let scope = |view: View, watch: Option<BTreeSet<String>>| Scope {
        view,
        notable: notable.clone(),
        watch,
        ..Scope::everything()
    };
    let mut scopes: Vec<(String, String)> = [
        ("all prints", scope(View::All, None)),
        ("notable", scope(View::Notable, None)),
        ("5-ticker watchlist", scope(View::All, Some(watch.clone()))),
        (
            "5-ticker watchlist, notable",
            scope(View::Notable, Some(watch)),
        ),
    ]
    .into_iter()
    .map(|(name, s)| {
        let filter = s.wire_filter().unwrap_or_else(|e| panic!("{e}"));
        (name.to_string(), filter)
    })
    .collect();
    for text in args {
        let filter = Filter::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        scopes.push((text, filter.canonical()));
    }
    let start = Instant::now() + WARM_UP;
    let end = start + Duration::from_secs(seconds);
    let clients: Vec<_> = scopes
        .iter()
        .map(|(_, filter)| tokio::spawn(receive(url.clone(), filter.clone(), start, end)))
        .collect();
    println!(
        "demo sim at {} prints/s (mean), {seconds} s after {} s warm-up",
        flowtape::run::DEMO_RATE,
        WARM_UP.as_secs()
    );
    println!(
        "{:<32} {:>12} {:>10} {:>10}",
        "scope", "bytes/s", "events/s", "B/event"
    );
    for ((name, _), client) in scopes.iter().zip(clients) {
        let c = client.await.unwrap_or_else(|e| panic!("{e}"));
        let per_s = |n: u64| n as f64 / seconds as f64;
        println!(
            "{:<32} {:>12.0} {:>10.1} {:>10.0}",
            name,
            per_s(c.bytes),
            per_s(c.events),
            c.bytes as f64 / c.events.max(1) as f64
        );
    }
    node.shutdown();
    node.wait().await;
}
