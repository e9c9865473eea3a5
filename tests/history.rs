//! History pages and time windows against a real gateway on a private
//! redis-server: pages walked back to the start of the stream with a filter
//! are exactly the stream's matching events, once each; a request older than
//! the stream keeps says so and shows what is kept; bad requests get error
//! frames while live events keep coming; `flowtape tail --since --until`
//! prints exactly the stream's matching events of the window; `--since`
//! alone ends at the live edge while events keep coming, and `--follow`
//! goes on live from there with no gap and no duplicate at the seam.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use flowtape_bench::redis_server::RedisServer;
use flowtape_core::clock::format_ny;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_core::occ::Right;
use flowtape_core::protocol::{ErrorCode, Page};
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::node::Node;

mod support;
use support::ws::{Answer, Client};
use support::{gateway_node, market_node};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A private Redis, a simulated market writing into it, and a gateway.
struct World {
    _redis: RedisServer,
    bus: Bus,
    producer: Option<Node>,
    gateway: Node,
    url: String,
}

impl World {
    async fn start(rate: f64) -> World {
        let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
        let bus = Bus::redis(&redis.url(), BusConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let producer = market_node(&bus, rate, "history-test").await;
        let (gateway, url) = gateway_node(&bus).await;
        World {
            _redis: redis,
            bus,
            producer: Some(producer),
            gateway,
            url,
        }
    }

    /// Stops the market; the stream holds what it wrote.
    async fn stop_producer(&mut self) {
        if let Some(p) = self.producer.take() {
            p.shutdown();
            p.wait().await;
        }
    }

    async fn stop(mut self) {
        self.stop_producer().await;
        self.gateway.shutdown();
        self.gateway.wait().await;
    }

    /// The stream's events matching `filter`, in order.
    async fn stream(&self, filter: &str) -> Vec<(Cursor, FlowEvent)> {
        let filter = Filter::parse(filter).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let mut after = Cursor::ZERO;
        loop {
            let page = self
                .bus
                .flow_after(after, 1000)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let Some(end) = page.last().map(|e| e.id) else {
                break;
            };
            for entry in page {
                let mut event: FlowEvent =
                    serde_json::from_str(&entry.json).unwrap_or_else(|e| panic!("{e}"));
                event.id = entry.id.to_string();
                if filter.matches(&event) {
                    out.push((entry.id, event));
                }
            }
            after = end;
        }
        out
    }
}

fn cursors(page: &Page) -> Vec<Cursor> {
    page.events.iter().map(|i| i.cursor).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_back_to_the_start_and_forward_again_without_gap_or_duplicate() {
    let mut world = World::start(400.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    world.stop_producer().await;
    // The hub sees the last event the market wrote.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let want: Vec<Cursor> = world
        .stream("calls")
        .await
        .iter()
        .map(|(c, _)| *c)
        .collect();
    let all = world.stream("").await.len();
    assert!(want.len() > 150, "only {} calls in the stream", want.len());
    assert!(all > want.len() + 150, "{all} events, {} calls", want.len());

    let mut client = Client::connect(&world.url).await;
    client.subscribe("calls").await;
    // Backwards from now, 37 at a time, with the subscription's filter.
    let mut before = Cursor::new(now_ms(), 0);
    let mut pages: Vec<Vec<Cursor>> = Vec::new();
    for n in 0.. {
        assert!(n < 1000, "the walk back does not end");
        let req = format!(r#"{{"op":"history","before":"{before}","limit":37,"id":"p{n}"}}"#);
        let page = client.page(&req).await;
        assert_eq!(page.id.as_deref(), Some(format!("p{n}").as_str()));
        assert!(page.events.len() <= 37);
        assert_eq!(page.notice, None);
        assert!(page.events.iter().all(|i| i.event.right == Right::Call));
        pages.push(cursors(&page));
        if !page.more {
            assert_eq!(page.next, None);
            break;
        }
        let next = page.next.unwrap_or_else(|| panic!("more without next"));
        assert!(next < before);
        before = next;
    }
    let walked: Vec<Cursor> = pages.into_iter().rev().flatten().collect();
    assert_eq!(walked.len(), want.len(), "as many as the stream's calls");
    assert_eq!(walked, want, "every call, once, in stream order");

    // Forwards from the middle, with the request's own filter: puts.
    let puts: Vec<Cursor> = world.stream("puts").await.iter().map(|(c, _)| *c).collect();
    let from = puts[puts.len() / 3];
    let mut after = from;
    let mut forward = Vec::new();
    loop {
        let req = format!(r#"{{"op":"history","after":"{after}","limit":50,"filter":"puts"}}"#);
        let page = client.page(&req).await;
        forward.extend(cursors(&page));
        match (page.more, page.next) {
            (true, Some(next)) => after = next,
            (false, None) => break,
            other => panic!("more and next disagree: {other:?}"),
        }
    }
    let want_after: Vec<Cursor> = puts.iter().copied().filter(|c| *c > from).collect();
    assert_eq!(forward, want_after, "every put after the cursor, once");

    // Older than the stream keeps: what is kept, and a notice saying so.
    let page = client
        .page(r#"{"op":"history","after":"1-0","limit":100}"#)
        .await;
    let notice = page.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("older than the stream keeps (oldest kept: ")
            && notice.ends_with("showing from there"),
        "{notice}"
    );
    assert_eq!(cursors(&page), want[..100].to_vec());
    assert!(page.more);
    let page = client.page(r#"{"op":"history","before":"1-0"}"#).await;
    assert!(page.events.is_empty() && !page.more);
    assert!(page
        .notice
        .is_some_and(|n| n.contains("older than the stream keeps")));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_frames_and_live_events_keep_coming() {
    let world = World::start(300.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut client = Client::connect(&world.url).await;
    client.subscribe("").await;
    let future = Cursor::new(now_ms() + 3_600_000, 0);
    let future = format!(r#"{{"op":"history","before":"{future}"}}"#);
    let cases: [(&str, ErrorCode, &str); 7] = [
        (
            r#"{"op":"history","before":"5-0","after":"5-0"}"#,
            ErrorCode::BadHistory,
            "give before or after, not both",
        ),
        (
            r#"{"op":"history"}"#,
            ErrorCode::BadHistory,
            "give before or after",
        ),
        (
            r#"{"op":"history","before":"5-0","limit":0}"#,
            ErrorCode::BadHistory,
            "limit must be 1 to 1000, got 0",
        ),
        (
            r#"{"op":"history","after":"5-0","limit":1001}"#,
            ErrorCode::BadHistory,
            "limit must be 1 to 1000, got 1001",
        ),
        (
            r#"{"op":"history","before":"yesterday","id":"bad"}"#,
            ErrorCode::BadCursor,
            "before: cursor \"yesterday\"",
        ),
        (&future, ErrorCode::BadHistory, "is in the future"),
        (
            r#"{"op":"history","after":"5-0","filter":"premium>="}"#,
            ErrorCode::BadHistory,
            "filter: ",
        ),
    ];
    for (request, code, says) in cases {
        match client.ask(request).await {
            Answer::Error(c, message, id) => {
                assert_eq!(c, code, "{request}: {message}");
                assert!(message.contains(says), "{request}: {message}");
                let named = request.contains(r#""id":"bad""#);
                assert_eq!(id.as_deref(), named.then_some("bad"), "{request}");
            }
            other => panic!("{request} answered with {other:?}"),
        }
    }
    // Over the page rate: refused, never closed; each answer, page or
    // refusal, names its request.
    let mut pages = 0;
    let mut refused = 0;
    let mut answered = Vec::new();
    let before = Cursor::new(now_ms(), 0);
    for n in 0..30 {
        let req = format!(r#"{{"op":"history","before":"{before}","limit":1,"id":"r{n}"}}"#);
        client.send(&req).await;
    }
    while pages + refused < 30 {
        match client.next_message().await {
            Ok(Answer::Page(p)) => {
                assert_eq!(p.events.len(), 1);
                answered.extend(p.id);
                pages += 1;
            }
            Ok(Answer::Error(ErrorCode::RateLimited, m, id)) => {
                assert!(m.contains("too many history requests"), "{m}");
                answered.extend(id);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    answered.sort();
    let mut asked: Vec<String> = (0..30).map(|n| format!("r{n}")).collect();
    asked.sort();
    assert_eq!(answered, asked, "every request answered once, by its id");
    // The seven bad requests above took from the same bucket (burst 20).
    assert!(
        pages >= 10 && refused >= 1,
        "{pages} pages, {refused} refused"
    );
    // Live events kept coming throughout, in order, and still do.
    let seen = client.events.len();
    client.listen(Duration::from_millis(1500)).await;
    assert!(
        client.events.len() > seen + 50,
        "{} live events after the requests",
        client.events.len() - seen
    );
    assert!(
        client.events.windows(2).all(|w| w[0] < w[1]),
        "the live stream stays in order, once each"
    );
    world.stop().await;
}

/// `HH:MM:SS` New York time of `ms`.
fn ny_clock(ms: u64) -> String {
    let text = format_ny(ms as i64);
    text.split(' ').nth(1).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_since_until_prints_exactly_the_window() {
    let world = World::start(300.0).await;
    // A window of whole seconds, well inside the market's run.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let since = (now_ms() / 1000 + 1) * 1000;
    let until = since + 2000;
    while now_ms() < until + 1000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |since: String, until: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowtape"))
            .env("XDG_CONFIG_HOME", config.path())
            .env("XDG_STATE_HOME", config.path())
            .args(["tail", "--server", &world.url, "--filter", "calls"])
            .args(["--since", &since, "--until", &until])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| run(ny_clock(since), ny_clock(until)));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}");
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<FlowEvent>(l)
                .unwrap_or_else(|e| panic!("{e}: {l}"))
                .id
        })
        .collect();
    let want: Vec<String> = world
        .stream("calls")
        .await
        .into_iter()
        .filter(|(c, _)| (since..until).contains(&c.ms))
        .map(|(c, _)| c.to_string())
        .collect();
    assert!(want.len() > 50, "only {} calls in the window", want.len());
    assert_eq!(printed, want, "exactly the calls written in the window");

    // Bad windows: exit code 2 and a clear message, before connecting.
    for (s, u, says) in [
        (ny_clock(until), ny_clock(since), "is not after --since"),
        ("23:61".to_string(), ny_clock(until), "is not a time"),
        (
            ny_clock(now_ms() + 3_600_000),
            ny_clock(until),
            "in the future",
        ),
    ] {
        let out = tokio::task::block_in_place(|| run(s.clone(), u.clone()));
        assert_eq!(out.status.code(), Some(2), "{s}..{u}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{s}..{u}: {err}");
    }
    world.stop().await;
}

/// `flowtape tail` against `url` with `args`, its config and state in `home`.
fn tail_command(url: &str, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowtape"));
    cmd.env("XDG_CONFIG_HOME", home)
        .env("XDG_STATE_HOME", home)
        .env_remove("FLOWTAPE_CONFIG")
        .env_remove("FLOWTAPE_TOKEN")
        .args(["tail", "--server", url])
        .args(args);
    cmd
}

/// The `id` (cursor) of each NDJSON line.
fn printed_ids(stdout: &[u8]) -> Vec<Cursor> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<FlowEvent>(l)
                .unwrap_or_else(|e| panic!("{e}: {l}"))
                .id
                .parse()
                .unwrap_or_else(|e| panic!("{e:?}: {l}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_since_ends_at_the_live_edge_and_follow_goes_on_live_without_gap_or_duplicate() {
    // Two pages and more of history; the market keeps writing throughout.
    let world = World::start(400.0).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    // Without --follow: from the stream's start to the live edge, then exit 0.
    let edge = world.stream("").await.last().map(|(c, _)| *c);
    let out = tokio::task::block_in_place(|| {
        tail_command(&world.url, home.path(), &["--since", "0-0"]).output()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    let printed = printed_ids(&out.stdout);
    let last = *printed.last().unwrap_or_else(|| panic!("nothing printed"));
    assert!(edge.is_some_and(|e| last >= e), "{last} before {edge:?}");
    let want: Vec<Cursor> = world
        .stream("")
        .await
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| *c <= last)
        .collect();
    assert!(want.len() > 1_000, "only {} events", want.len());
    assert_eq!(
        printed, want,
        "every event up to the live edge, once, in order"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is older than the stream keeps"), "{err}");

    // With --follow: the same pages, then live with the market still writing.
    let mut child = tail_command(
        &world.url,
        home.path(),
        &["--since", "0-0", "--follow", "--filter", "calls"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Until it prints events written 3 s after it started: live ones.
    let live_from = now_ms() + 3_000;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while lines
        .last()
        .and_then(|l: &String| serde_json::from_str::<FlowEvent>(l).ok())
        .and_then(|e| e.id.parse::<Cursor>().ok())
        .is_none_or(|c| c.ms < live_from)
    {
        assert!(Instant::now() < deadline, "no live events after the pages");
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => lines.push(line),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("tail --follow ended: {e}: {:?}", child.try_wait()),
        }
    }
    assert!(
        child.try_wait().ok().flatten().is_none(),
        "--follow keeps going"
    );
    let _ = child.kill();
    let _ = child.wait();
    let printed = printed_ids(lines.join("\n").as_bytes());
    let last = *printed.last().unwrap_or_else(|| panic!("nothing printed"));
    let want: Vec<Cursor> = world
        .stream("calls")
        .await
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| *c <= last)
        .collect();
    assert_eq!(
        printed, want,
        "every call from pages to live, once, in order"
    );

    // --follow with --until: refused before connecting.
    let out = tokio::task::block_in_place(|| {
        tail_command(
            &world.url,
            home.path(),
            &["--since", "0-0", "--until", &last.to_string(), "--follow"],
        )
        .output()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give one of them"), "{err}");
    world.stop().await;
}
