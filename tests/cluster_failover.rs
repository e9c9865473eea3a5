//! Redis Cluster failover under load. The whole system (replay feed →
//! ingest → process → gateway) runs on a private 3-master + 3-replica
//! cluster in durable mode (`wait_replicas: 1`), with a `flowtape tail`
//! client, at a steady 200 prints/s; a master is SIGKILLed mid-run:
//! - (a) the master that owns the flow slot `{ft:flow}`;
//! - (b) a master that owns raw shards only.
//!
//! Each print is a plain (non-ISO) trade, so it becomes exactly one event,
//! named by its trade time and contract. The checks: every print handed to
//! ingest reaches the client exactly once; the client's cursors are exactly
//! the flow stream's, in order (it was never skipped forward); and the time
//! from the kill until fresh events of the affected part reach the client
//! is printed (a measurement, asserted only against a generous bound).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use flowtape_bench::redis_cluster::{key_slot, RedisCluster};
use flowtape_server::bus::{shard_of, Bus, BusConfig, Keys};
use flowtape_server::feed::Pace;
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;

mod support;
use support::gateway_node;

/// Underlyings of the replay: enough that every raw shard gets prints.
const TICKERS: [&str; 16] = [
    "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOG", "AMD", "SPY", "QQQ", "IWM", "NFLX",
    "COIN", "PLTR", "INTC", "BABA",
];
const SHARDS: u16 = 8;
const RATE: u64 = 200;
const SECONDS: u64 = 24;
/// The kill comes this far into the replay.
const KILL_AFTER: Duration = Duration::from_secs(8);
/// A generous bound on recovery (the VM is shared; this is not a benchmark).
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// Tests in this file each run a 6-node cluster and a whole system: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What identifies a print, and the event it becomes: trade time (ms) and contract.
type Key = (i64, String);

struct Replay {
    file: tempfile::NamedTempFile,
    keys: BTreeMap<Key, &'static str>,
    /// The first print's trade time (ms); the replay hands print `i` over
    /// `i × 1000 / RATE` ms after it starts.
    start_ms: i64,
}

/// Writes `RATE × SECONDS` plain prints, one every `1000 / RATE` ms from now.
fn replay_file() -> Replay {
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + 1000;
    let step = 1000 / RATE as i64;
    let mut keys = BTreeMap::new();
    for n in 0..RATE * SECONDS {
        let sym = TICKERS[(n as usize) % TICKERS.len()];
        let strike = 100 + (n % 50) * 5;
        let occ = format!("{sym}991218C{:05}000", strike);
        let ts_ms = start_ms + n as i64 * step;
        let line = format!(
            r#"{{"occ":"{occ}","price":1.25,"size":{},"exchange":302,"conditions":[209],"ts_ns":{},"seq":{},"bid":1.2,"ask":1.3,"spot":150.0,"oi":1000}}"#,
            1 + n % 40,
            ts_ms * 1_000_000,
            n + 1
        );
        writeln!(file, "{line}").unwrap_or_else(|e| panic!("{e}"));
        keys.insert((ts_ms, occ), sym);
    }
    file.flush().unwrap_or_else(|e| panic!("{e}"));
    Replay {
        file,
        keys,
        start_ms,
    }
}

/// One event line the client printed, and when it arrived.
struct Arrival {
    at: Instant,
    cursor: String,
    key: Key,
}

/// Runs `flowtape tail -f` against `url` from the stream's start (pages,
/// then live); its events arrive on the returned channel.
fn tail(url: &str, home: &Path) -> (Child, std_mpsc::Receiver<Arrival>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtape"))
        .args(["tail", "--server", url, "--since", "0-0", "--follow"])
        .env("FLOWTAPE_LOG", "warn")
        .env_remove("FLOWTAPE_CONFIG")
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_STATE_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run flowtape tail: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("tail printed a line that is not JSON: {e}: {line}"));
            let arrival = Arrival {
                at: Instant::now(),
                cursor: v["id"].as_str().unwrap_or_default().to_string(),
                key: (
                    v["ts"].as_i64().unwrap_or_default(),
                    v["occ"].as_str().unwrap_or_default().to_string(),
                ),
            };
            if tx.send(arrival).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Which master to kill.
#[derive(Clone, Copy, Debug)]
enum Victim {
    /// The master of `{ft:flow}`: the flow stream, leases, guards, live channel.
    FlowMaster,
    /// A master that serves raw shards and not the flow slot.
    RawOnly,
}

async fn failover_under_load(victim: Victim) {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, Duration::from_millis(1000))
        .await
        .unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}"));
    let keys = Keys::new("ft");
    let flow_master = cluster
        .master_of(&keys.flow_stream())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let owners = cluster
        .slot_owners()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let master_of_shard = |k: u16| {
        let slot = key_slot(&keys.raw_stream(k));
        owners
            .iter()
            .find(|o| (o.start..=o.end).contains(&slot))
            .map(|o| o.port)
            .unwrap_or_else(|| panic!("no master serves raw shard {k}"))
    };
    let victim_port = match victim {
        Victim::FlowMaster => flow_master,
        Victim::RawOnly => (0..SHARDS)
            .map(master_of_shard)
            .find(|&p| p != flow_master)
            .unwrap_or_else(|| panic!("every raw shard lives with the flow slot")),
    };
    // The underlyings whose prints go through the killed master.
    let affected: BTreeSet<&str> = TICKERS
        .iter()
        .copied()
        .filter(|sym| match victim {
            Victim::FlowMaster => true,
            Victim::RawOnly => master_of_shard(shard_of(sym, SHARDS)) == victim_port,
        })
        .collect();
    assert!(!affected.is_empty(), "the killed master must carry prints");

    let replay = replay_file();
    let config = BusConfig {
        shards: SHARDS,
        wait_replicas: 1,
        ..BusConfig::default()
    };
    let bus = Bus::redis(&cluster.url(), config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the cluster: {e}"));
    let (gateway, url) = gateway_node(&bus).await;
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut client, arrivals) = tail(&url, home.path());
    let fed_from = Instant::now();
    let pipeline = Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Replay {
                path: replay.file.path().to_path_buf(),
                pace: Pace::RealTime { speed: 1.0 },
            }),
            process: Some(ProcessorConfig::new(format!("failover-{victim:?}"))),
            gateway: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let started = fed_from;
    let mut got: Vec<Arrival> = Vec::new();
    let mut killed_at: Option<Instant> = None;
    let deadline = started + Duration::from_secs(SECONDS) + Duration::from_secs(60);
    while got.len() < replay.keys.len() && Instant::now() < deadline {
        if killed_at.is_none() && started.elapsed() >= KILL_AFTER {
            cluster.kill(victim_port);
            killed_at = Some(Instant::now());
        }
        match arrivals.recv_timeout(Duration::from_millis(50)) {
            Ok(a) => got.push(a),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                panic!("flowtape tail ended: {:?}", client.wait())
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    // A duplicate would come after the last expected event: wait a little for one.
    let grace = Instant::now() + Duration::from_secs(2);
    while Instant::now() < grace {
        if let Ok(a) = arrivals.recv_timeout(Duration::from_millis(50)) {
            got.push(a);
        }
    }
    let kill_instant = killed_at.unwrap_or_else(|| panic!("the run ended before the kill"));

    // Exactly once, by print identity.
    let mut seen: BTreeMap<&Key, usize> = BTreeMap::new();
    for a in &got {
        *seen.entry(&a.key).or_default() += 1;
    }
    let missing: Vec<&Key> = replay
        .keys
        .keys()
        .filter(|k| !seen.contains_key(k))
        .collect();
    let twice: Vec<(&&Key, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let strangers: Vec<&&Key> = seen
        .keys()
        .filter(|k| !replay.keys.contains_key(**k))
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty() && strangers.is_empty(),
        "{victim:?}: {} prints, {} events received; missing {} (first {:?}), duplicated {} (first {:?}), unknown {}",
        replay.keys.len(),
        got.len(),
        missing.len(),
        missing.first(),
        twice.len(),
        twice.first(),
        strangers.len()
    );

    // Never skipped forward: the client's cursors are the stream's, in order.
    let stream = stream_ids(&bus).await;
    let cursors: Vec<&str> = got.iter().map(|a| a.cursor.as_str()).collect();
    assert_eq!(
        cursors,
        stream.iter().map(String::as_str).collect::<Vec<_>>(),
        "{victim:?}: the client's cursors are not the flow stream's"
    );

    // Recovery: when events of the affected part that ingest was handed
    // after the kill reach the client, and the longest any affected event
    // took from its hand-off to the client.
    let handed =
        |a: &Arrival| fed_from + Duration::from_millis((a.key.0 - replay.start_ms).max(0) as u64);
    let affected_arrivals: Vec<&Arrival> = got
        .iter()
        .filter(|a| affected.contains(replay.keys[&a.key]))
        .collect();
    let recovered = affected_arrivals
        .iter()
        .find(|a| handed(a) >= kill_instant)
        .map(|a| a.at.saturating_duration_since(kill_instant))
        .unwrap_or_else(|| panic!("{victim:?}: nothing handed over after the kill arrived"));
    let worst = affected_arrivals
        .iter()
        .map(|a| a.at.saturating_duration_since(handed(a)))
        .max()
        .unwrap_or_default();
    println!(
        "{victim:?}: {} events exactly once; events handed over after the kill arrive {:.2} s after it; longest hand-off to client {:.2} s",
        got.len(),
        recovered.as_secs_f64(),
        worst.as_secs_f64()
    );
    assert!(
        recovered < RECOVERY_BOUND,
        "{victim:?}: recovery took {recovered:?}"
    );

    let _ = client.kill();
    let _ = client.wait();
    pipeline.shutdown();
    pipeline.wait().await;
    gateway.shutdown();
    gateway.wait().await;
}

/// Every id in the flow stream, oldest first.
async fn stream_ids(bus: &Bus) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = flowtape_core::cursor::Cursor::ZERO;
    loop {
        let page = bus
            .flow_after(after, 1000)
            .await
            .unwrap_or_else(|e| panic!("cannot read the flow stream: {e}"));
        let Some(last) = page.last() else { break };
        after = last.id;
        out.extend(page.iter().map(|e| e.id.to_string()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_flow_master_loses_and_duplicates_nothing() {
    failover_under_load(Victim::FlowMaster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_raw_shard_master_loses_and_duplicates_nothing() {
    failover_under_load(Victim::RawOnly).await;
}
