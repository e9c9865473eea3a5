//! The archive's PostgreSQL side: one connection that writes batches of rows
//! exactly once. A batch is copied (binary COPY) into `flow_events`, or, if
//! some of its rows are there already, into a per-connection staging table
//! and inserted skipping those; the stream's archived cursor advances in the
//! same transaction: what is committed and where to resume from can never
//! disagree.

use std::collections::HashSet;
use std::pin::pin;

use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Transaction};

use super::partitions;
use super::row::{ArchiveRow, COLUMNS, TYPES};
use super::schema;
use super::ArchiveError;

/// A connection to the archive database, migrated and ready to write.
pub struct Writer {
    client: Client,
    /// The flow stream this writer archives (the bus namespace).
    stream: String,
    /// Days whose partition this writer has made sure of.
    partitions: HashSet<Date>,
}

/// What one committed batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows inserted now (the others were already archived).
    pub inserted: u64,
    /// The cursor now recorded as archived.
    pub cursor: Cursor,
    /// The batch began a day this writer had not written before (a day
    /// before it may now be over).
    pub new_day: bool,
}

impl Writer {
    /// Connects, applies the migrations and prepares the staging table.
    pub async fn connect(url: &str, stream: &str) -> Result<Writer, ArchiveError> {
        let mut client = open(url).await?;
        schema::migrate(&mut client).await?;
        client
            .batch_execute(
                "CREATE TEMP TABLE flow_events_staging (LIKE flow_events) ON COMMIT DELETE ROWS",
            )
            .await?;
        Ok(Writer {
            client,
            stream: stream.to_string(),
            partitions: HashSet::new(),
        })
    }

    /// The cursor of the last event archived from this stream (zero: none).
    pub async fn archived_cursor(&self) -> Result<Cursor, ArchiveError> {
        let row = self
            .client
            .query_opt(
                "SELECT cursor_ms, cursor_seq FROM archive_progress WHERE stream = $1",
                &[&self.stream],
            )
            .await?;
        Ok(row.map_or(Cursor::ZERO, |r| {
            let part = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
            Cursor::new(part(0), part(1))
        }))
    }

    /// Writes `rows` and records `through` (the last stream entry they
    /// cover, skipped entries included) as archived, in one transaction.
    /// Rows already in the table are skipped, so writing a batch again
    /// (after a crash between commit and its answer) adds nothing.
    pub async fn write(
        &mut self,
        rows: &[ArchiveRow],
        through: Cursor,
    ) -> Result<Written, ArchiveError> {
        let new_days: Vec<Date> = rows
            .iter()
            .map(|r| r.day)
            .filter(|d| !self.partitions.contains(d))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let new_day = !new_days.is_empty();
        if new_day {
            partitions::ensure(&mut self.client, &new_days).await?;
            self.partitions.extend(new_days);
        }
        let (ms, seq) = (
            i64::try_from(through.ms).map_err(|_| ArchiveError::CursorRange(through))?,
            i64::try_from(through.seq).map_err(|_| ArchiveError::CursorRange(through))?,
        );
        let mut tx = self.client.transaction().await?;
        let mut inserted = 0;
        if !rows.is_empty() {
            // Straight into the table: the fast path, as the batch is new
            // unless the archived cursor was behind it (a second archiver,
            // a reset cursor). Then the savepoint undoes the attempt and the
            // batch goes through staging, skipping the rows already there.
            let direct = tx.savepoint("direct").await?;
            match copy_rows(&direct, "flow_events", rows).await {
                Ok(n) => {
                    direct.commit().await?;
                    inserted = n;
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    direct.rollback().await?;
                    copy_rows(&tx, "flow_events_staging", rows).await?;
                    inserted = tx
                        .execute(
                            "INSERT INTO flow_events SELECT * FROM flow_events_staging \
                             ON CONFLICT DO NOTHING",
                            &[],
                        )
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.execute(
            "INSERT INTO archive_progress (stream, cursor_ms, cursor_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (stream) DO UPDATE SET cursor_ms = excluded.cursor_ms, \
             cursor_seq = excluded.cursor_seq, updated_at = now() \
             WHERE (archive_progress.cursor_ms, archive_progress.cursor_seq) \
                 < (excluded.cursor_ms, excluded.cursor_seq)",
            &[&self.stream, &ms, &seq],
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            inserted,
            cursor: through,
            new_day,
        })
    }

    /// Drops or detaches partitions older than `keep_days` before `today`.
    pub async fn apply_retention(
        &mut self,
        today: Date,
        keep_days: u32,
        mode: partitions::RetentionMode,
    ) -> Result<Vec<Date>, ArchiveError> {
        let removed = partitions::apply_retention(&mut self.client, today, keep_days, mode).await?;
        for day in &removed {
            self.partitions.remove(day);
        }
        Ok(removed)
    }

    /// The connection, for queries beside the writing (tests, tools).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A connection for the archive's own work (writing, indexing), without
/// PostgreSQL's notices of what already exists ("relation … already
/// exists, skipping" on every start and new day).
pub(super) async fn open(url: &str) -> Result<Client, ArchiveError> {
    connect(url, "archive", "SET client_min_messages TO warning")
        .await
        .map_err(|e| ArchiveError::Connect {
            url: redact(url),
            source: e,
        })
}

/// Connects to `url`, drives the connection on a task of its own (`what`
/// names it in the log when it closes) and runs `setup`, the session's
/// settings.
pub(super) async fn connect(
    url: &str,
    what: &'static str,
    setup: &str,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("{what} connection closed: {e}");
        }
    });
    client.batch_execute(setup).await?;
    Ok(client)
}

/// Copies `rows` into `table` (binary COPY); returns how many.
async fn copy_rows(
    tx: &Transaction<'_>,
    table: &str,
    rows: &[ArchiveRow],
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut copy = pin!(BinaryCopyInWriter::new(sink, &TYPES));
    for row in rows {
        copy.as_mut().write(&row.values()).await?;
    }
    copy.finish().await
}

/// A PostgreSQL connection string without its password, for messages: the
/// URL form (`postgres://user:secret@host/db`) and the key/value form
/// (`host=db password=secret`, quoted or not).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_key_values(url);
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The key/value form with each `password=` value replaced.
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_password_key(rest) {
        let value_start = at + rest[at..].find('=').map_or(0, |i| i + 1);
        out.push_str(&rest[..value_start]);
        let value = rest[value_start..].trim_start();
        let skipped = rest.len() - value_start - value.len();
        out.push_str(&rest[value_start..value_start + skipped]);
        out.push_str("***");
        rest = &value[value_len(value)..];
    }
    out.push_str(rest);
    out
}

/// Where a `password` key (then optional spaces and `=`) starts in `text`,
/// at the start or after a space.
fn find_password_key(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("password") {
        let at = from + i;
        let starts_word = at == 0 || text[..at].ends_with(char::is_whitespace);
        let after = text[at + "password".len()..].trim_start();
        if starts_word && after.starts_with('=') {
            return Some(at);
        }
        from = at + "password".len();
    }
    None
}

/// The length of a key/value value: quoted (`'…'`, with `\'` escapes) or up
/// to the next space.
fn value_len(value: &str) -> usize {
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => return i + 2,
                _ => escaped = false,
            }
        }
        return value.len();
    }
    value.find(char::is_whitespace).unwrap_or(value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://flow:s3cret@db:5432/flow"),
            "postgres://flow:***@db:5432/flow"
        );
        assert_eq!(redact("postgres://flow@db/flow"), "postgres://flow@db/flow");
        assert_eq!(redact("host=db user=flow"), "host=db user=flow");
        assert_eq!(
            redact("host=db password=s3cret user=flow"),
            "host=db password=*** user=flow"
        );
        assert_eq!(
            redact("password = 'it\\'s secret' host=db"),
            "password = *** host=db"
        );
        assert_eq!(redact("host=db password=x"), "host=db password=***");
        assert_eq!(redact("user=passwordless"), "user=passwordless");
    }
}
