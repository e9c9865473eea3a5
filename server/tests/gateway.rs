//! The WebSocket gateway end to end: a real `redis-server`, real gateways on
//! loopback, real WebSocket clients.
//!
//! Events come from a whole node (simulated market → ingest → processor) where
//! realism matters, and from crafted events committed through the bus where a
//! test needs exact control. The central checks compare what a client received
//! with the flow stream itself: every id once, in stream order, nothing
//! missing, nothing extra.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_core::protocol::{
    CLOSE_MEMORY_BUDGET_REASON, CLOSE_SLOW_CONSUMER, CLOSE_SLOW_CONSUMER_REASON,
};
use flowtape_server::bus::{Bus, BusConfig, BusError, Keys, NewEvent};
use flowtape_server::feed::SimConfig;
use flowtape_server::gateway::{hash_token, AuthConfig, Gateway, GatewayConfig, GatewayMetrics};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;
use flowtape_server::shutdown::{self, ShutdownTrigger};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn bus_config() -> BusConfig {
    BusConfig {
        shards: 2,
        ..BusConfig::default()
    }
}

async fn redis_bus(server: &RedisServer) -> Bus {
    ok(Bus::redis(&server.url(), bus_config()).await)
}

/// A gateway running in the background.
struct RunningGateway {
    addr: SocketAddr,
    metrics: Arc<GatewayMetrics>,
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
}

impl RunningGateway {
    async fn start(bus: Bus, config: GatewayConfig) -> RunningGateway {
        let config = GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            ..config
        };
        let gateway = ok(Gateway::bind(bus, config).await);
        let (trigger, signal) = shutdown::channel();
        RunningGateway {
            addr: gateway.local_addr(),
            metrics: gateway.metrics(),
            trigger,
            task: tokio::spawn(gateway.run(signal)),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    async fn stop(self) {
        self.trigger.trigger();
        ok(tokio::time::timeout(Duration::from_secs(10), self.task).await)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

// ---------------------------------------------------------------- events ---

const SYMS: [&str; 6] = ["AAPL", "TSLA", "SPY", "NVDA", "AMD", "QQQ"];

/// A crafted, valid flow event (stored form), varied by `i`.
fn crafted(i: u64, ts: i64) -> String {
    let sym = SYMS[(i % 6) as usize];
    let call = i % 2 == 0;
    let kind = ["sweep", "block", "split", "single"][(i / 2 % 4) as usize];
    let size = 10 + (i * 37) % 990;
    let price = 0.5 + (i % 20) as f64;
    json!({
        "ts": ts, "sym": sym, "occ": format!("{sym}261218{}00100000", if call { "C" } else { "P" }),
        "expiry": "2026-12-18", "strike": 100.0, "right": if call { "C" } else { "P" },
        "side": if i % 3 == 0 { "A" } else { "B" }, "size": size, "price": price,
        "premium": price * size as f64 * 100.0, "kind": kind, "legs": 1, "exchanges": [4],
        "spot": 101.0, "otm": 1.0, "dte": 30, "oi": 500, "vol": size, "iv": 0.3, "bid": price, "ask": price + 0.1,
        "tags": if i % 5 == 0 { json!(["golden"]) } else { json!([]) },
        "sentiment": if call { "bull" } else { "bear" }, "score": (i % 100) as u8,
    })
    .to_string()
}

/// Commits crafted events through the bus, as a processor would.
struct Committer {
    bus: Bus,
    next_leg: u64,
}

const OWNER: &str = "gateway-test-writer";

impl Committer {
    async fn new(bus: Bus) -> Committer {
        assert!(ok(bus
            .acquire_lease(0, OWNER, Duration::from_secs(600))
            .await));
        Committer { bus, next_leg: 1 }
    }

    async fn commit(&mut self, n: usize, ts: i64) -> Result<Vec<Cursor>, BusError> {
        let jsons: Vec<String> = (0..n as u64)
            .map(|k| crafted(self.next_leg + k, ts))
            .collect();
        let legs: Vec<[Cursor; 1]> = (0..n as u64)
            .map(|k| [Cursor::new(self.next_leg + k, 0)])
            .collect();
        let events: Vec<NewEvent<'_>> = jsons
            .iter()
            .zip(&legs)
            .map(|(json, legs)| NewEvent {
                legs,
                json,
                deltas: &[],
            })
            .collect();
        let ids = match self.bus.commit_flow(0, OWNER, &events, &[]).await {
            Err(BusError::LeaseLost(_)) => {
                // Redis restarted and lost the lease key: take it again.
                self.bus
                    .acquire_lease(0, OWNER, Duration::from_secs(600))
                    .await?;
                self.bus.commit_flow(0, OWNER, &events, &[]).await?
            }
            other => other?,
        };
        self.next_leg += n as u64;
        Ok(ids.into_iter().flatten().collect())
    }
}

/// Commits `batch` events every `every` until stopped; counts them.
struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    task: JoinHandle<Committer>,
}

impl Load {
    fn start(mut committer: Committer, batch: usize, every: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), committed.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Ok(ids) = committer.commit(batch, now_ms()).await {
                    c.fetch_add(ids.len() as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(every).await;
            }
            committer
        });
        Load {
            stop,
            committed,
            task,
        }
    }

    async fn wait_for(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.committed.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the load committed only {}",
                self.committed.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) -> Committer {
        self.stop.store(true, Ordering::Relaxed);
        ok(self.task.await)
    }
}

/// Every flow stream entry after `after`: (id, event).
async fn stream_after(bus: &Bus, after: Cursor) -> Vec<(Cursor, FlowEvent)> {
    let mut out = Vec::new();
    let mut pos = after;
    loop {
        let page = ok(bus.flow_after(pos, 5000).await);
        let Some(last) = page.last() else { return out };
        pos = last.id;
        for e in page {
            out.push((e.id, ok(serde_json::from_str::<FlowEvent>(&e.json))));
        }
    }
}

async fn stream_end(bus: &Bus) -> Cursor {
    ok(bus.flow_bounds().await).last.unwrap_or(Cursor::ZERO)
}

// ---------------------------------------------------------------- client ---

async fn connect(url: &str) -> Ws {
    ok(tokio_tungstenite::connect_async(url).await).0
}

/// A client whose socket buffers only 4 KiB, so the gateway's queue for it
/// fills as soon as it reads slowly.
async fn connect_small_buffer(gw: &RunningGateway) -> Ws {
    let socket = ok(tokio::net::TcpSocket::new_v4());
    ok(socket.set_recv_buffer_size(4096));
    let stream = ok(socket.connect(gw.addr).await);
    ok(tokio_tungstenite::client_async(gw.url(), MaybeTlsStream::Plain(stream)).await).0
}

async fn send(ws: &mut Ws, v: Value) {
    ok(ws.send(Message::text(v.to_string())).await);
}

/// What a client saw, frame by frame.
#[derive(Debug)]
enum Seen {
    Events(Vec<(Cursor, FlowEvent)>),
    Other(Value),
    Closed(Option<(u16, String)>),
}

async fn next_seen(ws: &mut Ws, within: Duration) -> Option<Seen> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(Seen::Closed(None)),
            Ok(Some(Err(_))) => return Some(Seen::Closed(None)),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Close(c) => {
                return Some(Seen::Closed(
                    c.map(|c| (u16::from(c.code), c.reason.to_string())),
                ))
            }
            _ => continue,
        };
        let v: Value = ok(serde_json::from_str(&text));
        let item = |v: &Value| -> (Cursor, FlowEvent) {
            let cursor: Cursor = ok(v["cursor"].as_str().unwrap_or_default().parse());
            let event: FlowEvent = ok(serde_json::from_value(v["event"].clone()));
            assert_eq!(event.id, cursor.to_string(), "the event's id is its cursor");
            (cursor, event)
        };
        return Some(match v["type"].as_str() {
            Some("event") => Seen::Events(vec![item(&v)]),
            Some("events") => Seen::Events(
                v["events"]
                    .as_array()
                    .map(|a| a.iter().map(item).collect())
                    .unwrap_or_default(),
            ),
            _ => Seen::Other(v),
        });
    }
}

/// The next non-event message (events before it are returned too).
async fn next_message(ws: &mut Ws) -> (Vec<(Cursor, FlowEvent)>, Value) {
    let mut events = Vec::new();
    loop {
        match next_seen(ws, Duration::from_secs(10)).await {
            Some(Seen::Events(e)) => events.extend(e),
            Some(Seen::Other(v)) => return (events, v),
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Subscribes and waits for `live: true`; returns the events replayed before it.
async fn subscribe(ws: &mut Ws, request: Value) -> Vec<(Cursor, FlowEvent)> {
    match subscribe_seeing(ws, request).await {
        Ok((replayed, _)) => replayed,
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Subscribes and waits for `live: true`; returns the events replayed
/// before it and every status, or the error frame the subscribe got.
async fn subscribe_seeing(
    ws: &mut Ws,
    request: Value,
) -> Result<(Vec<(Cursor, FlowEvent)>, Vec<Value>), Value> {
    send(ws, request).await;
    let (mut replayed, mut statuses) = (Vec::new(), Vec::new());
    loop {
        let (events, v) = next_message(ws).await;
        replayed.extend(events);
        if v["type"] == "error" {
            return Err(v);
        }
        assert_eq!(v["type"], "status", "unexpected {v}");
        let live = v["live"] == true;
        statuses.push(v);
        if live {
            return Ok((replayed, statuses));
        }
    }
}

/// Reads events until the client has seen `until` (or times out), then a
/// little longer to catch anything extra.
async fn collect_until(ws: &mut Ws, got: &mut Vec<(Cursor, FlowEvent)>, until: Cursor) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.last().is_none_or(|(c, _)| *c < until) {
        assert!(
            Instant::now() < deadline,
            "timed out at {:?} waiting for {until}",
            got.last().map(|g| g.0)
        );
        match next_seen(ws, Duration::from_secs(5)).await {
            Some(Seen::Events(e)) => got.extend(e),
            Some(Seen::Other(_)) | None => {}
            Some(Seen::Closed(c)) => panic!("closed early: {c:?}"),
        }
    }
    while let Some(Seen::Events(e)) = next_seen(ws, Duration::from_millis(300)).await {
        got.extend(e);
    }
}

fn ids(events: &[(Cursor, FlowEvent)]) -> Vec<Cursor> {
    events.iter().map(|(c, _)| *c).collect()
}

/// Asserts `got` is exactly `want`, with a readable message when not.
fn assert_same_ids(got: &[Cursor], want: &[Cursor], what: &str) {
    if got == want {
        return;
    }
    let g: HashSet<_> = got.iter().collect();
    let w: HashSet<_> = want.iter().collect();
    let missing: Vec<_> = want
        .iter()
        .enumerate()
        .filter(|(_, c)| !g.contains(c))
        .take(5)
        .collect();
    let extra: Vec<_> = got.iter().filter(|c| !w.contains(c)).take(5).collect();
    panic!(
        "{what}: got {} ids, want {}; duplicates {}; missing e.g. {missing:?}; extra e.g. {extra:?}",
        got.len(),
        want.len(),
        got.len() - g.len()
    );
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = ok(TcpStream::connect(addr).await);
    ok(
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await,
    );
    let mut text = String::new();
    ok(ok(tokio::time::timeout(
        Duration::from_secs(5),
        s.read_to_string(&mut text),
    )
    .await));
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

// ----------------------------------------------------------------- tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_apply_server_side_over_thousands_of_events_from_a_node() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let gw = RunningGateway::start(bus.clone(), GatewayConfig::default()).await;
    let start = stream_end(&bus).await;
    let filters = ["calls", "AAPL TSLA NVDA -SPY", "premium>=20k side:ask", ""];
    let mut clients = Vec::new();
    for f in filters {
        let mut ws = connect(&gw.url()).await;
        assert!(subscribe(
            &mut ws,
            json!({"op": "subscribe", "filter": f, "since": start.to_string()})
        )
        .await
        .is_empty());
        clients.push(ws);
    }
    let sim = SimConfig {
        rate: 5000.0,
        start_ns: now_ms() * 1_000_000,
        ..SimConfig::default()
    };
    let mut process = ProcessorConfig::new("gateway-test-proc".into());
    process.lease_ttl = Duration::from_secs(2);
    let roles = NodeConfig {
        feed: Some(FeedChoice::Sim(sim)),
        process: Some(process),
        ..NodeConfig::default()
    };
    let node = ok(Node::start(bus.clone(), roles).await);
    let deadline = Instant::now() + Duration::from_secs(40);
    while ok(bus.flow_bounds().await).len < 3000 {
        assert!(
            Instant::now() < deadline,
            "the node produced too few events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown();
    node.wait().await;
    let stream = stream_after(&bus, start).await;
    assert!(stream.len() >= 3000);
    let end = stream.last().map_or(start, |(c, _)| *c);
    for (ws, f) in clients.iter_mut().zip(filters) {
        let filter = ok(Filter::parse(f));
        let want: Vec<(Cursor, FlowEvent)> = stream
            .iter()
            .filter(|(_, e)| filter.matches(e))
            .cloned()
            .collect();
        let until = want.last().map_or(end, |(c, _)| *c);
        let mut got = Vec::new();
        collect_until(ws, &mut got, until).await;
        assert!(
            got.iter().all(|(_, e)| filter.matches(e)),
            "{f:?}: an event that does not match was sent"
        );
        assert_same_ids(&ids(&got), &ids(&want), &format!("filter {f:?}"));
        if !f.is_empty() {
            assert!(
                want.len() < stream.len(),
                "{f:?} should leave some events out"
            );
        }
    }
    let m = &gw.metrics;
    assert!(m.events_in.load(Ordering::Relaxed) >= stream.len() as u64);
    assert!(m.events_filtered.load(Ordering::Relaxed) > 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_since_join_live_with_no_gap_and_no_duplicate_under_load() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let mut committer = Committer::new(bus.clone()).await;
    ok(committer.commit(500, now_ms()).await);
    // Small pages so that replays take several round trips while live events pour in.
    let config = GatewayConfig {
        page_size: 50,
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus.clone(), config).await;
    let load = Load::start(committer, 4, Duration::from_millis(2));
    load.wait_for(200).await;

    let mut sessions = Vec::new();
    for round in 0..4u32 {
        // A backfill client (every other one filtered) and a since client.
        let filter = if round % 2 == 0 { "" } else { "calls" };
        let mut back = connect(&gw.url()).await;
        let replayed = subscribe(
            &mut back,
            json!({"op": "subscribe", "filter": filter, "backfill": 120}),
        )
        .await;
        assert_eq!(
            replayed.len(),
            120,
            "backfill returns exactly the number asked for"
        );
        sessions.push((back, filter, replayed, None));
        let since = stream_end(&bus).await;
        let since = Cursor::new(since.ms.saturating_sub(100), 0);
        let mut resumed = connect(&gw.url()).await;
        let request = json!({"op": "subscribe", "filter": filter, "since": since.to_string()});
        let replayed = subscribe(&mut resumed, request).await;
        sessions.push((resumed, filter, replayed, Some(since)));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    load.stop().await;
    let end = stream_end(&bus).await;
    let stream = stream_after(&bus, Cursor::ZERO).await;
    for (ws, filter, mut got, since) in sessions {
        let f = ok(Filter::parse(filter));
        let matching: Vec<Cursor> = stream
            .iter()
            .filter(|(_, e)| f.matches(e))
            .map(|(c, _)| *c)
            .collect();
        let until = matching.last().copied().unwrap_or(end);
        let mut ws = ws;
        collect_until(&mut ws, &mut got, until).await;
        let got = ids(&got);
        let from = match since {
            Some(since) => since,
            // A backfill starts at its first event: everything from there on must follow.
            None => got.first().map_or(end, |c| match c.seq {
                0 => Cursor::new(c.ms - 1, u64::MAX),
                seq => Cursor::new(c.ms, seq - 1),
            }),
        };
        let want: Vec<Cursor> = matching.iter().copied().filter(|c| *c > from).collect();
        if since.is_none() {
            assert_eq!(got.first(), want.first());
        }
        assert_same_ids(&got, &want, &format!("filter {filter:?}, since {since:?}"));
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_4008_while_others_keep_receiving() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        send_queue_bytes: 32 * 1024,
        max_batch_bytes: 8 * 1024,
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus.clone(), config).await;
    let start = stream_end(&bus).await;
    // The slow client's socket buffers little, so its queue fills quickly.
    let mut slow = connect_small_buffer(&gw).await;
    subscribe(&mut slow, json!({"op": "subscribe", "filter": ""})).await;
    let mut fast = connect(&gw.url()).await;
    subscribe(
        &mut fast,
        json!({"op": "subscribe", "filter": "", "since": start.to_string()}),
    )
    .await;

    let load = Load::start(
        Committer::new(bus.clone()).await,
        20,
        Duration::from_millis(2),
    );
    let mut got = Vec::new();
    // The slow client reads nothing while the fast one keeps up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.metrics.slow_consumer_disconnects.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow consumer was never closed"
        );
        if let Some(Seen::Events(e)) = next_seen(&mut fast, Duration::from_millis(100)).await {
            got.extend(e);
        }
    }
    let committer = load.stop().await;
    drop(committer);
    let end = stream_end(&bus).await;
    collect_until(&mut fast, &mut got, end).await;
    let want = ids(&stream_after(&bus, start).await);
    assert_same_ids(&ids(&got), &want, "the fast client");
    // The slow client, reading again, finds its stream ends with 4008.
    let close = loop {
        match next_seen(&mut slow, Duration::from_secs(15)).await {
            Some(Seen::Closed(c)) => break c,
            Some(_) => {}
            None => panic!("the slow client was not closed"),
        }
    };
    assert_eq!(
        close,
        Some((CLOSE_SLOW_CONSUMER, CLOSE_SLOW_CONSUMER_REASON.to_string()))
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_queue_fills_but_keeps_reading_catches_up_without_gap_or_disconnect() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    // Catching up from the gateway's recent events, and (with a window of
    // 16) mostly from the stream.
    for recent_events in [32_768, 16] {
        let config = GatewayConfig {
            send_queue_bytes: 2 * 1024,
            max_batch_bytes: 1024,
            recent_events,
            ..GatewayConfig::default()
        };
        let gw = RunningGateway::start(bus.clone(), config).await;
        let start = stream_end(&bus).await;
        let mut ws = connect_small_buffer(&gw).await;
        subscribe(&mut ws, json!({"op": "subscribe", "filter": ""})).await;
        let load = Load::start(
            Committer::new(bus.clone()).await,
            20,
            Duration::from_millis(2),
        );
        // Read slowly while the load runs, so the queue keeps filling.
        let mut got = Vec::new();
        for _ in 0..300 {
            match next_seen(&mut ws, Duration::from_secs(5)).await {
                Some(Seen::Events(e)) => got.extend(e),
                Some(Seen::Other(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let committer = load.stop().await;
        drop(committer);
        let end = stream_end(&bus).await;
        collect_until(&mut ws, &mut got, end).await;
        let want = ids(&stream_after(&bus, start).await);
        assert_same_ids(&ids(&got), &want, &format!("recent_events {recent_events}"));
        assert!(
            gw.metrics.lag_resumes.load(Ordering::Relaxed) > 0,
            "it never lagged"
        );
        assert_eq!(
            gw.metrics.slow_consumer_disconnects.load(Ordering::Relaxed),
            0
        );
        gw.stop().await;
    }
}

/// Reads everything until it has seen the cursor `until` names (once it
/// names one), panicking if the connection closes.
async fn read_until_told(
    mut ws: Ws,
    mut until: tokio::sync::watch::Receiver<Option<Cursor>>,
) -> Vec<(Cursor, FlowEvent)> {
    let mut got: Vec<(Cursor, FlowEvent)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let end = *until.borrow_and_update();
        if end.is_some_and(|end| got.last().is_some_and(|(c, _)| *c >= end)) {
            return got;
        }
        assert!(Instant::now() < deadline, "a reader timed out");
        match next_seen(&mut ws, Duration::from_millis(100)).await {
            Some(Seen::Events(e)) => got.extend(e),
            Some(Seen::Other(_)) | None => {}
            Some(Seen::Closed(c)) => panic!("a client that reads was closed: {c:?}"),
        }
    }
}

/// A metric's value in `/metrics` text.
fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_memory_budget_the_clients_furthest_behind_are_closed_and_readers_lose_nothing() {
    const BUDGET: usize = 1 << 20;
    const QUEUE: usize = 256 * 1024;
    const NON_READERS: usize = 12;
    const READERS: usize = 3;
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        send_queue_bytes: QUEUE,
        max_queued_bytes: BUDGET,
        // Only the budget closes anyone here: a full queue alone would
        // close its client after this long, a stopped socket after that.
        catch_up_patience: Duration::from_secs(120),
        write_timeout: Duration::from_secs(120),
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus.clone(), config).await;
    let start = stream_end(&bus).await;
    let from_start = json!({"op": "subscribe", "filter": "", "since": start.to_string()});
    // Clients that stop reading, with small socket buffers so that their
    // queues fill: together they could queue three times the budget.
    let mut stopped = Vec::new();
    for _ in 0..NON_READERS {
        let mut ws = connect_small_buffer(&gw).await;
        subscribe(&mut ws, from_start.clone()).await;
        stopped.push(ws);
    }
    let (end_tx, end_rx) = tokio::sync::watch::channel(None);
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut ws = connect(&gw.url()).await;
        subscribe(&mut ws, from_start.clone()).await;
        readers.push(tokio::spawn(read_until_told(ws, end_rx.clone())));
    }
    // The bytes queued for all clients, as often as can be looked.
    let watching = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (metrics, watching, most) = (gw.metrics.clone(), watching.clone(), most.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                most.fetch_max(
                    metrics.queued_bytes.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };

    let load = Load::start(
        Committer::new(bus.clone()).await,
        20,
        Duration::from_millis(2),
    );
    // Eviction goes on while more stopped queues than fit in the budget
    // fill: at least all but that many are closed.
    let must_close = (NON_READERS - BUDGET / QUEUE) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.metrics.budget_disconnects.load(Ordering::Relaxed) < must_close {
        assert!(
            Instant::now() < deadline,
            "only {} clients were closed for the budget",
            gw.metrics.budget_disconnects.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, text) = http_get(gw.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(&text, "flowtape_gateway_max_queued_bytes"),
        BUDGET as u64
    );
    assert!(metric_value(&text, "flowtape_gateway_queued_bytes") <= BUDGET as u64);
    assert!(metric_value(&text, "flowtape_gateway_budget_disconnects_total") >= must_close);
    drop(load.stop().await);
    let end = stream_end(&bus).await;
    let want = ids(&stream_after(&bus, start).await);

    // The readers got every event, in order, and were never closed.
    end_tx.send_replace(Some(end));
    for reader in readers {
        assert_same_ids(&ids(&ok(reader.await)), &want, "a reader");
    }
    watching.store(false, Ordering::Relaxed);
    ok(watcher.await);
    let most = most.load(Ordering::Relaxed);
    assert!(
        most <= BUDGET as u64,
        "{most} bytes were queued, over the budget of {BUDGET}"
    );
    assert!(
        most > (BUDGET / 2) as u64,
        "the queues never filled: {most}"
    );

    // Each stopped client, reading again, finds its stream closed with
    // 4008 and the budget's reason, or (those the budget left open) whole;
    // a closed one resumes by its cursor and misses nothing.
    let mut seen_closed = 0;
    for mut ws in stopped {
        let mut got = Vec::new();
        let close = loop {
            if got.last().is_some_and(|(c, _)| *c >= end) {
                break None;
            }
            match next_seen(&mut ws, Duration::from_secs(15)).await {
                Some(Seen::Events(e)) => got.extend(e),
                Some(Seen::Other(_)) => {}
                Some(Seen::Closed(c)) => break Some(c),
                None => panic!("a stopped client was neither closed nor given everything"),
            }
        };
        if let Some(close) = close {
            seen_closed += 1;
            assert_eq!(
                close,
                Some((CLOSE_SLOW_CONSUMER, CLOSE_MEMORY_BUDGET_REASON.to_string()))
            );
            let since = got.last().map_or(start, |(c, _)| *c);
            let mut resumed = connect(&gw.url()).await;
            let request = json!({"op": "subscribe", "filter": "", "since": since.to_string()});
            got.extend(subscribe(&mut resumed, request).await);
            collect_until(&mut resumed, &mut got, end).await;
        }
        assert_same_ids(&ids(&got), &want, "a stopped client, with its resume");
    }
    eprintln!(
        "{} events; most queued {most} of {BUDGET} bytes; {seen_closed} of {NON_READERS} stopped clients closed for the budget",
        want.len()
    );
    // Those closed are the stopped clients (a resume's replay may have
    // pushed the total over again, closing one left open until then), and
    // none for anything but the budget.
    assert_eq!(
        seen_closed,
        gw.metrics.budget_disconnects.load(Ordering::Relaxed)
    );
    assert_eq!(
        gw.metrics.slow_consumer_disconnects.load(Ordering::Relaxed),
        0
    );
    // Every connection gone, nothing is counted as queued any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metrics.connections.load(Ordering::Relaxed) > 0 {
        assert!(Instant::now() < deadline, "connections did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.metrics.queued_bytes.load(Ordering::Relaxed), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_error_frames_and_the_connection_stays_open() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let gw = RunningGateway::start(bus.clone(), GatewayConfig::default()).await;
    let mut ws = connect(&gw.url()).await;
    let cases: [(Message, &str); 8] = [
        (Message::text("{\"op\":"), "invalid_json"),
        (Message::text(r#"{"op":"dance"}"#), "unknown_op"),
        (
            Message::text(r#"{"op":"subscribe","backfill":"ten"}"#),
            "bad_field",
        ),
        (
            Message::text(r#"{"op":"subscribe","backfill":999999}"#),
            "bad_field",
        ),
        (
            Message::text(r#"{"op":"subscribe","filter":"premum>=1k"}"#),
            "bad_filter",
        ),
        (
            Message::text(r#"{"op":"subscribe","since":"yesterday"}"#),
            "bad_cursor",
        ),
        (Message::binary(vec![0xff, 0xfe, 0x00]), "not_utf8"),
        (
            Message::text(r#"{"op":"filter","filter":"calls"}"#),
            "not_subscribed",
        ),
    ];
    for (message, code) in cases {
        ok(ws.send(message).await);
        let (_, v) = next_message(&mut ws).await;
        assert_eq!(
            (v["type"].as_str(), v["code"].as_str()),
            (Some("error"), Some(code)),
            "{v}"
        );
        if code == "bad_filter" {
            let m = v["message"].as_str().unwrap_or_default();
            assert!(
                m.contains("premum") && m.contains("column 1") && m.contains("premium"),
                "{m}"
            );
        }
    }
    send(&mut ws, json!({"op": "ping"})).await;
    assert_eq!(next_message(&mut ws).await.1, json!({"type": "pong"}));
    // Still fully usable: subscribe, change the filter, receive.
    subscribe(&mut ws, json!({"op": "subscribe", "filter": "puts"})).await;
    send(&mut ws, json!({"op": "filter", "filter": "side:sideways"})).await;
    assert_eq!(next_message(&mut ws).await.1["code"], "bad_filter");
    send(&mut ws, json!({"op": "filter", "filter": "calls"})).await;
    send(&mut ws, json!({"op": "ping"})).await;
    assert_eq!(
        next_message(&mut ws).await.1["type"],
        "pong",
        "the filter change is applied before the ping's answer"
    );
    let mut committer = Committer::new(bus.clone()).await;
    let committed = ok(committer.commit(4, now_ms()).await);
    let mut got = Vec::new();
    collect_until(&mut ws, &mut got, committed[2]).await;
    assert!(
        !got.is_empty()
            && got
                .iter()
                .all(|(_, e)| e.right == flowtape_core::occ::Right::Call),
        "{got:?}"
    );

    // WebSocket pings are answered with their payload, and a close from the
    // client is answered with its own code.
    ok(ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await);
    let pong = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => break p,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"are you there");
    ok(ws
        .send(Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: 4000.into(),
            reason: "done".into(),
        })))
        .await);
    assert!(matches!(
        next_seen(&mut ws, Duration::from_secs(5)).await,
        Some(Seen::Closed(Some((4000, _))))
    ));

    // A text frame that is not UTF-8 fails the connection (RFC 6455), after an error frame.
    let mut raw = connect(&gw.url()).await;
    let frame = Frame::message(vec![b'{', 0xc3, 0x28, b'}'], OpCode::Data(Data::Text), true);
    ok(raw.send(Message::Frame(frame)).await);
    let (_, v) = next_message(&mut raw).await;
    assert_eq!(v["code"], "not_utf8");
    assert!(matches!(
        next_seen(&mut raw, Duration::from_secs(5)).await,
        Some(Seen::Closed(Some((1007, _))))
    ));
    assert!(
        gw.metrics
            .errors_sent(flowtape_core::protocol::ErrorCode::NotUtf8)
            >= 2
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009_and_rate_abuse_with_1008() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        rate_limit: flowtape_server::gateway::RateLimit {
            per_second: 1.0,
            burst: 3,
            abuse_after: 5,
        },
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus, config).await;
    let mut ws = connect(&gw.url()).await;
    let big = format!(
        r#"{{"op":"subscribe","filter":"{}"}}"#,
        "A ".repeat(40 * 1024)
    );
    ok(ws.send(Message::text(big)).await);
    match next_seen(&mut ws, Duration::from_secs(5)).await {
        Some(Seen::Closed(Some((code, _)))) => assert_eq!(code, u16::from(CloseCode::Size)),
        other => panic!("expected a 1009 close, got {other:?}"),
    }

    let mut ws = connect(&gw.url()).await;
    for _ in 0..12 {
        if ws.send(Message::text(r#"{"op":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let mut codes = Vec::new();
    let close = loop {
        match next_seen(&mut ws, Duration::from_secs(5)).await {
            Some(Seen::Other(v)) => codes.push(v["code"].as_str().unwrap_or("pong").to_string()),
            Some(Seen::Closed(c)) => break c,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&codes[..4], ["pong", "pong", "pong", "rate_limited"]);
    assert_eq!(close.map(|c| c.0), Some(1008));
    gw.stop().await;
}

fn auth_file(delay_token: bool) -> AuthConfig {
    let mut text = format!(
        "[[tokens]]\nname = \"pro\"\nsha256 = \"{}\"\nentitlement = \"realtime\"\nmax_connections = 2\n",
        hash_token("pro-secret")
    );
    if delay_token {
        text += &format!(
            "[[tokens]]\nname = \"retail\"\nsha256 = \"{}\"\nentitlement = \"delayed\"\nmax_connections = 2\n",
            hash_token("retail secret")
        );
    }
    ok(AuthConfig::parse(&text))
}

async fn connect_with(url: &str, bearer: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut request = ok(url.into_client_request());
    if let Some(t) = bearer {
        request
            .headers_mut()
            .insert("Authorization", ok(format!("Bearer {t}").parse()));
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

fn http_status(r: Result<Ws, tungstenite::Error>) -> Option<u16> {
    match r {
        Ok(_) => Some(101),
        Err(tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_at_the_handshake() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        auth: Some(auth_file(false)),
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus, config).await;
    assert_eq!(http_status(connect_with(&gw.url(), None).await), Some(401));
    assert_eq!(
        http_status(connect_with(&gw.url(), Some("guess")).await),
        Some(401)
    );
    let a = connect_with(&gw.url(), Some("pro-secret")).await;
    assert!(a.is_ok());
    let b = connect_with(&format!("{}?token=pro-secret", gw.url()), None).await;
    assert!(b.is_ok(), "the token may come in the query");
    assert_eq!(
        http_status(connect_with(&gw.url(), Some("pro-secret")).await),
        Some(429),
        "the cap is 2"
    );
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_status(connect_with(&gw.url(), Some("pro-secret")).await) != Some(101) {
        assert!(
            Instant::now() < deadline,
            "a closed connection should free its slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.metrics.rejected_unauthorized.load(Ordering::Relaxed) >= 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delayed_entitlement_holds_events_back() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let delay = Duration::from_secs(2);
    let config = GatewayConfig {
        auth: Some(auth_file(true)),
        delay,
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus.clone(), config).await;
    let mut pro = ok(connect_with(&gw.url(), Some("pro-secret")).await);
    subscribe(&mut pro, json!({"op": "subscribe", "filter": ""})).await;
    let mut retail = ok(connect_with(&format!("{}?token=retail%20secret", gw.url()), None).await);
    send(&mut retail, json!({"op": "subscribe", "filter": ""})).await;
    let (_, status) = next_message(&mut retail).await;
    assert!(
        status["notice"]
            .as_str()
            .unwrap_or_default()
            .contains("delayed"),
        "{status}"
    );
    assert_eq!(next_message(&mut retail).await.1["live"], true);

    let mut committer = Committer::new(bus.clone()).await;
    let mut committed = Vec::new();
    for _ in 0..5 {
        committed.extend(ok(committer.commit(2, now_ms()).await));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = committed[committed.len() - 1];
    let mut realtime = Vec::new();
    collect_until(&mut pro, &mut realtime, last).await;
    assert_eq!(ids(&realtime), committed);
    // Nothing reaches the delayed client before its trade time plus the delay.
    let mut delayed: Vec<(Cursor, FlowEvent, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while delayed.len() < committed.len() {
        assert!(Instant::now() < deadline, "delayed events never arrived");
        if let Some(Seen::Events(e)) = next_seen(&mut retail, Duration::from_secs(1)).await {
            let at = now_ms();
            delayed.extend(e.into_iter().map(|(c, ev)| (c, ev, at)));
        }
    }
    for (c, e, at) in &delayed {
        assert!(
            *at >= e.ts + delay.as_millis() as i64,
            "{c} arrived {} ms after its trade",
            at - e.ts
        );
    }
    assert_eq!(delayed.iter().map(|d| d.0).collect::<Vec<_>>(), committed);
    // A delayed backfill sees only released events.
    let mut late = ok(connect_with(&gw.url(), Some("retail secret")).await);
    let fresh = ok(committer.commit(1, now_ms()).await);
    let replayed = subscribe(
        &mut late,
        json!({"op": "subscribe", "filter": "", "backfill": 100}),
    )
    .await;
    assert_eq!(
        ids(&replayed),
        committed,
        "the backfill holds back {fresh:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_between_two_gateways_without_gap_or_duplicate() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let first = RunningGateway::start(bus.clone(), GatewayConfig::default()).await;
    let second = RunningGateway::start(redis_bus(&redis).await, GatewayConfig::default()).await;
    let start = stream_end(&bus).await;
    let load = Load::start(
        Committer::new(bus.clone()).await,
        5,
        Duration::from_millis(3),
    );
    let mut ws = connect(&first.url()).await;
    let mut got = subscribe(
        &mut ws,
        json!({"op": "subscribe", "filter": "", "since": start.to_string()}),
    )
    .await;
    // A watcher on the second gateway sees the same events all along.
    let mut watcher = connect(&second.url()).await;
    let request = json!({"op": "subscribe", "filter": "", "since": start.to_string()});
    let mut watched = subscribe(&mut watcher, request).await;
    load.wait_for(300).await;
    // The first gateway shuts down: its clients get 1001 "going away".
    let stopping = tokio::spawn(first.stop());
    let close = loop {
        match next_seen(&mut ws, Duration::from_secs(10)).await {
            Some(Seen::Events(e)) => got.extend(e),
            Some(Seen::Closed(c)) => break c,
            Some(Seen::Other(_)) => {}
            None => panic!("no close from the gateway going away"),
        }
    };
    ok(stopping.await);
    assert_eq!(close.map(|c| c.0), Some(1001));
    let cursor = got.last().map_or(start, |(c, _)| *c);
    let mut ws = connect(&second.url()).await;
    got.extend(
        subscribe(
            &mut ws,
            json!({"op": "subscribe", "filter": "", "since": cursor.to_string()}),
        )
        .await,
    );
    load.wait_for(600).await;
    load.stop().await;
    let end = stream_end(&bus).await;
    collect_until(&mut ws, &mut got, end).await;
    let want = ids(&stream_after(&bus, start).await);
    assert_same_ids(&ids(&got), &want, "across the failover");
    collect_until(&mut watcher, &mut watched, end).await;
    assert_same_ids(&ids(&watched), &want, "the second gateway");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_gateway_recovers_and_repairs_the_gap() {
    let mut redis = RedisServer::start_persistent();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        repair_check: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus.clone(), config).await;
    let start = stream_end(&bus).await;
    let mut ws = connect(&gw.url()).await;
    subscribe(
        &mut ws,
        json!({"op": "subscribe", "filter": "", "since": start.to_string()}),
    )
    .await;
    let mut committer = Committer::new(bus.clone()).await;
    let before = ok(committer.commit(20, now_ms()).await);
    let mut got = Vec::new();
    collect_until(&mut ws, &mut got, before[before.len() - 1]).await;
    assert_eq!(http_get(gw.addr, "/healthz").await.0, 200);

    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(gw.addr, "/healthz").await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "/healthz should report Redis down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart();
    // Commit at once, before the gateway's live subscription comes back.
    let mut during = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while during.len() < 30 {
        assert!(Instant::now() < deadline, "cannot commit after the restart");
        match committer.commit(10, now_ms()).await {
            Ok(ids) => during.extend(ids),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let last = during[during.len() - 1];
    collect_until(&mut ws, &mut got, last).await;
    let want = ids(&stream_after(&bus, start).await);
    assert_same_ids(&ids(&got), &want, "across the Redis restart");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(gw.addr, "/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "/healthz should recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gw.metrics.redis_errors.load(Ordering::Relaxed) > 0);
    assert!(
        gw.metrics.gap_repairs.load(Ordering::Relaxed) > 0,
        "the lost subscription was repaired from the stream"
    );
    assert_eq!(
        gw.metrics.history_lost_live.load(Ordering::Relaxed),
        0,
        "a restart that kept the stream lost nothing"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_answer() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let gw = RunningGateway::start(bus.clone(), GatewayConfig::default()).await;
    let mut ws = connect(&gw.url()).await;
    subscribe(&mut ws, json!({"op": "subscribe", "filter": ""})).await;
    let mut committer = Committer::new(bus.clone()).await;
    let committed = ok(committer.commit(3, now_ms()).await);
    let mut got = Vec::new();
    collect_until(&mut ws, &mut got, committed[2]).await;

    let (status, body) = http_get(gw.addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: Value = ok(serde_json::from_str(&body));
    assert_eq!(health["status"], "ok");
    assert_eq!(health["redis"], true);
    assert!(health["lag_ms"].is_u64(), "{health}");
    assert!(health.get("feed").is_some_and(Value::is_null), "{health}");
    assert_eq!(health["connections"], 1);

    let (status, text) = http_get(gw.addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "flowtape_gateway_connections 1",
        "flowtape_gateway_events_in_total 3",
        "flowtape_gateway_events_out_total 3",
        "flowtape_gateway_stream_to_gateway_seconds_count 3",
        "flowtape_gateway_gateway_to_socket_seconds_count 3",
        "flowtape_gateway_slow_consumer_disconnects_total 0",
        "flowtape_gateway_redis_errors_total 0",
        "flowtape_gateway_history_lost_total{at=\"live\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert_eq!(http_get(gw.addr, "/nope").await.0, 404);
    assert_eq!(
        http_get(gw.addr, "/ws").await.0,
        426,
        "a plain GET on /ws is told to upgrade"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_closed_with_4009() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus, config).await;
    // A live client answers pings (its library does) and stays connected.
    let mut alive = connect(&gw.url()).await;
    // A dead one completes the handshake and then never reads or answers.
    let mut dead = ok(TcpStream::connect(gw.addr).await);
    let upgrade = "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    ok(dead.write_all(upgrade.as_bytes()).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metrics.heartbeat_timeouts.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the dead connection was never closed"
        );
        let seen = next_seen(&mut alive, Duration::from_millis(50)).await;
        assert!(seen.is_none(), "the live client was closed: {seen:?}");
    }
    let mut bytes = Vec::new();
    ok(ok(tokio::time::timeout(
        Duration::from_secs(5),
        dead.read_to_end(&mut bytes),
    )
    .await));
    // An unmasked close frame (0x88) carrying 4009 (0x0fa9).
    assert!(
        bytes
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2..] == [0x0f, 0xa9]),
        "no 4009 close frame"
    );
    assert_eq!(
        gw.metrics.heartbeat_timeouts.load(Ordering::Relaxed),
        1,
        "only the dead client"
    );
    send(&mut alive, json!({"op": "ping"})).await;
    assert_eq!(next_message(&mut alive).await.1["type"], "pong");
    gw.stop().await;
}

// ------------------------------------------------------------ lost history ---

/// Connects and resumes from `cursor` with every event, retrying while the
/// gateway cannot read the stream (Redis is coming back). Returns the
/// connection, the events replayed and the statuses.
async fn resume(gw: &RunningGateway, cursor: Cursor) -> (Ws, Vec<(Cursor, FlowEvent)>, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ws = connect(&gw.url()).await;
        let request = json!({"op": "subscribe", "filter": "", "since": cursor.to_string()});
        match subscribe_seeing(&mut ws, request).await {
            Ok((replayed, statuses)) => return (ws, replayed, statuses),
            Err(e) => {
                assert_eq!(e["code"], "unavailable", "unexpected {e}");
                assert!(
                    Instant::now() < deadline,
                    "the gateway never read the stream again"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The `lost` ranges among statuses, each checked to come with its notice.
fn losses(statuses: &[Value]) -> Vec<Value> {
    statuses
        .iter()
        .filter(|s| s.get("lost").is_some())
        .map(|s| {
            let notice = s["notice"].as_str().unwrap_or_default();
            assert!(
                notice.starts_with("history lost"),
                "a loss without its notice: {s}"
            );
            s["lost"].clone()
        })
        .collect()
}

/// Reads a live client until a status tells it of a loss; returns the range
/// and the events before it.
async fn next_loss(ws: &mut Ws) -> (Value, Vec<(Cursor, FlowEvent)>) {
    let mut events = Vec::new();
    loop {
        let (got, v) = next_message(ws).await;
        events.extend(got);
        if let Some(lost) = losses(std::slice::from_ref(&v)).pop() {
            return (lost, events);
        }
    }
}

/// Commits `n` events as soon as the restarted Redis takes them.
async fn commit_when_back(committer: &mut Committer, n: usize) -> Vec<Cursor> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match committer.commit(n, now_ms()).await {
            Ok(ids) => return ids,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot commit after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn metric_line(gw: &RunningGateway, line: &str) {
    let (status, text) = http_get(gw.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );
}

fn too_old(statuses: &[Value]) -> bool {
    statuses.iter().any(|s| {
        s["notice"]
            .as_str()
            .is_some_and(|n| n.contains("cursor too old"))
    })
}

/// For the history-loss tests: a private Redis, a gateway on it that checks
/// for missed events every 200 ms, a client subscribed to everything, and a
/// committer.
async fn loss_rig() -> (RedisServer, Bus, RunningGateway, Ws, Committer) {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let config = GatewayConfig {
        repair_check: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let gw = RunningGateway::start(bus.clone(), config).await;
    let mut live = connect(&gw.url()).await;
    subscribe(&mut live, json!({"op": "subscribe", "filter": ""})).await;
    let committer = Committer::new(bus.clone()).await;
    (redis, bus, gw, live, committer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_is_a_loss_told_to_live_and_resuming_clients() {
    let (mut redis, bus, gw, mut live, mut committer) = loss_rig().await;
    let before = ok(committer.commit(20, now_ms()).await);
    let cursor = before[before.len() - 1];
    let mut got = Vec::new();
    collect_until(&mut live, &mut got, cursor).await;

    // Redis comes back empty, and events flow again into a new stream.
    redis.restart();
    let after = commit_when_back(&mut committer, 10).await;
    let origin = after[0];
    assert_eq!(
        ok(bus.flow_bounds().await).first,
        Some(origin),
        "a new stream"
    );
    // The client that stayed connected is told by the hub, then gets the new events.
    let (lost, mut seen) = next_loss(&mut live).await;
    assert_eq!(lost["after"], cursor.to_string(), "{lost}");
    if let Some(b) = lost.get("before") {
        assert_eq!(*b, origin.to_string(), "{lost}");
    }
    collect_until(&mut live, &mut seen, after[after.len() - 1]).await;
    assert_same_ids(&ids(&seen), &after, "the live client after the restart");

    // A client resuming from its cursor is told the range, and no "too old".
    let (mut ws, mut replayed, statuses) = resume(&gw, cursor).await;
    assert_eq!(
        losses(&statuses),
        vec![json!({"after": cursor.to_string(), "before": origin.to_string()})],
        "{statuses:?}"
    );
    assert!(!too_old(&statuses), "a loss is not retention: {statuses:?}");
    collect_until(&mut ws, &mut replayed, after[after.len() - 1]).await;
    assert_same_ids(&ids(&replayed), &after, "the resumed client");

    assert_eq!(gw.metrics.history_lost_live.load(Ordering::Relaxed), 1);
    metric_line(&gw, "flowtape_gateway_history_lost_total{at=\"live\"} 1").await;
    metric_line(&gw, "flowtape_gateway_history_lost_total{at=\"resume\"} 1").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_that_lost_the_tail_is_a_loss_from_the_last_entry_kept() {
    let (mut redis, _, gw, mut live, mut committer) = loss_rig().await;
    let kept = ok(committer.commit(10, now_ms()).await);
    // What the survivor has: a snapshot of the first 10 (as a replica that
    // lagged, or a stale snapshot, would have them).
    let () = ok(redis::cmd("SAVE").query(&mut redis.conn()));
    let tail = ok(committer.commit(10, now_ms()).await);
    let (kept_last, cursor) = (kept[kept.len() - 1], tail[tail.len() - 1]);
    let mut got = Vec::new();
    collect_until(&mut live, &mut got, cursor).await;

    // The survivor takes over: the stream ends at the 10th event.
    redis.restart();
    let survivor = redis_bus(&redis).await;
    assert_eq!(ok(survivor.flow_bounds().await).last, Some(kept_last));
    // A client resuming from what it saw last: its cursor is past the end.
    let (_ws, replayed, statuses) = resume(&gw, cursor).await;
    assert!(replayed.is_empty());
    assert_eq!(
        losses(&statuses),
        vec![json!({"after": kept_last.to_string()})],
        "{statuses:?}"
    );
    // The client that stayed connected is told by the hub.
    let (lost, _) = next_loss(&mut live).await;
    assert_eq!(lost["after"], kept_last.to_string(), "{lost}");

    // Writing goes on on the survivor; the live client gets the new events.
    let fresh = commit_when_back(&mut committer, 5).await;
    let mut seen = Vec::new();
    collect_until(&mut live, &mut seen, fresh[fresh.len() - 1]).await;
    assert_same_ids(&ids(&seen), &fresh, "the live client after the failover");
    // Once the stream has moved past the cursor, a resume is still told:
    // the hub recorded the loss, now with its end.
    let (mut ws, mut replayed, statuses) = resume(&gw, cursor).await;
    assert_eq!(
        losses(&statuses),
        vec![json!({"after": kept_last.to_string(), "before": fresh[0].to_string()})],
        "{statuses:?}"
    );
    collect_until(&mut ws, &mut replayed, fresh[fresh.len() - 1]).await;
    assert_same_ids(&ids(&replayed), &fresh, "the resumed client");

    assert_eq!(gw.metrics.history_lost_live.load(Ordering::Relaxed), 1);
    assert_eq!(gw.metrics.history_lost_resume.load(Ordering::Relaxed), 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_trimmed_by_retention_is_too_old_and_not_lost() {
    let redis = RedisServer::start();
    let bus = redis_bus(&redis).await;
    let gw = RunningGateway::start(bus.clone(), GatewayConfig::default()).await;
    let mut watcher = connect(&gw.url()).await;
    subscribe(&mut watcher, json!({"op": "subscribe", "filter": ""})).await;
    let mut committer = Committer::new(bus.clone()).await;
    let all = ok(committer.commit(30, now_ms()).await);
    // The gateway has them all (the seam of a resume is its newest).
    collect_until(&mut watcher, &mut Vec::new(), all[29]).await;
    // Retention trims the first 20 (as the commit script's `XTRIM MINID` does).
    let key = Keys::new(&bus_config().namespace).flow_stream();
    let trimmed: u64 = ok(redis::cmd("XTRIM")
        .arg(&key)
        .arg("MINID")
        .arg(all[20].to_string())
        .query(&mut redis.conn()));
    assert_eq!(trimmed, 20);
    let (mut ws, mut replayed, statuses) = resume(&gw, all[4]).await;
    assert!(too_old(&statuses), "{statuses:?}");
    assert!(
        losses(&statuses).is_empty(),
        "retention is not a loss: {statuses:?}"
    );
    collect_until(&mut ws, &mut replayed, all[29]).await;
    assert_same_ids(&ids(&replayed), &all[20..], "from the oldest kept");
    metric_line(&gw, "flowtape_gateway_history_lost_total{at=\"resume\"} 0").await;
    metric_line(&gw, "flowtape_gateway_history_lost_total{at=\"live\"} 0").await;
    gw.stop().await;
}
