//! Reading the archive back: pages of events next to a cursor, and a past
//! day's premium totals.
//!
//! [`ArchiveReader::page`] answers like the gateway's `history` pages: at
//! most `limit` events matching a filter strictly before or strictly after
//! a cursor, oldest first, having scanned at most `scan_cap` rows; `more`
//! and `next` let a sparse filter go on with the next request. It walks the
//! day partitions by their cursor spans (so each query names its `day`s and
//! PostgreSQL prunes the rest), bounds each step to `scan_cap` rows by the
//! primary key, and fetches the rows the filter's SQL form
//! ([`super::pushdown`]) keeps; the Rust filter then has the last word.
//! Rows that cannot be read back as an event are counted and skipped, with
//! their cursor in a warn log. One connection, shared (queries pipeline);
//! after PostgreSQL goes away it reconnects on the next call, with backoff,
//! and calls in between fail at once with [`QueryError::Unavailable`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_core::day::DayTotals;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use super::partitions;
use super::pushdown::Pushdown;
use super::row::{event_from_row, SqlDate, SELECT_EVENT};
use super::writer::redact;
use super::ArchiveError;
use crate::metrics::{Exposition, Histogram};

/// The first and the longest wait between connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// The longest a connection attempt or one page may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Which side of its cursor a page lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSide {
    /// Strictly before the cursor.
    Before(Cursor),
    /// Strictly after the cursor.
    After(Cursor),
}

/// One page read from the archive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArchivePage {
    /// The matching events, oldest first (each `id` is its cursor).
    pub events: Vec<FlowEvent>,
    /// There may be more on the page's side: ask again from `next`.
    pub more: bool,
    /// Where the next page starts (exclusive), when `more`.
    pub next: Option<Cursor>,
    /// Rows scanned.
    pub scanned: usize,
}

/// What the archive holds: its oldest and newest rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub first_day: Date,
    pub last_day: Date,
    pub first: Cursor,
    pub last: Cursor,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not connected, and not trying again yet (or the attempt failed).
    #[error("the archive is unavailable: {0}")]
    Unavailable(String),
    #[error("archive query: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("archive query timed out after {0:?}")]
    Timeout(Duration),
}

impl From<ArchiveError> for QueryError {
    fn from(e: ArchiveError) -> QueryError {
        match e {
            ArchiveError::Postgres(e) => QueryError::Postgres(e),
            other => QueryError::Unavailable(other.to_string()),
        }
    }
}

/// The reader's metrics (`flowtape_gateway_archive_*` in the gateway's
/// `/metrics`).
#[derive(Debug, Default)]
pub struct ArchiveReadMetrics {
    /// One page or day query, start to answer.
    pub latency: Histogram,
    /// Failed queries and connection attempts.
    pub errors: AtomicU64,
    /// Rows skipped because they could not be read back as an event.
    pub undecodable: AtomicU64,
}

impl ArchiveReadMetrics {
    pub fn render_into(&self, out: &mut Exposition, prefix: &str) {
        out.histogram(
            &format!("{prefix}_archive_query_seconds"),
            "Archive queries (a history page or a past day's totals), start to answer.",
            &self.latency,
        );
        out.counter(
            &format!("{prefix}_archive_errors_total"),
            "Failed archive queries and connection attempts.",
            self.errors.load(Ordering::Relaxed),
        );
        out.counter(
            &format!("{prefix}_archive_undecodable_rows_total"),
            "Archived rows skipped because they could not be read back as an event.",
            self.undecodable.load(Ordering::Relaxed),
        );
    }
}

/// The connection, if any, and when to try again if not.
struct Conn {
    client: Option<Arc<Client>>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// Reads pages and day totals from the archive. See the module docs.
pub struct ArchiveReader {
    url: String,
    conn: Mutex<Conn>,
    metrics: Arc<ArchiveReadMetrics>,
}

/// One day partition's rows by cursor: its oldest and newest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DaySpan {
    day: Date,
    first: Cursor,
    last: Cursor,
}

impl ArchiveReader {
    /// A reader that connects on its first call.
    pub fn new(url: impl Into<String>, metrics: Arc<ArchiveReadMetrics>) -> ArchiveReader {
        ArchiveReader {
            url: url.into(),
            conn: Mutex::new(Conn {
                client: None,
                retry_at: None,
                backoff: BACKOFF.0,
            }),
            metrics,
        }
    }

    /// A reader connected now (for tools and benchmarks).
    pub async fn connect(url: &str) -> Result<ArchiveReader, QueryError> {
        let reader = ArchiveReader::new(url, Arc::default());
        reader.client().await?;
        Ok(reader)
    }

    pub fn metrics(&self) -> &Arc<ArchiveReadMetrics> {
        &self.metrics
    }

    /// At most `limit` events matching `filter` on `side` of its cursor,
    /// oldest first, scanning at most `scan_cap` rows.
    pub async fn page(
        &self,
        side: PageSide,
        limit: usize,
        filter: &Filter,
        scan_cap: usize,
    ) -> Result<ArchivePage, QueryError> {
        self.page_below(side, None, limit, filter, scan_cap).await
    }

    /// [`ArchiveReader::page`] reading only cursors strictly below `below`
    /// (the flow stream's first entry: the stream answers from there).
    pub async fn page_below(
        &self,
        side: PageSide,
        below: Option<Cursor>,
        limit: usize,
        filter: &Filter,
        scan_cap: usize,
    ) -> Result<ArchivePage, QueryError> {
        self.timed(async {
            let client = self.client().await?;
            let spans = spans(&client).await?;
            let walk = Walk {
                client: &client,
                spans: &spans,
                filter,
                limit: limit.max(1),
                metrics: &self.metrics,
            };
            match side {
                PageSide::Before(before) => {
                    let before = below.map_or(before, |b| b.min(before));
                    walk.backwards(before, scan_cap.max(1)).await
                }
                PageSide::After(after) => walk.forwards(after, below, scan_cap.max(1)).await,
            }
        })
        .await
    }

    /// The oldest and newest rows the archive holds; `None` when empty.
    pub async fn held(&self) -> Result<Option<Held>, QueryError> {
        self.timed(async {
            let client = self.client().await?;
            let spans = spans(&client).await?;
            let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
                return Ok(None);
            };
            Ok(Some(Held {
                first_day: first.day,
                last_day: last.day,
                first: spans.iter().map(|s| s.first).min().unwrap_or(first.first),
                last: spans.iter().map(|s| s.last).max().unwrap_or(last.last),
            }))
        })
        .await
    }

    /// The premium totals of `day`'s archived events: per ticker by right
    /// and sentiment, per contract; each event's premium in whole cents
    /// (rounded). `None` when the archive holds no event of that day.
    pub async fn day_totals(&self, day: Date) -> Result<Option<DayTotals>, QueryError> {
        self.timed(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT sym, occ, \"right\", sentiment, \
                     sum(round(premium * 100))::float8 \
                     FROM flow_events WHERE day = $1 GROUP BY sym, occ, \"right\", sentiment",
                    &[&SqlDate(day)],
                )
                .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            let mut totals = DayTotals::default();
            for row in &rows {
                let (sym, occ, right, sentiment): (&str, &str, &str, &str) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                let cents = row.try_get::<_, f64>(4)?.round() as i64;
                let bucket = if right == "P" { "put" } else { "call" };
                let mut counted = totals.add(&format!("{sym}:{bucket}"), cents);
                if let "bull" | "bear" = sentiment {
                    counted &= totals.add(&format!("{sym}:{sentiment}"), cents);
                }
                counted &= totals.add(occ, cents);
                if !counted {
                    self.metrics.undecodable.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Some(totals))
        })
        .await
    }

    /// Runs `query` under the timeout, timing it and counting its failure;
    /// a lost connection is dropped, to reconnect on the next call.
    async fn timed<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, QueryError>>,
    ) -> Result<T, QueryError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(TIMEOUT, query).await {
            Ok(result) => result,
            Err(_) => Err(QueryError::Timeout(TIMEOUT)),
        };
        self.metrics.latency.observe(started.elapsed());
        if let Err(e) = &result {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
            let lost = match e {
                QueryError::Postgres(e) => e.as_db_error().is_none(),
                QueryError::Timeout(_) => true,
                QueryError::Unavailable(_) => false,
            };
            if lost {
                self.conn.lock().await.client = None;
            }
        }
        result
    }

    /// The connection, made now if there is none and the backoff allows.
    async fn client(&self) -> Result<Arc<Client>, QueryError> {
        let mut conn = self.conn.lock().await;
        if let Some(client) = conn.client.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        conn.client = None;
        let now = Instant::now();
        if let Some(at) = conn.retry_at.filter(|at| now < *at) {
            return Err(QueryError::Unavailable(format!(
                "reconnecting to PostgreSQL at {} in {:?}",
                redact(&self.url),
                at - now
            )));
        }
        let attempt = async {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("archive reader connection closed: {e}");
                }
            });
            // A runaway query ends on the server too.
            client
                .batch_execute("SET statement_timeout = '10s'")
                .await?;
            Ok::<_, tokio_postgres::Error>(client)
        };
        let failed = match tokio::time::timeout(TIMEOUT, attempt).await {
            Ok(Ok(client)) => {
                let client = Arc::new(client);
                conn.client = Some(client.clone());
                conn.retry_at = None;
                conn.backoff = BACKOFF.0;
                return Ok(client);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {TIMEOUT:?}"),
        };
        conn.retry_at = Some(now + conn.backoff);
        conn.backoff = (conn.backoff * 2).min(BACKOFF.1);
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        Err(QueryError::Unavailable(format!(
            "cannot connect to PostgreSQL at {}: {failed}",
            redact(&self.url)
        )))
    }
}

/// Each day partition with rows, and its oldest and newest cursors.
async fn spans(client: &Client) -> Result<Vec<DaySpan>, QueryError> {
    let days: Vec<SqlDate> = partitions::list(client)
        .await?
        .into_iter()
        .map(SqlDate)
        .collect();
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT d, f.cursor_ms, f.cursor_seq, l.cursor_ms, l.cursor_seq \
             FROM unnest($1::date[]) AS d \
             CROSS JOIN LATERAL (SELECT cursor_ms, cursor_seq FROM flow_events WHERE day = d \
                 ORDER BY cursor_ms, cursor_seq LIMIT 1) f \
             CROSS JOIN LATERAL (SELECT cursor_ms, cursor_seq FROM flow_events WHERE day = d \
                 ORDER BY cursor_ms DESC, cursor_seq DESC LIMIT 1) l \
             ORDER BY d",
            &[&days],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DaySpan {
                day: r.try_get::<_, SqlDate>(0)?.0,
                first: cursor_of(r.try_get(1)?, r.try_get(2)?),
                last: cursor_of(r.try_get(3)?, r.try_get(4)?),
            })
        })
        .collect()
}

/// Parameters of a window query: `$1..$4` the inclusive cursor range,
/// `$5` the row limit, then the days, then the filter's.
const RANGE_PARAMS: usize = 5;

/// One page being read.
struct Walk<'a> {
    client: &'a Client,
    spans: &'a [DaySpan],
    filter: &'a Filter,
    limit: usize,
    metrics: &'a ArchiveReadMetrics,
}

/// Which way a walk goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Newest first.
    Down,
    /// Oldest first.
    Up,
}

impl Dir {
    fn order(self) -> &'static str {
        match self {
            Dir::Down => "cursor_ms DESC, cursor_seq DESC",
            Dir::Up => "cursor_ms, cursor_seq",
        }
    }

    fn reversed(self) -> Dir {
        match self {
            Dir::Down => Dir::Up,
            Dir::Up => Dir::Down,
        }
    }
}

impl Walk<'_> {
    /// Strictly before `before`, newest first until the page is full.
    async fn backwards(&self, before: Cursor, budget: usize) -> Result<ArchivePage, QueryError> {
        let mut found: Vec<FlowEvent> = Vec::new();
        let (mut pos, mut budget, mut scanned) = (before, budget, 0);
        loop {
            // The day whose rows start latest below `pos`, and every day
            // reaching into its span: no other day has rows in the window.
            let below: Vec<&DaySpan> = self.spans.iter().filter(|s| s.first < pos).collect();
            let Some(floor) = below.iter().map(|s| s.first).max() else {
                return Ok(page(found, Dir::Down, false, None, scanned));
            };
            let Some(hi) = pos.predecessor() else {
                return Ok(page(found, Dir::Down, false, None, scanned));
            };
            let days: Vec<Date> = below
                .iter()
                .filter(|s| s.last >= floor)
                .map(|s| s.day)
                .collect();
            let window = self.window(&days, (floor, hi), Dir::Down, budget).await?;
            let lo = window.map_or(floor, |(edge, _)| edge);
            let counted = window.map_or(0, |(_, n)| n);
            let mut upto = hi;
            loop {
                let want = self.limit - found.len();
                let rows = self.fetch(&days, (lo, upto), Dir::Down, want).await?;
                for (cursor, event) in self.decode(&rows) {
                    upto = cursor;
                    if let Some(e) = event.filter(|e| self.filter.matches(e)) {
                        found.push(e);
                        if found.len() == self.limit {
                            let scanned = scanned + counted;
                            return Ok(page(found, Dir::Down, true, Some(cursor), scanned));
                        }
                    }
                }
                match upto.predecessor() {
                    Some(p) if rows.len() == want && p >= lo => upto = p,
                    _ => break,
                }
            }
            scanned += counted;
            budget = budget.saturating_sub(counted);
            if budget == 0 {
                return Ok(page(found, Dir::Down, true, Some(lo), scanned));
            }
            pos = lo;
        }
    }

    /// Strictly after `after` (and below `below`), oldest first until the
    /// page is full.
    async fn forwards(
        &self,
        after: Cursor,
        below: Option<Cursor>,
        budget: usize,
    ) -> Result<ArchivePage, QueryError> {
        let mut found: Vec<FlowEvent> = Vec::new();
        let (mut pos, mut budget, mut scanned) = (after, budget, 0);
        let limit_hi = below.and_then(Cursor::predecessor);
        if below.is_some() && limit_hi.is_none() {
            return Ok(page(found, Dir::Up, false, None, scanned));
        }
        loop {
            let lo = pos.successor();
            let above: Vec<&DaySpan> = self
                .spans
                .iter()
                .filter(|s| s.last > pos && limit_hi.is_none_or(|h| s.first <= h))
                .collect();
            let Some(span_end) = above.iter().map(|s| s.last).min() else {
                return Ok(page(found, Dir::Up, false, None, scanned));
            };
            let ceil = limit_hi.map_or(span_end, |h| h.min(span_end));
            if ceil < lo {
                return Ok(page(found, Dir::Up, false, None, scanned));
            }
            let days: Vec<Date> = above
                .iter()
                .filter(|s| s.first <= ceil)
                .map(|s| s.day)
                .collect();
            let window = self.window(&days, (lo, ceil), Dir::Up, budget).await?;
            let hi = window.map_or(ceil, |(edge, _)| edge);
            let counted = window.map_or(0, |(_, n)| n);
            let mut from = lo;
            loop {
                let want = self.limit - found.len();
                let rows = self.fetch(&days, (from, hi), Dir::Up, want).await?;
                let mut last = None;
                for (cursor, event) in self.decode(&rows) {
                    last = Some(cursor);
                    if let Some(e) = event.filter(|e| self.filter.matches(e)) {
                        found.push(e);
                        if found.len() == self.limit {
                            let scanned = scanned + counted;
                            return Ok(page(found, Dir::Up, true, Some(cursor), scanned));
                        }
                    }
                }
                match last {
                    Some(c) if rows.len() == want && c < hi => from = c.successor(),
                    _ => break,
                }
            }
            scanned += counted;
            budget = budget.saturating_sub(counted);
            if limit_hi.is_some_and(|h| hi >= h) {
                return Ok(page(found, Dir::Up, false, None, scanned));
            }
            if budget == 0 {
                return Ok(page(found, Dir::Up, true, Some(hi), scanned));
            }
            pos = hi;
        }
    }

    /// The first `budget` rows of `days` in `range` walking `dir`: the
    /// last of them and how many there are (`None`: no rows).
    async fn window(
        &self,
        days: &[Date],
        range: (Cursor, Cursor),
        dir: Dir,
        budget: usize,
    ) -> Result<Option<(Cursor, usize)>, QueryError> {
        let branches = branches(days.len(), "cursor_ms, cursor_seq", "TRUE", dir);
        let sql = format!(
            "SELECT cursor_ms, cursor_seq, count(*) OVER () FROM ({branches} ORDER BY {} \
             LIMIT $5) w ORDER BY {} LIMIT 1",
            dir.order(),
            dir.reversed().order()
        );
        let bounds = RangeParams::new(range, budget);
        let day_params: Vec<SqlDate> = days.iter().map(|d| SqlDate(*d)).collect();
        let params: Vec<&(dyn ToSql + Sync)> = bounds
            .refs()
            .chain(day_params.iter().map(|d| d as &(dyn ToSql + Sync)))
            .collect();
        let row = self.client.query_opt(&sql, &params).await?;
        row.map(|r| {
            let n: i64 = r.try_get(2)?;
            Ok((
                cursor_of(r.try_get(0)?, r.try_get(1)?),
                usize::try_from(n).unwrap_or(0),
            ))
        })
        .transpose()
    }

    /// Up to `want` rows of `days` in `range` that the pushed filter keeps,
    /// walking `dir`.
    async fn fetch(
        &self,
        days: &[Date],
        range: (Cursor, Cursor),
        dir: Dir,
        want: usize,
    ) -> Result<Vec<Row>, QueryError> {
        let pushdown = Pushdown::new(self.filter, RANGE_PARAMS + days.len() + 1);
        let branches = branches(days.len(), SELECT_EVENT, &pushdown.sql, dir);
        let sql = format!(
            "SELECT * FROM ({branches}) f ORDER BY {} LIMIT $5",
            dir.order()
        );
        let bounds = RangeParams::new(range, want);
        let day_params: Vec<SqlDate> = days.iter().map(|d| SqlDate(*d)).collect();
        let params: Vec<&(dyn ToSql + Sync)> = bounds
            .refs()
            .chain(day_params.iter().map(|d| d as &(dyn ToSql + Sync)))
            .chain(pushdown.refs())
            .collect();
        Ok(self.client.query(&sql, &params).await?)
    }

    /// Each row's cursor and its event; `None` (counted, logged) for a row
    /// that is not a readable event. Rows without a readable cursor are
    /// left out.
    fn decode<'r>(
        &'r self,
        rows: &'r [Row],
    ) -> impl Iterator<Item = (Cursor, Option<FlowEvent>)> + 'r {
        rows.iter().filter_map(|row| {
            let cursor = match (row.try_get::<_, i64>(0), row.try_get::<_, i64>(1)) {
                (Ok(ms), Ok(seq)) => cursor_of(ms, seq),
                _ => {
                    self.metrics.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("archive: skipped a row without a readable cursor");
                    return None;
                }
            };
            match event_from_row(row) {
                Ok(event) => Some((cursor, Some(event))),
                Err(e) => {
                    self.metrics.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%cursor, "archive: skipped an undecodable row: {e}");
                    Some((cursor, None))
                }
            }
        })
    }
}

/// The page of `found` (in walk order `dir`), oldest first.
fn page(
    mut found: Vec<FlowEvent>,
    dir: Dir,
    more: bool,
    next: Option<Cursor>,
    scanned: usize,
) -> ArchivePage {
    if dir == Dir::Down {
        found.reverse();
    }
    ArchivePage {
        events: found,
        more,
        next: next.filter(|_| more),
        scanned,
    }
}

/// One `SELECT` per day, each bounded by the range and `$5` rows in the
/// walk's order (so each is an index scan of its partition), joined by
/// `UNION ALL`.
fn branches(days: usize, columns: &str, filter: &str, dir: Dir) -> String {
    (0..days)
        .map(|i| {
            format!(
                "(SELECT {columns} FROM flow_events WHERE day = ${} \
                 AND (cursor_ms, cursor_seq) >= ($1, $2) AND (cursor_ms, cursor_seq) <= ($3, $4) \
                 AND {filter} ORDER BY {} LIMIT $5)",
                RANGE_PARAMS + 1 + i,
                dir.order()
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// `$1..$5`: the inclusive cursor range and a row limit.
struct RangeParams([i64; 5]);

impl RangeParams {
    fn new((lo, hi): (Cursor, Cursor), limit: usize) -> RangeParams {
        let [lo_ms, lo_seq] = sql_cursor(lo);
        let [hi_ms, hi_seq] = sql_cursor(hi);
        RangeParams([
            lo_ms,
            lo_seq,
            hi_ms,
            hi_seq,
            i64::try_from(limit).unwrap_or(i64::MAX),
        ])
    }

    fn refs(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        self.0.iter().map(|v| v as &(dyn ToSql + Sync))
    }
}

/// A cursor as two bigints, saturating (stream ids fit; `u64::MAX`
/// sequences made by `predecessor` become the greatest bigint).
fn sql_cursor(c: Cursor) -> [i64; 2] {
    [
        i64::try_from(c.ms).unwrap_or(i64::MAX),
        i64::try_from(c.seq).unwrap_or(i64::MAX),
    ]
}

/// Two bigints as a cursor (a negative part reads as 0).
fn cursor_of(ms: i64, seq: i64) -> Cursor {
    Cursor::new(u64::try_from(ms).unwrap_or(0), u64::try_from(seq).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_branch_per_day() {
        let sql = branches(2, "cursor_ms", "TRUE", Dir::Down);
        assert!(sql.contains("day = $6 ") && sql.contains("day = $7 "), "{sql}");
        assert_eq!(sql.matches("UNION ALL").count(), 1);
    }

    #[test]
    fn cursors_saturate_into_bigints() {
        assert_eq!(sql_cursor(Cursor::new(5, u64::MAX)), [5, i64::MAX]);
        assert_eq!(cursor_of(-1, 3), Cursor::new(0, 3));
    }
}
