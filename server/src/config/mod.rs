//! The server's configuration: one TOML file for every role
//! (`flowtape-server --config server.toml`), under the command line.
//!
//! [`ServerConfig`] is both the file as written and each layer laid on it:
//! flags beat the environment, which beats the file, which beats the
//! defaults ([`Resolved::load`]). Every key is documented, with its default,
//! in `assets/server.example.toml`. A file with an unknown key, a wrong type
//! or a value out of range is refused with the file, line and key named (and
//! the nearest valid key for a misspelling); [`Resolved::node_config`] builds
//! every role's configuration before anything starts, so nothing half-starts.

mod archive;
mod duration;
mod sections;
mod size;

use std::fmt;
use std::path::{Path, PathBuf};

use flowtape_core::conditions::ConditionTable;
use flowtape_core::detect::DetectionConfig;
use flowtape_core::filter::suggest;
use flowtape_core::text_position::line_col;
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

pub use archive::{ArchiveSection, ARCHIVE_METRICS_LISTEN};
pub use duration::HumanDuration;
pub use sections::{
    BusSection, FeedKind, FeedSection, GatewaySection, LogFormat, LogSection, MetricsSection,
    ProcessSection,
};
pub use size::ByteSize;

use crate::archive::writer::redact as redact_postgres;
use crate::bus::redis::redact_url;
use crate::bus::BusConfig;
use crate::feed::{Pace, SimConfig};
use crate::gateway::{AuthConfig, GatewayConfig, TlsConfig};
use crate::node::{FeedChoice, NodeConfig};
use crate::pipeline::ProcessorConfig;

/// What `config show` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// The whole configuration, or one layer of it (`None`: not set there).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub log: LogSection,
    pub bus: BusSection,
    pub feed: FeedSection,
    pub process: ProcessSection,
    /// Every detection threshold and score weight (`docs/detection.md`,
    /// `docs/scoring.md`); a partial table keeps the other defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionConfig>,
    pub gateway: GatewaySection,
    pub metrics: MetricsSection,
    pub archive: ArchiveSection,
}

impl ServerConfig {
    /// Every setting that has a default, at its default.
    pub fn defaults() -> ServerConfig {
        ServerConfig {
            log: LogSection {
                filter: Some("info".into()),
                format: Some(LogFormat::Text),
            },
            bus: BusSection::defaults(),
            feed: FeedSection::defaults(),
            process: ProcessSection::defaults(),
            detection: Some(DetectionConfig::default()),
            gateway: GatewaySection::defaults(),
            metrics: MetricsSection::defaults(),
            archive: ArchiveSection::defaults(),
        }
    }

    /// Parses a config file's text. `path` names it in errors, and relative
    /// paths in it are taken relative to its directory.
    pub fn parse_file(text: &str, path: &Path) -> Result<ServerConfig, ConfigError> {
        let mut config: ServerConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            let message = e.message().trim().to_string();
            let (key, message, suggestion) = match unknown_field(&message) {
                Some((word, expected)) => {
                    let near = suggest::nearest(&word, expected.iter().map(String::as_str), 3);
                    let message = match near {
                        Some(_) => "unknown key".to_string(),
                        None => format!("unknown key; valid here: {}", expected.join(", ")),
                    };
                    let key = key_at(text, span.start).unwrap_or(word);
                    (Some(key), message, near.map(String::from))
                }
                None => (key_at(text, span.start), message, None),
            };
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                key,
                message,
                suggestion,
            }
        })?;
        if let Some(dir) = path.parent() {
            config.rebase_paths(dir);
        }
        Ok(config)
    }

    /// Makes the relative paths in this layer relative to `dir`.
    fn rebase_paths(&mut self, dir: &Path) {
        let paths = [
            &mut self.feed.replay,
            &mut self.feed.oi_file,
            &mut self.process.conditions,
            &mut self.gateway.auth_file,
            &mut self.gateway.tls_cert,
            &mut self.gateway.tls_key,
        ];
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// `over` laid on top of `self`: every key `over` sets wins.
    fn overlay(&self, over: &ServerConfig) -> Result<ServerConfig, ConfigError> {
        let internal = |e: &dyn fmt::Display| ConfigError::Internal(e.to_string());
        let mut base = toml::Table::try_from(self).map_err(|e| internal(&e))?;
        let top = toml::Table::try_from(over).map_err(|e| internal(&e))?;
        merge(&mut base, top);
        base.try_into().map_err(|e| internal(&e))
    }

    /// The configuration as TOML, with secrets replaced by [`REDACTED`].
    pub fn show(&self) -> String {
        let mut shown = self.clone();
        if shown.feed.massive_key.is_some() {
            shown.feed.massive_key = Some(REDACTED.into());
        }
        shown.bus.redis = shown.bus.redis.as_deref().map(redact_url);
        shown.archive.postgres = shown.archive.postgres.as_deref().map(redact_postgres);
        toml::to_string(&shown)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// Deep-merges `top` into `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Which roles a process runs: what its configuration must be valid for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub process: bool,
    pub gateway: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        ingest: true,
        process: true,
        gateway: true,
    };
    pub const INGEST: Roles = Roles {
        ingest: true,
        process: false,
        gateway: false,
    };
    pub const PROCESS: Roles = Roles {
        ingest: false,
        process: true,
        gateway: false,
    };
    pub const GATEWAY: Roles = Roles {
        ingest: false,
        process: false,
        gateway: true,
    };
}

/// The effective configuration, and the layers it came from (for errors
/// that say where a bad value was set).
#[derive(Debug)]
pub struct Resolved {
    pub config: ServerConfig,
    file: Option<(PathBuf, String)>,
    flags: ServerConfig,
}

impl Resolved {
    /// Defaults, then the file at `path` (if any), then `flags` (the command
    /// line and environment, as clap parsed them).
    pub fn load(path: Option<&Path>, flags: ServerConfig) -> Result<Resolved, ConfigError> {
        let mut config = ServerConfig::defaults();
        let mut file = None;
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let layer = ServerConfig::parse_file(&text, path)?;
            config = config.overlay(&layer)?;
            file = Some((path.to_path_buf(), text));
        }
        let config = config.overlay(&flags)?;
        Ok(Resolved {
            config,
            file,
            flags,
        })
    }

    /// Where `section.key` was set, for an error about its value.
    fn origin(&self, section: &str, key: &str) -> String {
        let top = key.split('.').next().unwrap_or(key);
        let flags = toml::Table::try_from(&self.flags).unwrap_or_default();
        let in_flags = flags
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key(top));
        if in_flags {
            let flag = match (section, top) {
                ("feed", "kind") => "feed".to_string(),
                ("log", "filter") => "log".to_string(),
                ("log", "format") => "log-format".to_string(),
                ("archive", name) if name != "postgres" => {
                    format!("archive-{}", name.replace('_', "-"))
                }
                (_, name) => name.replace('_', "-"),
            };
            return format!("--{flag} (command line or environment)");
        }
        if let Some((path, text)) = &self.file {
            // The key's own line, else its nearest table's (a weight that
            // was not written still makes the written ones add up wrong).
            let mut dotted = vec![section];
            dotted.extend(key.split('.'));
            while !dotted.is_empty() {
                if let Some(line) = key_line(text, &dotted) {
                    return format!("{}:{line}", path.display());
                }
                dotted.pop();
            }
        }
        "the default".into()
    }

    fn invalid(&self, section: &str, key: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            at: self.origin(section, key),
            key: format!("{section}.{key}"),
            message: message.to_string(),
        }
    }

    /// Checks every setting `roles` use, without starting anything.
    pub fn check(&self, roles: Roles) -> Result<(), ConfigError> {
        self.archive_config()?;
        self.node_config(roles).map(drop)
    }

    /// The archive role's settings, checked; `None` when no PostgreSQL URL is set.
    pub fn archive_config(&self) -> Result<Option<crate::archive::ArchiveConfig>, ConfigError> {
        self.config
            .archive
            .archive_config()
            .map_err(|(key, message)| self.invalid("archive", key, message))
    }

    /// The bus settings, checked.
    pub fn bus_config(&self) -> Result<BusConfig, ConfigError> {
        let bus = self.config.bus.bus_config();
        if !(1..=1024).contains(&bus.shards) {
            return Err(self.invalid("bus", "shards", format!("{} is not 1 to 1024", bus.shards)));
        }
        let ms = bus.wait_timeout.as_millis();
        if !(1..=60_000).contains(&ms) {
            return Err(self.invalid("bus", "wait_timeout_ms", format!("{ms} is not 1 to 60000")));
        }
        for (key, value) in [
            ("flow_max_len", bus.flow_max_len),
            ("raw_max_len", bus.raw_max_len),
        ] {
            if value == 0 {
                return Err(self.invalid("bus", key, "must be at least 1"));
            }
        }
        if bus.namespace.is_empty() {
            return Err(self.invalid("bus", "namespace", "must not be empty"));
        }
        Ok(bus)
    }

    /// Every role's configuration, each checked; the first problem is returned.
    pub fn node_config(&self, roles: Roles) -> Result<NodeConfig, ConfigError> {
        self.bus_config()?;
        let feed = if roles.ingest {
            self.feed_choice()?
        } else {
            None
        };
        let process = roles.process.then(|| self.processor_config()).transpose()?;
        let gateway = roles.gateway.then(|| self.gateway_config()).transpose()?;
        Ok(NodeConfig {
            feed,
            process,
            gateway,
        })
    }

    /// The sim's settings; a live feed starts its clock now, a recording at
    /// the fixed default start so the same seed always writes the same file.
    pub fn sim_config(&self, live: bool) -> Result<SimConfig, ConfigError> {
        let feed = &self.config.feed;
        let mut config = SimConfig {
            seed: feed.sim_seed.unwrap_or(1),
            rate: feed.sim_rate.unwrap_or(1000.0),
            ..SimConfig::default()
        };
        if live {
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(config.start_ns);
            config = config.starting_at(now_ns);
        }
        config
            .validate()
            .map_err(|e| self.invalid("feed", "sim_rate", e))?;
        Ok(config)
    }

    /// The feed an ingest runs (`None` for `--feed none`).
    pub fn feed_choice(&self) -> Result<Option<FeedChoice>, ConfigError> {
        let feed = &self.config.feed;
        match feed.kind.unwrap_or(FeedKind::Sim) {
            FeedKind::None => Ok(None),
            FeedKind::Sim => Ok(Some(FeedChoice::Sim(self.sim_config(true)?))),
            FeedKind::Replay => {
                let path = feed.replay.clone().ok_or_else(|| {
                    self.invalid(
                        "feed",
                        "kind",
                        "the replay feed needs a file: --replay PATH",
                    )
                })?;
                let pace = Pace::from_speed(feed.replay_speed.unwrap_or(1.0))
                    .map_err(|e| self.invalid("feed", "replay_speed", e))?;
                Ok(Some(FeedChoice::Replay { path, pace }))
            }
            FeedKind::Massive => {
                let config = feed
                    .massive_config()
                    .map_err(|e| self.invalid("feed", "massive_key", e))?;
                Ok(Some(FeedChoice::Massive(Box::new(config))))
            }
        }
    }

    /// A processor's settings, with a fresh owner name; reads the condition table.
    pub fn processor_config(&self) -> Result<ProcessorConfig, ConfigError> {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut config = ProcessorConfig::new(format!("{host}-{}-{nonce:x}", std::process::id()));
        let section = &self.config.process;
        if let Some(ttl) = section.lease_ttl {
            if ttl.0 < std::time::Duration::from_secs(1) {
                return Err(self.invalid("process", "lease_ttl", format!("{ttl} is under 1s")));
            }
            config.lease_ttl = ttl.0;
        }
        if let Some(max_lag) = section.max_lag {
            if max_lag == 0 {
                return Err(self.invalid("process", "max_lag", "must be at least 1"));
            }
            config.max_lag = max_lag;
        }
        if let Some(path) = &section.conditions {
            let text = std::fs::read_to_string(path).map_err(|e| {
                self.invalid(
                    "process",
                    "conditions",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let origin = format!("condition table {}", path.display());
            config.conditions = ConditionTable::from_toml_str(&text, &origin)
                .map_err(|e| self.invalid("process", "conditions", e))?;
        }
        let detection = self.config.detection.clone().unwrap_or_default();
        detection
            .validate()
            .map_err(|e| self.invalid("detection", &e.key(), e))?;
        config.detection = detection;
        Ok(config)
    }

    /// A gateway's settings; reads the token and TLS files.
    pub fn gateway_config(&self) -> Result<GatewayConfig, ConfigError> {
        let section = &self.config.gateway;
        let mut config = section.limits();
        if let Some(path) = &section.auth_file {
            config.auth =
                Some(AuthConfig::load(path).map_err(|e| self.invalid("gateway", "auth_file", e))?);
        }
        config.tls = match (&section.tls_cert, &section.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (Some(_), None) => {
                return Err(self.invalid("gateway", "tls_cert", "needs tls_key as well"))
            }
            (None, Some(_)) => {
                return Err(self.invalid("gateway", "tls_key", "needs tls_cert as well"))
            }
            (None, None) => None,
        };
        config.archive = self
            .archive_config()?
            .map(|a| crate::archive::ArchiveUrl(a.postgres_url));
        config
            .validate()
            .map_err(|e| self.invalid("gateway", e.key(), e))?;
        Ok(config)
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {}{message}{}",
        path.display(),
        key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default(),
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The key at fault, when it could be told.
        key: Option<String>,
        message: String,
        /// The nearest valid key to a misspelled one.
        suggestion: Option<String>,
    },
    /// A value that parses but cannot be used; `at` says where it was set
    /// (`server.toml:12`, a flag, or the default).
    #[error("{at}: {key}: {message}")]
    Invalid {
        at: String,
        key: String,
        message: String,
    },
    #[error("internal configuration error: {0}")]
    Internal(String),
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" (or "expected
/// `a`"), the word written and the words expected.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (word, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    Some((word.to_string(), expected))
}

/// The dotted key whose key or value holds byte `offset` (the deepest one).
fn key_at(text: &str, offset: usize) -> Option<String> {
    fn walk(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table {
            let covers = key.span().contains(&offset) || value.span().contains(&offset);
            if let DeValue::Table(inner) = value.get_ref() {
                path.push(key.get_ref().to_string());
                if walk(inner, offset, path) {
                    return true;
                }
                path.pop();
            }
            if covers && !matches!(value.get_ref(), DeValue::Table(_)) {
                path.push(key.get_ref().to_string());
                return true;
            }
        }
        false
    }
    let table = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    walk(table.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// The 1-based line of the key at `path` in the file, if it is there.
fn key_line(text: &str, path: &[&str]) -> Option<usize> {
    let table = DeTable::parse(text).ok()?;
    let mut current = table.get_ref();
    let (last, parents) = path.split_last()?;
    for name in parents {
        let (_, value) = current.iter().find(|(k, _)| k.get_ref() == *name)?;
        match value.get_ref() {
            DeValue::Table(inner) => current = inner,
            _ => return None,
        }
    }
    let (key, _) = current.iter().find(|(k, _)| k.get_ref() == *last)?;
    Some(line_col(text, key.span().start).0)
}

#[cfg(test)]
mod tests;
