//! A day's secondary indexes, built once the day is over.
//!
//! A day partition is written with its primary key only (an append at the
//! right edge); inserting into four more B-trees keyed all over the place
//! cost six times as much per event as the append, and capped the archive
//! well below the firehose. The gateway reads a day from the archive only
//! once the flow stream no longer holds it (24 h by default), so the day
//! being written needs no more. [`index_finished_days`] builds every
//! [`DAY_INDEXES`] index a finished day lacks (`CREATE INDEX CONCURRENTLY`,
//! so writes go on), rebuilding one a crash left invalid; [`run`] does it
//! in the archive role, at start, whenever the writer begins a new day, and
//! every [`CHECK_EVERY`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_core::date::{market_instant_ms, Date};
use tokio::sync::Notify;
use tokio_postgres::Client;

use super::role::ArchiveStats;
use super::{partitions, writer, ArchiveConfig, ArchiveError};
use crate::shutdown::Shutdown;

/// A secondary index of every finished day: its name after the partition's
/// (`flow_events_YYYYMMDD_<suffix>`), and its key.
pub struct DayIndex {
    pub suffix: &'static str,
    pub key: &'static str,
}

/// The questions traders ask of past days: by ticker and time, by contract
/// and time, by premium; and the gateway's history pages of a few tickers,
/// read in cursor order (`upper(sym)`: the filter ignores the case of `sym`).
pub const DAY_INDEXES: [DayIndex; 4] = [
    DayIndex {
        suffix: "sym_ts",
        key: "(sym, ts)",
    },
    DayIndex {
        suffix: "occ_ts",
        key: "(occ, ts)",
    },
    DayIndex {
        suffix: "premium",
        key: "(premium DESC)",
    },
    DayIndex {
        suffix: "sym_cursor",
        key: "(upper(sym), cursor_ms, cursor_seq)",
    },
];

/// How long after a day's end (midnight, New York) its events may still
/// arrive (a processor catching up); the day is indexed after that.
pub const LATE_EVENTS: Duration = Duration::from_secs(15 * 60);
/// How often the archive role looks for finished days to index.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The name of `index` on `day`'s partition.
pub fn index_name(day: Date, index: &DayIndex) -> String {
    format!("{}_{}", partitions::name(day), index.suffix)
}

/// Whether `day` is over at `now_ms`, its late events included.
pub fn is_finished(day: Date, now_ms: i64) -> bool {
    let late = i64::try_from(LATE_EVENTS.as_millis()).unwrap_or(i64::MAX);
    now_ms >= market_instant_ms(day.add_days(1), 0, 0).saturating_add(late)
}

/// Builds the indexes that the partitions of days finished at `now_ms`
/// lack, leaving out days before `kept_from` (retention removes those:
/// building an index on a partition being dropped deadlocks with it);
/// returns the days that gained any. An index left invalid (a build
/// interrupted by a crash) is dropped and built again.
pub async fn index_finished_days(
    client: &Client,
    now_ms: i64,
    kept_from: Option<Date>,
) -> Result<Vec<Date>, ArchiveError> {
    let mut indexed = Vec::new();
    for day in partitions::list(client).await? {
        if !is_finished(day, now_ms) || kept_from.is_some_and(|first| day < first) {
            continue;
        }
        let table = partitions::name(day);
        let have = client
            .query(
                "SELECT c.relname, i.indisvalid FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = to_regclass($1::text)",
                &[&table],
            )
            .await?;
        let valid = |name: &str| {
            have.iter()
                .find(|r| r.get::<_, &str>(0) == name)
                .map(|r| r.get::<_, bool>(1))
        };
        let started = Instant::now();
        let mut built = 0;
        for index in &DAY_INDEXES {
            let name = index_name(day, index);
            match valid(&name) {
                Some(true) => continue,
                Some(false) => {
                    tracing::warn!(index = %name, "archive: rebuilding an index left invalid");
                    client
                        .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                        .await?;
                }
                None => {}
            }
            // Not in a transaction: CONCURRENTLY lets writes go on.
            client
                .batch_execute(&format!(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} {}",
                    index.key
                ))
                .await?;
            built += 1;
        }
        if built > 0 {
            tracing::info!(
                partition = %table,
                indexes = built,
                seconds = started.elapsed().as_secs_f64(),
                "archive: finished day indexed"
            );
            indexed.push(day);
        }
    }
    Ok(indexed)
}

/// Indexes finished days until `shutdown`: at start, then on each
/// `new_day` notice and every [`CHECK_EVERY`], on a connection of its own;
/// failures are logged and counted, and tried again next time. Days the
/// retention of `config` removes are left alone.
pub async fn run(
    config: ArchiveConfig,
    stats: Arc<ArchiveStats>,
    new_day: Arc<Notify>,
    shutdown: Shutdown,
) {
    loop {
        let round = async {
            let client = writer::open(&config.postgres_url).await?;
            index_finished_days(&client, super::now_ms(), super::oldest_kept(&config)).await
        };
        tokio::select! {
            done = round => match done {
                Ok(days) => {
                    stats.days_indexed.fetch_add(days.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!("archive: cannot index finished days: {e}; trying again in {CHECK_EVERY:?}");
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            _ = shutdown.wait() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = new_day.notified() => {}
            _ = shutdown.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use flowtape_core::date::market_date;

    use super::*;

    #[test]
    fn a_day_is_finished_a_quarter_hour_after_its_midnight() {
        let day = Date::from_ymd(2026, 5, 4).unwrap_or_else(|e| panic!("{e}"));
        let midnight = market_instant_ms(day.add_days(1), 0, 0);
        assert!(!is_finished(day, midnight));
        assert!(!is_finished(day, midnight + 14 * 60_000));
        assert!(is_finished(day, midnight + 15 * 60_000));
        assert_eq!(market_date(midnight - 1), day);
        assert_eq!(
            index_name(day, &DAY_INDEXES[3]),
            "flow_events_20260504_sym_cursor"
        );
    }
}
