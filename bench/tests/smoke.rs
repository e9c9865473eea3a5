//! A smoke run of the benchmark harness: the real `flowtape-bench`
//! binary, its own redis-server, a short steady run at a low rate with a few
//! clients. It checks what must hold on any machine — every event reached
//! every client that should have it, exactly once — and that the JSON report
//! is complete. It asserts no timings: benchmarks are not tests.

use std::process::Command;

#[test]
fn a_short_steady_run_loses_nothing_and_reports_json() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flowtape-bench"))
        .args([
            "--scenario",
            "steady",
            "--duration",
            "3",
            "--rate",
            "200",
            "--clients",
            "50",
        ])
        .arg("--json")
        .arg(&json)
        .env("FLOWTAPE_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run flowtape-bench: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("e2e ms"), "the table is printed:\n{stdout}");

    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON report: {e}"));
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON: {e}\n{text}"));
    let num = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing or not a number in {text}"))
    };
    assert_eq!(report["scenario"], "steady");
    for q in ["p50", "p99", "p999", "max"] {
        assert!(
            report["e2e_ms"][q].as_f64().is_some_and(|v| v >= 0.0),
            "e2e_ms.{q} in {text}"
        );
    }
    for key in [
        "delivered_per_s",
        "server_cpu_pct",
        "server_rss_mib",
        "client_cpu_pct",
        "redis_used_memory_mib",
    ] {
        assert!(num(key) >= 0.0, "{key}");
    }
    assert!(
        num("prints") > 0.0 && num("events") > 0.0,
        "the feed ran: {text}"
    );
    assert!(num("delivered") > 0.0, "clients received events: {text}");
    assert_eq!(
        num("delivered"),
        num("expected"),
        "every selected event was delivered"
    );
    assert_eq!(num("lost"), 0.0, "zero loss");
    assert_eq!(num("duplicates"), 0.0, "nothing twice");
    assert_eq!(
        num("mismatched_clients"),
        0.0,
        "each client got exactly its events"
    );
    assert_eq!(num("disconnected_clients"), 0.0);
}
