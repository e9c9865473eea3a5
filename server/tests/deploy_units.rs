//! The systemd units in `assets/deploy/systemd/`: hardened, draining on
//! SIGTERM within their stop timeout, and starting the binary with flags it
//! has. `systemd-analyze verify` lints them too where it is installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flowtape_server::config::{HumanDuration, ServerConfig};

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/deploy/systemd")
}

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/server.example.toml")
}

/// The `[Service]` keys of a unit (the last value of a repeated key).
fn service_keys(text: &str) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut in_service = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                keys.insert(k.to_string(), v.to_string());
            }
        }
    }
    keys
}

fn services() -> Vec<(String, String)> {
    let mut units: Vec<(String, String)> = std::fs::read_dir(units_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                name,
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect();
    units.sort();
    units
}

#[test]
fn every_role_has_a_hardened_unit_that_outlasts_its_drain() {
    let units = services();
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    for role in ["ingest", "process", "gateway", "archive"] {
        assert!(
            names.iter().any(|n| n.contains(role)),
            "no unit for {role}: {names:?}"
        );
    }
    let drain = ServerConfig::defaults()
        .gateway
        .drain_timeout
        .map_or(Duration::ZERO, |d| d.0);
    for (name, text) in &units {
        let keys = service_keys(text);
        let is = |k: &str, v: &str| keys.get(k).map(String::as_str) == Some(v);
        assert!(
            keys.get("User").is_some_and(|u| u != "root"),
            "{name}: runs as root"
        );
        assert!(is("NoNewPrivileges", "yes"), "{name}: NoNewPrivileges");
        assert!(
            is("ProtectSystem", "strict"),
            "{name}: a read-only file system"
        );
        assert!(is("ProtectHome", "yes"), "{name}: ProtectHome");
        assert!(is("CapabilityBoundingSet", ""), "{name}: no capabilities");
        assert!(keys.contains_key("StateDirectory"), "{name}: its state dir");
        assert!(is("KillSignal", "SIGTERM"), "{name}: drains on SIGTERM");
        let stop: HumanDuration = keys
            .get("TimeoutStopSec")
            .unwrap_or_else(|| panic!("{name}: no TimeoutStopSec"))
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            stop.0 > drain * 2,
            "{name}: TimeoutStopSec {stop} is not well past the drain ({drain:?})"
        );
        assert!(
            !text.contains("MASSIVE_API_KEY="),
            "{name}: a secret in the unit"
        );
    }
}

#[test]
fn every_unit_starts_the_server_with_flags_it_has() {
    let example = example_config();
    for (name, text) in services() {
        let exec = service_keys(&text)
            .get("ExecStart")
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no ExecStart"));
        let exec = exec
            .replace("%i", "9999")
            .replace("/etc/flowtape/server.toml", &example.to_string_lossy());
        let args: Vec<&str> = exec.split_whitespace().collect();
        assert!(args[0].ends_with("/flowtape-server"), "{name}: {exec}");
        // The unit's own command line, pointed at a Redis that is not there:
        // it must get as far as connecting (exit 1, naming the URL), not be
        // refused by the argument parser (exit 2) or by the config.
        let out = Command::new(env!("CARGO_BIN_EXE_flowtape-server"))
            .args(&args[1..])
            .args(["--redis", "redis://127.0.0.1:1"])
            // As the secrets file gives it (the archive's unit needs it).
            .env(
                "FLOWTAPE_POSTGRES",
                "postgres://flowtape@127.0.0.1:1/flowtape",
            )
            .env("FLOWTAPE_LOG", "off")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {exec}: {stderr}");
        assert!(
            stderr.contains("redis://127.0.0.1:1"),
            "{name}: {exec}: {stderr}"
        );
    }
}

#[test]
fn systemd_analyze_finds_nothing_to_say_where_it_is_installed() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: lint skipped, structure checked above");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut to_check = Vec::new();
    for (name, text) in services() {
        // A real binary path, and templates as an instance.
        let text = text.replace(
            "/usr/local/bin/flowtape-server",
            env!("CARGO_BIN_EXE_flowtape-server"),
        );
        let name = name.replace("@.", "@9999.");
        let path = dir.path().join(&name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        to_check.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&to_check)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(out.status.success() && complaints.is_empty(), "{stderr}");
}
