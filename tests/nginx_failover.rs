//! Gateways behind nginx, as deployed: Debian's nginx runs the shipped
//! `assets/deploy/nginx.conf` (rendered by `flowtape_bench::nginx`) in front
//! of two `flowtape-server gateway` processes on a private redis-server fed
//! by an in-process sim feed and processor. 200 clients know only nginx's
//! URL: `flowtape tail` processes and the TUI's client code
//! (`flowtape::client`). One gateway is SIGKILLed under load; every client
//! must end up on the other one and have received exactly the flow stream's
//! entries that match its filter, from its first to its last, once each, in
//! order (checked against XRANGE). The time from the kill until every client
//! has an event committed after it is measured, printed, and held to a
//! generous correctness bound (the figures are in docs/deploy.md).
//!
//! Needs nginx (`apt-get install nginx`) and `flowtape-server` next to
//! `flowtape` in the target directory, as `cargo test --workspace` builds
//! it; the test fails, never skips, without them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowtape::client::{self, Backoff, ClientEvent, ClientOptions};
use flowtape_bench::nginx::Nginx;
use flowtape_bench::redis_server::{free_port, RedisServer};
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_server::bus::{Bus, BusConfig, Keys};
use flowtape_server::feed::SimConfig;
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Clients through nginx.
const CLIENTS: usize = 200;
/// Of them, `flowtape tail` processes; the rest run `flowtape::client` here.
const TAILS: usize = 20;
/// The clients' filters, in turn: broad enough that each gets events often.
const FILTERS: [&str; 4] = ["", "calls", "puts", "-SPY"];
/// Mean simulated prints per second (the sim starts at the open, its busiest).
const SIM_RATE: f64 = 60.0;
/// Load on both gateways before the kill.
const BEFORE_KILL: Duration = Duration::from_secs(3);
/// Load on the survivor after every client is back.
const AFTER_RECOVERY: Duration = Duration::from_secs(2);
/// Correctness bounds, not benchmarks (the machine is shared and slow):
/// every client must be connected and receiving within this of its start,
const CONNECT_BOUND: Duration = Duration::from_secs(30);
/// and back within this of the kill.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// `flowtape-server`, built beside `flowtape` by `cargo test --workspace`.
fn server_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_flowtape")).with_file_name("flowtape-server");
    assert!(
        bin.is_file(),
        "{} is missing: this test runs the gateway binary that `cargo test --workspace` \
         builds (or build it first: cargo build -p flowtape-server)",
        bin.display()
    );
    bin
}

/// A `flowtape-server gateway` process, killed on drop.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Gateway {
    fn spawn(bin: &Path, redis: &str) -> Gateway {
        let port = free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(bin)
            .args(["gateway", "--redis", redis, "--log", "warn", "--listen"])
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Gateway { child, addr }
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the gateway on {} exited at start: {status}", self.addr);
            }
            if matches!(http_get(self.addr, "/healthz").await, Some((200, _))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway on {} was not healthy within 20 s", self.addr);
    }

    /// Open WebSocket connections, from its /metrics.
    async fn connections(&self) -> Option<usize> {
        let (_, body) = http_get(self.addr, "/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix("flowtape_gateway_connections "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as usize)
    }
}

/// `GET path` over HTTP/1.0: the status and the body.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: flowtape\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Some((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// What one client received.
struct Record {
    filter: &'static str,
    /// Each event's cursor and when it arrived, in arrival order.
    got: Vec<(Cursor, Instant)>,
    /// Connections lost and retried.
    reconnects: usize,
}

impl Record {
    fn new(filter: &'static str) -> Record {
        Record {
            filter,
            got: Vec::new(),
            reconnects: 0,
        }
    }

    fn push(&mut self, cursor: Cursor, newest: &AtomicU64) {
        self.got.push((cursor, Instant::now()));
        newest.fetch_max(cursor.ms, Ordering::Relaxed);
    }
}

/// A running client: how to stop it, and its record once stopped.
struct Running {
    name: String,
    /// Newest cursor's ms received so far.
    newest: Arc<AtomicU64>,
    stop: Stop,
    record: JoinHandle<Record>,
}

enum Stop {
    Process(Child),
    Task(JoinHandle<()>),
}

impl Running {
    async fn finish(self) -> (String, Record) {
        match self.stop {
            Stop::Process(mut child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Stop::Task(task) => task.abort(),
        }
        let record = self
            .record
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        (self.name, record)
    }
}

/// The TUI's client code, with nginx's URL as its one server.
fn start_client(url: &str, filter: &'static str, n: usize) -> Running {
    let options = ClientOptions {
        servers: vec![url.to_string()],
        token: None,
        filter: filter.to_string(),
        backfill: Some(20),
        since: None,
        backoff: Backoff::default(),
        max_failures: None,
        fail_fast: false,
        keep_raw: false,
        trust: Default::default(),
        day_every: None,
    };
    let (_, cmd_rx) = mpsc::channel(1);
    let (ev_tx, mut ev_rx) = mpsc::channel(1024);
    let task = tokio::spawn(client::run(options, cmd_rx, ev_tx));
    let newest = Arc::new(AtomicU64::new(0));
    let seen = newest.clone();
    let record = tokio::spawn(async move {
        let mut record = Record::new(filter);
        while let Some(ev) = ev_rx.recv().await {
            match ev {
                ClientEvent::Events(batch) => {
                    batch.iter().for_each(|r| record.push(r.cursor, &seen))
                }
                ClientEvent::Disconnected { .. } => record.reconnects += 1,
                ClientEvent::Failed { reason } => panic!("client {n} gave up: {reason}"),
                _ => {}
            }
        }
        record
    });
    Running {
        name: format!("client {n} ({filter:?})"),
        newest,
        stop: Stop::Task(task),
        record,
    }
}

/// A `flowtape tail` process against nginx's URL: cursors from the `id` of
/// each NDJSON line, reconnects from its "retrying" notices.
fn start_tail(url: &str, filter: &'static str, n: usize, home: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtape"))
        .args(["tail", "--server", url])
        .arg(format!("--filter={filter}"))
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_STATE_HOME", home)
        .env_remove("FLOWTAPE_CONFIG")
        .env_remove("FLOWTAPE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start flowtape tail: {e}"));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        panic!("flowtape tail without pipes");
    };
    let newest = Arc::new(AtomicU64::new(0));
    let seen = newest.clone();
    let record = tokio::spawn(async move {
        let mut record = Record::new(filter);
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        // Until EOF: the process is killed at the end. A last line cut short
        // by the kill has no newline and is left out.
        while out.read_line(&mut line).await.unwrap_or(0) > 0 && line.ends_with('\n') {
            let event: FlowEvent = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("tail {n}: not an event ({e}): {line}"));
            let cursor = event
                .id
                .parse()
                .unwrap_or_else(|e| panic!("tail {n}: bad id: {e:?}"));
            record.push(cursor, &seen);
            line.clear();
        }
        let mut notices = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = notices.next_line().await {
            assert!(l.ends_with("; retrying"), "tail {n}: {l}");
            record.reconnects += 1;
        }
        record
    });
    Running {
        name: format!("tail {n} ({filter:?})"),
        newest,
        stop: Stop::Process(child),
        record,
    }
}

/// Every flow stream entry, oldest first (XRANGE, page by page).
fn read_stream(redis: &str) -> Vec<(Cursor, FlowEvent)> {
    let mut conn = redis::Client::open(redis)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("redis: {e}"));
    let key = Keys::new(&BusConfig::default().namespace).flow_stream();
    let mut entries = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("XRANGE: {e}"));
        let Some(last) = page.ids.last() else { break };
        start = format!("({}", last.id);
        for entry in &page.ids {
            let cursor = entry.id.parse().unwrap_or_else(|e| panic!("id: {e:?}"));
            let json: String = entry
                .get("e")
                .unwrap_or_else(|| panic!("entry {} has no e", entry.id));
            let event = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            entries.push((cursor, event));
        }
    }
    entries
}

/// Checks one client's cursors against the stream: exactly the entries that
/// match its filter, from its first cursor to its last, once each, in order.
fn check_exact(name: &str, got: &[Cursor], stream: &[(Cursor, FlowEvent)], filter: &Filter) {
    let (Some(first), Some(last)) = (got.first(), got.last()) else {
        panic!("{name} received nothing");
    };
    let expected: Vec<Cursor> = stream
        .iter()
        .filter(|(c, e)| c >= first && c <= last && filter.matches(e))
        .map(|(c, _)| *c)
        .collect();
    if got != expected {
        let got_set: std::collections::BTreeSet<_> = got.iter().collect();
        let missing: Vec<_> = expected.iter().filter(|c| !got_set.contains(c)).collect();
        let ordered = got.windows(2).all(|w| w[0] < w[1]);
        panic!(
            "{name}: received {} events, the stream has {} matching from {first} to {last}; \
             in order without duplicates: {ordered}; missing (first 5): {:?}",
            got.len(),
            expected.len(),
            &missing[..missing.len().min(5)]
        );
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_resumes_exactly_on_the_other_gateway_when_one_is_killed() {
    let server = server_binary();
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let bus = Bus::redis(&redis.url(), BusConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let producer = Node::start(
        bus,
        NodeConfig {
            feed: Some(FeedChoice::Sim(SimConfig {
                rate: SIM_RATE,
                start_ns: now_ns,
                ..SimConfig::default()
            })),
            process: Some(ProcessorConfig::new("nginx-failover".into())),
            gateway: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let mut doomed = Gateway::spawn(&server, &redis.url());
    let mut survivor = Gateway::spawn(&server, &redis.url());
    let nginx = Nginx::start(&[doomed.addr, survivor.addr])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    doomed.wait_healthy().await;
    survivor.wait_healthy().await;
    let health = http_get(nginx.addr(), "/healthz").await;
    assert!(
        matches!(&health, Some((200, body)) if body.contains("\"status\":\"ok\"")),
        "/healthz through nginx: {health:?}"
    );
    let metrics = http_get(nginx.addr(), "/metrics").await;
    assert!(
        matches!(metrics, Some((404, _))),
        "/metrics through nginx: {metrics:?}"
    );

    // The clients: one URL, nginx's.
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = nginx.ws_url();
    let clients: Vec<Running> = (0..CLIENTS)
        .map(|n| {
            let filter = FILTERS[n % FILTERS.len()];
            if n < TAILS {
                start_tail(&url, filter, n, home.path())
            } else {
                start_client(&url, filter, n)
            }
        })
        .collect();

    // Everyone connected, spread over both gateways, and receiving.
    let deadline = Instant::now() + CONNECT_BOUND;
    let (on_doomed, on_survivor) = loop {
        let counts = (doomed.connections().await, survivor.connections().await);
        let receiving = clients.iter().all(|c| c.newest.load(Ordering::Relaxed) > 0);
        if let (Some(a), Some(b)) = counts {
            if a + b == CLIENTS && receiving {
                break (a, b);
            }
        }
        assert!(
            Instant::now() < deadline,
            "not every client connected and received events: connections {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        on_doomed >= CLIENTS / 4 && on_survivor >= CLIENTS / 4,
        "least_conn should spread the clients: {on_doomed} and {on_survivor}"
    );
    tokio::time::sleep(BEFORE_KILL).await;

    // SIGKILL one gateway under load.
    doomed
        .child
        .start_kill()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    let killed_at = Instant::now();
    let kill_ms = now_ms();
    let _ = doomed.child.wait().await;

    // Back: every client has an event committed after the kill (so from the
    // survivor), and the survivor holds every connection.
    let recovered = loop {
        let behind = clients
            .iter()
            .filter(|c| c.newest.load(Ordering::Relaxed) <= kill_ms)
            .count();
        let held = survivor.connections().await;
        if behind == 0 && held == Some(CLIENTS) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < RECOVERY_BOUND,
            "{behind} clients have nothing from after the kill and the survivor holds {held:?} \
             connections, {} s after it; nginx's error log:\n{}",
            RECOVERY_BOUND.as_secs(),
            nginx.error_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(AFTER_RECOVERY).await;

    let mut records = Vec::with_capacity(CLIENTS);
    for client in clients {
        records.push(client.finish().await);
    }
    producer.shutdown();
    producer.wait().await;

    // Exactly the stream, for every client.
    let stream = read_stream(&redis.url());
    let filters: HashMap<&str, Filter> = FILTERS
        .iter()
        .map(|f| (*f, Filter::parse(f).unwrap_or_else(|e| panic!("{f}: {e}"))))
        .collect();
    let mut back_after: Vec<Duration> = Vec::with_capacity(CLIENTS);
    for (name, record) in &records {
        let got: Vec<Cursor> = record.got.iter().map(|(c, _)| *c).collect();
        check_exact(name, &got, &stream, &filters[record.filter]);
        let first_after = record
            .got
            .iter()
            .find(|(c, _)| c.ms > kill_ms)
            .unwrap_or_else(|| panic!("{name}: nothing after the kill"));
        back_after.push(first_after.1.saturating_duration_since(killed_at));
    }
    let reconnected = records.iter().filter(|(_, r)| r.reconnects > 0).count();
    assert!(
        reconnected >= on_doomed,
        "{on_doomed} clients were on the killed gateway, {reconnected} reconnected"
    );
    // nginx failed the connects over: it tried the killed gateway (refused,
    // or reset while it died) and went on, and no client saw a failed
    // connect (each lost its connection at most once).
    let retried: Vec<&str> = records
        .iter()
        .filter(|(_, r)| r.reconnects > 1)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        retried.is_empty(),
        "connects failed through nginx: {retried:?}"
    );
    let log = nginx.error_log();
    assert!(
        log.contains(&format!("upstream: \"http://{}/ws\"", doomed.addr)),
        "nginx never tried the killed gateway:\n{log}"
    );
    back_after.sort();
    let median = back_after[back_after.len() / 2];
    let worst = back_after[back_after.len() - 1];
    let events: usize = records.iter().map(|(_, r)| r.got.len()).sum();
    println!(
        "failover behind nginx: {CLIENTS} clients ({TAILS} flowtape tail), {on_doomed} on the \
         killed gateway; every client had an event committed after the SIGKILL within {} \
         (median client {}), all {CLIENTS} on the survivor within {}; {} stream entries, \
         {events} events received, no gap, no duplicate",
        millis(worst),
        millis(median),
        millis(recovered),
        stream.len()
    );
    assert!(worst < RECOVERY_BOUND, "recovery took {}", millis(worst));
}
