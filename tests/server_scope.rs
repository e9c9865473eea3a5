//! The TUI's scope is applied by a real gateway on a private redis-server:
//! a client with a watchlist and a quick toggle receives exactly the flow
//! stream's events of that scope (checked against the stream), none of the
//! others; told to subscribe with a new scope, it gets that scope's backfill,
//! older than what it had, then live.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flowtape::app::scope::{Scope, View};
use flowtape::client::{self, Backoff, ClientCommand, ClientEvent, ClientOptions, Received};
use flowtape_bench::redis_server::RedisServer;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;
use flowtape_server::bus::{Bus, BusConfig};
use tokio::sync::mpsc;

mod support;
use support::{gateway_node, market_node};

/// The watchlist: two of the busiest tickers and three of the middle.
const WATCHLIST: [&str; 5] = ["TSLA", "NVDA", "AAPL", "AMD", "META"];

fn options(url: &str, filter: String) -> ClientOptions {
    ClientOptions {
        servers: vec![url.to_string()],
        token: None,
        filter,
        backfill: Some(200),
        since: None,
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        max_failures: None,
        fail_fast: false,
        keep_raw: false,
        trust: Default::default(),
        day_every: None,
    }
}

/// What the client hands over until `until`: the events, and each
/// `Subscribed` with the number of events received before it.
async fn collect(
    rx: &mut mpsc::Receiver<ClientEvent>,
    until: Instant,
    got: &mut Vec<Received>,
    began: &mut Vec<(String, usize)>,
) {
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(ClientEvent::Events(batch))) => got.extend(batch),
            Ok(Some(ClientEvent::Subscribed { filter, .. })) => began.push((filter, got.len())),
            Ok(Some(ClientEvent::Failed { reason })) => panic!("the client gave up: {reason}"),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("the client stopped"),
        }
    }
}

/// The flow stream's events from `first` to `last`, oldest first.
async fn stream(bus: &Bus, first: Cursor, last: Cursor) -> Vec<(Cursor, FlowEvent)> {
    let mut out = Vec::new();
    let mut after = Cursor::ZERO;
    while after < last {
        let page = bus
            .flow_after(after, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(end) = page.last().map(|e| e.id) else {
            break;
        };
        for entry in page.into_iter().filter(|e| e.id >= first && e.id <= last) {
            let event = serde_json::from_str(&entry.json).unwrap_or_else(|e| panic!("{e}"));
            out.push((entry.id, event));
        }
        after = end;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_sends_only_the_scope_and_a_new_scope_comes_with_its_backfill() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let bus = Bus::redis(&redis.url(), BusConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let producer = market_node(&bus, 300.0, "scope-test").await;
    let (gateway, url) = gateway_node(&bus).await;

    // A watchlist with calls only: every part of the scope on the server.
    let mut scope = Scope::everything();
    scope.watch = Some(
        WATCHLIST
            .iter()
            .map(|t| t.to_string())
            .collect::<BTreeSet<_>>(),
    );
    scope.toggles.right = Some(Right::Call);
    let wire = scope.wire_filter().unwrap_or_else(|e| panic!("{e}"));
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let (ev_tx, mut ev_rx) = mpsc::channel(1024);
    let client = tokio::spawn(client::run(options(&url, wire.clone()), cmd_rx, ev_tx));
    let mut got = Vec::new();
    let mut began = Vec::new();
    collect(
        &mut ev_rx,
        Instant::now() + Duration::from_secs(4),
        &mut got,
        &mut began,
    )
    .await;
    assert!(got.len() > 20, "only {} events in scope", got.len());
    assert_eq!(began, vec![(wire.clone(), 0)]);

    // Exactly the stream's events of the scope between the first and the
    // last received; the stream had many others, and none of them came.
    let (first, last) = (got[0].cursor, got[got.len() - 1].cursor);
    let entries = stream(&bus, first, last).await;
    let (inside, outside): (Vec<_>, Vec<_>) = entries.iter().partition(|(_, e)| scope.matches(e));
    let cursors: Vec<Cursor> = got.iter().map(|r| r.cursor).collect();
    let want: Vec<Cursor> = inside.iter().map(|(c, _)| *c).collect();
    assert_eq!(cursors, want, "every event of the scope, once, in order");
    assert!(
        outside.len() > 2 * inside.len(),
        "the stream had {} events out of scope, {} in it",
        outside.len(),
        inside.len()
    );
    let filter = Filter::parse(&wire).unwrap_or_else(|e| panic!("{e}"));
    assert!(got
        .iter()
        .all(|r| scope.matches(&r.event) && filter.matches(&r.event)));

    // A new scope: puts on the same list. Its backfill goes back before the
    // last event of the old one, and every event after it is a put.
    scope.toggles.right = Some(Right::Put);
    let puts = scope.wire_filter().unwrap_or_else(|e| panic!("{e}"));
    let before = got.len();
    cmd_tx
        .send(ClientCommand::Resubscribe(puts.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    collect(
        &mut ev_rx,
        Instant::now() + Duration::from_secs(2),
        &mut got,
        &mut began,
    )
    .await;
    let at = began
        .iter()
        .find(|(f, _)| *f == puts)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("no answer to the new subscribe: {began:?}"));
    assert!(at >= before);
    let new = &got[at..];
    assert!(
        new.len() > 20,
        "{} events after the new subscribe",
        new.len()
    );
    assert!(new
        .iter()
        .all(|r| r.event.right == Right::Put && scope.matches(&r.event)));
    assert!(
        new[0].cursor < last,
        "the backfill reaches back before the switch"
    );
    assert!(
        new.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "the new stream is in order, once each"
    );
    // The notable view is the same on the server as here.
    scope.view = View::Notable;
    scope.notable = Filter::parse("notable").unwrap_or_else(|e| panic!("{e}"));
    assert!(scope
        .wire_filter()
        .is_ok_and(|w| w.contains("premium>=500k")));

    client.abort();
    gateway.shutdown();
    gateway.wait().await;
    producer.shutdown();
    producer.wait().await;
}
