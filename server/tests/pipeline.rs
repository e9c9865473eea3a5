//! End to end: feed → ingest → bus → process → flow stream, on both buses.
//!
//! The central property: every raw print is reflected in the flow stream
//! exactly once — per contract, the legs and contracts of all flow events add
//! up to the prints that went in (cancelled trades excepted), with nothing
//! lost and nothing counted twice, including across a processor killed with
//! SIGKILL mid-run.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowtape_core::conditions::ConditionTable;
use flowtape_core::event::{FlowEvent, Print};
use flowtape_server::bus::{Bus, BusConfig, Live, RawEntry};
use flowtape_server::feed::{Pace, PrintSource, ReplayReader};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;
use support::RedisServer;

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/sample-prints.ndjson")
}

/// Per contract: (prints, contracts).
type Totals = BTreeMap<String, (u64, u64)>;

fn add_print(totals: &mut Totals, p: &Print, conditions: &ConditionTable) {
    let flags = conditions.flags(&p.conditions);
    if flags.canceled || p.size == 0 || p.price.is_nan() || p.price <= 0.0 {
        return;
    }
    let t = totals.entry(p.contract.osi()).or_default();
    t.0 += 1;
    t.1 += u64::from(p.size);
}

fn expected_from_sample() -> Totals {
    let mut reader = ReplayReader::open(sample_path()).unwrap_or_else(|e| panic!("{e}"));
    let conditions = ConditionTable::default();
    let mut totals = Totals::new();
    while let Some(p) = reader.next_print() {
        if let Ok(p) = p {
            add_print(&mut totals, &p, &conditions);
        }
    }
    totals
}

fn add_event(totals: &mut Totals, json: &str) {
    let e: FlowEvent =
        serde_json::from_str(json).unwrap_or_else(|err| panic!("bad event JSON {json}: {err}"));
    let t = totals.entry(e.occ).or_default();
    t.0 += u64::from(e.legs);
    t.1 += e.size;
}

fn processor(owner: &str) -> ProcessorConfig {
    let mut c = ProcessorConfig::new(owner.into());
    c.lease_ttl = Duration::from_secs(2);
    c
}

/// Replays the sample through a whole node on `bus`, collecting events from
/// the live fan-out, and checks the exactly-once totals.
async fn replay_sample_through(bus: Bus) -> Totals {
    let expected = expected_from_sample();
    let mut live = bus.subscribe_live().await.unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Replay {
                path: sample_path(),
                pace: Pace::AsFastAsPossible,
            }),
            process: Some(processor("test-proc")),
            gateway: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut got = Totals::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got != expected {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {} contracts match",
            matching(&got, &expected),
            expected.len()
        );
        match tokio::time::timeout(Duration::from_secs(5), live.recv()).await {
            Ok(Some(Live::Entry(e))) => add_event(&mut got, &e.json),
            Ok(Some(Live::Gap)) => panic!("the live feed reported a gap"),
            Ok(None) => panic!("the live feed ended"),
            Err(_) => {}
        }
    }
    // Nothing more arrives: no duplicates trail behind.
    if let Ok(Some(Live::Entry(e))) =
        tokio::time::timeout(Duration::from_millis(500), live.recv()).await
    {
        panic!(
            "an extra event arrived after every print was reflected: {}",
            e.json
        );
    }
    node.shutdown();
    node.wait().await;
    assert_eq!(got, expected);
    got
}

fn matching(got: &Totals, expected: &Totals) -> usize {
    expected
        .iter()
        .filter(|(k, v)| got.get(*k) == Some(v))
        .count()
}

fn small_flow_bound() -> BusConfig {
    BusConfig {
        shards: 4,
        flow_max_len: 300,
        ..BusConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus_reflects_every_print_exactly_once() {
    let bus = Bus::memory(small_flow_bound());
    replay_sample_through(bus.clone()).await;
    let bounds = bus.flow_bounds().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bounds.len <= 300,
        "flow stream holds {} events, bound 300",
        bounds.len
    );
    if let Bus::Memory(m) = &bus {
        for shard in 0..4 {
            assert_eq!(
                m.pending_count(shard),
                0,
                "shard {shard} still has pending entries"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bus_reflects_every_print_exactly_once_with_bounds_groups_and_ttls() {
    let server = RedisServer::start();
    let config = small_flow_bound();
    let bus = Bus::redis(&server.url(), config.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    replay_sample_through(bus).await;

    let mut c = server.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ft:*")
        .query(&mut c)
        .unwrap_or_default();
    // The consumer group exists on every shard, with nothing left pending.
    for shard in 0..config.shards {
        let stream = format!("ft:{{ft:raw:{shard}}}:prints");
        let groups: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .query(&mut c)
            .unwrap_or_default();
        assert_eq!(groups.len(), 1, "{stream} should have the `process` group");
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("process")
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending.0, 0, "{stream} has pending entries");
    }
    // The flow stream holds its bound after many times as many events.
    let len: u64 = redis::cmd("XLEN")
        .arg("ft:{ft:flow}:events")
        .query(&mut c)
        .unwrap_or_default();
    assert!(
        len > 0 && len <= 300 + 100,
        "flow stream length {len} exceeds MAXLEN ~300"
    );
    // Every per-day key has a TTL.
    let day_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains(":vol:") || k.contains(":prem:"))
        .collect();
    assert!(!day_keys.is_empty(), "no per-day keys in {keys:?}");
    for k in day_keys {
        let ttl: i64 = redis::cmd("TTL").arg(k).query(&mut c).unwrap_or(-2);
        assert!(ttl > 0 && ttl <= 48 * 3600, "{k} has TTL {ttl}");
    }
    // Nothing else lingers without a bound: leases are released, the guard is pruned.
    let leases: Vec<&String> = keys.iter().filter(|k| k.contains(":lease:")).collect();
    assert!(
        leases.is_empty(),
        "leases not released at shutdown: {leases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_streams_are_bounded() {
    let server = RedisServer::start();
    let config = BusConfig {
        shards: 2,
        raw_max_len: 500,
        ..BusConfig::default()
    };
    let bus = Bus::redis(&server.url(), config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(
        bus,
        NodeConfig {
            feed: Some(FeedChoice::Replay {
                path: sample_path(),
                pace: Pace::AsFastAsPossible,
            }),
            process: None,
            gateway: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    node.wait().await; // the replay ends, so ingest ends
    let mut c = server.conn();
    let mut total = 0;
    for shard in 0..2 {
        let len: u64 = redis::cmd("XLEN")
            .arg(format!("ft:{{ft:raw:{shard}}}:prints"))
            .query(&mut c)
            .unwrap_or(0);
        assert!(
            len <= 500 + 100,
            "raw shard {shard} holds {len}, bound ~500"
        );
        total += len;
    }
    assert!(
        total >= 800,
        "both shards should be near their bound, hold {total}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn server_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowtape-server"))
}

struct Proc(Child);

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let child = server_bin()
            .args(args)
            .env(
                "FLOWTAPE_LOG",
                std::env::var("FLOWTAPE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn flowtape-server: {e}"));
        Proc(child)
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status();
    }

    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every raw print in the shards' streams, as totals.
fn raw_totals(c: &mut redis::Connection, shards: u16) -> Totals {
    let conditions = ConditionTable::default();
    let mut totals = Totals::new();
    for shard in 0..shards {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(format!("ft:{{ft:raw:{shard}}}:prints"))
            .arg("-")
            .arg("+")
            .query(c)
            .unwrap_or_else(|e| panic!("{e}"));
        for (_, fields) in entries {
            let json = &fields[0].1;
            let p: Print = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
            add_print(&mut totals, &p, &conditions);
        }
    }
    totals
}

fn flow_totals(c: &mut redis::Connection) -> Totals {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("ft:{ft:flow}:events")
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap_or_default();
    let mut totals = Totals::new();
    for (_, fields) in entries {
        add_event(&mut totals, &fields[0].1);
    }
    totals
}

#[test]
fn a_processor_killed_mid_run_is_taken_over_exactly_once() {
    let server = RedisServer::start();
    let url = server.url();
    let common = ["--redis", url.as_str(), "--shards", "4"];
    let with = |role: &str, extra: &[&str]| -> Vec<String> {
        std::iter::once(role)
            .chain(common)
            .chain(extra.iter().copied())
            .map(String::from)
            .collect()
    };

    let ingest_args = with(
        "ingest",
        &["--feed", "sim", "--sim-rate", "3000", "--sim-seed", "7"],
    );
    let process_args = with("process", &["--lease-ttl", "1s"]);
    let mut ingest = Proc::spawn(&args(&ingest_args));
    let mut first = Proc::spawn(&args(&process_args));

    let mut c = server.conn();
    // Let the first processor commit some events, then kill it mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg("ft:{ft:flow}:events")
            .query(&mut c)
            .unwrap_or(0);
        if len >= 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first processor produced only {len} events"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal("KILL");
    assert!(first.wait_exit(Duration::from_secs(5)).is_some());

    // A new processor takes the shards over once the dead one's leases expire.
    let mut second = Proc::spawn(&args(&process_args));
    std::thread::sleep(Duration::from_secs(3));
    ingest.signal("TERM");
    let status = ingest
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("ingest did not stop on SIGTERM"));
    assert!(status.success(), "ingest exited with {status}");

    let expected = raw_totals(&mut c, 4);
    let prints: u64 = expected.values().map(|t| t.0).sum();
    assert!(prints > 3000, "only {prints} prints were ingested");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = flow_totals(&mut c);
    while got != expected {
        assert!(
            Instant::now() < deadline,
            "flow events do not reflect the raw prints exactly once: {} of {} contracts match; legs {} vs prints {}",
            matching(&got, &expected),
            expected.len(),
            got.values().map(|t| t.0).sum::<u64>(),
            prints
        );
        std::thread::sleep(Duration::from_millis(200));
        got = flow_totals(&mut c);
    }
    second.signal("TERM");
    let status = second
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("processor did not stop on SIGTERM"));
    assert!(status.success(), "processor exited with {status}");
    // Stable after shutdown too: nothing was written twice late.
    assert_eq!(flow_totals(&mut c), expected);
    // The day volume counted every contract once too, across the kill.
    let want: BTreeMap<String, u64> = expected.iter().map(|(k, t)| (k.clone(), t.1)).collect();
    assert_eq!(day_volume_totals(&mut c), want);
}

/// Every shard's day volume hashes, summed per contract.
fn day_volume_totals(c: &mut redis::Connection) -> BTreeMap<String, u64> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ft:{ft:flow}:vol:*")
        .query(c)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut totals = BTreeMap::new();
    for key in keys {
        let day: BTreeMap<String, u64> = redis::cmd("HGETALL")
            .arg(&key)
            .query(c)
            .unwrap_or_else(|e| panic!("{e}"));
        for (occ, n) in day {
            *totals.entry(occ).or_default() += n;
        }
    }
    totals
}

#[test]
fn an_unreachable_redis_is_one_clear_line() {
    let out = server_bin()
        .args(["process", "--redis", "redis://127.0.0.1:1"])
        .env("FLOWTAPE_LOG", "off")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr}");
    assert!(
        lines[0].contains("redis://127.0.0.1:1") && lines[0].contains("--memory"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// The exactly-once guard, deterministically: processor A commits two of
/// three prints' events and dies before acknowledging anything; processor B
/// takes the shard over and must commit only the third.
async fn takeover_after_commit_before_ack(bus: Bus) {
    let lines: Vec<String> = std::fs::read_to_string(sample_path())
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(String::from)
        .collect();
    // Three plain (non-ISO, live) prints of one underlying.
    let conditions = ConditionTable::default();
    let prints: Vec<Print> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Print>(l).ok())
        .filter(|p| {
            p.contract.underlying() == "SPY"
                && conditions.flags(&p.conditions) == Default::default()
        })
        .take(3)
        .collect();
    assert_eq!(prints.len(), 3);
    let ttl = Duration::from_secs(2);
    let entries = append_and_read_as_a(&bus, &prints, ttl).await;
    assert_eq!(entries.len(), 3);
    let json = r#"{"ts":1,"sym":"SPY","occ":"SPY261218P00500000","expiry":"2026-12-18","strike":500.0,"right":"P","side":"B","size":1,"price":1.0,"premium":100.0,"kind":"single","legs":1,"exchanges":[1],"spot":null,"otm":null,"dte":20,"oi":null,"vol":1,"iv":null,"bid":null,"ask":null,"tags":[],"sentiment":"neutral","score":1}"#;
    let legs: Vec<[flowtape_core::cursor::Cursor; 1]> = entries.iter().map(|e| [e.id]).collect();
    let day = flowtape_core::date::market_date(prints[0].ts_ms());
    let deltas: Vec<[flowtape_server::bus::DayDelta; 1]> = prints
        .iter()
        .map(|p| {
            let fields = flowtape_server::bus::DayFields::new(&p.contract);
            [flowtape_server::bus::DayDelta {
                day: flowtape_core::date::market_date(p.ts_ms()),
                occ: fields.occ,
                size: u64::from(p.size),
                bucket: fields.bucket,
                direction: None,
                premium_cents: 1,
            }]
        })
        .collect();
    let events: Vec<flowtape_server::bus::NewEvent<'_>> = legs[..2]
        .iter()
        .zip(&deltas)
        .map(|(l, d)| flowtape_server::bus::NewEvent {
            legs: l,
            json,
            deltas: d,
        })
        .collect();
    let ids = bus
        .commit_flow(0, "A", &events, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ids.iter().all(Option::is_some));
    // A dies here: nothing acknowledged. Its lease lapses.
    bus.release_lease(0, "A")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let node = Node::start(
        bus.clone(),
        NodeConfig {
            feed: None,
            process: Some(processor("B")),
            gateway: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let flow = bus
            .flow_after(flowtape_core::cursor::Cursor::ZERO, 100)
            .await
            .unwrap_or_default();
        if flow.len() >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B committed {} events",
            flow.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.shutdown();
    node.wait().await;
    let flow = bus
        .flow_after(flowtape_core::cursor::Cursor::ZERO, 100)
        .await
        .unwrap_or_default();
    assert_eq!(flow.len(), 3, "A's two events plus B's one, no duplicates");
    let third: FlowEvent = serde_json::from_str(&flow[2].json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third.occ, prints[2].contract.osi());
    assert_eq!(
        bus.guard_members(0).await.unwrap_or_default().len(),
        0,
        "the guard is pruned after the acks"
    );
    // Each print's contracts count once in the day volume: A's two with A's
    // commit, the third with B's.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for p in &prints {
        *want.entry(p.contract.osi()).or_default() += u64::from(p.size);
    }
    let got: BTreeMap<String, u64> = bus
        .day_volume(0, day)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect();
    assert_eq!(got, want);
}

/// Appends `prints` to shard 0, takes its lease as owner "A" for `ttl`, and
/// reads them back as A's consumer.
async fn append_and_read_as_a(bus: &Bus, prints: &[Print], ttl: Duration) -> Vec<RawEntry> {
    bus.append_raw(&mut bus.raw_batch(prints))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(bus.acquire_lease(0, "A", ttl).await.unwrap_or(false));
    let mut reader = bus.shard_reader(0).await.unwrap_or_else(|e| panic!("{e}"));
    reader
        .read_new("A:0", 10, Duration::from_millis(100))
        .await
        .unwrap_or_default()
}

/// A bus of one raw shard, for the commit/ack tests.
fn one_shard() -> BusConfig {
    BusConfig {
        shards: 1,
        ..BusConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus_takeover_between_commit_and_ack() {
    takeover_after_commit_before_ack(Bus::memory(one_shard())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bus_takeover_between_commit_and_ack() {
    let server = RedisServer::start();
    let bus = Bus::redis(&server.url(), one_shard())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    takeover_after_commit_before_ack(bus).await;
    let mut c = server.conn();
    let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg("ft:{ft:raw:0}:prints")
        .arg("process")
        .query(&mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pending.0, 0);
}

/// A running feed keeps its status published past the status TTL (6 s), so
/// gateways never report a healthy sim as "no feed status".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_feed_keeps_its_status_published() {
    use flowtape_core::protocol::FeedHealth;
    use flowtape_server::feed::SimConfig;
    let bus = Bus::memory(BusConfig::default());
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let node = Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Sim(SimConfig::default().starting_at(now_ns))),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status = bus.feed_status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.map(|s| s.state), Some(FeedHealth::Ok));
    node.shutdown();
    node.wait().await;
    let status = bus.feed_status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.map(|s| (s.state, s.reason)),
        Some((FeedHealth::Down, "ingest stopped".into()))
    );
}

/// The commit and acknowledgement primitives, deterministically: a commit
/// publishes every event (one live message per commit on Redis, split back
/// into entries in order) and counts its prints in the day volume; an event
/// whose first leg is in the guard is skipped, with its volume not counted
/// again, also beside new events in the same commit; and an entry is
/// acknowledged once only.
async fn commit_and_ack_count_once(bus: Bus) {
    use flowtape_core::cursor::Cursor;
    use flowtape_server::bus::{DayDelta, NewEvent};
    let sample: Vec<Print> = std::fs::read_to_string(sample_path())
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter_map(|l| serde_json::from_str::<Print>(l).ok())
        .filter(|p| p.contract.underlying() == "SPY")
        .take(5)
        .collect();
    assert_eq!(sample.len(), 5);
    let ttl = Duration::from_secs(5);
    let entries = append_and_read_as_a(&bus, &sample, ttl).await;
    let ids: Vec<Cursor> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5);

    let mut live = bus.subscribe_live().await.unwrap_or_else(|e| panic!("{e}"));
    let json = |n: u32| {
        format!(
            r#"{{"ts":{n},"sym":"SPY","occ":"SPY261218P00500000","expiry":"2026-12-18","strike":500.0,"right":"P","side":"B","size":1,"price":1.0,"premium":100.0,"kind":"single","legs":1,"exchanges":[1],"spot":null,"otm":null,"dte":20,"oi":null,"vol":1,"iv":null,"bid":null,"ask":null,"tags":[],"sentiment":"neutral","score":1}}"#
        )
    };
    let jsons: Vec<String> = (1..=4).map(json).collect();
    let day = flowtape_core::date::market_date(sample[0].ts_ms());
    let delta = |size: u64| DayDelta {
        day,
        occ: "SPY261218P00500000".into(),
        size,
        bucket: "SPY:put".into(),
        direction: Some("SPY:bull".into()),
        premium_cents: 100,
    };
    let deltas = [delta(10), delta(100), delta(20), delta(1_000), delta(7)];
    // Events 1 and 2 have one leg each; event 3 has legs 2 and 3 (a sweep);
    // event 4 has leg 4.
    let legs: [&[Cursor]; 4] = [&ids[0..1], &ids[1..2], &ids[2..4], &ids[4..5]];
    let counts: [&[DayDelta]; 4] = [&deltas[0..1], &deltas[1..2], &deltas[2..4], &deltas[4..5]];
    let events: Vec<NewEvent<'_>> = legs
        .iter()
        .zip(&jsons)
        .zip(counts)
        .map(|((legs, json), deltas)| NewEvent { legs, json, deltas })
        .collect();
    let volume = |bus: Bus| async move {
        bus.day_volume(0, day)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // The day's premium (cents) of SPY puts, SPY bull, and the one contract.
    let premium = |bus: Bus| async move {
        let t = bus.day_totals(day).await.unwrap_or_else(|e| panic!("{e}"));
        let spy = t.tickers.get("SPY").copied().unwrap_or_default();
        let contract = t.contracts.get("SPY261218P00500000").copied();
        assert_eq!((spy.call, spy.bear, t.skipped), (0, 0, 0));
        (spy.put, spy.bull, contract)
    };
    let first = bus
        .commit_flow(0, "A", &events[..3], &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.iter().all(Option::is_some), "{first:?}");
    for (k, want) in first.iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(5), live.recv()).await;
        match got {
            Ok(Some(Live::Entry(e))) => {
                assert_eq!(Some(e.id), *want);
                assert_eq!(&*e.json, jsons[k]);
            }
            other => panic!("live message {k}: {other:?}"),
        }
    }
    let spy = |n: u64| vec![("SPY261218P00500000".to_string(), n)];
    assert_eq!(volume(bus.clone()).await, spy(1_130));
    assert_eq!(premium(bus.clone()).await, (400, 400, Some(400)));
    // The same events again (a commit whose reply was lost): all skipped,
    // nothing counted twice.
    let again = bus
        .commit_flow(0, "A", &events[..3], &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, vec![None, None, None]);
    assert_eq!(volume(bus.clone()).await, spy(1_130));
    assert_eq!(premium(bus.clone()).await, (400, 400, Some(400)));
    // One committed event beside a new one: only the new one goes in.
    let mixed = bus
        .commit_flow(0, "A", &events[1..], &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mixed[..2], [None, None]);
    assert!(mixed[2].is_some_and(|id| Some(id) > first[2]), "{mixed:?}");
    match tokio::time::timeout(Duration::from_secs(5), live.recv()).await {
        Ok(Some(Live::Entry(e))) => assert_eq!((Some(e.id), &*e.json), (mixed[2], &*jsons[3])),
        other => panic!("live message of the new event: {other:?}"),
    }
    assert_eq!(volume(bus.clone()).await, spy(1_137));
    assert_eq!(premium(bus.clone()).await, (500, 500, Some(500)));
    assert_eq!(bus.guard_members(0).await.unwrap_or_default().len(), 5);
    // Another owner is fenced, and counts nothing.
    assert!(bus.commit_flow(0, "B", &events[3..], &[]).await.is_err());
    assert_eq!(volume(bus.clone()).await, spy(1_137));
    assert_eq!(premium(bus.clone()).await, (500, 500, Some(500)));

    // Entries 0 and 2 now; 1, 3 and 4 (between and after them) stay pending.
    let acked = bus
        .ack_raw(0, &[ids[0], ids[2]])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acked, 2);
    // Again, with 1: only 1 is acknowledged now.
    let acked = bus
        .ack_raw(0, &ids[0..3])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acked, 1);
    // Entries 3 and 4 are still pending: a takeover claims exactly them.
    let mut reader = bus.shard_reader(0).await.unwrap_or_else(|e| panic!("{e}"));
    let (pending, trimmed) = reader.claim_all("B:0").await.unwrap_or_default();
    assert_eq!(trimmed, 0);
    assert_eq!(
        pending.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    // Pruning the acknowledged ids leaves the ones still pending in the guard.
    bus.commit_flow(0, "A", &[], &ids[0..3])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut guard: Vec<Cursor> = bus
        .guard_members(0)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    guard.sort();
    assert_eq!(guard, ids[3..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus_commits_and_acks_count_once() {
    commit_and_ack_count_once(Bus::memory(one_shard())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bus_commits_and_acks_count_once() {
    let server = RedisServer::start();
    let bus = Bus::redis(&server.url(), one_shard())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    commit_and_ack_count_once(bus).await;
}
