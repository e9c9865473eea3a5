//! The day partitions of `flow_events`: `flow_events_YYYYMMDD` holds the
//! events of one New York trading day. [`ensure`] creates a day's partition
//! before its first write (idempotent, under the DDL advisory lock so two
//! archivers do not race); [`apply_retention`] drops or detaches those older
//! than the retention.

use flowtape_core::date::Date;
use tokio_postgres::Client;

use super::schema::DDL_LOCK;
use super::ArchiveError;

/// What retention does with a partition past its age.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    /// `DROP TABLE`: the events are gone.
    #[default]
    Drop,
    /// `DETACH PARTITION`: the table stays (for an operator to dump or
    /// move), outside `flow_events`.
    Detach,
}

/// The partition table of a day.
pub fn name(day: Date) -> String {
    format!("flow_events_{}", day.compact())
}

/// The day of a partition table's name.
fn day_of(name: &str) -> Option<Date> {
    let digits = name.strip_prefix("flow_events_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r)?.parse::<u32>().ok();
    let year = i32::try_from(num(0..4)?).ok()?;
    Date::from_ymd(year, num(4..6)?, num(6..8)?).ok()
}

/// Creates the partitions of `days` that do not exist yet.
pub async fn ensure(client: &mut Client, days: &[Date]) -> Result<(), ArchiveError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
        .await?;
    for day in days {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF flow_events FOR VALUES FROM ('{day}') TO ('{}')",
            name(*day),
            day.add_days(1)
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The days of the partitions attached to `flow_events`, oldest first.
pub async fn list(client: &Client) -> Result<Vec<Date>, ArchiveError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'flow_events'::regclass",
            &[],
        )
        .await?;
    let mut days: Vec<Date> = rows
        .iter()
        .filter_map(|r| day_of(r.get::<_, &str>(0)))
        .collect();
    days.sort_unstable();
    Ok(days)
}

/// Drops (or detaches) the partitions of days before `today - keep_days`;
/// returns their days. `keep_days` 0 keeps everything.
pub async fn apply_retention(
    client: &mut Client,
    today: Date,
    keep_days: u32,
    mode: RetentionMode,
) -> Result<Vec<Date>, ArchiveError> {
    if keep_days == 0 {
        return Ok(Vec::new());
    }
    let cutoff = today.add_days(-i64::from(keep_days));
    let old: Vec<Date> = list(client)
        .await?
        .into_iter()
        .filter(|d| *d < cutoff)
        .collect();
    for day in &old {
        let table = name(*day);
        let sql = match mode {
            RetentionMode::Drop => format!("DROP TABLE {table}"),
            RetentionMode::Detach => format!("ALTER TABLE flow_events DETACH PARTITION {table}"),
        };
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .await?;
        tx.batch_execute(&sql).await?;
        tx.commit().await?;
        tracing::info!(partition = %table, ?mode, "archive retention: partition removed");
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_days_round_trip() {
        let day = Date::from_ymd(2024, 12, 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name(day), "flow_events_20241220");
        assert_eq!(day_of(&name(day)), Some(day));
        assert_eq!(day_of("flow_events_staging"), None);
        assert_eq!(day_of("flow_events_20241399"), None);
    }
}
