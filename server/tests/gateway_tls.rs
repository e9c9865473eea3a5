//! The gateway over `wss://`, end to end.
//!
//! Each test makes a self-signed certificate for `localhost` and `127.0.0.1`,
//! starts a whole node (memory bus, simulated market, processor, gateway with
//! that certificate) and talks to it through the shared
//! [`flowtape_server::wsclient`] connector, the one the TUI and the Massive
//! feed use: a client trusting the certificate streams events; a client
//! trusting some other certificate, and a plain `ws://` client, are refused
//! without disturbing the gateway; `/healthz` answers over HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::{ClientMessage, ServerMessage};
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::feed::SimConfig;
use flowtape_server::gateway::{GatewayConfig, TlsConfig};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;
use flowtape_server::wsclient::{ConnectError, Connector, Socket, TlsClient, TrustRoots};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::Message;

/// A bound on every wait, so a broken gateway fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM files.
struct SelfSigned {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

fn self_signed(dir: &tempfile::TempDir, name: &str) -> SelfSigned {
    let made = ok(rcgen::generate_simple_self_signed(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ]));
    let cert = dir.path().join(format!("{name}.pem"));
    let key = dir.path().join(format!("{name}.key"));
    ok(std::fs::write(&cert, made.cert.pem()));
    ok(std::fs::write(&key, made.key_pair.serialize_pem()));
    SelfSigned {
        cert,
        key,
        der: made.cert.der().to_vec(),
    }
}

/// A node serving `wss://` with `cert`, fed by the simulated market.
async fn tls_node(cert: &SelfSigned) -> (Node, SocketAddr) {
    let bus = Bus::memory(BusConfig {
        shards: 2,
        ..BusConfig::default()
    });
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let node = ok(Node::start(
        bus,
        NodeConfig {
            feed: Some(FeedChoice::Sim(SimConfig {
                rate: 1000.0,
                start_ns: now_ns,
                ..SimConfig::default()
            })),
            process: Some(ProcessorConfig::new("gateway-tls-test".into())),
            gateway: Some(GatewayConfig {
                listen: ok("127.0.0.1:0".parse()),
                tls: Some(TlsConfig {
                    cert: cert.cert.clone(),
                    key: cert.key.clone(),
                }),
                handshake_timeout: Duration::from_secs(2),
                ..GatewayConfig::default()
            }),
        },
    )
    .await);
    let addr = node.gateway_addr().unwrap_or_else(|| panic!("no gateway"));
    (node, addr)
}

async fn stop(node: Node) {
    node.shutdown();
    node.wait().await;
}

fn connector(url: &str, ca: &std::path::Path) -> Connector {
    let mut tls = TlsClient::new(TrustRoots::File(ca.to_path_buf()));
    ok(Connector::new(url, &mut tls))
}

async fn connect(connector: &Connector) -> Result<Socket, ConnectError> {
    tokio::time::timeout(PATIENCE, connector.connect(&HeaderMap::new()))
        .await
        .unwrap_or_else(|_| panic!("no answer from {} within {PATIENCE:?}", connector.url()))
}

/// Subscribes with a backfill and returns the cursors of the events received
/// until there are at least `want`, checking they only go forward.
async fn stream_events(ws: &mut Socket, want: usize) -> Vec<Cursor> {
    let subscribe = ClientMessage::Subscribe {
        filter: String::new(),
        backfill: Some(50),
        since: None,
    };
    ok(ws
        .send(Message::text(ok(serde_json::to_string(&subscribe))))
        .await);
    let deadline = Instant::now() + PATIENCE;
    let mut got: Vec<Cursor> = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("the socket failed after {} events: {e}", got.len()),
            Ok(None) => panic!("the gateway closed after {} events", got.len()),
            Err(_) => panic!("only {} of {want} events over wss://", got.len()),
        };
        let cursors = match ok(serde_json::from_str::<ServerMessage>(frame.as_str())) {
            ServerMessage::Event { cursor, .. } => vec![cursor],
            ServerMessage::Events { events } => events.iter().map(|e| e.cursor).collect(),
            ServerMessage::Error { code, message, .. } => {
                panic!("server error {code:?}: {message}")
            }
            _ => Vec::new(),
        };
        for c in cursors {
            if let Some(last) = got.last() {
                assert!(c > *last, "cursor {c} after {last}");
            }
            got.push(c);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_gateway_certificate_streams_events_over_wss() {
    let dir = ok(tempfile::tempdir());
    let cert = self_signed(&dir, "gateway");
    let (node, addr) = tls_node(&cert).await;
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/ws", addr.port());
        let mut ws = ok(connect(&connector(&url, &cert.cert)).await);
        let got = stream_events(&mut ws, 30).await;
        assert!(got.len() >= 30, "{url}: {} events", got.len());
        let _ = ws.close(None).await;
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_and_plain_clients_are_refused_and_the_gateway_keeps_serving() {
    let dir = ok(tempfile::tempdir());
    let cert = self_signed(&dir, "gateway");
    let stranger = self_signed(&dir, "stranger");
    let (node, addr) = tls_node(&cert).await;
    let wss = format!("wss://localhost:{}/ws", addr.port());

    // A certificate nobody vouched for: the client refuses it at the TLS handshake.
    match connect(&connector(&wss, &stranger.cert)).await {
        Err(ConnectError::Tls { source, .. }) => {
            assert!(
                source.to_string().to_lowercase().contains("certificate"),
                "{source}"
            )
        }
        other => panic!("expected a TLS error, got {:?}", other.map(|_| ())),
    }
    // Plain WebSocket to the TLS port: the gateway drops it, the client says so.
    let plain = format!("ws://127.0.0.1:{}/ws", addr.port());
    match connect(&connector(&plain, &cert.cert)).await {
        Err(ConnectError::Handshake(_)) => {}
        other => panic!("expected a failed handshake, got {:?}", other.map(|_| ())),
    }
    // The gateway still serves a trusting client.
    let mut ws = ok(connect(&connector(&wss, &cert.cert)).await);
    assert!(stream_events(&mut ws, 5).await.len() >= 5);
    let _ = ws.close(None).await;
    stop(node).await;
}

/// `GET path` over TLS, trusting `der`; the status and body.
async fn https_get(addr: SocketAddr, der: &[u8], path: &str) -> (u16, String) {
    let mut roots = RootCertStore::empty();
    ok(roots.add(der.to_vec().into()));
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let tls = TlsConnector::from(Arc::new(ok(config)));
    let tcp = ok(TcpStream::connect(addr).await);
    let name = ok(ServerName::try_from("localhost"));
    let mut stream = ok(tls.connect(name, tcp).await);
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    ok(stream.write_all(request.as_bytes()).await);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the gateway closes; a missing close_notify is not this test's concern.
    while let Ok(Ok(n)) = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_over_https() {
    let dir = ok(tempfile::tempdir());
    let cert = self_signed(&dir, "gateway");
    let (node, addr) = tls_node(&cert).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = https_get(addr, &cert.der, "/healthz").await;
        if status == 200 {
            let health: serde_json::Value = ok(serde_json::from_str(&body));
            assert_eq!(health["status"], "ok", "{health}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "/healthz never became healthy: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = https_get(addr, &cert.der, "/nope").await;
    assert_eq!(status, 404);
    stop(node).await;
}
