//! Replay pacing against a real gateway: events with known event times,
//! spread over 30 s of market time, committed to a bus and read back by
//! the TUI's client and app (`--replay` at 10×) the way the run loop does:
//! pages asked for ahead, each event played when the replay clock reaches
//! its time. The ratio of market time played to wall time taken, measured
//! over the whole run (first event played to last), is within 0.8–1.25 of
//! the speed: a loaded machine delays a wake-up, never the clock, so only
//! the last event's delay counts, over 3 s of wall time.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flowtape::app::replay::ReplayStart;
use flowtape::app::scope::View;
use flowtape::app::{App, AppConfig, Effect};
use flowtape::client::{self, Backoff, ClientCommand, ClientOptions};
use flowtape::keymap::Keymap;
use flowtape_bench::synthetic;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tags};
use flowtape_core::filter::{Filter, Presets};
use flowtape_core::occ::Right;
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::wsclient::TrustRoots;
use tokio::sync::mpsc;

mod support;
use support::gateway_node;

const OWNER: &str = "replay-test-writer";
/// Events, one every [`STEP_MS`] of market time: 30 s in all, two pages.
const EVENTS: i64 = 301;
const STEP_MS: i64 = 100;
const SPEED: u32 = 10;
/// The ratio of the measured speed to [`SPEED`] allowed.
const TOLERANCE: (f64, f64) = (0.8, 1.25);

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn now_ms() -> i64 {
    flowtape::run::now_ms()
}

/// A plain call print at `ts`.
fn event(k: i64, ts: i64) -> FlowEvent {
    FlowEvent {
        id: String::new(),
        ts,
        sym: "AAPL".into(),
        occ: "AAPL261218C00190000".into(),
        expiry: "2026-12-18".into(),
        strike: 190.0,
        right: Right::Call,
        side: Side::Ask,
        size: 100 + k as u64,
        price: 2.15,
        premium: 21_500.0,
        kind: Kind::Single,
        legs: 1,
        exchanges: vec![4],
        spot: Some(185.2),
        otm: Some(2.59),
        dte: 11,
        oi: Some(800),
        vol: 2400,
        iv: Some(0.31),
        bid: Some(2.1),
        ask: Some(2.15),
        tags: Tags::EMPTY,
        sentiment: Sentiment::Bull,
        score: 10,
    }
}

/// Commits the events at `base`, `base + STEP_MS`, … as a processor would.
async fn commit(bus: &Bus, base: i64) {
    assert!(ok(bus
        .acquire_lease(0, OWNER, Duration::from_secs(600))
        .await));
    let events: Vec<(u64, String)> = (0..EVENTS)
        .map(|k| (k as u64 + 1, event(k, base + k * STEP_MS).to_stored_json()))
        .collect();
    let ids = ok(synthetic::commit(bus, OWNER, &events).await);
    assert!(ids.iter().all(Option::is_some));
}

fn app_config() -> AppConfig {
    AppConfig {
        buffer_size: 1_000,
        view: View::All,
        filter_text: String::new(),
        filter: Filter::default(),
        filter_presets: Presets::builtin().clone(),
        keymap: Keymap::default(),
        watchlists: Vec::new(),
        presets: Vec::new(),
        alerts: Vec::new(),
        side_panel: false,
        server: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_at_10x_plays_market_time_ten_times_as_fast_as_wall_time() {
    let bus = Bus::memory(BusConfig::default());
    // Ten minutes ago, within today's stream.
    let base = now_ms() - 600_000;
    commit(&bus, base).await;
    let (gateway, url) = gateway_node(&bus).await;

    let mut app = App::new(app_config(), now_ms());
    app.start_replay(ReplayStart {
        at_ms: base - 500,
        speed: SPEED,
    });
    let options = ClientOptions {
        servers: vec![url],
        token: None,
        filter: app.subscribed_filter().to_string(),
        backfill: Some(10),
        since: None,
        backoff: Backoff::default(),
        max_failures: Some(3),
        fail_fast: true,
        keep_raw: false,
        trust: TrustRoots::System,
        day_every: None,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (ev_tx, mut ev_rx) = mpsc::channel(4_096);
    let client = tokio::spawn(client::run(options, cmd_rx, ev_tx));

    // The run loop's part: client messages in, page requests out, ticks
    // when the next event is due; each event's wall time when first shown.
    let mut seen: HashSet<Cursor> = HashSet::new();
    let mut played: Vec<(i64, Instant)> = Vec::new();
    let mut pages = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while played.len() < EVENTS as usize {
        assert!(
            Instant::now() < deadline,
            "played {} of {EVENTS}",
            played.len()
        );
        let wake = app.replay_wake_in_ms().unwrap_or(50).clamp(1, 50);
        let mut effects = Vec::new();
        tokio::select! {
            msg = ev_rx.recv() => match msg {
                Some(m) => effects.extend(app.on_client(m, now_ms())),
                None => panic!("the client stopped"),
            },
            _ = tokio::time::sleep(Duration::from_millis(wake as u64)) => {}
        }
        app.tick(now_ms());
        effects.extend(app.replay_request());
        for effect in effects {
            if let Effect::History(r) = effect {
                pages += 1;
                ok(cmd_tx.send(ClientCommand::History(r)).await);
            }
        }
        let shown = Instant::now();
        for i in 0..app.displayed_len() {
            if let Some((cursor, entry)) = app.row(i) {
                if seen.insert(cursor) {
                    played.push((entry.event.ts, shown));
                }
            }
        }
    }
    client.abort();
    gateway.shutdown();
    gateway.wait().await;

    played.sort_by_key(|(ts, _)| *ts);
    let ts: Vec<i64> = played.iter().map(|(ts, _)| *ts).collect();
    let want: Vec<i64> = (0..EVENTS).map(|k| base + k * STEP_MS).collect();
    assert_eq!(ts, want, "every event, once");
    assert!(pages >= 2, "read in pages ({pages})");
    let (first, last) = (played[0], played[played.len() - 1]);
    let market_ms = (last.0 - first.0) as f64;
    let wall_ms = last.1.duration_since(first.1).as_secs_f64() * 1000.0;
    let ratio = market_ms / wall_ms / f64::from(SPEED);
    println!(
        "replay at {SPEED}×: {market_ms:.0} ms of market time in {wall_ms:.0} ms of wall time \
         ({:.2}×, ratio {ratio:.3} of the speed)",
        market_ms / wall_ms
    );
    assert!(
        (TOLERANCE.0..=TOLERANCE.1).contains(&ratio),
        "measured {:.2}× at {SPEED}× (ratio {ratio:.3})",
        market_ms / wall_ms
    );
}

#[test]
fn bad_replay_or_speed_arguments_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowtape"))
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path())
            .env_remove("FLOWTAPE_SERVER")
            .args(["--server", "ws://127.0.0.1:9/ws"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for (args, says) in [
        (&["--replay", "yesterday"][..], "is not a time"),
        (&["--replay", "2099-01-02"][..], "in the future"),
        (
            &["--replay", "2026-11-20", "--speed", "0"][..],
            "0 is not in 1..=120",
        ),
        (
            &["--replay", "2026-11-20", "--speed", "5000"][..],
            "5000 is not in 1..=120",
        ),
        (
            &["--replay", "2026-11-20", "--speed", "fast"][..],
            "invalid value",
        ),
        (&["--speed", "10"][..], "--replay"),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
