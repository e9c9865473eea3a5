//! The server's config file, end to end: a threshold in the file changes what
//! the processor emits; `config check` and `config show` from the binary;
//! JSON logs; a bad file starts nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowtape_core::event::{FlowEvent, Kind};
use flowtape_server::bus::{Bus, Live};
use flowtape_server::config::{Resolved, Roles, ServerConfig};
use flowtape_server::feed::Pace;
use flowtape_server::node::{FeedChoice, Node};

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample-prints.ndjson")
}

fn server_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowtape-server"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// The sample replayed through a processor configured by `config_text`:
/// the events it emits, counted by kind.
async fn kinds_with(config_text: &str) -> BTreeMap<&'static str, usize> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = write(dir.path(), "server.toml", config_text);
    let resolved =
        Resolved::load(Some(&path), ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let roles = Roles {
        process: true,
        ..Roles::default()
    };
    let mut config = resolved
        .node_config(roles)
        .unwrap_or_else(|e| panic!("{e}"));
    config.feed = Some(FeedChoice::Replay {
        path: sample_path(),
        pace: Pace::AsFastAsPossible,
    });
    let bus = Bus::memory(resolved.bus_config().unwrap_or_else(|e| panic!("{e}")));
    let mut live = bus.subscribe_live().await.unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(bus, config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut kinds = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The sample is 10,000 prints; events stop once all are processed.
    loop {
        assert!(Instant::now() < deadline, "the sample did not finish");
        match tokio::time::timeout(Duration::from_secs(3), live.recv()).await {
            Ok(Some(Live::Entry(e))) => {
                let event: FlowEvent =
                    serde_json::from_str(&e.json).unwrap_or_else(|err| panic!("{err}"));
                *kinds.entry(event.kind.name()).or_default() += 1;
            }
            Ok(Some(Live::Gap)) => panic!("the live feed reported a gap"),
            Ok(None) => panic!("the live feed ended"),
            Err(_)
                if node
                    .stats
                    .process
                    .prints
                    .load(std::sync::atomic::Ordering::Relaxed)
                    >= 10_000 =>
            {
                break
            }
            Err(_) => {}
        }
    }
    node.shutdown();
    node.wait().await;
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_in_the_file_changes_what_the_processor_emits() {
    let default = kinds_with("").await;
    let lowered =
        kinds_with("[detection]\nblock_min_size = 20\nblock_min_premium = 20000.0\n").await;
    let blocks = |k: &BTreeMap<&str, usize>| k.get(Kind::Block.name()).copied().unwrap_or(0);
    assert!(
        blocks(&lowered) > blocks(&default) + 10,
        "lowering the block thresholds must make more blocks: {default:?} vs {lowered:?}"
    );
    // Every print still becomes exactly one event's worth of legs: only the
    // judgement changed, not what was processed.
    let singles = |k: &BTreeMap<&str, usize>| k.get(Kind::Single.name()).copied().unwrap_or(0);
    assert_eq!(
        blocks(&lowered) + singles(&lowered),
        blocks(&default) + singles(&default),
        "lone prints are blocks or singles either way"
    );
}

#[test]
fn config_check_accepts_the_example_and_names_the_line_of_a_mistake() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/server.example.toml");
    let out = server_bin()
        .args(["config", "check"])
        .arg(&example)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));

    // Each mistake: exit status 1, and one line naming the file, line and key.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        (
            "[bus]\nshards = 4\n[gateway]\nmax_conections = 5\n",
            "bad.toml:4:1: `gateway.max_conections`: unknown key; did you mean `max_connections`?",
        ),
        (
            "[detection]\nrepeat_min_hits = 1\n",
            "bad.toml:2: detection.repeat_min_hits: repeat_min_hits is 1",
        ),
        (
            "[gateway]\nmax_queued_bytes = \"lots\"\n",
            "bad.toml:2:20: `gateway.max_queued_bytes`",
        ),
    ];
    for (text, expected) in cases {
        let bad = write(dir.path(), "bad.toml", text);
        let out = server_bin()
            .args(["config", "check"])
            .arg(&bad)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn config_show_lays_flags_over_env_over_the_file_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write(
        dir.path(),
        "server.toml",
        "[bus]\nshards = 4\nnamespace = \"file\"\nredis = \"redis://app:filepass@10.1.1.1:6379\"\n\
         [feed]\nsim_rate = 50.0\n",
    );
    let out = server_bin()
        .arg("--config")
        .arg(&file)
        .args(["config", "show", "--shards", "12"])
        .env("FLOWTAPE_REDIS", "redis://app:envpass@10.2.2.2:6379")
        .env("MASSIVE_API_KEY", "sk-very-secret")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("shards = 12"), "the flag wins: {shown}");
    assert!(
        shown.contains("namespace = \"file\""),
        "the file beats the default: {shown}"
    );
    assert!(shown.contains("sim_rate = 50.0"), "{shown}");
    assert!(
        shown.contains("10.2.2.2"),
        "the environment beats the file: {shown}"
    );
    assert!(
        shown.contains("sweep_window_ms = 20"),
        "defaults are shown: {shown}"
    );
    for secret in ["envpass", "filepass", "sk-very-secret"] {
        assert!(!shown.contains(secret), "{secret} printed: {shown}");
    }
    assert!(shown.contains("massive_key = \"<redacted>\""), "{shown}");
}

#[test]
fn a_bad_file_starts_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The gateway part is fine; the processor's threshold is not.
    let file = write(
        dir.path(),
        "server.toml",
        "[gateway]\nlisten = \"127.0.0.1:0\"\n[detection]\nside_near_fraction = 0.7\n",
    );
    let out = server_bin()
        .arg("--config")
        .arg(&file)
        .args(["run", "--memory"])
        .env("FLOWTAPE_LOG", "info")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line and no role started: {stderr}");
    assert!(
        lines[0].contains("server.toml:4: detection.side_near_fraction"),
        "{stderr}"
    );
}

#[test]
fn json_logs_carry_the_text_fields_and_no_secret() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write(
        dir.path(),
        "server.toml",
        "[log]\nformat = \"json\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n",
    );
    let child = server_bin()
        .arg("--config")
        .arg(&file)
        .args([
            "run",
            "--memory",
            "--sim-rate",
            "200",
            "--massive-key",
            "sk-must-not-appear",
        ])
        .env("FLOWTAPE_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "SIGTERM drains and exits 0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("sk-must-not-appear"));
    let mut messages = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v.get(field).is_some(), "no {field}: {line}");
        }
        let message = v["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        messages.push(message);
    }
    assert!(messages.iter().any(|m| m.contains("listening")), "{stderr}");
    assert!(messages.iter().any(|m| m == "stopped"), "{stderr}");
}
