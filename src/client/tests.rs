//! The client against a real (in-test) WebSocket gateway, and against a
//! whole in-process node serving `wss://`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::ClientMessage;
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::feed::SimConfig;
use flowtape_server::gateway::{GatewayConfig, TlsConfig};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;
use tokio::sync::mpsc;

use super::fake_gateway::{FakeGateway, Script};
use super::*;
use crate::app::testing::{event, sample_events};

fn options(servers: Vec<String>) -> ClientOptions {
    ClientOptions {
        servers,
        token: None,
        filter: String::new(),
        backfill: Some(100),
        since: None,
        backoff: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        max_failures: None,
        fail_fast: false,
        keep_raw: false,
        trust: TrustRoots::System,
        day_every: None,
    }
}

/// What a run of the client delivered; holding it keeps the client running.
struct Collected {
    cursors: Vec<Cursor>,
    all: Vec<ClientEvent>,
    _rx: mpsc::Receiver<ClientEvent>,
}

/// Runs the client until `want` events arrived or it failed; returns the
/// cursors received and every client event.
async fn collect(opts: ClientOptions, want: usize) -> Collected {
    let (_cmd_tx, cmd_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(run(opts, cmd_rx, tx));
    let mut cursors = Vec::new();
    let mut all = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while cursors.len() < want {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                if let ClientEvent::Events(items) = &ev {
                    cursors.extend(items.iter().map(|i| i.cursor));
                }
                let failed = matches!(ev, ClientEvent::Failed { .. });
                all.push(ev);
                if failed {
                    break;
                }
            }
            _ = &mut deadline => panic!("timed out with {} of {want} events: {all:?}", cursors.len()),
        }
    }
    Collected {
        cursors,
        all,
        _rx: rx,
    }
}

fn numbered(n: usize) -> Vec<flowtape_core::event::FlowEvent> {
    (0..n).map(|i| event(&format!("T{i}"), i as i64)).collect()
}

#[tokio::test]
async fn a_dropped_connection_resumes_from_the_last_cursor_with_nothing_missing() {
    let gw = FakeGateway::start(Script {
        events: numbered(10),
        cut_first_after: Some(4),
        ..Script::default()
    })
    .await;
    let Collected { cursors, all, .. } = collect(options(vec![gw.url.clone()]), 10).await;
    let want: Vec<Cursor> = (1..=10).map(|i| Cursor::new(i, 0)).collect();
    assert_eq!(cursors, want, "every event once, in order");
    assert!(all
        .iter()
        .any(|e| matches!(e, ClientEvent::Disconnected { .. })));
    assert_eq!(
        subscribes(&gw),
        vec![
            ClientMessage::Subscribe {
                filter: String::new(),
                backfill: Some(100),
                since: None
            },
            ClientMessage::Subscribe {
                filter: String::new(),
                backfill: None,
                since: Some(Cursor::new(4, 0))
            },
        ]
    );
}

#[tokio::test]
async fn an_unavailable_event_store_is_asked_again_on_the_same_connection() {
    // Refused twice, then the replay breaks off after 4 events: the client
    // subscribes again each time, and resumes after the fourth.
    let gw = FakeGateway::start(Script {
        events: numbered(10),
        refuse_first: 2,
        break_first_replay_after: Some(4),
        ..Script::default()
    })
    .await;
    let Collected { cursors, all, .. } = collect(options(vec![gw.url.clone()]), 10).await;
    let want: Vec<Cursor> = (1..=10).map(|i| Cursor::new(i, 0)).collect();
    assert_eq!(cursors, want, "every event once, in order");
    assert!(
        !all.iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. })),
        "the connection stays: {all:?}"
    );
    let fresh = ClientMessage::Subscribe {
        filter: String::new(),
        backfill: Some(100),
        since: None,
    };
    assert_eq!(
        subscribes(&gw),
        vec![
            fresh.clone(),
            fresh.clone(),
            fresh,
            ClientMessage::Subscribe {
                filter: String::new(),
                backfill: None,
                since: Some(Cursor::new(4, 0))
            },
        ]
    );
}

#[tokio::test]
async fn a_paced_client_hands_over_bursts_in_order_and_the_status_after_its_events() {
    let gw = FakeGateway::start(Script {
        events: numbered(200),
        ..Script::default()
    })
    .await;
    let (_cmd_tx, cmd_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(run_paced(
        options(vec![gw.url.clone()]),
        Duration::from_millis(30),
        cmd_rx,
        tx,
    ));
    let mut cursors = Vec::new();
    let mut batches = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv()).await;
        match ev {
            Ok(Some(ClientEvent::Events(items))) => {
                batches += 1;
                cursors.extend(items.iter().map(|i| i.cursor));
            }
            Ok(Some(ClientEvent::Server(m)))
                if matches!(*m, ServerMessage::Status { live: true, .. }) =>
            {
                break
            }
            Ok(Some(_)) => {}
            other => panic!("no live status after {} events: {other:?}", cursors.len()),
        }
    }
    let want: Vec<Cursor> = (101..=200).map(|i| Cursor::new(i, 0)).collect();
    assert_eq!(
        cursors, want,
        "the backfill of 100, once and in order, before the live status"
    );
    assert!(batches < 100, "{batches} batches for 100 frames");
}

#[tokio::test]
async fn fails_over_to_the_next_server() {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        format!(
            "ws://{}/ws",
            l.local_addr().unwrap_or_else(|e| panic!("{e}"))
        )
    };
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        ..Script::default()
    })
    .await;
    let Collected { cursors, all, .. } =
        collect(options(vec![dead.clone(), gw.url.clone()]), 8).await;
    assert_eq!(cursors.len(), 8);
    let connecting: Vec<&str> = all
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Connecting { server } => Some(server.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(connecting, vec![dead.as_str(), gw.url.as_str()]);
    assert!(all
        .iter()
        .any(|e| matches!(e, ClientEvent::Connected { server } if *server == gw.url)));
}

#[tokio::test]
async fn a_rejected_token_is_reported() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        token: Some("s3cret".into()),
        ..Script::default()
    })
    .await;
    let mut opts = options(vec![gw.url.clone()]);
    opts.fail_fast = true;
    opts.token = Some("wrong".into());
    let Collected { cursors, all, .. } = collect(opts.clone(), 1).await;
    assert!(cursors.is_empty());
    match all.last() {
        Some(ClientEvent::Failed { reason }) => {
            assert!(reason.contains("rejected the token (HTTP 401)"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    opts.token = Some("s3cret".into());
    let Collected { cursors, .. } = collect(opts, 8).await;
    assert_eq!(cursors.len(), 8);
}

/// Runs the client on `gw` with a backfill of 100: it takes the whole
/// history (8 events), is told to subscribe with "calls", and collects what
/// follows until the calls' events after the last one it had are in.
async fn resubscribe_to_calls(gw: &FakeGateway) -> (Vec<ClientEvent>, Vec<Cursor>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(run(options(vec![gw.url.clone()]), cmd_rx, tx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    let mut cursors = Vec::new();
    let mut told = false;
    // The 8, then the calls among them: 1, 2, 4, 7 and 8.
    while cursors.len() < 13 {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out: {all:?}"))
            .unwrap_or_else(|| panic!("the client stopped: {all:?}"));
        if let ClientEvent::Events(items) = &ev {
            cursors.extend(items.iter().map(|i| i.cursor));
        }
        all.push(ev);
        if !told && cursors.len() == 8 {
            cmd_tx
                .send(ClientCommand::Resubscribe("calls".into()))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            told = true;
        }
    }
    (all, cursors)
}

fn subscribes(gw: &FakeGateway) -> Vec<ClientMessage> {
    gw.messages()
        .into_iter()
        .filter(|m| matches!(m, ClientMessage::Subscribe { .. }))
        .collect()
}

fn subscribe(filter: &str, backfill: Option<u32>, since: Option<Cursor>) -> ClientMessage {
    ClientMessage::Subscribe {
        filter: filter.into(),
        backfill,
        since,
    }
}

fn subscribed(all: &[ClientEvent]) -> Vec<(String, bool)> {
    all.iter()
        .filter_map(|e| match e {
            ClientEvent::Subscribed { filter, resumed } => Some((filter.clone(), *resumed)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_resubscribe_sends_the_new_filter_with_a_backfill_and_delivers_it() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        ..Script::default()
    })
    .await;
    let (all, cursors) = resubscribe_to_calls(&gw).await;
    assert_eq!(
        subscribes(&gw),
        vec![
            subscribe("", Some(100), None),
            subscribe("calls", Some(100), None)
        ]
    );
    // The backfill goes back before what the first subscription delivered.
    let after: Vec<u64> = cursors[8..].iter().map(|c| c.ms).collect();
    assert_eq!(after, vec![1, 2, 4, 7, 8]);
    assert_eq!(
        subscribed(&all),
        vec![(String::new(), false), ("calls".to_string(), false)]
    );
}

#[tokio::test]
async fn a_drop_after_a_resubscribe_resumes_with_the_new_filter() {
    // Cut after two of the calls' backfill: resume after the second.
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        cut_first_after: Some(10),
        ..Script::default()
    })
    .await;
    let (all, cursors) = resubscribe_to_calls(&gw).await;
    assert_eq!(
        subscribes(&gw),
        vec![
            subscribe("", Some(100), None),
            subscribe("calls", Some(100), None),
            subscribe("calls", None, Some(Cursor::new(2, 0))),
        ]
    );
    let after: Vec<u64> = cursors[8..].iter().map(|c| c.ms).collect();
    assert_eq!(after, vec![1, 2, 4, 7, 8], "no gap, no duplicate");
    assert_eq!(subscribed(&all).last(), Some(&("calls".to_string(), true)));

    // Cut before the gateway answered the new subscribe: it starts afresh.
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        cut_first_after: Some(8),
        ..Script::default()
    })
    .await;
    let (_, cursors) = resubscribe_to_calls(&gw).await;
    assert_eq!(
        subscribes(&gw).last(),
        Some(&subscribe("calls", Some(100), None))
    );
    let after: Vec<u64> = cursors[8..].iter().map(|c| c.ms).collect();
    assert_eq!(after, vec![1, 2, 4, 7, 8]);
}

#[test]
fn backoff_grows_with_jitter_and_is_capped() {
    let b = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    for _ in 0..50 {
        let d1 = b.delay(1);
        assert!(
            d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
            "{d1:?}"
        );
        let d3 = b.delay(3);
        assert!(
            d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
            "{d3:?}"
        );
        assert!(b.delay(40) <= Duration::from_secs(2));
    }
}

#[test]
fn decoding_drops_replayed_duplicates() {
    let events = sample_events();
    let f1 = flowtape_core::protocol::event_frame("5-0", &events[0].to_stored_json());
    let f0 = flowtape_core::protocol::event_frame("4-0", &events[1].to_stored_json());
    let mut cursor = None;
    let mut batch = Vec::new();
    assert!(decode(&f1, &mut cursor, true, &mut batch).is_none());
    assert!(batch.len() == 1 && batch[0].raw.is_some());
    assert_eq!(cursor, Some(Cursor::new(5, 0)));
    assert!(decode(&f0, &mut cursor, false, &mut batch).is_none());
    assert_eq!(batch.len(), 1, "an older cursor is a duplicate");
    assert!(decode("not json", &mut cursor, false, &mut batch).is_none());
    assert!(matches!(
        decode(r#"{"type":"pong"}"#, &mut cursor, false, &mut batch).as_deref(),
        Some(ServerMessage::Pong)
    ));
    assert_eq!(batch.len(), 1);
}

#[test]
fn decoding_a_batch_keeps_the_events_that_match_the_schema() {
    use flowtape_core::protocol::{event_frame, events_frame};
    let events = sample_events();
    let good = |c: &str, i: usize| event_frame(c, &events[i].to_stored_json());
    let bad = event_frame("5-1", r#"{"ts":"yesterday"}"#);
    let frame = events_frame([
        good("5-0", 0).as_str(),
        bad.as_str(),
        good("5-2", 1).as_str(),
    ]);
    for keep_raw in [false, true] {
        let mut cursor = None;
        let mut batch = Vec::new();
        assert!(decode(&frame, &mut cursor, keep_raw, &mut batch).is_none());
        let cursors: Vec<Cursor> = batch.iter().map(|r| r.cursor).collect();
        assert_eq!(cursors, [Cursor::new(5, 0), Cursor::new(5, 2)]);
        assert_eq!(batch[1].event.sym, events[1].sym);
        assert_eq!(batch[0].raw.is_some(), keep_raw);
        assert_eq!(cursor, Some(Cursor::new(5, 2)));
    }
}

/// The demo's set-up on a memory bus (the sim from now, a processor named
/// `processor`, a loopback gateway, with `tls` if given), started.
async fn demo_node(processor: &str, tls: Option<TlsConfig>) -> Node {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let config = NodeConfig {
        feed: Some(FeedChoice::Sim(SimConfig {
            rate: 500.0,
            start_ns: now_ns,
            ..SimConfig::default()
        })),
        process: Some(ProcessorConfig::new(processor.into())),
        gateway: Some(GatewayConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tls,
            ..GatewayConfig::default()
        }),
    };
    Node::start(Bus::memory(BusConfig::default()), config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A self-signed certificate for `localhost` (PEM files in `dir`) and a node
/// serving `wss://` with it: memory bus, simulated market, processor, gateway.
async fn tls_gateway(dir: &Path) -> (Node, String, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let cert = dir.join("gateway.pem");
    let key = dir.join("gateway.key");
    std::fs::write(&cert, made.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
    let node = demo_node(
        "client-tls-test",
        Some(TlsConfig {
            cert: cert.clone(),
            key,
        }),
    )
    .await;
    let port = node.gateway_addr().map_or(0, |a| a.port());
    (node, format!("wss://localhost:{port}/ws"), cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_from_a_wss_gateway_trusted_through_the_ca_file_and_refuses_it_otherwise() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (node, url, cert) = tls_gateway(dir.path()).await;

    let mut opts = options(vec![url.clone()]);
    opts.trust = TrustRoots::File(cert);
    let Collected { cursors, all, .. } = collect(opts.clone(), 20).await;
    assert!(cursors.len() >= 20, "{all:?}");
    assert!(all
        .iter()
        .any(|e| matches!(e, ClientEvent::Connected { server } if *server == url)));

    // Trusting only an unrelated certificate: the handshake is refused.
    let stranger = dir.path().join("stranger.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&stranger, other.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    opts.trust = TrustRoots::File(stranger);
    opts.fail_fast = true;
    let Collected { cursors, all, .. } = collect(opts.clone(), 1).await;
    assert!(cursors.is_empty());
    match all.last() {
        Some(ClientEvent::Failed { reason }) => {
            assert!(reason.contains("TLS handshake"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // A CA file that cannot be read fails at once, before any connect.
    opts.trust = TrustRoots::File(dir.path().join("missing.pem"));
    opts.fail_fast = false;
    let Collected { all, .. } = collect(opts, 1).await;
    match all.as_slice() {
        [ClientEvent::Failed { reason }] => assert!(reason.contains("missing.pem"), "{reason}"),
        other => panic!("expected one failure, got {other:?}"),
    }
    node.shutdown();
    node.wait().await;
}

#[tokio::test]
async fn a_watchlist_switch_in_the_app_resubscribes_and_its_backfill_fills_the_tape() {
    use crate::app::{App, Effect};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    let gw = FakeGateway::start(Script {
        events: sample_events(),
        ..Script::default()
    })
    .await;
    let mut app = App::new(crate::app::testing::config(), 0);
    let mut opts = options(vec![gw.url.clone()]);
    opts.filter = app.subscribed_filter().to_string();
    opts.backfill = Some(5);
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(run(opts, cmd_rx, tx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Takes client events into the app until it has seen `lives` live statuses.
    let mut lives = 0;
    let mut pump = |app: &mut App, ev: ClientEvent| {
        if matches!(&ev, ClientEvent::Server(m) if matches!(**m, ServerMessage::Status { live: true, .. }))
        {
            lives += 1;
        }
        app.on_client(ev, 0);
        lives
    };
    while let Some(ev) = tokio::time::timeout_at(deadline, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out"))
    {
        if pump(&mut app, ev) == 1 {
            break;
        }
    }
    let syms = |app: &App| -> Vec<String> {
        (0..app.displayed_len())
            .filter_map(|i| app.row(i).map(|(_, e)| e.event.sym.clone()))
            .collect()
    };
    assert_eq!(syms(&app), ["META", "AAPL", "AMD", "QQQ", "TSLA"]);
    // Tab: the "mega" list (AAPL, NVDA). At once, what the buffer holds.
    let effects = app.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    assert_eq!(syms(&app), ["AAPL"]);
    for effect in effects {
        if let Effect::Subscribe(filter) = effect {
            cmd_tx
                .send(ClientCommand::Resubscribe(filter))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    while let Some(ev) = tokio::time::timeout_at(deadline, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out"))
    {
        if pump(&mut app, ev) == 2 {
            break;
        }
    }
    assert_eq!(
        subscribes(&gw).last(),
        Some(&subscribe("AAPL NVDA", Some(5), None)),
        "the whole scope, with a backfill"
    );
    assert_eq!(
        syms(&app),
        ["AAPL", "NVDA", "AAPL"],
        "filled from the backfill"
    );
}

/// Client events until `until` holds for one, or 20 s; all of them.
async fn events_until(
    rx: &mut mpsc::Receiver<ClientEvent>,
    until: impl Fn(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut all = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { panic!("the client stopped: {all:?}") };
                let done = until(&ev);
                all.push(ev);
                if done {
                    return all;
                }
            }
            _ = &mut deadline => panic!("timed out: {all:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_totals_are_asked_for_on_connect_and_after_a_resubscribe() {
    // The demo's setup: a memory bus, the sim, a processor and a gateway.
    let node = demo_node("client-day-test", None).await;
    let port = node.gateway_addr().map_or(0, |a| a.port());
    let mut opts = options(vec![format!("ws://127.0.0.1:{port}/ws")]);
    // Only on connect and after a resubscribe within the test.
    opts.day_every = Some(Duration::from_secs(3600));
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(256);
    let client = tokio::spawn(run(opts, cmd_rx, tx));
    let is_day = |e: &ClientEvent| matches!(e, ClientEvent::Server(m) if matches!(**m, ServerMessage::Day(_)));
    events_until(&mut rx, is_day).await;
    // Wait for prints to be committed, then ask again by resubscribing.
    events_until(&mut rx, |e| matches!(e, ClientEvent::Events(_))).await;
    cmd_tx
        .send(ClientCommand::Resubscribe("calls".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let all = events_until(&mut rx, is_day).await;
    let Some(ClientEvent::Server(m)) = all.last() else {
        panic!("no day answer")
    };
    let ServerMessage::Day(report) = &**m else {
        panic!("not a day answer: {m:?}")
    };
    assert!(report.tickers.len() <= DAY_TOP as usize);
    assert!(report.as_of > 0);
    client.abort();
    node.shutdown();
    node.wait().await;
}

#[tokio::test]
async fn an_older_gateway_refusing_day_is_not_asked_again_and_its_refusal_is_not_shown() {
    let gw = FakeGateway::start(Script {
        events: numbered(5),
        ..Script::default()
    })
    .await;
    let mut opts = options(vec![gw.url.clone()]);
    opts.day_every = Some(Duration::from_millis(20));
    let (_cmd_tx, cmd_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(run(opts, cmd_rx, tx));
    // The gateway answers each message in order, so a ping sent after the
    // day request is answered after the refusal: wait for events and pongs
    // well past it.
    let mut all = events_until(&mut rx, |e| matches!(e, ClientEvent::Events(_))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(ev) = rx.try_recv() {
        all.push(ev);
    }
    assert!(
        !all.iter().any(
            |e| matches!(e, ClientEvent::Server(m) if matches!(**m, ServerMessage::Error { .. }))
        ),
        "{all:?}"
    );
    let asked = || {
        gw.messages()
            .into_iter()
            .filter(|m| matches!(m, ClientMessage::Day { .. }))
            .count()
    };
    let before = asked();
    assert!(before >= 1, "asked on connect");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(asked(), before, "not asked again after unknown_op");
}
