//! Reading the archive back: pages of events next to a cursor, and a past
//! day's premium totals.
//!
//! [`ArchiveReader::page`] answers like the gateway's `history` pages: at
//! most `limit` events matching a filter strictly before or strictly after
//! a cursor, oldest first, having scanned at most `scan_cap` rows; `more`
//! and `next` let a sparse filter go on with the next request. It walks the
//! day partitions by their cursor spans (so each query names its `day`s and
//! PostgreSQL prunes the rest) in windows of rows in cursor order (by the
//! primary key, or by the ticker index when the filter names a few
//! tickers), a page's worth first, then growing, `scan_cap` rows in all,
//! and fetches the rows the filter's SQL form ([`super::pushdown`]) keeps;
//! the Rust filter then has the last word.
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
use tokio_postgres::{Client, Row};

use super::partitions;
use super::pushdown::Pushdown;
use super::row::{event_from_row, SqlDate, SELECT_EVENT};
use super::writer::{connect, redact};
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
    /// What the archive holds (`None`: nothing).
    pub held: Option<Held>,
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
    #[error("archive query: {}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("archive query timed out after {0:?}")]
    Timeout(Duration),
}

/// PostgreSQL's own message for an error it sent (the driver's says only
/// "db error"), else the driver's.
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
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

/// The archive's PostgreSQL URL; shown (`Debug`) without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct ArchiveUrl(pub String);

impl std::fmt::Debug for ArchiveUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArchiveUrl({:?})", redact(&self.0))
    }
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
                tickers: indexed_tickers(filter),
                limit: limit.max(1),
                metrics: &self.metrics,
            };
            let mut page = match side {
                PageSide::Before(before) => {
                    let before = below.map_or(before, |b| b.min(before));
                    walk.backwards(before, scan_cap.max(1)).await?
                }
                PageSide::After(after) => walk.forwards(after, below, scan_cap.max(1)).await?,
            };
            page.held = held(&spans);
            Ok(page)
        })
        .await
    }

    /// The oldest and newest rows the archive holds; `None` when empty.
    pub async fn held(&self) -> Result<Option<Held>, QueryError> {
        self.timed(async {
            let client = self.client().await?;
            Ok(held(&spans(&client).await?))
        })
        .await
    }

    /// The premium totals of `day`'s archived events: per ticker by right
    /// and sentiment, per contract; each event's premium in whole cents,
    /// rounded half away from zero as the processor rounds them for the
    /// bus's day keys (PostgreSQL's `round` on a double rounds half to
    /// even; premiums are never negative, and `p - floor(p)` is exact).
    /// `None` when the archive holds no event of that day.
    pub async fn day_totals(&self, day: Date) -> Result<Option<DayTotals>, QueryError> {
        self.timed(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT sym, occ, \"right\", sentiment, \
                     sum(CASE WHEN premium * 100 - floor(premium * 100) >= 0.5 \
                     THEN ceil(premium * 100) ELSE floor(premium * 100) END)::float8 \
                     FROM flow_events WHERE day = $1 GROUP BY sym, occ, \"right\", sentiment",
                    &[&SqlDate(day)],
                )
                .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            let mut totals = DayTotals::default();
            for row in &rows {
                let (sym, occ, right, sentiment): (&str, &str, &str, &str) = (
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                );
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
        // A runaway query ends on the server too.
        let attempt = connect(&self.url, "archive reader", "SET statement_timeout = '10s'");
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

/// What `spans` (oldest day first) hold together.
fn held(spans: &[DaySpan]) -> Option<Held> {
    let (first, last) = (spans.first()?, spans.last()?);
    Some(Held {
        first_day: first.day,
        last_day: last.day,
        first: spans.iter().map(|s| s.first).min().unwrap_or(first.first),
        last: spans.iter().map(|s| s.last).max().unwrap_or(last.last),
    })
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
/// `$5` the row limit, then the days, then the tickers, then the filter's.
const RANGE_PARAMS: usize = 5;

/// The fewest rows a page's first window holds, and how much each next
/// window grows (see `Walk::first_window`).
const FIRST_WINDOW: usize = 500;
const WINDOW_GROWTH: usize = 8;

/// The most tickers a page reads through the ticker index
/// (`flow_events_sym_cursor`), one index range each per day; a filter
/// naming more reads every row of the day in cursor order.
const INDEXED_TICKERS: usize = 16;

/// One page being read.
struct Walk<'a> {
    client: &'a Client,
    spans: &'a [DaySpan],
    filter: &'a Filter,
    /// The only tickers the filter can match, when it names few enough to
    /// read by index (upper case); empty: every ticker is read.
    tickers: Vec<String>,
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
        let mut step = self.first_window();
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
            let window = self
                .window(&days, (floor, hi), Dir::Down, step.min(budget))
                .await?;
            step = step.saturating_mul(WINDOW_GROWTH);
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
        let mut step = self.first_window();
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
            let window = self
                .window(&days, (lo, ceil), Dir::Up, step.min(budget))
                .await?;
            step = step.saturating_mul(WINDOW_GROWTH);
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
        let scope = self.scope(days);
        let branches = scope.branches("cursor_ms, cursor_seq", "TRUE", dir);
        let sql = format!(
            "SELECT cursor_ms, cursor_seq, count(*) OVER () FROM (SELECT * FROM ({branches}) u \
             ORDER BY {} LIMIT $5) w ORDER BY {} LIMIT 1",
            dir.order(),
            dir.reversed().order()
        );
        let bounds = RangeParams::new(range, budget);
        let day_params = scope.day_params();
        let params: Vec<&(dyn ToSql + Sync)> =
            bounds.refs().chain(scope.refs(&day_params)).collect();
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
        let scope = self.scope(days);
        let pushdown = Pushdown::new(self.filter, scope.next_param());
        let branches = scope.branches(SELECT_EVENT, &pushdown.sql, dir);
        let sql = format!(
            "SELECT * FROM ({branches}) f ORDER BY {} LIMIT $5",
            dir.order()
        );
        let bounds = RangeParams::new(range, want);
        let day_params = scope.day_params();
        let params: Vec<&(dyn ToSql + Sync)> = bounds
            .refs()
            .chain(scope.refs(&day_params))
            .chain(pushdown.refs())
            .collect();
        Ok(self.client.query(&sql, &params).await?)
    }

    /// The rows the first window of a page holds: enough for a page of a
    /// filter that keeps most rows (a ticker read by its index), so that
    /// such a page reads little more than itself; later windows grow
    /// [`WINDOW_GROWTH`] times, up to the scan cap.
    fn first_window(&self) -> usize {
        self.limit.saturating_mul(2).max(FIRST_WINDOW)
    }

    fn scope<'d>(&'d self, days: &'d [Date]) -> Scope<'d> {
        Scope {
            days,
            tickers: &self.tickers,
        }
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
        held: None,
    }
}

/// The upper-case tickers outside which `filter` matches nothing, when
/// there are some and at most [`INDEXED_TICKERS`]; else none.
fn indexed_tickers(filter: &Filter) -> Vec<String> {
    let tickers = filter.tickers();
    if tickers.len() > INDEXED_TICKERS {
        return Vec::new();
    }
    tickers
        .iter()
        .map(|t| t.to_string().to_uppercase())
        .collect()
}

/// The rows one window or fetch query reads: those of `days`, and, when
/// `tickers` names some, only theirs.
struct Scope<'a> {
    days: &'a [Date],
    tickers: &'a [String],
}

impl Scope<'_> {
    /// One `SELECT` per day (and per ticker, when reading by ticker), each
    /// bounded by the range and `$5` rows in the walk's order, so that each
    /// is one index range of its partition, joined by `UNION ALL`. Each is
    /// a derived table of its own: a lone branch's `ORDER BY … LIMIT` would
    /// otherwise merge with the caller's into one statement ("multiple
    /// ORDER BY clauses not allowed").
    fn branches(&self, columns: &str, filter: &str, dir: Dir) -> String {
        let first_ticker = RANGE_PARAMS + self.days.len() + 1;
        let tickers: Vec<String> = match self.tickers.len() {
            0 => vec![String::new()],
            n => (0..n)
                .map(|j| format!("AND upper(sym) = ${} ", first_ticker + j))
                .collect(),
        };
        let mut out = Vec::new();
        for i in 0..self.days.len() {
            for ticker in &tickers {
                out.push(format!(
                    "(SELECT * FROM (SELECT {columns} FROM flow_events WHERE day = ${} {ticker}\
                     AND (cursor_ms, cursor_seq) >= ($1, $2) AND (cursor_ms, cursor_seq) <= ($3, $4) \
                     AND {filter} ORDER BY {} LIMIT $5) b{})",
                    RANGE_PARAMS + 1 + i,
                    dir.order(),
                    out.len()
                ));
            }
        }
        out.join(" UNION ALL ")
    }

    /// The number of the first parameter after the scope's.
    fn next_param(&self) -> usize {
        RANGE_PARAMS + self.days.len() + self.tickers.len() + 1
    }

    fn day_params(&self) -> Vec<SqlDate> {
        self.days.iter().map(|d| SqlDate(*d)).collect()
    }

    /// The scope's parameters (`days` from [`Scope::day_params`]), after
    /// the range's.
    fn refs<'p>(&'p self, days: &'p [SqlDate]) -> impl Iterator<Item = &'p (dyn ToSql + Sync)> {
        days.iter()
            .map(|d| d as &(dyn ToSql + Sync))
            .chain(self.tickers.iter().map(|t| t as &(dyn ToSql + Sync)))
    }
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
    Cursor::new(
        u64::try_from(ms).unwrap_or(0),
        u64::try_from(seq).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: usize) -> Vec<Date> {
        (0..n)
            .map(|i| Date::from_ymd(2026, 5, 4 + i as u32).expect("a date"))
            .collect()
    }

    #[test]
    fn one_branch_per_day() {
        let days = days(2);
        let scope = Scope {
            days: &days,
            tickers: &[],
        };
        let sql = scope.branches("cursor_ms", "TRUE", Dir::Down);
        assert!(
            sql.contains("day = $6 ") && sql.contains("day = $7 "),
            "{sql}"
        );
        assert!(!sql.contains("sym"), "{sql}");
        assert_eq!(sql.matches("UNION ALL").count(), 1);
        assert_eq!(scope.next_param(), 8);
    }

    #[test]
    fn one_branch_per_day_and_ticker_when_reading_by_ticker() {
        let days = days(2);
        let tickers = ["NVDA".to_string(), "AAPL".to_string()];
        let scope = Scope {
            days: &days,
            tickers: &tickers,
        };
        let sql = scope.branches("cursor_ms", "TRUE", Dir::Up);
        for (day, ticker) in [(6, 8), (6, 9), (7, 8), (7, 9)] {
            let branch = format!("day = ${day} AND upper(sym) = ${ticker} AND");
            assert!(sql.contains(&branch), "{branch} in {sql}");
        }
        assert_eq!(sql.matches("UNION ALL").count(), 3);
        assert_eq!(scope.next_param(), 10);
        let day_params = scope.day_params();
        assert_eq!(scope.refs(&day_params).count(), 4);
    }

    #[test]
    fn only_a_few_named_tickers_are_read_by_index() {
        let some = Filter::parse("nvda aapl golden").expect("parses");
        assert_eq!(indexed_tickers(&some), ["AAPL", "NVDA"]);
        let any = Filter::parse("nvda or sweep").expect("parses");
        assert!(indexed_tickers(&any).is_empty());
        let many: Vec<String> = (0..=INDEXED_TICKERS)
            .map(|i| format!("Q{}", char::from(b'A' + i as u8)))
            .collect();
        let many = Filter::parse(&many.join(" ")).expect("parses");
        assert_eq!(many.tickers().len(), INDEXED_TICKERS + 1);
        assert!(indexed_tickers(&many).is_empty());
    }

    #[test]
    fn cursors_saturate_into_bigints() {
        assert_eq!(sql_cursor(Cursor::new(5, u64::MAX)), [5, i64::MAX]);
        assert_eq!(cursor_of(-1, 3), Cursor::new(0, 3));
    }
}
