//! `flowtape tail` against an in-test gateway.

use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::occ::Right;
use flowtape_core::protocol::{ClientMessage, ErrorCode, HistoryRequest};

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
        window: Window::default(),
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
    opts.window.since = Some(Cursor::new(6, 0));
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
    assert_eq!(lines[0], print::TABLE_HEADER);
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
    opts.window.since = Some(Cursor::new(2, 0));
    opts.window.until = Some(Cursor::new(5, 0));
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(2));
    let ids: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<FlowEvent>(l).ok())
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["3-0", "4-0"]);
    // A filter nothing matches: the live edge ends it.
    let mut opts = options(&gw.url, "premium>=900m");
    opts.backfill = None;
    opts.window.since = Some(Cursor::new(2, 0));
    opts.window.until = Some(Cursor::new(5, 0));
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(0));
    assert_eq!(out, "");
}

/// The `id`s of the NDJSON lines printed.
fn ids(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            serde_json::from_str::<FlowEvent>(l)
                .unwrap_or_else(|e| panic!("{e}: {l}"))
                .id
        })
        .collect()
}

/// `n` events: the sample events over and over.
fn many(n: usize) -> Vec<FlowEvent> {
    sample_events().into_iter().cycle().take(n).collect()
}

/// The ids `1..=n` of `events` matching `filter`, after `after`.
fn want(events: &[FlowEvent], filter: &str, after: usize, upto: usize) -> Vec<String> {
    let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{e}"));
    (after + 1..=upto)
        .filter(|i| f.matches(&events[i - 1]))
        .map(|i| format!("{i}-0"))
        .collect()
}

fn history_requests(gw: &FakeGateway) -> Vec<HistoryRequest> {
    gw.messages()
        .into_iter()
        .filter_map(|m| match m {
            ClientMessage::History(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn subscribes(gw: &FakeGateway) -> Vec<Option<Cursor>> {
    gw.messages()
        .into_iter()
        .filter_map(|m| match m {
            ClientMessage::Subscribe { since, .. } => Some(since),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn since_reads_pages_once_in_order_and_ends_at_the_live_edge() {
    let events = many(2_500);
    let gw = FakeGateway::start(Script {
        events: events.clone(),
        // Sparse pages: some hold no call at all, only `more` and `next`.
        page_scan_cap: Some(700),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "calls AAPL");
    opts.backfill = None;
    opts.window.since = Some(Cursor::new(3, 0));
    let (r, out) = run(opts).await;
    let expected = want(&events, "calls AAPL", 3, 2_500);
    assert!(expected.len() > 300, "{}", expected.len());
    assert_eq!(r.ok(), Some(expected.len() as u64));
    assert_eq!(ids(&out), expected, "every match once, in order");
    let requests = history_requests(&gw);
    // 2497 events after 3-0, 700 scanned a page.
    assert_eq!(requests.len(), 4);
    let canonical = Filter::parse("calls AAPL")
        .unwrap_or_else(|e| panic!("{e}"))
        .canonical();
    assert!(requests.iter().all(|r| r.limit == Some(1000)
        && r.filter.as_deref() == Some(canonical.as_str())
        && r.before.is_none()));
    assert_eq!(requests[0].after, Some(Cursor::new(3, 0)));
    assert_eq!(requests[1].after, Some(Cursor::new(703, 0)));
    assert!(
        subscribes(&gw).is_empty(),
        "no live stream without --follow"
    );
}

#[tokio::test]
async fn follow_goes_live_exactly_after_the_last_position_the_pages_read() {
    let events = many(1_500);
    // The pages see 1 203 events; 297 more come after them.
    let gw = FakeGateway::start(Script {
        events: events.clone(),
        history_upto: Some(1_203),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "calls");
    opts.backfill = None;
    opts.window.since = Some(Cursor::new(100, 0));
    opts.window.follow = true;
    let expected = want(&events, "calls", 100, 1_500);
    opts.limit = Some(expected.len() as u64);
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(expected.len() as u64));
    assert_eq!(ids(&out), expected, "no gap and no duplicate at the seam");
    // The seam is the last call the pages brought (1 203 is a put).
    assert_eq!(events[1_202].right, Right::Put);
    assert_eq!(events[1_201].right, Right::Call);
    assert_eq!(subscribes(&gw), [Some(Cursor::new(1_202, 0))]);
}

#[tokio::test]
async fn rate_limited_and_unavailable_pages_are_asked_again() {
    let events = many(1_100);
    let gw = FakeGateway::start(Script {
        events: events.clone(),
        history_errors: vec![
            ErrorCode::RateLimited,
            ErrorCode::HistoryUnavailable,
            ErrorCode::RateLimited,
        ],
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "");
    opts.window.since = Some(Cursor::ZERO);
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(1_100));
    assert_eq!(ids(&out), want(&events, "", 0, 1_100));
    // Three refusals, then two pages.
    let afters: Vec<_> = history_requests(&gw).iter().map(|r| r.after).collect();
    let zero = Some(Cursor::ZERO);
    assert_eq!(
        afters,
        [zero, zero, zero, zero, Some(Cursor::new(1_000, 0))]
    );
}

#[tokio::test]
async fn history_unavailable_in_a_row_gives_up_with_exit_code_1() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        history_errors: vec![ErrorCode::HistoryUnavailable; 5],
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "");
    opts.window.since = Some(Cursor::ZERO);
    opts.max_failures = 3;
    let (r, out) = run(opts).await;
    let err = r
        .err()
        .unwrap_or_else(|| panic!("read history nobody served"));
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string()
            .contains("history_unavailable 3 times in a row; giving up"),
        "{err}"
    );
    assert_eq!(out, "");
    assert_eq!(history_requests(&gw).len(), 3);
}

#[tokio::test]
async fn a_refused_page_request_fails_with_the_servers_words() {
    let gw = FakeGateway::start(Script {
        events: sample_events(),
        history_errors: vec![ErrorCode::BadHistory],
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "");
    opts.window.since = Some(Cursor::ZERO);
    let (r, _) = run(opts).await;
    let err = r.err().unwrap_or_else(|| panic!("accepted a refusal"));
    assert_eq!(err.exit_code(), 1);
    assert_eq!(err.to_string(), "server: scripted BadHistory (BadHistory)");
}

#[tokio::test]
async fn follow_with_until_is_refused_before_connecting() {
    let mut opts = options("ws://127.0.0.1:9/ws", "");
    opts.window = Window {
        since: Some(Cursor::new(1, 0)),
        until: Some(Cursor::new(5, 0)),
        follow: true,
    };
    let (r, out) = run(opts).await;
    let err = r
        .err()
        .unwrap_or_else(|| panic!("accepted --follow --until"));
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("give one of them"), "{err}");
    assert_eq!(out, "");
}

#[tokio::test]
async fn a_table_of_history_pages_has_its_header_once() {
    let gw = FakeGateway::start(Script {
        events: many(1_200),
        ..Script::default()
    })
    .await;
    let mut opts = options(&gw.url, "");
    opts.window.since = Some(Cursor::ZERO);
    opts.format = TailFormat::Table;
    let (r, out) = run(opts).await;
    assert_eq!(r.ok(), Some(1_200));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1_201);
    assert_eq!(lines[0], print::TABLE_HEADER);
    assert_eq!(lines.iter().filter(|l| l.starts_with("TIME ")).count(), 1);
}
