//! The archive role: every flow event kept in PostgreSQL past the flow
//! stream's retention (`docs/archive.md`).
//!
//! [`run`] reads the flow stream after the cursor PostgreSQL says is archived
//! and writes each batch with its new cursor in one transaction
//! ([`writer`]), so a crash anywhere replays at most a batch that is then
//! skipped row by row: every event is archived exactly once. While
//! PostgreSQL is away it holds its place and retries with backoff; events
//! the stream trimmed before they were archived are reported as lost.
//! Schema: [`schema`] (migrations), [`partitions`] (one per trading day,
//! retention), [`indexing`] (a day's indexes once it is over), [`row`] (an
//! event as a row); [`service`] runs the role
//! with its metrics. [`query`] reads pages and past days' totals back for
//! the gateway, pushing filters down as SQL ([`pushdown`]).

pub mod indexing;
pub mod partitions;
pub mod pushdown;
pub mod query;
pub mod role;
pub mod row;
pub mod schema;
pub mod service;
pub mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, Date};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use partitions::RetentionMode;
pub use query::{
    ArchivePage, ArchiveReadMetrics, ArchiveReader, ArchiveUrl, Held, PageSide, QueryError,
};
pub use role::{ArchiveRole, ArchiveStats};
pub use writer::Writer;

use crate::bus::{Bus, BusError, FlowBounds};
use crate::shutdown::Shutdown;
use row::ArchiveRow;

/// The first and the longest wait between attempts while PostgreSQL fails.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        url: String,
        source: tokio_postgres::Error,
    },
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("archive schema version {found} is newer than this flowtape (knows up to {known}): upgrade flowtape")]
    SchemaTooNew { found: i32, known: i32 },
    #[error("archive schema migration {version} failed: {source}")]
    Migration {
        version: i32,
        source: tokio_postgres::Error,
    },
    #[error("cursor {0} does not fit PostgreSQL's bigint")]
    CursorRange(Cursor),
}

impl ArchiveError {
    /// Errors that retrying cannot cure: the role stops with them.
    fn is_fatal(&self) -> bool {
        match self {
            ArchiveError::SchemaTooNew { .. } => true,
            // PostgreSQL refused the SQL (not a lost connection).
            ArchiveError::Migration { source, .. } => source.as_db_error().is_some(),
            _ => false,
        }
    }
}

/// The archive role's settings (`[archive]` in the config file).
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// `postgres://user:password@host:port/db`.
    pub postgres_url: String,
    /// Events read and written per transaction, at most.
    pub batch_size: usize,
    /// Trading days kept (partitions older are removed); 0 keeps everything.
    pub retention_days: u32,
    pub retention_mode: RetentionMode,
    /// How long to wait before reading again when the stream has nothing new.
    pub poll: Duration,
}

impl ArchiveConfig {
    pub fn new(postgres_url: impl Into<String>) -> ArchiveConfig {
        ArchiveConfig {
            postgres_url: postgres_url.into(),
            batch_size: 5000,
            retention_days: 0,
            retention_mode: RetentionMode::Drop,
            poll: Duration::from_millis(100),
        }
    }
}

/// Archives the flow stream of `bus` until `shutdown` fires (the batch in
/// flight is finished first). Returns an error only for what retrying
/// cannot cure (a schema newer than this binary).
pub async fn run(
    bus: Bus,
    config: ArchiveConfig,
    stats: Arc<ArchiveStats>,
    shutdown: Shutdown,
) -> Result<(), ArchiveError> {
    let stream = bus.config().namespace.clone();
    let mut writer: Option<Writer> = None;
    let mut cursor = Cursor::ZERO;
    let mut backoff = BACKOFF.0;
    let mut next_retention = Instant::now();
    // Finished days are indexed beside the writing, once the schema is
    // known good (the first connection migrated it). The indexer stops
    // when `stop_indexer` fires or is dropped (any return).
    let (stop_indexer, indexer_shutdown) = crate::shutdown::channel();
    let new_day = Arc::new(Notify::new());
    let mut indexer = None;
    // The batch being read after a cursor, while the one before is written.
    let mut ahead: Option<(Cursor, JoinHandle<Result<Batch, ReadError>>)> = None;
    while !shutdown.is_triggered() {
        let Some(w) = writer.as_mut() else {
            match connect(&config.postgres_url, &stream).await {
                Ok((w, archived)) => {
                    tracing::info!(%archived, "archive: connected to PostgreSQL, resuming after the archived cursor");
                    cursor = archived;
                    writer = Some(w);
                    indexer.get_or_insert_with(|| {
                        tokio::spawn(indexing::run(
                            config.clone(),
                            stats.clone(),
                            new_day.clone(),
                            indexer_shutdown.clone(),
                        ))
                    });
                    stats.postgres_up.store(true, Ordering::Relaxed);
                    backoff = BACKOFF.0;
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    failed(&stats, &e, &mut backoff, &shutdown).await;
                }
            }
            continue;
        };
        if config.retention_days > 0 && Instant::now() >= next_retention {
            let today = market_date(now_ms());
            match w
                .apply_retention(today, config.retention_days, config.retention_mode)
                .await
            {
                Ok(removed) => {
                    stats
                        .partitions_removed
                        .fetch_add(removed.len() as u64, Ordering::Relaxed);
                    next_retention = Instant::now() + RETENTION_EVERY;
                }
                Err(e) => {
                    writer = None;
                    failed(&stats, &e, &mut backoff, &shutdown).await;
                    continue;
                }
            }
        }
        // The batch after `cursor`: read ahead while the last one was
        // written, or now.
        let batch = match ahead.take() {
            Some((after, next)) if after == cursor => match next.await {
                Ok(read) => read,
                Err(e) => Err(e.into()),
            },
            stale => {
                if let Some((_, next)) = stale {
                    next.abort();
                }
                read_batch(bus.clone(), cursor, config.batch_size, oldest_kept(&config)).await
            }
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!("archive: cannot read the flow stream: {e}");
                stats.errors.fetch_add(1, Ordering::Relaxed);
                sleep_or_shutdown(BACKOFF.1, &shutdown).await;
                continue;
            }
        };
        stats.observe_stream(cursor, &batch.bounds);
        stats.expired.fetch_add(batch.expired, Ordering::Relaxed);
        stats.skipped.fetch_add(batch.skipped, Ordering::Relaxed);
        let Some(through) = batch.through else {
            sleep_or_shutdown(config.poll, &shutdown).await;
            continue;
        };
        // Read and decode the next batch while this one is written.
        ahead = Some((
            through,
            tokio::spawn(read_batch(
                bus.clone(),
                through,
                config.batch_size,
                oldest_kept(&config),
            )),
        ));
        let rows = batch.rows;
        let started = Instant::now();
        match w.write(&rows, through).await {
            Ok(written) => {
                stats.commit_latency.observe(started.elapsed());
                stats
                    .archived
                    .fetch_add(written.inserted, Ordering::Relaxed);
                stats.duplicates.fetch_add(
                    rows.len() as u64 - written.inserted.min(rows.len() as u64),
                    Ordering::Relaxed,
                );
                cursor = written.cursor;
                if written.new_day {
                    new_day.notify_one();
                }
            }
            Err(e) => {
                // Resume from what PostgreSQL says is archived once it is back.
                writer = None;
                failed(&stats, &e, &mut backoff, &shutdown).await;
            }
        }
    }
    if let Some((_, next)) = ahead {
        next.abort();
    }
    stop_indexer.trigger();
    if let Some(indexer) = indexer {
        let _ = indexer.await;
    }
    Ok(())
}

async fn connect(url: &str, stream: &str) -> Result<(Writer, Cursor), ArchiveError> {
    let w = Writer::connect(url, stream).await?;
    let archived = w.archived_cursor().await?;
    Ok((w, archived))
}

/// Why a batch could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The decoding thread failed (it panicked, or the runtime is stopping).
    #[error("decoding a batch: {0}")]
    Decode(#[from] tokio::task::JoinError),
}

/// A batch of the flow stream, decoded into rows.
struct Batch {
    /// The stream's ends, read just before the batch.
    bounds: FlowBounds,
    /// The last entry read (`None`: nothing new).
    through: Option<Cursor>,
    rows: Vec<ArchiveRow>,
    /// Entries of days past the retention, left out.
    expired: u64,
    /// Entries that are not valid events, left out (and logged).
    skipped: u64,
}

/// The days retention has removed (or would at once) are before this.
fn oldest_kept(config: &ArchiveConfig) -> Option<Date> {
    (config.retention_days > 0)
        .then(|| market_date(now_ms()).add_days(-i64::from(config.retention_days)))
}

/// Reads up to `count` entries after `cursor` and decodes them (on a
/// blocking thread: a batch of 5,000 takes tens of milliseconds).
async fn read_batch(
    bus: Bus,
    cursor: Cursor,
    count: usize,
    oldest_kept: Option<Date>,
) -> Result<Batch, ReadError> {
    let bounds = bus.flow_bounds().await?;
    let entries = bus.flow_after(cursor, count).await?;
    let through = entries.last().map(|e| e.id);
    let decode = move || {
        let (mut expired, mut skipped) = (0, 0);
        let rows = entries
            .iter()
            .filter_map(|entry| match ArchiveRow::from_entry(entry) {
                Ok(row) if oldest_kept.is_some_and(|oldest| row.day < oldest) => {
                    expired += 1;
                    None
                }
                Ok(row) => Some(row),
                Err(e) => {
                    tracing::warn!("archive: skipped: {e}");
                    skipped += 1;
                    None
                }
            })
            .collect();
        (rows, expired, skipped)
    };
    let (rows, expired, skipped) = tokio::task::spawn_blocking(decode).await?;
    Ok(Batch {
        bounds,
        through,
        rows,
        expired,
        skipped,
    })
}

/// Counts and logs a PostgreSQL failure, then waits (doubling the wait).
async fn failed(
    stats: &ArchiveStats,
    e: &ArchiveError,
    backoff: &mut Duration,
    shutdown: &Shutdown,
) {
    tracing::warn!("archive: {e}; retrying in {backoff:?}");
    stats.postgres_up.store(false, Ordering::Relaxed);
    stats.errors.fetch_add(1, Ordering::Relaxed);
    sleep_or_shutdown(*backoff, shutdown).await;
    *backoff = (*backoff * 2).min(BACKOFF.1);
}

async fn sleep_or_shutdown(d: Duration, shutdown: &Shutdown) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.wait() => {}
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
