//! Every role is observable, and no alert or dashboard panel is dead: an
//! ingest, a processor and an archive (on a private PostgreSQL) run apart,
//! each serving `/metrics` and `/healthz` on a port of its own, beside a
//! gateway, on a private Redis; every
//! `flowtape_*` metric (and label value) that `assets/deploy/prometheus/alerts.yml`
//! and `assets/deploy/grafana/flowtape.json` query must be in their scrapes.
//! `/healthz` turns 503 for each role's own trouble: a processor behind on a
//! shard it owns, and every role once Redis is gone. `promtool` checks the
//! rules and the scrapes when it is installed (Debian package `prometheus`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowtape_bench::postgres_server::PostgresServer;
use flowtape_bench::redis_server::{find_program, free_port, RedisServer};
use flowtape_server::archive::{self, ArchiveConfig};
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::feed::{PrintSource, SimMarket};
use flowtape_server::node::{FeedChoice, Node, NodeConfig, MAX_HELD};
use flowtape_server::pipeline::ProcessorConfig;

mod support;
use support::{gateway_node, sim_from_now};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `GET path`: the status and body, or `None` if nothing answers.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    let get = move || -> Option<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        let (head, body) = reply.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    };
    tokio::task::spawn_blocking(get).await.ok().flatten()
}

/// Waits up to `within` for `/healthz` at `addr` to answer `code`; its body.
async fn health_becomes(addr: SocketAddr, code: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let got = http_get(addr, "/healthz").await;
        if let Some((status, body)) = &got {
            if *status == code {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "/healthz at {addr} did not answer {code} within {within:?} (last: {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/metrics` at `addr`, once `ready` says so of it.
async fn scrape_until(addr: SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, text)) = http_get(addr, "/metrics").await {
            if ready(&text) {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{addr}/metrics never had {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `series` (name and labels, as written) in `text`.
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` at `addr` once the sample `series` is above `min`.
async fn scrape_once_above(addr: SocketAddr, series: &str, min: f64) -> String {
    scrape_until(addr, series, |text| {
        value_of(text, series).is_some_and(|v| v > min)
    })
    .await
}

/// Each sample's metric name with the label pairs it carries.
type Samples = BTreeMap<String, BTreeSet<(String, String)>>;

/// Reads the samples of a text exposition, checking every line's shape.
fn samples_of(text: &str, into: &mut Samples) {
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "not a number in {line:?}"
        );
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}")),
            ),
            None => (series, ""),
        };
        let entry = into.entry(name.to_string()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
            entry.insert((k.to_string(), v.trim_matches('"').to_string()));
        }
    }
}

/// Every `flowtape_*` selector in a PromQL expression: the metric name and
/// its `label="value"` matchers (other matchers are not checked).
fn selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("flowtape_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let mut matchers = Vec::new();
        if let Some(inside) = tail[end..].strip_prefix('{') {
            let close = inside.find('}').unwrap_or(inside.len());
            for m in inside[..close].split(',') {
                if let Some((k, v)) = m.split_once('=') {
                    if !k.ends_with('!') && !v.starts_with('~') {
                        matchers
                            .push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
                    }
                }
            }
        }
        found.push((name, matchers));
        rest = &tail[end..];
    }
    found
}

/// The `expr:` of every rule in a Prometheus rules file: one line, or a `|` block.
fn alert_exprs(yaml: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let value = value.trim();
        if value == "|" || value == ">" {
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                block.push_str(next.trim());
                block.push(' ');
                lines.next();
            }
            exprs.push(block);
        } else {
            exprs.push(value.to_string());
        }
    }
    exprs
}

/// Every `expr` of a Grafana dashboard's panels (rows included).
fn dashboard_exprs(v: &serde_json::Value, into: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => into.push(e.clone()),
                    _ => dashboard_exprs(v, into),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, into)),
        _ => {}
    }
}

/// Fails for every selector of `exprs` with no sample in `exported`.
fn check_exported(source: &str, exprs: &[String], exported: &Samples) {
    assert!(!exprs.is_empty(), "{source} has no expressions");
    let mut dead = Vec::new();
    for expr in exprs {
        let found = selectors(expr);
        assert!(
            !found.is_empty() || expr.contains("up{"),
            "{source}: {expr:?} queries no flowtape metric"
        );
        for (name, matchers) in found {
            match exported.get(&name) {
                None => dead.push(format!("{name} (in {expr})")),
                Some(labels) => {
                    for m in matchers.iter().filter(|m| !labels.contains(m)) {
                        dead.push(format!("{name}{{{}=\"{}\"}} (in {expr})", m.0, m.1));
                    }
                }
            }
        }
    }
    assert!(
        dead.is_empty(),
        "{source} queries what no role exports:\n{}",
        dead.join("\n")
    );
}

/// Runs `promtool ARGS…` if it is installed, with `stdin`; asserts success.
fn promtool(args: &[&str], stdin: Option<&str>) {
    let Some(bin) = find_program("PROMTOOL", "promtool") else {
        eprintln!("promtool not installed (apt-get install prometheus): not run");
        return;
    };
    let mut child = ok(std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn());
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        ok(input.write_all(text.as_bytes()));
    }
    let out = ok(child.wait_with_output());
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks the alerts and the dashboard against `exported`, and the rules with promtool.
fn check_catalog(exported: &Samples) {
    let rules_path = repo_file("assets/deploy/prometheus/alerts.yml");
    let rules = ok(std::fs::read_to_string(&rules_path));
    check_exported("alerts.yml", &alert_exprs(&rules), exported);
    let dashboard: serde_json::Value = ok(serde_json::from_str(&ok(std::fs::read_to_string(
        repo_file("assets/deploy/grafana/flowtape.json"),
    ))));
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, &mut panels);
    check_exported("flowtape.json", &panels, exported);
    promtool(&["check", "rules", &rules_path.to_string_lossy()], None);
}

fn loopback() -> SocketAddr {
    ok("127.0.0.1:0".parse())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_and_panel_queries_what_the_roles_export() {
    let redis = ok(RedisServer::start().await);
    let bus = ok(Bus::redis(
        &redis.url(),
        BusConfig {
            shards: 2,
            ..BusConfig::default()
        },
    )
    .await);
    let mut ingest = ok(Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(300.0))),
            ..NodeConfig::default()
        },
    )
    .await);
    let ingest_addr = ok(ingest.serve_metrics(loopback()).await);
    let mut process = ok(Node::start(
        bus.clone(),
        NodeConfig {
            process: Some(ProcessorConfig {
                sample_every: Duration::from_millis(200),
                ..ProcessorConfig::new("catalog".into())
            }),
            ..NodeConfig::default()
        },
    )
    .await);
    let process_addr = ok(process.serve_metrics(loopback()).await);
    let (gateway, _) = gateway_node(&bus).await;
    let gateway_addr = gateway
        .gateway_addr()
        .unwrap_or_else(|| panic!("no gateway"));
    let postgres = ok(PostgresServer::start().await);
    let archive_addr: SocketAddr = ok(format!("127.0.0.1:{}", ok(free_port())).parse());
    let (stop_archive, archive_shutdown) = flowtape_server::shutdown::channel();
    let archive = tokio::spawn(archive::service::serve(
        bus.clone(),
        ArchiveConfig::new(postgres.url()),
        Some(archive_addr),
        archive_shutdown,
    ));

    // Once events flow and the backlog is sampled, every family has its samples.
    let mut exported = Samples::new();
    let ingest_text = scrape_once_above(ingest_addr, "flowtape_ingest_appends_total", 0.0).await;
    let events = "flowtape_process_events_total{kind=\"single\"}";
    scrape_once_above(process_addr, events, 0.0).await;
    let process_text = scrape_until(process_addr, "both shards and their lag", |text| {
        value_of(text, "flowtape_process_shards_owned") == Some(2.0)
            && text.contains("flowtape_process_shard_lag{shard=\"1\"}")
    })
    .await;
    let gateway_text =
        scrape_once_above(gateway_addr, "flowtape_gateway_events_in_total", 0.0).await;
    let archive_text = scrape_once_above(archive_addr, "flowtape_archive_events_total", 0.0).await;
    assert!(
        archive_text.contains("flowtape_healthy{role=\"archive\"} 1"),
        "{archive_text}"
    );
    stop_archive.trigger();
    assert!(ok(archive.await).is_ok());
    for text in [&ingest_text, &process_text, &gateway_text, &archive_text] {
        samples_of(text, &mut exported);
        promtool(&["check", "metrics"], Some(text));
    }
    // Each role on its own port, and each one's verdict.
    assert!(
        ingest_text.contains("flowtape_healthy{role=\"ingest\"} 1"),
        "{ingest_text}"
    );
    assert!(!ingest_text.contains("flowtape_process_"), "{ingest_text}");
    assert!(
        process_text.contains("flowtape_healthy{role=\"process\"} 1"),
        "{process_text}"
    );
    assert!(
        gateway_text.contains("flowtape_healthy{role=\"gateway\"} 1"),
        "{gateway_text}"
    );
    for addr in [ingest_addr, process_addr, gateway_addr] {
        health_becomes(addr, 200, Duration::from_secs(10)).await;
    }

    check_catalog(&exported);

    // Redis gone: each role says so, within its own rule's time.
    drop(redis);
    let body = health_becomes(process_addr, 503, Duration::from_secs(10)).await;
    assert!(body.contains("backlog not sampled"), "{body}");
    let body = health_becomes(gateway_addr, 503, Duration::from_secs(10)).await;
    assert!(body.contains("redis"), "{body}");
    let body = health_becomes(ingest_addr, 503, MAX_HELD + Duration::from_secs(15)).await;
    assert!(body.contains("appends failing"), "{body}");
    let held = scrape_once_above(ingest_addr, "flowtape_ingest_prints_held", 0.0).await;
    assert!(
        held.contains("flowtape_healthy{role=\"ingest\"} 0"),
        "{held}"
    );

    for node in [ingest, process, gateway] {
        node.shutdown();
        node.wait().await;
    }
}

/// A processor far behind on a shard it owns answers 503 until it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_behind_its_shard_is_unhealthy_until_it_catches_up() {
    let redis = ok(RedisServer::start().await);
    let bus = ok(Bus::redis(
        &redis.url(),
        BusConfig {
            shards: 1,
            ..BusConfig::default()
        },
    )
    .await);
    let mut process = ok(Node::start(
        bus.clone(),
        NodeConfig {
            process: Some(ProcessorConfig {
                // One print per read: 20,000 take seconds to read.
                read_count: 1,
                max_lag: 1000,
                sample_every: Duration::from_millis(100),
                ..ProcessorConfig::new("behind".into())
            }),
            ..NodeConfig::default()
        },
    )
    .await);
    let addr = ok(process.serve_metrics(loopback()).await);
    scrape_once_above(addr, "flowtape_process_shards_owned", 0.0).await;
    health_becomes(addr, 200, Duration::from_secs(10)).await;

    let mut sim = ok(SimMarket::new(sim_from_now(1000.0)));
    let prints: Vec<_> = std::iter::from_fn(|| sim.next_print())
        .filter_map(Result::ok)
        .take(20_000)
        .collect();
    ok(bus.append_raw(&mut bus.raw_batch(&prints)).await);

    let body = health_becomes(addr, 503, Duration::from_secs(5)).await;
    assert!(
        body.contains("shard 0:") && body.contains("max_lag 1000"),
        "{body}"
    );
    health_becomes(addr, 200, Duration::from_secs(120)).await;

    process.shutdown();
    process.wait().await;
}

/// On a Redis Cluster the raw shards live on different masters and the
/// leases in the flow slot: the backlog is sampled there as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_is_sampled_on_a_redis_cluster() {
    let cluster = ok(flowtape_bench::redis_cluster::RedisCluster::start(
        3,
        Duration::from_millis(1000),
    )
    .await);
    let bus = ok(Bus::redis(
        &cluster.url(),
        BusConfig {
            shards: 4,
            ..BusConfig::default()
        },
    )
    .await);
    let mut node = ok(Node::start(
        bus,
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(200.0))),
            process: Some(ProcessorConfig {
                sample_every: Duration::from_millis(200),
                ..ProcessorConfig::new("cluster-backlog".into())
            }),
            ..NodeConfig::default()
        },
    )
    .await);
    let addr = ok(node.serve_metrics(loopback()).await);
    let text = scrape_until(addr, "every shard owned and sampled", |text| {
        value_of(text, "flowtape_process_shards_owned") == Some(4.0)
            && value_of(text, "flowtape_process_shards_unowned") == Some(0.0)
            && (0..4).all(|k| {
                value_of(
                    text,
                    &format!("flowtape_process_shard_lag{{shard=\"{k}\"}}"),
                )
                .is_some()
            })
    })
    .await;
    assert!(
        value_of(&text, "flowtape_process_backlog_age_seconds")
            .is_some_and(|a| (0.0..2.0).contains(&a)),
        "{text}"
    );
    health_becomes(addr, 200, Duration::from_secs(10)).await;
    node.shutdown();
    node.wait().await;
}

/// In one process (`flowtape-server run`), the gateway's port shows every
/// role: all their families, and a `/healthz` that covers each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_process_the_gateway_shows_every_role() {
    let bus = Bus::memory(BusConfig {
        shards: 2,
        ..BusConfig::default()
    });
    let node = ok(Node::start(
        bus,
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(300.0))),
            process: Some(ProcessorConfig {
                sample_every: Duration::from_millis(200),
                ..ProcessorConfig::new("one-process".into())
            }),
            gateway: Some(flowtape_server::gateway::GatewayConfig {
                listen: loopback(),
                ..Default::default()
            }),
        },
    )
    .await);
    let addr = node.gateway_addr().unwrap_or_else(|| panic!("no gateway"));
    let text = scrape_until(addr, "every role's samples", |text| {
        value_of(text, "flowtape_gateway_events_in_total").is_some_and(|v| v > 0.0)
            && text.contains("flowtape_process_shard_lag{shard=\"1\"}")
    })
    .await;
    for role in ["gateway", "ingest", "process"] {
        assert!(
            text.contains(&format!("flowtape_healthy{{role=\"{role}\"}} 1")),
            "{text}"
        );
    }
    let mut exported = Samples::new();
    samples_of(&text, &mut exported);
    promtool(&["check", "metrics"], Some(&text));
    // The archive serves a port of its own even within `run` (it needs a
    // PostgreSQL, scraped in the test above): its families as it renders them.
    let mut archive = flowtape_server::metrics::Exposition::default();
    flowtape_server::metrics::Role::render(
        &archive::ArchiveRole {
            stats: Default::default(),
        },
        &mut archive,
    );
    samples_of(&archive.into_text(), &mut exported);
    check_catalog(&exported);

    let body = health_becomes(addr, 200, Duration::from_secs(10)).await;
    let health: serde_json::Value = ok(serde_json::from_str(&body));
    assert_eq!(health["roles"]["ingest"]["ok"], true, "{health}");
    assert_eq!(health["roles"]["process"]["ok"], true, "{health}");
    assert_eq!(health["roles"]["ingest"]["feed"]["state"], "ok", "{health}");

    node.shutdown();
    node.wait().await;
}

/// The checker itself: it finds every selector, in one-line and block
/// expressions, and names what is not exported.
#[test]
fn the_checker_reads_selectors_and_finds_dead_ones() {
    let yaml = "groups:\n  - rules:\n      - alert: A\n        expr: flowtape_a{state=\"down\"} == 1\n\
                \x20       for: 1m\n      - alert: B\n        expr: |\n          rate(flowtape_b_total[5m]) > 0\n\
                \x20         or histogram_quantile(0.9, sum by (le) (rate(flowtape_c_seconds_bucket{x=~\"y\"}[5m])))\n\
                \x20       labels: {}\n";
    let exprs = alert_exprs(yaml);
    assert_eq!(exprs.len(), 2, "{exprs:?}");
    let names: Vec<_> = exprs.iter().flat_map(|e| selectors(e)).collect();
    assert_eq!(
        names,
        [
            (
                "flowtape_a".to_string(),
                vec![("state".to_string(), "down".to_string())]
            ),
            ("flowtape_b_total".to_string(), vec![]),
            ("flowtape_c_seconds_bucket".to_string(), vec![]),
        ]
    );
    let mut exported = Samples::new();
    samples_of(
        "# TYPE flowtape_a gauge\nflowtape_a{state=\"ok\"} 1\nflowtape_b_total 3\n\
         flowtape_c_seconds_bucket{le=\"+Inf\"} 2\n",
        &mut exported,
    );
    let dead = std::panic::catch_unwind(|| check_exported("test", &exprs, &exported));
    let message = dead.err().and_then(|e| e.downcast::<String>().ok());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("flowtape_a{state=\"down\"}")),
        "{message:?}"
    );
    samples_of("flowtape_a{state=\"down\"} 0\n", &mut exported);
    check_exported("test", &exprs, &exported);
}
