use super::*;

fn file(text: &str) -> Result<ServerConfig, ConfigError> {
    ServerConfig::parse_file(text, Path::new("/etc/flowtape/server.toml"))
}

fn resolve(text: &str, flags: ServerConfig) -> Result<Resolved, ConfigError> {
    let dir = tempfile::tempdir().map_err(|e| ConfigError::Internal(e.to_string()))?;
    let path = dir.path().join("server.toml");
    std::fs::write(&path, text).map_err(|e| ConfigError::Internal(e.to_string()))?;
    Resolved::load(Some(&path), flags)
}

fn error(r: Result<impl fmt::Debug, ConfigError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_example_file_is_valid_and_names_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/server.example.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let resolved =
        Resolved::load(Some(&path), ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    resolved.check(Roles::ALL).unwrap_or_else(|e| panic!("{e}"));
    // Every key that has a default appears in the example, commented or not,
    // and the example's values are the defaults.
    assert_eq!(
        resolved.config,
        ServerConfig::defaults(),
        "the example sets the defaults"
    );
    let uncommented: String = text
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .filter(|r| r.contains(" = "))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let all = toml::Table::try_from(ServerConfig::defaults()).unwrap_or_default();
    for (section, keys) in &all {
        let Some(keys) = keys.as_table() else {
            continue;
        };
        for (key, value) in keys {
            if let Some(inner) = value.as_table() {
                for inner_key in inner.keys() {
                    assert!(
                        uncommented.contains(&format!("\n{inner_key} = ")),
                        "{section}.{key}.{inner_key} is not documented in the example"
                    );
                }
            } else {
                assert!(
                    uncommented.contains(&format!("\n{key} = ")),
                    "{section}.{key} is not documented in the example"
                );
            }
        }
    }
    for optional in [
        "auth_file",
        "tls_cert",
        "tls_key",
        "conditions",
        "replay",
        "oi_file",
        "massive_key",
        "massive_stocks_url",
        "postgres",
    ] {
        assert!(
            uncommented.contains(&format!("\n{optional} = ")),
            "{optional} is not documented in the example"
        );
    }
}

#[test]
fn flags_beat_the_file_which_beats_the_defaults() {
    let text = "[bus]\nshards = 4\nnamespace = \"desk\"\n[detection]\nblock_min_size = 250\n";
    let flags = ServerConfig {
        bus: BusSection {
            shards: Some(12),
            ..BusSection::default()
        },
        ..ServerConfig::default()
    };
    let r = resolve(text, flags).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.config.bus.shards, Some(12), "the flag wins");
    assert_eq!(
        r.config.bus.namespace.as_deref(),
        Some("desk"),
        "the file beats the default"
    );
    assert_eq!(r.config.bus.raw_max_len, BusSection::defaults().raw_max_len);
    let detection = r.config.detection.clone().unwrap_or_default();
    assert_eq!(detection.block_min_size, 250);
    assert_eq!(
        detection.sweep_window_ms,
        DetectionConfig::default().sweep_window_ms
    );
    let p = r.processor_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.detection.block_min_size, 250,
        "the processor gets the file's threshold"
    );
}

#[test]
fn unknown_keys_are_named_with_their_line_and_a_suggestion() {
    let e = error(file(
        "[bus]\nshards = 4\n\n[detection]\nsweep_windw_ms = 30\n",
    ));
    assert!(
        e.starts_with("/etc/flowtape/server.toml:5:1: `detection.sweep_windw_ms`: unknown key"),
        "{e}"
    );
    assert!(e.ends_with("did you mean `sweep_window_ms`?"), "{e}");
    let e = error(file("[detecton]\nblock_min_size = 1\n"));
    assert!(
        e.contains(":1:") && e.contains("did you mean `detection`?"),
        "{e}"
    );
    let e = error(file("[detection.score]\ngolden_points = 8\n"));
    assert!(
        e.contains(":2:") && e.contains("`detection.score.golden_points`"),
        "{e}"
    );
    assert!(
        e.contains("valid here: premium, kind"),
        "no near key, so the valid ones: {e}"
    );
    let e = error(file(
        "[gateway]\nlisten = \"127.0.0.1:9000\"\nmax_conections = 5\n",
    ));
    assert!(
        e.contains(":3:") && e.contains("did you mean `max_connections`?"),
        "{e}"
    );
}

#[test]
fn wrong_types_name_the_key_and_line() {
    let e = error(file("[bus]\n\nshards = \"many\"\n"));
    assert!(e.starts_with("/etc/flowtape/server.toml:3:"), "{e}");
    assert!(e.contains("`bus.shards`"), "{e}");
    let e = error(file("[gateway]\nlisten = \"localhost\"\n"));
    assert!(e.contains(":2:") && e.contains("`gateway.listen`"), "{e}");
    let e = error(file("[bus]\nflow_retention = \"3 weeks\"\n"));
    assert!(e.contains(":2:") && e.contains("flow_retention"), "{e}");
    let e = error(file("bus = 3\n"));
    assert!(e.contains(":1:"), "{e}");
    let e = error(file("[bus\n"));
    assert!(e.contains(":1:"), "{e}");
}

#[test]
fn out_of_range_values_name_the_file_line_and_key() {
    let text = "[detection]\nsweep_window_ms = 5000\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let e = error(r.check(Roles::ALL));
    assert!(
        e.contains("server.toml:2: detection.sweep_window_ms:"),
        "{e}"
    );
    let text = "[detection.score]\ngolden = 50\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let e = error(r.check(Roles::ALL));
    assert!(
        e.contains("server.toml:1: detection.score: the score's weights add up to 142"),
        "{e}"
    );
    let text = "[bus]\nshards = 0\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(error(r.check(Roles::ALL)).contains("server.toml:2: bus.shards: 0 is not 1 to 1024"));
    let text = "[process]\nlease_ttl = \"500ms\"\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(error(r.check(Roles::ALL)).contains("process.lease_ttl: 500ms is under 1s"));
    // A bad value set by a flag is blamed on the flag.
    let flags = ServerConfig {
        gateway: GatewaySection {
            listen: "0.0.0.0:8765".parse().ok(),
            ..GatewaySection::default()
        },
        ..ServerConfig::default()
    };
    let r = resolve("", flags).unwrap_or_else(|e| panic!("{e}"));
    let e = error(r.check(Roles::ALL));
    assert!(
        e.starts_with("--listen (command line or environment): gateway.listen: refusing"),
        "{e}"
    );
    // ...but only for the roles that use it.
    assert!(r.check(Roles::INGEST).is_ok());
}

#[test]
fn missing_files_named_in_the_config_stop_the_start() {
    let text = "[gateway]\nauth_file = \"tokens.toml\"\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let e = error(r.check(Roles::ALL));
    assert!(e.contains("server.toml:2: gateway.auth_file:"), "{e}");
    let text = "[process]\nconditions = \"nope.toml\"\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(error(r.check(Roles::ALL)).contains("process.conditions: cannot read"));
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let c = file("[gateway]\nauth_file = \"tokens.toml\"\ntls_cert = \"/abs/cert.pem\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.gateway.auth_file,
        Some(PathBuf::from("/etc/flowtape/tokens.toml"))
    );
    assert_eq!(c.gateway.tls_cert, Some(PathBuf::from("/abs/cert.pem")));
}

#[test]
fn show_redacts_secrets() {
    let text = "[bus]\nredis = \"redis://app:hunter2@10.0.0.5:6379\"\n[feed]\nmassive_key = \"sk-live-123\"\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let shown = r.config.show();
    assert!(
        !shown.contains("hunter2") && !shown.contains("sk-live-123"),
        "{shown}"
    );
    assert!(shown.contains("redis://app:***@10.0.0.5:6379"), "{shown}");
    assert!(shown.contains("massive_key = \"<redacted>\""), "{shown}");
    // What it prints is itself a valid config file.
    let again = file(&shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(again.bus.shards, ServerConfig::defaults().bus.shards);
    assert!(
        ServerConfig {
            bus: BusSection {
                redis: Some("redis+cluster://u:pw@a:1,b:2".into()),
                ..BusSection::default()
            },
            ..ServerConfig::default()
        }
        .show()
        .contains("redis+cluster://u:***@a:1,b:2"),
        "cluster seeds' password is hidden too"
    );
}

#[test]
fn the_archive_runs_only_with_a_postgres_url_and_its_password_is_hidden() {
    let none = resolve("", ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(none.archive_config(), Ok(None)));
    let text = "[archive]\npostgres = \"postgres://flow:s3cret@db:5432/flow\"\n\
                retention_days = 30\nretention_mode = \"detach\"\n";
    let r = resolve(text, ServerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let a = r.archive_config().unwrap_or_else(|e| panic!("{e}"));
    let a = a.unwrap_or_else(|| panic!("no archive"));
    assert_eq!(a.retention_days, 30);
    assert_eq!(a.retention_mode, crate::archive::RetentionMode::Detach);
    assert_eq!(a.batch_size, 5000);
    let shown = r.config.show();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("postgres://flow:***@db:5432/flow"),
        "{shown}"
    );

    let bad = resolve(
        "[archive]\npostgres = \"postgres://db/flow\"\nbatch_size = 0\n",
        ServerConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let message = error(bad.check(Roles::ALL));
    assert!(message.contains("archive.batch_size"), "{message}");
    assert!(message.contains("server.toml:3"), "{message}");
}
