//! `flowtape tail` against an in-test gateway.

use flowtape_core::event::FlowEvent;
use flowtape_core::occ::Right;

use super::*;
use crate::app::testing::sample_events;
use crate::client::fake_gateway::{event_json, FakeGateway, Script};

fn options(server: &str, filter: &str) -> TailOptions {
    TailOptions {
        servers: vec![server.to_string()],
        token: None,
        filter: filter.to_string(),
        presets: Presets::builtin().clone(),
        backfill: Some(100),
        since: None,
        until: None,
        limit: None,
        format: TailFormat::Ndjson,
        max_failures: 2,
        trust: TrustRoots::System,
    }
}

async fn run(opts: TailOptions) -> (Result<u64, TailError>, String) {
    let mut out = Vec::new();
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), tail(opts, &mut out))
        .await
        .unwrap_or_else(|_| panic!("tail did not finish"));
    (r, String::from_utf8(out).unwrap_or_default())
}

#[tokio::test]
async fn ndjson_is_the_schema_exactly_as_received_and_respects_filter_and_limit() {
    let events = sample_events();
    let gw = FakeGateway::start(Script {
        events: events.clone(),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "calls");
    opts.limit = Some(3);
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(3));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    // The calls among the sample events are numbers 1, 2, 4, 7 and 8.
    for (line, i) in lines.iter().zip([1, 2, 4]) {
        let e: FlowEvent = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert_eq!(e.right, Right::Call);
        assert_eq!(e.id, format!("{i}-0"));
        assert_eq!(*line, event_json(&events, i), "printed exactly as received");
    }
}

#[tokio::test]
async fn presets_are_the_configs_and_the_gateway_gets_them_expanded() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "notable calls");
    opts.presets
        .define("notable", "premium>=1m")
        .unwrap_or_else(|e| panic!("{e}"));
    opts.limit = Some(1);
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(1));
    assert!(out.contains("\"sym\":\"NVDA\""), "{out}");
    let sent = gw.messages().into_iter().find_map(|m| match m {
        flowtape_core::protocol::ClientMessage::Subscribe { filter, .. } => Some(filter),
        _ => None,
    });
    assert_eq!(sent.as_deref(), Some("calls premium>=1m"));
}

#[tokio::test]
async fn resumes_after_a_cursor() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "");
    opts.since = Some(Cursor::new(6, 0));
    opts.backfill = None;
    opts.limit = Some(2);
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(2));
    let ids: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<FlowEvent>(l).ok())
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec!["7-0", "8-0"]);
}

#[tokio::test]
async fn table_format_has_a_header_and_a_row_per_event() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "golden");
    opts.format = TailFormat::Table;
    opts.limit = Some(1);
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], TABLE_HEADER);
    assert!(
        lines[1].contains("^ NVDA") && lines[1].contains("$1.0M") && lines[1].contains("GOLD UOA"),
        "{}",
        lines[1]
    );
}

#[tokio::test]
async fn a_bad_filter_fails_before_connecting_and_points_at_the_column() {
    let (r, out) = run(options("ws://127.0.0.1:9/ws", "AAPL premum>=1m")).await;
    let err = r.err().unwrap_or_else(|| panic!("accepted a bad filter"));
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(
        text.contains("column 6") && text.contains("premium"),
        "{text}"
    );
    assert!(text.ends_with("AAPL premum>=1m\n       ^"), "{text}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn an_unreachable_server_fails_clearly() {
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let (r, _) = run(options(&format!("ws://{addr}/ws"), "")).await;
    let err = r.err().unwrap_or_else(|| panic!("connected to nothing"));
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string()
            .contains(&format!("cannot connect to ws://{addr}/ws")),
        "{err}"
    );
}

#[tokio::test]
async fn a_rejected_token_fails_clearly() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        token: Some("t".into()),
        ..Script::default()
    })
    .await;
    let (r, _) = run(options(&gw.url, "")).await;
    let err = r
        .err()
        .unwrap_or_else(|| panic!("accepted without a token"));
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().contains("rejected the token (HTTP 401)"),
        "{err}"
    );
}

#[tokio::test]
async fn until_prints_the_window_and_exits_even_when_nothing_matches() {
    let events = sample_events();
    let gw = FakeGateway::start(Script {
        events: events.clone(),
        ..Script::default()
    })
    .await;
    // Events 3 and 4: after cursor 2-0, before 5-0.
    let mut opts = options(&gw.url, "");
    opts.backfill = None;
    opts.since = Some(Cursor::new(2, 0));
    opts.until = Some(Cursor::new(5, 0));
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(2));
    let ids: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<FlowEvent>(l).ok())
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["3-0", "4-0"]);
    // A filter nothing matches: the replay's end ends it.
    let mut opts = options(&gw.url, "premium>=900m");
    opts.backfill = None;
    opts.since = Some(Cursor::new(2, 0));
    opts.until = Some(Cursor::new(5, 0));
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(0));
    assert_eq!(out, "");
}
