//! `fill`: the ten days into the archive, one day at a time. A day is
//! generated first (the sim through the detector, untimed), then written
//! in batches the way the archive role writes them, timed: each stream
//! entry decoded into a row ([`ArchiveRow::from_entry`]), the batch copied
//! and its cursor recorded in one transaction ([`Writer::write`]). Then,
//! timed apart, the day is given its indexes as the role does once a day
//! is over ([`indexing::index_finished_days`]): in production that runs
//! after midnight, not while the day is written.
//!
//! `bench_fill` (beside the archive's tables) records each finished day, so
//! a later run skips it; a day not recorded (a killed run's, or one deleted
//! from `bench_fill` to measure it again) is dropped and written anew.

use std::time::{Duration, Instant};

use flowtape_bench::archive_size::{self, ArchiveSize};
use flowtape_bench::sim_days;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::Date;
use flowtape_server::archive::row::ArchiveRow;
use flowtape_server::archive::Writer;
use flowtape_server::archive::{indexing, partitions};
use tokio_postgres::Client;

/// The flow stream name (bus namespace) the bench archives as.
const STREAM: &str = "bench";
/// How many more events than asked the sim is set to make, so that ten
/// days of a varying tape still add up to at least the number asked (the
/// calibration, on the busy open, overestimates events a print: 5 % more
/// gave days of 1.99 million for 2 million asked).
const RATE_MARGIN: f64 = 1.07;

pub async fn run(
    url: &str,
    days: &[Date],
    events: u64,
    batch: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut writer = Writer::connect(url, STREAM).await?;
    let client = archive_size::connect(url).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_fill (
                 day        date   PRIMARY KEY,
                 events     bigint NOT NULL,
                 last_ms    bigint NOT NULL,
                 last_seq   bigint NOT NULL,
                 write_s    double precision NOT NULL,
                 index_s    double precision NOT NULL
             )",
        )
        .await?;
    let first = *days.first().ok_or("no days")?;
    let per_day = events.div_ceil(days.len() as u64);
    let rate = sim_days::rate_for(first, (per_day as f64 * RATE_MARGIN) as u64)?;
    println!(
        "{} days, {per_day} events a day asked: sim at {rate:.0} prints/s",
        days.len()
    );

    let mut after = Cursor::ZERO;
    let (mut written, mut writing, mut indexing_time) = (0u64, Duration::ZERO, Duration::ZERO);
    let wall = Instant::now();
    for (i, &day) in days.iter().enumerate() {
        if let Some(done) = filled(&client, day).await? {
            println!("{day}: filled before ({} events), skipped", done.0);
            after = done.1;
            continue;
        }
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", partitions::name(day)))
            .await?;
        let generating = Instant::now();
        let entries = sim_days::session(day, rate, i as u64 + 1, after)?;
        let generated = generating.elapsed();
        let started = Instant::now();
        for chunk in entries.chunks(batch) {
            let rows = chunk
                .iter()
                .map(ArchiveRow::from_entry)
                .collect::<Result<Vec<_>, _>>()?;
            let through = chunk.last().map_or(after, |e| e.id);
            writer.write(&rows, through).await?;
        }
        let took = started.elapsed();
        let indexing_started = Instant::now();
        let indexed = indexing::index_finished_days(writer.client(), now_ms(), None).await?;
        if indexed != [day] {
            return Err(format!("indexing {day} indexed {indexed:?}").into());
        }
        let index_took = indexing_started.elapsed();
        after = entries.last().map_or(after, |e| e.id);
        let n = entries.len() as u64;
        client
            .execute(
                "INSERT INTO bench_fill VALUES ($1::text::date, $2, $3, $4, $5, $6)",
                &[
                    &day.to_string(),
                    &(n as i64),
                    &(after.ms as i64),
                    &(after.seq as i64),
                    &took.as_secs_f64(),
                    &index_took.as_secs_f64(),
                ],
            )
            .await?;
        written += n;
        writing += took;
        indexing_time += index_took;
        println!(
            "{day}: {n} events generated in {:.1} s, written in {:.1} s: {:.0} events/s; \
             indexed in {:.1} s",
            generated.as_secs_f64(),
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            index_took.as_secs_f64()
        );
    }
    if written > 0 {
        println!(
            "this run: {written} events written in {:.1} s: {:.0} events/s sustained \
             (batches of {batch}); indexed in {:.1} s; {:.1} s wall with generation",
            writing.as_secs_f64(),
            written as f64 / writing.as_secs_f64(),
            indexing_time.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
    }
    let (events, seconds, index_seconds): (i64, f64, f64) = {
        let row = client
            .query_one(
                "SELECT coalesce(sum(events), 0)::bigint, coalesce(sum(write_s), 0), \
                 coalesce(sum(index_s), 0) FROM bench_fill",
                &[],
            )
            .await?;
        (row.get(0), row.get(1), row.get(2))
    };
    println!(
        "whole fill: {events} events written in {seconds:.1} s: {:.0} events/s; \
         indexed in {index_seconds:.1} s ({:.1} s a million events)",
        events as f64 / seconds.max(f64::MIN_POSITIVE),
        index_seconds / (events as f64 / 1e6).max(f64::MIN_POSITIVE)
    );
    println!("{}", ArchiveSize::read(&client).await?);
    Ok(())
}

/// The events and last cursor of `day` if a run filled it.
async fn filled(
    client: &Client,
    day: Date,
) -> Result<Option<(i64, Cursor)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT events, last_ms, last_seq FROM bench_fill WHERE day = $1::text::date",
            &[&day.to_string()],
        )
        .await?;
    Ok(row.map(|r| {
        let part = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
        (r.get(0), Cursor::new(part(1), part(2)))
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
