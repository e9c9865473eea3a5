//! `flowtape tail --since HH:MM --until HH:MM` against a real gateway on a
//! private redis-server: a window of whole minutes of New York time prints
//! exactly the stream's events of those minutes, in order, once each.
//!
//! Waiting out real minutes would make the test minutes long, so the
//! simulated market's events are written into the flow stream with ids in
//! the last few minutes (an id is the time it was appended), then read back
//! through the gateway by the `tail` binary.

use flowtape_bench::redis_server::RedisServer;
use flowtape_core::clock::format_ny;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_server::bus::{Bus, BusConfig, FlowEntry, Keys};
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;

mod support;
use support::{gateway_node, sim_from_now};

const MINUTE_MS: u64 = 60_000;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Events of the simulated market, as the flow stream stores them: run a
/// producer into `scratch` for a moment, then read its stream.
async fn market_events(scratch: &Bus, want: usize) -> Vec<FlowEntry> {
    let producer = ok(Node::start(
        scratch.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(800.0))),
            process: Some(ProcessorConfig::new("tail-minutes".into())),
            gateway: None,
        },
    )
    .await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ok(scratch.flow_bounds().await).len < want as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the simulated market wrote too few events"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    producer.shutdown();
    producer.wait().await;
    let mut entries = ok(scratch.flow_after(Cursor::ZERO, want).await);
    entries.truncate(want);
    entries
}

/// `HH:MM` New York time of `ms`, or the date and time when that minute is
/// not today in New York (just after midnight).
fn ny_minute(ms: u64) -> String {
    let text = format_ny(ms as i64);
    let now = format_ny(now_ms() as i64);
    let (day, clock) = text.split_once(' ').unwrap_or_default();
    let hhmm = clock.get(..5).unwrap_or_default();
    if now.starts_with(day) {
        hhmm.to_string()
    } else {
        format!("{day} {hhmm}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_since_until_whole_minutes_prints_exactly_those_minutes() {
    let redis = ok(RedisServer::start().await);
    let scratch = ok(Bus::redis(
        &redis.url(),
        BusConfig {
            namespace: "scratch".into(),
            ..BusConfig::default()
        },
    )
    .await);
    let bus = ok(Bus::redis(&redis.url(), BusConfig::default()).await);
    let events = market_events(&scratch, 600).await;

    // Four minutes back from the current one: 150 events in each of the
    // minutes M-4 .. M-1, spread across the minute.
    let this_minute = now_ms() / MINUTE_MS * MINUTE_MS;
    let first_minute = this_minute - 4 * MINUTE_MS;
    let client = ok(redis::Client::open(redis.url()));
    let mut conn = ok(client.get_multiplexed_async_connection().await);
    let stream = Keys::new(&BusConfig::default().namespace).flow_stream();
    let mut written: Vec<Cursor> = Vec::new();
    for (i, entry) in events.iter().enumerate() {
        let minute = first_minute + (i / 150) as u64 * MINUTE_MS;
        let id = Cursor::new(minute + (i % 150) as u64 * 399, 0);
        let _: String = ok(redis::cmd("XADD")
            .arg(&stream)
            .arg(id.to_string())
            .arg("e")
            .arg(&*entry.json)
            .query_async(&mut conn)
            .await);
        written.push(id);
    }
    let (gateway, url) = gateway_node(&bus).await;

    // The window: the minutes M-3 and M-2 (since M-3, until M-1).
    let since = first_minute + MINUTE_MS;
    let until = since + 2 * MINUTE_MS;
    let config = ok(tempfile::tempdir());
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowtape"))
            .env("XDG_CONFIG_HOME", config.path())
            .env("XDG_STATE_HOME", config.path())
            .args(["tail", "--server", &url])
            .args(["--since", &ny_minute(since), "--until", &ny_minute(until)])
            .output()
    });
    let out = ok(out);
    assert!(out.status.success(), "{out:?}");
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| ok(serde_json::from_str::<FlowEvent>(l)).id)
        .collect();
    let want: Vec<String> = written
        .iter()
        .filter(|c| (since..until).contains(&c.ms))
        .map(Cursor::to_string)
        .collect();
    assert_eq!(want.len(), 300);
    assert_eq!(printed, want, "exactly the events of the two minutes");
    gateway.shutdown();
    gateway.wait().await;
}
