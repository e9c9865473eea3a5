//! The Massive feed against a mock upstream: a local WebSocket server that
//! speaks the vendor protocol and plays a scripted session per connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use flowtape_core::conditions::ConditionTable;
use flowtape_core::cursor::Cursor;
use flowtape_core::detect::{DetectionConfig, Detector};
use flowtape_core::event::{FlowEvent, Kind, Print};
use flowtape_core::protocol::{FeedHealth, FeedStatus};
use flowtape_server::feed::breaker::BreakerConfig;
use flowtape_server::feed::massive::{MassiveConfig, MassiveFeed, MassiveStats};
use flowtape_server::feed::{FeedEnd, FeedStats};

const KEY: &str = "test-key";
/// A weekday afternoon in New York, Dec 2025 (ms).
const T0: i64 = 1_766_000_000_000;
const WAIT: Duration = Duration::from_secs(5);

/// One step of a scripted session.
#[derive(Clone)]
enum Step {
    /// Greeting, auth (checking the key), subscribe, acks.
    Handshake,
    /// Greeting, then `auth_failed` to whatever key comes.
    RejectAuth,
    Send(String),
    SendBinary(Vec<u8>),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Keep the socket open but never read or write again.
    Hold,
    /// Say nothing for a while (a slow upstream).
    Sleep(Duration),
}

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// Every text frame the client sent, in order.
    texts: Mutex<Vec<String>>,
    close_frames: AtomicUsize,
}

struct Mock {
    url: String,
    seen: Arc<Seen>,
}

/// Connection `i` plays `sessions[i]`, or the last session once they run out.
async fn mock(sessions: Vec<Vec<Step>>) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "ws://{}/options",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let i = s.connections.fetch_add(1, Ordering::SeqCst);
            let script = sessions[i.min(sessions.len() - 1)].clone();
            tokio::spawn(play(tcp, script, s.clone()));
        }
    });
    Mock { url, seen }
}

async fn play(tcp: tokio::net::TcpStream, script: Vec<Step>, seen: Arc<Seen>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let status = |s: &str, m: &str| {
        Message::Text(format!(r#"[{{"ev":"status","status":"{s}","message":"{m}"}}]"#).into())
    };
    for step in script {
        match step {
            Step::Handshake | Step::RejectAuth => {
                let reject = matches!(step, Step::RejectAuth);
                let _ = ws.send(status("connected", "Connected Successfully")).await;
                let auth = next_text(&mut ws, &seen).await;
                let ok = auth == format!(r#"{{"action":"auth","params":"{KEY}"}}"#);
                if reject || !ok {
                    let _ = ws
                        .send(status("auth_failed", "authentication failed"))
                        .await;
                    let _ = ws.close(None).await;
                    return;
                }
                let _ = ws.send(status("auth_success", "authenticated")).await;
                let _ = next_text(&mut ws, &seen).await;
                let _ = ws.send(status("success", "subscribed to: T.*,Q.*")).await;
            }
            Step::Send(text) => {
                let _ = ws.send(Message::Text(text.into())).await;
            }
            Step::SendBinary(bytes) => {
                let _ = ws.send(Message::Binary(bytes.into())).await;
            }
            Step::Drop => return,
            Step::Hold => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
    // Script done: keep reading (which answers pings) until the client leaves.
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(_) = m {
            seen.close_frames.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    seen: &Seen,
) -> String {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            let t = t.to_string();
            seen.texts
                .lock()
                .map(|mut v| v.push(t.clone()))
                .unwrap_or_default();
            return t;
        }
    }
    String::new()
}

fn trade(sym: &str, x: u16, p: f64, s: u32, c: &[u16], t: i64, q: u64) -> String {
    format!(r#"{{"ev":"T","sym":"{sym}","x":{x},"p":{p},"s":{s},"c":{c:?},"t":{t},"q":{q}}}"#)
}

fn quote(sym: &str, bp: f64, ap: f64, t: i64, q: u64) -> String {
    format!(
        r#"{{"ev":"Q","sym":"{sym}","bx":300,"ax":301,"bp":{bp},"ap":{ap},"bs":10,"as":10,"t":{t},"q":{q}}}"#
    )
}

fn frame(messages: &[String]) -> Step {
    Step::Send(format!("[{}]", messages.join(",")))
}

fn test_config(url: &str) -> MassiveConfig {
    MassiveConfig {
        url: url.to_string(),
        breaker: BreakerConfig {
            failure_threshold: 3,
            stall_timeout: Duration::from_millis(400),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            jitter: 0.5,
            stable_after: Duration::from_secs(30),
        },
        connect_timeout: Duration::from_secs(2),
        auth_retry: Duration::from_secs(60),
        ..MassiveConfig::new(KEY.to_string())
    }
}

struct Running {
    prints: mpsc::Receiver<Vec<Print>>,
    status: watch::Receiver<FeedStatus>,
    stats: Arc<MassiveStats>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<FeedStats>,
}

fn start(config: MassiveConfig) -> Running {
    let feed = MassiveFeed::new(config).unwrap_or_else(|e| panic!("{e}"));
    let stats = feed.stats();
    let (tx, prints) = mpsc::channel(64);
    // Not `ok`: the test must see the feed's own word.
    let (status_tx, status) = watch::channel(FeedStatus {
        state: FeedHealth::Degraded,
        reason: "not started".into(),
        since: 0,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(feed.run(tx, status_tx, async move {
        let _ = stopped.await;
    }));
    Running {
        prints,
        status,
        stats,
        stop,
        task,
    }
}

impl Running {
    async fn take(&mut self, n: usize) -> Vec<Print> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(WAIT, self.prints.recv()).await {
                Ok(Some(batch)) => out.extend(batch),
                _ => panic!("expected {n} prints, got {}: {out:?}", out.len()),
            }
        }
        out
    }

    async fn status_becomes(&mut self, state: FeedHealth) -> FeedStatus {
        let got = tokio::time::timeout(WAIT, self.status.wait_for(|s| s.state == state))
            .await
            .map(|r| r.map(|s| s.clone()));
        match got {
            Ok(Ok(s)) => s,
            _ => panic!(
                "status never became {state:?}; it is {:?}",
                *self.status.borrow()
            ),
        }
    }

    async fn stop(self) -> FeedStats {
        let _ = self.stop.send(());
        match tokio::time::timeout(WAIT, self.task).await {
            Ok(Ok(stats)) => stats,
            _ => panic!("the feed did not stop promptly"),
        }
    }
}

fn detect(prints: Vec<Print>) -> Vec<FlowEvent> {
    let mut detector = Detector::new(DetectionConfig::default(), ConditionTable::default());
    let mut out = Vec::new();
    for (i, p) in prints.into_iter().enumerate() {
        detector.push(Cursor::new(1 + i as u64, 0), p, &mut out);
    }
    detector.flush_all(&mut out);
    out.into_iter().filter_map(|d| d.event).collect()
}

const SWEPT: &str = "O:AAPL261218C00200000";
const SPLIT: &str = "O:MSFT261218P00400000";
const BLOCKED: &str = "O:SPY261218C00600000";

#[tokio::test]
async fn a_session_becomes_one_sweep_one_split_and_one_block_with_quotes_and_oi_joined() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let oi_file = dir.path().join("oi.csv");
    std::fs::write(&oi_file, format!("occ,oi\n{SWEPT},4321\nbad line\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let m = mock(vec![vec![
        Step::Handshake,
        frame(&[
            quote(SWEPT, 1.00, 1.10, T0 - 50, 1),
            quote(SPLIT, 2.00, 2.10, T0 - 50, 1),
            quote(BLOCKED, 3.00, 3.20, T0 - 50, 1),
        ]),
        // A multi-exchange ISO sweep: 100 + 200 + 300 lots on three venues within 2 ms.
        frame(&[
            trade(SWEPT, 300, 1.10, 100, &[219], T0, 10),
            trade(SWEPT, 301, 1.10, 200, &[219], T0 + 1, 11),
            trade(SWEPT, 302, 1.12, 300, &[219], T0 + 2, 12),
        ]),
        // A single-exchange ISO split, and a block.
        frame(&[
            trade(SPLIT, 303, 2.10, 50, &[219], T0 + 100, 20),
            trade(SPLIT, 303, 2.10, 70, &[219], T0 + 101, 21),
            trade(BLOCKED, 304, 3.20, 2000, &[209], T0 + 200, 30),
        ]),
    ]])
    .await;
    let mut run = start(MassiveConfig {
        oi_file: Some(oi_file),
        ..test_config(&m.url)
    });
    run.status_becomes(FeedHealth::Ok).await;
    let prints = run.take(6).await;
    assert_eq!(prints[0].bid, Some(1.00));
    assert_eq!(prints[0].ask, Some(1.10));
    assert_eq!(prints[0].ts_ns, T0 * 1_000_000);
    assert_eq!(prints[0].seq, 10);
    assert_eq!(prints[0].oi, Some(4321));
    assert_eq!(prints[3].oi, None, "no open interest is invented");
    assert!(
        prints.iter().all(|p| p.spot.is_none()),
        "no spot without the stocks socket"
    );

    let events = detect(prints);
    assert_eq!(events.len(), 3, "{events:#?}");
    let sweep = events
        .iter()
        .find(|e| e.kind == Kind::Sweep)
        .unwrap_or_else(|| panic!("no sweep"));
    assert_eq!(sweep.occ, "AAPL261218C00200000");
    assert_eq!((sweep.size, sweep.legs), (600, 3));
    assert_eq!(sweep.exchanges, [300, 301, 302]);
    assert!((sweep.price - 1.11).abs() < 1e-9, "VWAP {}", sweep.price);
    assert!(
        (sweep.premium - 66_600.0).abs() < 1e-6,
        "premium {}",
        sweep.premium
    );
    assert_eq!((sweep.bid, sweep.ask), (Some(1.00), Some(1.10)));
    let split = events
        .iter()
        .find(|e| e.kind == Kind::Split)
        .unwrap_or_else(|| panic!("no split"));
    assert_eq!(
        (split.size, split.legs, split.exchanges.as_slice()),
        (120, 2, &[303][..])
    );
    let block = events
        .iter()
        .find(|e| e.kind == Kind::Block)
        .unwrap_or_else(|| panic!("no block"));
    assert_eq!(
        (block.size, block.occ.as_str()),
        (2000, "SPY261218C00600000")
    );

    let stats = run.stats.options.snapshot();
    assert_eq!((stats.trades, stats.quotes, stats.malformed), (6, 3, 0));
    let seen = m.seen.clone();
    let fed = run.stop().await;
    assert_eq!((fed.prints, fed.end), (6, FeedEnd::Shutdown));
    // The client said goodbye with a close frame.
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.close_frames.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.close_frames.load(Ordering::SeqCst), 1);
    let texts = seen.texts.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(
        texts,
        [
            format!(r#"{{"action":"auth","params":"{KEY}"}}"#),
            r#"{"action":"subscribe","params":"T.*,Q.*"}"#.to_string()
        ]
    );
}

#[tokio::test]
async fn an_auth_failure_says_so_and_does_not_retry_in_a_loop() {
    let m = mock(vec![vec![Step::RejectAuth]]).await;
    let mut run = start(test_config(&m.url));
    let status = run.status_becomes(FeedHealth::Down).await;
    assert_eq!(
        status.reason,
        "authentication failed: authentication failed"
    );
    assert!(status.since > 0);
    // Well past several short backoffs: still the one attempt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(m.seen.connections.load(Ordering::SeqCst), 1);
    let stats = run.stats.options.snapshot();
    assert_eq!((stats.auth_failures, stats.connection_attempts), (1, 1));
    assert_eq!(run.status.borrow().state, FeedHealth::Down);
    run.stop().await;
}

#[tokio::test]
async fn malformed_frames_are_counted_and_the_good_data_still_arrives() {
    let m = mock(vec![vec![
        Step::Handshake,
        frame(&[trade(SWEPT, 300, 1.0, 1, &[], T0, 1)]),
        Step::Send("this is not json".into()),
        Step::Send(r#"{"ev":"T","sym":"O:X"}"#.into()),
        Step::SendBinary(vec![1, 2, 3]),
        frame(&[
            trade("O:NOTASYMBOL", 300, 1.0, 1, &[], T0, 2),
            r#"{"ev":"T","sym":"O:AAPL261218C00200000","x":"three","p":1,"s":1,"t":1,"q":1}"#
                .to_string(),
            r#"{"ev":"XQ","sym":"O:AAPL261218C00200000"}"#.to_string(),
            trade(SWEPT, 301, 1.5, 2, &[], T0 + 1, 3),
        ]),
    ]])
    .await;
    let mut run = start(test_config(&m.url));
    let prints = run.take(2).await;
    assert_eq!(prints.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(prints[1].price, 1.5);
    let stats = run.stats.options.snapshot();
    assert_eq!((stats.malformed, stats.unknown_events), (5, 1));
    assert_eq!(
        run.status.borrow().state,
        FeedHealth::Ok,
        "malformed data is not fatal"
    );
    let fed = run.stop().await;
    assert_eq!((fed.prints, fed.malformed), (2, 5));
    assert_eq!(m.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn after_a_disconnect_it_reconnects_and_resumes_keeping_the_quote_book() {
    let m = mock(vec![
        vec![
            Step::Handshake,
            frame(&[
                quote(SWEPT, 1.00, 1.10, T0, 1),
                trade(SWEPT, 300, 1.05, 1, &[], T0 + 1, 2),
            ]),
            Step::Drop,
        ],
        vec![
            Step::Handshake,
            frame(&[trade(SWEPT, 301, 1.10, 3, &[], T0 + 2, 3)]),
        ],
    ])
    .await;
    let mut run = start(test_config(&m.url));
    let prints = run.take(2).await;
    assert_eq!(prints.iter().map(|p| p.size).collect::<Vec<_>>(), [1, 3]);
    // The quote from before the disconnect is still joined.
    assert_eq!((prints[1].bid, prints[1].ask), (Some(1.00), Some(1.10)));
    run.status_becomes(FeedHealth::Ok).await;
    assert_eq!(m.seen.connections.load(Ordering::SeqCst), 2);
    let texts = m.seen.texts.lock().map(|v| v.clone()).unwrap_or_default();
    let auths = texts.iter().filter(|t| t.contains("\"auth\"")).count();
    let subs = texts.iter().filter(|t| t.contains("\"subscribe\"")).count();
    assert_eq!((auths, subs), (2, 2), "re-authenticated and re-subscribed");
    assert_eq!(run.stats.options.snapshot().reconnects, 1);
    run.stop().await;
}

#[tokio::test]
async fn a_stall_opens_the_breaker_and_it_recovers_when_the_upstream_serves_again() {
    let m = mock(vec![
        vec![
            Step::Handshake,
            frame(&[trade(SWEPT, 300, 1.0, 1, &[], T0, 1)]),
            Step::Hold,
        ],
        vec![
            Step::Handshake,
            frame(&[trade(SWEPT, 300, 1.0, 2, &[], T0 + 1, 2)]),
        ],
    ])
    .await;
    let mut run = start(test_config(&m.url));
    run.status_becomes(FeedHealth::Ok).await;
    assert_eq!(run.take(1).await[0].size, 1);
    let down = run.status_becomes(FeedHealth::Down).await;
    assert!(down.reason.contains("stalled"), "{}", down.reason);
    let ok = run.status_becomes(FeedHealth::Ok).await;
    assert!(ok.since >= down.since);
    assert_eq!(run.take(1).await[0].size, 2);
    let stats = run.stats.options.snapshot();
    assert_eq!((stats.stalls, stats.connection_attempts), (1, 2));
    run.stop().await;
}

#[tokio::test]
async fn an_unreachable_upstream_degrades_then_opens_and_backs_off() {
    // A port nobody listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut run = start(test_config(&format!("ws://{addr}/options")));
    let down = run.status_becomes(FeedHealth::Down).await;
    assert!(
        down.reason.contains("3 failures in a row"),
        "{}",
        down.reason
    );
    // Backoff is capped at 200 ms here, so attempts continue but stay spaced.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let attempts = run.stats.options.snapshot().connection_attempts;
    assert!((3..=20).contains(&attempts), "{attempts} attempts");
    let fed = run.stop().await;
    assert_eq!((fed.prints, fed.end), (0, FeedEnd::Shutdown));
}

/// The whole path of a feed outage: the breaker's status goes from the
/// Massive adapter through ingest's status publisher and the bus to the
/// gateway, which pushes each change to a subscribed WebSocket client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_reaches_websocket_clients_as_status_and_so_does_the_recovery() {
    use flowtape_core::protocol::ServerMessage;
    use flowtape_server::bus::{Bus, BusConfig};
    use flowtape_server::gateway::GatewayConfig;
    use flowtape_server::node::{FeedChoice, Node, NodeConfig};
    use flowtape_server::pipeline::ProcessorConfig;

    let m = mock(vec![
        vec![
            Step::Handshake,
            frame(&[trade(SWEPT, 300, 1.0, 1, &[], T0, 1)]),
            Step::Hold,
        ],
        // The upstream is slow to come back (less than the stall timeout), so the
        // outage lasts several of the gateway's status polls.
        vec![
            Step::Sleep(Duration::from_millis(300)),
            Step::Handshake,
            frame(&[trade(SWEPT, 300, 1.0, 2, &[], T0 + 1, 2)]),
        ],
    ])
    .await;
    let node = Node::start(
        Bus::memory(BusConfig::default()),
        NodeConfig {
            feed: Some(FeedChoice::Massive(Box::new(test_config(&m.url)))),
            process: Some(ProcessorConfig::new("status-test".into())),
            gateway: Some(GatewayConfig {
                listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                feed_poll: Duration::from_millis(100),
                ..GatewayConfig::default()
            }),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = node.gateway_addr().unwrap_or_else(|| panic!("no gateway"));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    ws.send(Message::Text(r#"{"op":"subscribe","filter":""}"#.into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Collect the feed states the client is told about, until ok → down → ok.
    let mut states: Vec<(FeedHealth, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let recovered = |s: &[(FeedHealth, String)]| {
        let down = s
            .iter()
            .position(|(st, r)| *st == FeedHealth::Down && r.contains("stalled"));
        down.is_some_and(|d| s[d..].iter().any(|(st, _)| *st == FeedHealth::Ok))
    };
    while !recovered(&states) {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            panic!("no ok → down (stalled) → ok sequence reached the client: {states:?}");
        };
        if let Ok(ServerMessage::Status { feed: Some(f), .. }) = serde_json::from_str(&text) {
            if states.last().map(|(s, r)| (s, r)) != Some((&f.state, &f.reason)) {
                states.push((f.state, f.reason));
            }
        }
    }
    assert!(
        states.iter().any(|(s, _)| *s == FeedHealth::Ok),
        "{states:?}"
    );
    node.shutdown();
    node.wait().await;
}

/// Spot comes from the stocks socket: the underlying's last trade price is
/// joined onto option prints of that underlying, and only those.
#[tokio::test]
async fn spot_from_the_stocks_socket_is_joined_onto_option_prints() {
    let stock_trade = |sym: &str, p: f64, t: i64, q: u64| {
        format!(r#"{{"ev":"T","sym":"{sym}","x":4,"p":{p},"s":100,"c":[],"t":{t},"q":{q}}}"#)
    };
    let stocks = mock(vec![vec![
        Step::Handshake,
        frame(&[stock_trade("AAPL", 201.5, T0 - 1000, 1)]),
    ]])
    .await;
    let options = mock(vec![vec![
        Step::Handshake,
        // Let the stocks socket deliver its trade first.
        Step::Sleep(Duration::from_millis(150)),
        frame(&[
            trade(SWEPT, 300, 1.0, 1, &[], T0, 1),
            trade(SPLIT, 301, 2.0, 1, &[], T0 + 1, 2),
        ]),
    ]])
    .await;
    let mut config = test_config(&options.url);
    config.stocks_url = Some(stocks.url.clone());
    let mut run = start(config);
    let prints = run.take(2).await;
    let spot_of = |occ: &str| {
        prints
            .iter()
            .find(|p| p.contract.massive() == occ)
            .map(|p| p.spot)
            .unwrap_or_else(|| panic!("no print for {occ}"))
    };
    assert_eq!(
        spot_of(SWEPT),
        Some(201.5),
        "AAPL spot from the stocks socket"
    );
    assert_eq!(
        spot_of(SPLIT),
        None,
        "no MSFT trade was seen: spot stays null"
    );
    assert!(
        stocks.seen.texts.lock().map(|t| t.len()).unwrap_or(0) >= 2,
        "stocks auth + subscribe"
    );
    run.stop().await;
}
