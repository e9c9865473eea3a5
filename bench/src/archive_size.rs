//! What the archive holds, read from its PostgreSQL: rows and bytes over
//! every day partition of `flow_events`, indexes and TOAST included (the
//! archive benches report size per million events with it).

use tokio_postgres::{Client, NoTls};

/// A client on `url`, its connection driven by a task of its own.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Rows and bytes of the archive.
#[derive(Clone, Copy, Debug)]
pub struct ArchiveSize {
    pub rows: i64,
    /// `sum(pg_total_relation_size)` of the day partitions.
    pub bytes: i64,
}

impl ArchiveSize {
    pub async fn read(client: &Client) -> Result<ArchiveSize, tokio_postgres::Error> {
        let bytes: i64 = client
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint \
                 FROM pg_inherits WHERE inhparent = 'flow_events'::regclass",
                &[],
            )
            .await?
            .get(0);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM flow_events", &[])
            .await?
            .get(0);
        Ok(ArchiveSize { rows, bytes })
    }
}

impl std::fmt::Display for ArchiveSize {
    /// `ROWS rows, X MiB with indexes: Y MiB per million events (Z bytes/event)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = self.bytes as f64 / (1 << 20) as f64;
        let per_event = self.bytes as f64 / self.rows.max(1) as f64;
        write!(
            f,
            "{} rows, {mib:.1} MiB with indexes: {:.0} MiB per million events ({per_event:.0} bytes/event)",
            self.rows,
            per_event * 1e6 / (1 << 20) as f64,
        )
    }
}
