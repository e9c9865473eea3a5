//! `export`: one whole archived day read back in pages in stream order,
//! each page the rows after the last cursor of the one before (keyset
//! paging on the primary key, as the archive reader's fetch does), decoded
//! into events and rendered as the NDJSON lines `flowtape tail` would
//! print, then dropped. Not through `ArchiveReader` itself: its scan-window
//! query fails when the window lies in one day ("multiple ORDER BY clauses
//! not allowed", as merged from h-archq at 47a4ae7's parent).

use std::time::Instant;

use flowtape_bench::archive_size;
use flowtape_core::date::Date;
use flowtape_server::archive::row::{event_from_row, SqlDate, SELECT_EVENT};

pub async fn run(
    url: &str,
    day: Date,
    page: i64,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = archive_size::connect(url).await?;
    let statement = client
        .prepare(&format!(
            "SELECT {SELECT_EVENT} FROM flow_events WHERE day = $1 \
             AND (cursor_ms, cursor_seq) > ($2, $3) \
             ORDER BY cursor_ms, cursor_seq LIMIT {page}"
        ))
        .await?;
    for round in 1..=rounds {
        let started = Instant::now();
        let (mut after, mut events, mut bytes, mut pages) = ((0i64, -1i64), 0u64, 0u64, 0u64);
        loop {
            let rows = client
                .query(&statement, &[&SqlDate(day), &after.0, &after.1])
                .await?;
            let Some(last) = rows.last() else { break };
            after = (last.try_get(0)?, last.try_get(1)?);
            for row in &rows {
                bytes += serde_json::to_string(&event_from_row(row)?)?.len() as u64 + 1;
            }
            events += rows.len() as u64;
            pages += 1;
        }
        let took = started.elapsed().as_secs_f64();
        println!(
            "round {round}: {day}: {events} events in {pages} pages of {page} in {took:.1} s: \
             {:.0} events/s ({:.0} MiB of NDJSON)",
            events as f64 / took,
            bytes as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
