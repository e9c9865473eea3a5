//! `[archive]`: the archive role's PostgreSQL and what it keeps
//! (`docs/archive.md`). The role runs with `flowtape-server archive`, and
//! within `run` when `postgres` is set.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::archive::{ArchiveConfig, RetentionMode};

/// Where `flowtape-server archive` serves `/metrics` and `/healthz` by default.
pub const ARCHIVE_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8768);

#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveSection {
    /// PostgreSQL URL of the archive: postgres://user:password@host:port/db
    /// (unset: no archive; `run` starts one when it is set).
    #[arg(long, env = "FLOWTAPE_POSTGRES", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// Events written per transaction, at most.
    #[arg(long = "archive-batch-size")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Trading days kept in the archive (older day partitions are removed); 0 keeps everything.
    #[arg(long = "archive-retention-days")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// What retention does with an old day partition: drop it, or detach it (kept as a table).
    #[arg(long = "archive-retention-mode", value_parser = parse_mode)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_mode: Option<RetentionMode>,
    /// Address for the archive role's /metrics and /healthz.
    #[arg(long = "archive-metrics-listen")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

fn parse_mode(s: &str) -> Result<RetentionMode, String> {
    match s {
        "drop" => Ok(RetentionMode::Drop),
        "detach" => Ok(RetentionMode::Detach),
        _ => Err(format!("{s:?} is not a retention mode: drop or detach")),
    }
}

impl ArchiveSection {
    pub(super) fn defaults() -> ArchiveSection {
        let d = ArchiveConfig::new("");
        ArchiveSection {
            postgres: None,
            batch_size: Some(d.batch_size),
            retention_days: Some(d.retention_days),
            retention_mode: Some(d.retention_mode),
            metrics_listen: Some(ARCHIVE_METRICS_LISTEN),
        }
    }

    /// The role's configuration if a PostgreSQL URL is set; a bad value is
    /// `Err((key, message))`.
    pub(super) fn archive_config(&self) -> Result<Option<ArchiveConfig>, (&'static str, String)> {
        let Some(url) = &self.postgres else {
            return Ok(None);
        };
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| ("postgres", format!("not a PostgreSQL URL: {e}")))?;
        let d = ArchiveConfig::new(url.clone());
        let batch_size = self.batch_size.unwrap_or(d.batch_size);
        if !(1..=100_000).contains(&batch_size) {
            return Err(("batch_size", "must be between 1 and 100000".into()));
        }
        Ok(Some(ArchiveConfig {
            batch_size,
            retention_days: self.retention_days.unwrap_or(d.retention_days),
            retention_mode: self.retention_mode.unwrap_or(d.retention_mode),
            ..d
        }))
    }
}
