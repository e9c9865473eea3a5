//! The archive's schema, as numbered migrations (`migrations/NNNN_*.sql`)
//! applied in order at start. [`migrate`] runs in one transaction under an
//! advisory lock, so two archivers starting together apply each migration
//! once; it refuses a database whose schema is newer than this binary knows.

use tokio_postgres::Client;

use super::ArchiveError;

/// Every migration, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_flow_events.sql")),
    (2, include_str!("migrations/0002_day_indexes.sql")),
];

/// The advisory lock key taken while migrating or creating partitions
/// (`'flowtape'` as ASCII).
pub(super) const DDL_LOCK: i64 = 0x666c_6f77_7461_7065;

/// The newest schema version this binary knows.
pub fn known_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Brings the schema up to [`known_version`]; returns the version found
/// before. A newer schema is refused with [`ArchiveError::SchemaTooNew`].
pub async fn migrate(client: &mut Client) -> Result<i32, ArchiveError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    let known = known_version();
    if found > known {
        return Err(ArchiveError::SchemaTooNew { found, known });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| ArchiveError::Migration {
                version: *version,
                source: e,
            })?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "archive schema migrated");
    }
    tx.commit().await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_up() {
        for (i, (version, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
            assert!(!sql.trim().is_empty());
        }
        assert_eq!(known_version(), MIGRATIONS.len() as i32);
    }
}
