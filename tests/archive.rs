//! The archive role against a real private PostgreSQL and a real private
//! redis-server: every event of the flow stream lands in `flow_events`
//! once, with every field equal, across archiver crashes, PostgreSQL
//! crashes and outages; a newer schema is refused; retention removes old
//! day partitions; a stream trimmed past the archive is reported.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtape_bench::postgres_server::PostgresServer;
use flowtape_bench::redis_server::RedisServer;
use flowtape_bench::synthetic;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, market_instant_ms, Date};
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use flowtape_core::occ::Right;
use flowtape_server::archive::indexing::{index_finished_days, index_name, DAY_INDEXES};
use flowtape_server::archive::row::{event_from_row, ArchiveRow, SELECT_EVENT};
use flowtape_server::archive::{self, ArchiveConfig, ArchiveStats, RetentionMode, Writer};
use flowtape_server::bus::{Bus, BusConfig, FlowEntry};
use flowtape_server::shutdown::{self, ShutdownTrigger};
use tokio::task::JoinHandle;

const OWNER: &str = "archive-test-writer";
/// 2024-12-20 15:00 UTC (10:00 in New York).
const T0: i64 = 1_734_706_800_000;
const DAY_MS: i64 = 86_400_000;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Event `k`: fields varied so that each column sees several values,
/// optional ones absent now and then; three trading days.
fn event(k: u64) -> FlowEvent {
    let tags: Tags = Tag::ALL
        .into_iter()
        .filter(|t| (k >> (*t as u8)) & 1 == 1)
        .collect();
    let some = |v: f64| (k % 5 != 0).then_some(v);
    FlowEvent {
        id: String::new(),
        ts: T0 + (k as i64 % 3) * DAY_MS + k as i64,
        sym: ["AAPL", "SPY", "NVDA"][(k % 3) as usize].into(),
        occ: format!("AAPL2412{:02}C00190000", 20 + k % 7),
        expiry: format!("2024-12-{:02}", 20 + k % 7),
        strike: 190.0 + (k % 11) as f64 * 0.5,
        right: if k % 2 == 0 { Right::Call } else { Right::Put },
        side: [
            Side::AboveAsk,
            Side::Ask,
            Side::Mid,
            Side::Bid,
            Side::BelowBid,
            Side::Unknown,
        ][(k % 6) as usize],
        size: 100 + k,
        price: 2.15 + k as f64 / 7.0,
        premium: 258_000.0 + k as f64 * 0.1,
        kind: Kind::ALL[(k % 4) as usize],
        legs: 1 + (k % 9) as u32,
        exchanges: vec![1, 5 + (k % 3) as u16, 60],
        spot: some(185.2 + k as f64 / 3.0),
        otm: some(-2.59),
        dte: (k % 30) as i32,
        oi: (k % 4 != 0).then_some(800 + k),
        vol: 2400 + k,
        iv: some(0.31),
        bid: some(2.1),
        ask: some(2.15),
        tags,
        sentiment: [Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral][(k % 3) as usize],
        score: (k % 101) as u8,
    }
}

/// Commits crafted events through the bus, as a processor would.
struct Committer {
    bus: Bus,
    next: u64,
}

impl Committer {
    async fn new(bus: Bus) -> Committer {
        assert!(ok(bus
            .acquire_lease(0, OWNER, Duration::from_secs(600))
            .await));
        Committer { bus, next: 1 }
    }

    async fn commit(&mut self, n: u64) {
        let events: Vec<(u64, String)> = (self.next..self.next + n)
            .map(|k| (k, event(k).to_stored_json()))
            .collect();
        let ids = ok(synthetic::commit(&self.bus, OWNER, &events).await);
        assert!(ids.iter().all(Option::is_some));
        self.next += n;
    }
}

/// A running archiver task.
struct Archiver {
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<(), archive::ArchiveError>>,
    stats: Arc<ArchiveStats>,
}

fn start_archiver(bus: &Bus, pg: &PostgresServer, batch: usize) -> Archiver {
    start_archiver_with(
        bus,
        ArchiveConfig {
            batch_size: batch,
            poll: Duration::from_millis(20),
            ..ArchiveConfig::new(pg.url())
        },
    )
}

fn start_archiver_with(bus: &Bus, config: ArchiveConfig) -> Archiver {
    let (trigger, shutdown) = shutdown::channel();
    let stats = Arc::new(ArchiveStats::default());
    let task = tokio::spawn(archive::run(bus.clone(), config, stats.clone(), shutdown));
    Archiver {
        trigger,
        task,
        stats,
    }
}

async fn client(pg: &PostgresServer) -> tokio_postgres::Client {
    let (client, conn) = ok(tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await);
    tokio::spawn(conn);
    client
}

/// The archived cursors (a count of rows beside, to catch duplicates).
async fn archived(pg: &PostgresServer) -> (i64, BTreeSet<Cursor>) {
    let c = client(pg).await;
    let Ok(rows) = c
        .query("SELECT cursor_ms, cursor_seq FROM flow_events", &[])
        .await
    else {
        return (0, BTreeSet::new()); // Not created yet.
    };
    let set = rows
        .iter()
        .map(|r| Cursor::new(r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
        .collect();
    (rows.len() as i64, set)
}

async fn stream(bus: &Bus) -> Vec<FlowEntry> {
    ok(bus.flow_after(Cursor::ZERO, 1_000_000).await)
}

/// Waits until the archive holds `want` rows (at most a minute).
async fn wait_for_rows(pg: &PostgresServer, want: usize) -> BTreeSet<Cursor> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (rows, set) = archived(pg).await;
        assert!(
            rows as usize <= want,
            "{rows} rows archived, more than the {want} events"
        );
        if rows as usize == want || Instant::now() > deadline {
            return set;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn redis_bus() -> (RedisServer, Bus) {
    let redis = ok(RedisServer::start().await);
    let bus = ok(Bus::redis(&redis.url(), BusConfig::default()).await);
    (redis, bus)
}

fn cursors(entries: &[FlowEntry]) -> BTreeSet<Cursor> {
    entries.iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_with_every_field() {
    let pg = ok(PostgresServer::start().await);
    let (_redis, bus) = redis_bus().await;
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(1500).await;
    let archiver = start_archiver(&bus, &pg, 400);
    committer.commit(500).await;
    let entries = stream(&bus).await;
    assert_eq!(entries.len(), 2000);
    let set = wait_for_rows(&pg, entries.len()).await;
    assert_eq!(set, cursors(&entries));

    let rows = ok(client(&pg)
        .await
        .query(
            &format!("SELECT {SELECT_EVENT} FROM flow_events ORDER BY cursor_ms, cursor_seq"),
            &[],
        )
        .await);
    assert_eq!(rows.len(), entries.len());
    for (row, entry) in rows.iter().zip(&entries) {
        let stored: FlowEvent = ok(serde_json::from_str(&entry.json));
        let want = FlowEvent {
            id: entry.id.to_string(),
            ..stored
        };
        assert_eq!(ok(event_from_row(row)), want);
    }
    // One partition per trading day of the events, named for it.
    let days: BTreeSet<Date> = (0..3).map(|d| market_date(T0 + d * DAY_MS)).collect();
    let listed = ok(client(&pg)
        .await
        .query(
            "SELECT DISTINCT tableoid::regclass::text FROM flow_events ORDER BY 1",
            &[],
        )
        .await);
    let names: Vec<String> = listed.iter().map(|r| r.get(0)).collect();
    let want: Vec<String> = days.iter().map(|d| archive::partitions::name(*d)).collect();
    assert_eq!(names, want);
    // The days are over: the role gives each its indexes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = client(&pg).await;
    for day in &days {
        while day_indexes(&c, *day).await != all_day_indexes(*day) {
            assert!(Instant::now() < deadline, "{day} was not indexed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        archiver
            .stats
            .days_indexed
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        archiver
            .stats
            .archived
            .load(std::sync::atomic::Ordering::Relaxed),
        2000
    );
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_archiver_and_postgres_crashes() {
    let pg = ok(PostgresServer::start().await);
    let (_redis, bus) = redis_bus().await;
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(3000).await;
    // The archiver is aborted at several points of its run (between COPY
    // and commit, between commit and the next read, ...), then restarted.
    for pause_ms in [5, 30, 80, 150] {
        let archiver = start_archiver(&bus, &pg, 100);
        committer.commit(200).await;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        archiver.task.abort();
        let _ = archiver.task.await;
    }
    // PostgreSQL itself killed (SIGKILL) while the archiver writes, then
    // restarted on the same data directory (crash recovery).
    let archiver = start_archiver(&bus, &pg, 100);
    committer.commit(2000).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ok(pg.kill());
    committer.commit(500).await;
    wait_until_down(&archiver.stats).await;
    ok(pg.resume().await);
    let entries = stream(&bus).await;
    assert_eq!(entries.len(), 6300);
    let set = wait_for_rows(&pg, entries.len()).await;
    assert_eq!(
        set,
        cursors(&entries),
        "the archive differs from the stream"
    );
    let (rows, _) = archived(&pg).await;
    assert_eq!(rows as usize, entries.len(), "an event was archived twice");
    assert!(
        archiver
            .stats
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the kill went unnoticed: the test did not test it"
    );
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
}

/// Two archivers on one stream at once (a deploy overlapping the old
/// process, or two hosts configured alike): each event is archived once,
/// and the archived cursor ends at the stream's last entry, even when one of
/// them dies in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_archivers_at_once_archive_each_event_once() {
    let pg = ok(PostgresServer::start().await);
    let (_redis, bus) = redis_bus().await;
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(1000).await;
    let first = start_archiver(&bus, &pg, 150);
    let second = start_archiver(&bus, &pg, 70);
    for _ in 0..10 {
        committer.commit(200).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One dies mid-run; the other carries on alone.
    first.task.abort();
    let _ = first.task.await;
    committer.commit(1000).await;
    let entries = stream(&bus).await;
    assert_eq!(entries.len(), 4000);
    let set = wait_for_rows(&pg, entries.len()).await;
    assert_eq!(
        set,
        cursors(&entries),
        "the archive differs from the stream"
    );
    let (rows, _) = archived(&pg).await;
    assert_eq!(rows as usize, entries.len(), "an event was archived twice");
    let progress = ok(client(&pg)
        .await
        .query_one("SELECT cursor_ms, cursor_seq FROM archive_progress", &[])
        .await);
    let last = entries.last().map(|e| e.id);
    let recorded = Cursor::new(
        progress.get::<_, i64>(0) as u64,
        progress.get::<_, i64>(1) as u64,
    );
    assert_eq!(
        Some(recorded),
        last,
        "the archived cursor is not the last entry"
    );
    second.trigger.trigger();
    assert!(ok(second.task.await).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_then_back_catches_up() {
    let pg = ok(PostgresServer::start().await);
    let (_redis, bus) = redis_bus().await;
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(300).await;
    let archiver = start_archiver(&bus, &pg, 500);
    wait_for_rows(&pg, 300).await;
    ok(pg.stop());
    committer.commit(1200).await;
    wait_until_down(&archiver.stats).await;
    ok(pg.resume().await);
    let entries = stream(&bus).await;
    let set = wait_for_rows(&pg, entries.len()).await;
    assert_eq!(set, cursors(&entries));
    assert_eq!(archiver.stats.lost().0, 0);
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let pg = ok(PostgresServer::start().await);
    let known = archive::schema::known_version();
    drop(ok(Writer::connect(&pg.url(), "ft").await));
    ok(client(&pg)
        .await
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(known + 1)],
        )
        .await);
    let err = Writer::connect(&pg.url(), "ft")
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            format!(
                "archive schema version {} is newer than this flowtape (knows up to {known}): upgrade flowtape",
                known + 1
            )
            .as_str()
        )
    );
    // The role stops with it rather than retrying forever.
    let bus = Bus::memory(BusConfig::default());
    let archiver = start_archiver(&bus, &pg, 10);
    let ended = tokio::time::timeout(Duration::from_secs(30), archiver.task).await;
    assert!(matches!(
        ended,
        Ok(Ok(Err(archive::ArchiveError::SchemaTooNew { .. })))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_or_detaches_old_day_partitions() {
    let pg = ok(PostgresServer::start().await);
    let mut writer = ok(Writer::connect(&pg.url(), "ft").await);
    let today = market_date(T0);
    // Events of today and 1, 2, 5 and 10 days before.
    let ages = [10, 5, 2, 1, 0];
    let rows: Vec<ArchiveRow> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| {
            let mut e = event(3 * i as u64); // k % 3 == 0: on T0's day.
            e.ts = T0 - age * DAY_MS;
            ok(ArchiveRow::from_entry(&FlowEntry {
                id: Cursor::new(i as u64 + 1, 0),
                json: Arc::from(e.to_stored_json()),
            }))
        })
        .collect();
    ok(writer.write(&rows, Cursor::new(5, 0)).await);
    assert_eq!(
        ok(archive::partitions::list(writer.client()).await).len(),
        5
    );

    let detached = ok(writer
        .apply_retention(today, 6, RetentionMode::Detach)
        .await);
    assert_eq!(detached, [today.add_days(-10)]);
    let removed = ok(writer.apply_retention(today, 2, RetentionMode::Drop).await);
    assert_eq!(removed, [today.add_days(-5)]);
    assert_eq!(
        ok(archive::partitions::list(writer.client()).await),
        [today.add_days(-2), today.add_days(-1), today]
    );
    let count: i64 = ok(writer
        .client()
        .query_one("SELECT count(*) FROM flow_events", &[])
        .await)
    .get(0);
    assert_eq!(count, 3);
    // The detached partition is kept as a table of its own; the dropped one is gone.
    assert!(table_exists(&writer, today.add_days(-10)).await);
    assert!(!table_exists(&writer, today.add_days(-5)).await);
    // 0 keeps everything.
    assert!(ok(writer.apply_retention(today, 0, RetentionMode::Drop).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archiver_applies_retention_and_writes_no_expired_day() {
    let pg = ok(PostgresServer::start().await);
    let bus = Bus::memory(BusConfig::default());
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(30).await;
    let archiver = start_archiver(&bus, &pg, 100);
    wait_for_rows(&pg, 30).await;
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
    // The events are of December 2024: far past a retention of 7 days now.
    committer.commit(20).await;
    let archiver = start_archiver_with(
        &bus,
        ArchiveConfig {
            retention_days: 7,
            poll: Duration::from_millis(20),
            ..ArchiveConfig::new(pg.url())
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while archiver
        .stats
        .expired
        .load(std::sync::atomic::Ordering::Relaxed)
        < 20
    {
        assert!(Instant::now() < deadline, "the new events were not judged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        archiver
            .stats
            .partitions_removed
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    let (rows, _) = archived(&pg).await;
    assert_eq!(rows, 0, "expired days were written again");
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_written_again_adds_nothing() {
    let pg = ok(PostgresServer::start().await);
    let bus = Bus::memory(BusConfig::default());
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(500).await;
    let archiver = start_archiver(&bus, &pg, 128);
    wait_for_rows(&pg, 500).await;
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
    // The archived cursor lost: every batch is written again, the rows
    // already there are skipped, the new ones inserted.
    ok(client(&pg)
        .await
        .execute("DELETE FROM archive_progress", &[])
        .await);
    committer.commit(100).await;
    let archiver = start_archiver(&bus, &pg, 128);
    let set = wait_for_rows(&pg, 600).await;
    assert_eq!(set, cursors(&stream(&bus).await));
    let deadline = Instant::now() + Duration::from_secs(30);
    let duplicates = || {
        archiver
            .stats
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while duplicates() < 500 {
        assert!(
            Instant::now() < deadline,
            "{} duplicates skipped",
            duplicates()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(duplicates(), 500);
    assert_eq!(archived(&pg).await.0, 600);
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
}

/// The valid indexes of `day`'s partition besides its primary key, by name.
async fn day_indexes(client: &tokio_postgres::Client, day: Date) -> BTreeSet<String> {
    let rows = ok(client
        .query(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = to_regclass($1::text) AND i.indisvalid AND NOT i.indisprimary",
            &[&archive::partitions::name(day)],
        )
        .await);
    rows.iter().map(|r| r.get(0)).collect()
}

fn all_day_indexes(day: Date) -> BTreeSet<String> {
    DAY_INDEXES.iter().map(|i| index_name(day, i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_indexed_once_it_is_over() {
    let pg = ok(PostgresServer::start().await);
    let mut writer = ok(Writer::connect(&pg.url(), "ft").await);
    let now = i64::try_from(
        ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)).as_millis(),
    )
    .unwrap_or(i64::MAX);
    // Events of two past days, and of today.
    let rows: Vec<ArchiveRow> = [T0 - DAY_MS, T0, now]
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            let mut e = event(i as u64 + 1);
            e.ts = *ts;
            ok(ArchiveRow::from_entry(&FlowEntry {
                id: Cursor::new(i as u64 + 1, 0),
                json: Arc::from(e.to_stored_json()),
            }))
        })
        .collect();
    let written = ok(writer.write(&rows, Cursor::new(3, 0)).await);
    assert!(written.new_day);
    let (before, on, today) = (market_date(T0 - DAY_MS), market_date(T0), market_date(now));
    for day in [before, on, today] {
        assert!(
            day_indexes(writer.client(), day).await.is_empty(),
            "{day} is written with its primary key only"
        );
    }
    // A day retention removes is left alone.
    assert_eq!(
        ok(index_finished_days(writer.client(), now, Some(on)).await),
        [on]
    );
    assert!(day_indexes(writer.client(), before).await.is_empty());
    assert_eq!(
        ok(index_finished_days(writer.client(), now, None).await),
        [before]
    );
    assert_eq!(
        day_indexes(writer.client(), before).await,
        all_day_indexes(before)
    );
    assert_eq!(day_indexes(writer.client(), on).await, all_day_indexes(on));
    assert!(
        day_indexes(writer.client(), today).await.is_empty(),
        "today is not over"
    );
    assert!(
        ok(index_finished_days(writer.client(), now, None).await).is_empty(),
        "nothing left to do"
    );

    // An index a crash left invalid is built again.
    let premium = index_name(on, &DAY_INDEXES[2]);
    ok(writer
        .client()
        .execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass($1::text)",
            &[&premium],
        )
        .await);
    assert!(!day_indexes(writer.client(), on).await.contains(&premium));
    assert_eq!(
        ok(index_finished_days(writer.client(), now, None).await),
        [on]
    );
    assert_eq!(day_indexes(writer.client(), on).await, all_day_indexes(on));

    // Once today is over (its late events included), it is indexed too.
    let tomorrow = market_instant_ms(today.add_days(1), 0, 0);
    assert!(ok(index_finished_days(writer.client(), tomorrow, None).await).is_empty());
    assert_eq!(
        ok(index_finished_days(writer.client(), tomorrow + 15 * 60_000, None).await),
        [today]
    );
    // Writes into an indexed day go on.
    let mut late = event(4);
    late.ts = T0 + 1;
    let late = ok(ArchiveRow::from_entry(&FlowEntry {
        id: Cursor::new(4, 0),
        json: Arc::from(late.to_stored_json()),
    }));
    assert!(!ok(writer.write(&[late], Cursor::new(4, 0)).await).new_day);
    let count: i64 = ok(writer
        .client()
        .query_one(
            "SELECT count(*) FROM flow_events WHERE day = $1::text::date",
            &[&on.to_string()],
        )
        .await)
    .get(0);
    assert_eq!(count, 2);
}

async fn table_exists(writer: &Writer, day: Date) -> bool {
    let name = archive::partitions::name(day);
    ok(writer
        .client()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await)
    .get(0)
}

/// Waits until the archiver has seen PostgreSQL fail.
async fn wait_until_down(stats: &ArchiveStats) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.postgres_up.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the outage was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trimmed_past_the_archive_is_reported() {
    let pg = ok(PostgresServer::start().await);
    let bus = Bus::memory(BusConfig {
        flow_max_len: 100,
        ..BusConfig::default()
    });
    let mut committer = Committer::new(bus.clone()).await;
    committer.commit(50).await;
    let archiver = start_archiver(&bus, &pg, 20);
    wait_for_rows(&pg, 50).await;
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
    // 300 more while no archiver runs: the stream keeps the last 100.
    committer.commit(300).await;
    let archiver = start_archiver(&bus, &pg, 20);
    wait_for_rows(&pg, 150).await;
    let (gaps, _) = archiver.stats.lost();
    assert_eq!(gaps, 1, "the trimmed events were not reported");
    let (_, set) = archived(&pg).await;
    assert_eq!(set.len(), 150);
    archiver.trigger.trigger();
    assert!(ok(archiver.task.await).is_ok());
}

/// `assets/deploy/postgresql/flowtape.conf`, included by a real PostgreSQL
/// that is then restarted: it starts (PostgreSQL refuses a bad value or an
/// unknown name), and every setting the file names comes from the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_postgresql_settings_are_valid() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/deploy/postgresql/flowtape.conf")
        .canonicalize()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = ok(std::fs::read_to_string(&conf));
    let named: BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('=').next().unwrap_or_default().trim().to_string())
        .collect();
    assert!(named.contains("synchronous_commit"), "{named:?}");
    let pg = ok(PostgresServer::start().await);
    ok(pg.include_config(&conf));
    ok(pg.stop());
    ok(pg.resume().await);
    let rows = ok(client(&pg)
        .await
        .query(
            "SELECT name FROM pg_settings WHERE sourcefile = $1",
            &[&conf.to_string_lossy().as_ref()],
        )
        .await);
    let applied: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(applied, named, "every setting of the file is in effect");
}
