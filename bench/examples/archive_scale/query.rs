//! `query` and `explain`: the first history page of one ticker on one day,
//! both ways a client opens it: the 200 newest events before the close, and
//! the 200 first after the open. Tickers are picked across the popularity
//! ranks (the five heaviest, then evenly down the tail), every day.
//!
//! Measured three ways:
//! - the gateway's archive reader ([`ArchiveReader::page`], the code a
//!   `history` request runs), with the ticker as the filter and the
//!   gateway's `history_scan_cap`: one request (a sparse ticker's page may
//!   come back short, with `more`), and the whole page of 200, asking on
//!   from `next` as a client does;
//!   A ticker with fewer than 200 events that day gets a page reaching
//!   into the days before (or after): the reader pages the stream, not a day.
//! - two plain SQL shapes of the page, for comparison: paged by stream
//!   cursor (`before`/`after` a cursor, as the protocol's pages are), and
//!   paged by event time, which the `(sym, ts)` index serves. Each is
//!   prepared once, run with its parameters and its rows decoded into
//!   events ([`event_from_row`]); the time is from sending it to the last
//!   event decoded.

use std::path::Path;
use std::time::{Duration, Instant};

use flowtape_bench::archive_size;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_core::filter::Filter;
use flowtape_server::archive::row::{event_from_row, SqlDate, SELECT_EVENT};
use flowtape_server::archive::{ArchiveReader, PageSide};
use flowtape_server::gateway::GatewayConfig;
use tokio_postgres::{Client, Statement};

/// Events in a first page.
const PAGE: i64 = 200;
/// Heaviest tickers always measured.
const HEAVY: usize = 5;
/// Requests after which a whole page still short is given up on.
const MAX_REQUESTS: usize = 100;

/// A way of writing the page's SQL.
#[derive(Clone, Copy)]
enum Shape {
    /// `(cursor_ms, cursor_seq)` before/after a cursor, in cursor order.
    Cursor,
    /// `ts` before/after an instant, in time order.
    Time,
    /// What one request of the reader does for a ticker: the next
    /// `history_scan_cap` rows by cursor, then the ticker's among them
    /// (its pushdown matches `upper(sym)`).
    Window,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::Cursor, Shape::Time, Shape::Window];

    fn name(self) -> &'static str {
        match self {
            Shape::Cursor => "by cursor",
            Shape::Time => "by time",
            Shape::Window => "scan window",
        }
    }

    /// (newest before the close, first after the open); parameters: day,
    /// ticker, the instant in ms.
    fn sql(self) -> [String; 2] {
        let head = format!("SELECT {SELECT_EVENT} FROM flow_events WHERE day = $1 AND sym = $2");
        match self {
            Shape::Cursor => [
                format!("{head} AND (cursor_ms, cursor_seq) < ($3, 0) ORDER BY cursor_ms DESC, cursor_seq DESC LIMIT {PAGE}"),
                format!("{head} AND (cursor_ms, cursor_seq) >= ($3, 0) ORDER BY cursor_ms, cursor_seq LIMIT {PAGE}"),
            ],
            Shape::Time => [
                format!("{head} AND ts < to_timestamp($3::bigint / 1000.0) ORDER BY ts DESC LIMIT {PAGE}"),
                format!("{head} AND ts >= to_timestamp($3::bigint / 1000.0) ORDER BY ts LIMIT {PAGE}"),
            ],
            Shape::Window => {
                let cap = GatewayConfig::default().history_scan_cap;
                let window = |cmp: &str, order: &str| {
                    format!(
                        "SELECT {SELECT_EVENT} FROM (SELECT * FROM flow_events WHERE day = $1 \
                         AND (cursor_ms, cursor_seq) {cmp} ($3, 0) ORDER BY {order} LIMIT {cap}) w \
                         WHERE upper(sym) = $2 ORDER BY {order} LIMIT {PAGE}"
                    )
                };
                [
                    window("<", "cursor_ms DESC, cursor_seq DESC"),
                    window(">=", "cursor_ms, cursor_seq"),
                ]
            }
        }
    }
}

/// One ticker on one day.
struct Case {
    day: Date,
    sym: String,
    /// Its events that day.
    events: i64,
}

pub async fn run(
    url: &str,
    days: &[Date],
    tickers: usize,
    rounds: usize,
    use_reader: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = archive_size::connect(url).await?;
    let cases = cases(&client, days, tickers).await?;
    println!(
        "{} queries a direction a round: {tickers} tickers x {} days",
        cases.len(),
        days.len()
    );
    let reader = ArchiveReader::connect(url).await?;
    let scan_cap = GatewayConfig::default().history_scan_cap;
    for round in (1..=rounds).filter(|_| use_reader) {
        for before in [true, false] {
            let mut one = Vec::with_capacity(cases.len());
            let mut whole = Vec::with_capacity(cases.len());
            let (mut short, mut requests) = (0, Vec::with_capacity(cases.len()));
            for case in &cases {
                let filter = Filter::parse(&case.sym)?;
                let (first, full) = reader_page(&reader, case, before, &filter, scan_cap).await?;
                short += usize::from(first.1 < PAGE.min(case.events) as usize);
                one.push((first.0, case));
                whole.push((full.0, case));
                requests.push(full.1);
            }
            let which = which(before);
            report("reader, one request", round, which, &mut one);
            report("reader, whole page", round, which, &mut whole);
            requests.sort_unstable();
            println!(
                "  {short} of {} first requests came back short; requests for a whole page: median {}, max {}",
                cases.len(),
                requests[requests.len() / 2],
                requests.last().copied().unwrap_or(0)
            );
        }
    }
    for shape in Shape::ALL {
        let [before, after] = shape.sql();
        let statements = [
            (true, client.prepare(&before).await?),
            (false, client.prepare(&after).await?),
        ];
        for round in 1..=rounds {
            for (before, statement) in &statements {
                let mut times = Vec::with_capacity(cases.len());
                for case in &cases {
                    let partial = matches!(shape, Shape::Window);
                    let took = page(
                        &client,
                        statement,
                        case,
                        edge_ms(case.day, *before),
                        partial,
                    )
                    .await?;
                    times.push((took, case));
                }
                report(shape.name(), round, which(*before), &mut times);
            }
        }
    }
    Ok(())
}

fn which(before: bool) -> &'static str {
    if before {
        "before the close"
    } else {
        "after the open"
    }
}

/// The close (before) or the open (after) of `day`, in ms.
fn edge_ms(day: Date, before: bool) -> i64 {
    if before {
        market_instant_ms(day, 16, 0)
    } else {
        market_instant_ms(day, 9, 30)
    }
}

/// The reader's first request for the page (its time and events), and the
/// whole page asked for on from `next` until full or done (its time and
/// requests).
async fn reader_page(
    reader: &ArchiveReader,
    case: &Case,
    before: bool,
    filter: &Filter,
    scan_cap: usize,
) -> Result<((Duration, usize), (Duration, usize)), Box<dyn std::error::Error>> {
    let edge = Cursor::new(u64::try_from(edge_ms(case.day, before))?, 0);
    let mut side = if before {
        PageSide::Before(edge)
    } else {
        PageSide::After(edge.predecessor().ok_or("the open at the epoch")?)
    };
    let started = Instant::now();
    let (mut first, mut events, mut requests) = (None, 0, 0);
    while requests < MAX_REQUESTS {
        let want = PAGE as usize - events;
        let page = reader.page(side, want, filter, scan_cap).await?;
        requests += 1;
        events += page.events.len();
        first.get_or_insert((started.elapsed(), page.events.len()));
        match page.next {
            Some(next) if page.more && events < PAGE as usize => {
                side = if before {
                    PageSide::Before(next)
                } else {
                    PageSide::After(next)
                };
            }
            _ => break,
        }
    }
    let whole = started.elapsed();
    Ok((first.unwrap_or((whole, 0)), (whole, requests)))
}

/// Runs one page; its time.
async fn page(
    client: &Client,
    statement: &Statement,
    case: &Case,
    at_ms: i64,
    partial: bool,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let rows = client
        .query(statement, &[&SqlDate(case.day), &case.sym, &at_ms])
        .await?;
    let events = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let took = started.elapsed();
    // A ticker with fewer events than a page may have some at the close;
    // a scan window holds only some of a sparse ticker's.
    if case.events >= PAGE && events.len() as i64 != PAGE && !partial {
        return Err(format!(
            "{} on {}: {} events, expected {PAGE}",
            case.sym,
            case.day,
            events.len()
        )
        .into());
    }
    Ok(took)
}

/// p50, p99 and the slowest of a round.
fn report(what: &str, round: usize, which: &str, times: &mut [(Duration, &Case)]) {
    times.sort_by_key(|(t, _)| *t);
    let ms = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].0.as_secs_f64() * 1e3
    };
    let slowest: Vec<String> = times
        .iter()
        .rev()
        .take(3)
        .map(|(t, c)| {
            format!(
                "{} {} ({} events) {:.1} ms",
                c.sym,
                c.day,
                c.events,
                t.as_secs_f64() * 1e3
            )
        })
        .collect();
    println!(
        "{what}, round {round}, {which}: p50 {:.2} ms, p99 {:.2} ms; slowest: {}",
        ms(0.5),
        ms(0.99),
        slowest.join(", ")
    );
}

/// `per_day` tickers on every day: the [`HEAVY`] heaviest of the first
/// day, then evenly spaced down its popularity ranks.
async fn cases(
    client: &Client,
    days: &[Date],
    per_day: usize,
) -> Result<Vec<Case>, Box<dyn std::error::Error>> {
    let first = *days.first().ok_or("no days")?;
    let ranked: Vec<String> = client
        .query(
            "SELECT sym FROM flow_events WHERE day = $1 GROUP BY sym ORDER BY count(*) DESC, sym",
            &[&SqlDate(first)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ranked.len() < per_day {
        return Err(format!("{} tickers on {first}, fewer than {per_day}", ranked.len()).into());
    }
    let heavy = HEAVY.min(per_day);
    let rest = per_day - heavy;
    let tail = ranked.len() - heavy;
    let picked: Vec<&String> = ranked[..heavy]
        .iter()
        .chain((0..rest).map(|i| &ranked[heavy + (i + 1) * tail / (rest + 1)]))
        .collect();
    let mut cases = Vec::new();
    for &day in days {
        for sym in &picked {
            let events: i64 = client
                .query_one(
                    "SELECT count(*) FROM flow_events WHERE day = $1 AND sym = $2",
                    &[&SqlDate(day), sym],
                )
                .await?
                .get(0);
            cases.push(Case {
                day,
                sym: sym.to_string(),
                events,
            });
        }
    }
    Ok(cases)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the heaviest ticker, one from the
/// middle and one from the tail of `day`: the reader's own
/// queries (PostgreSQL's `auto_explain`, set for the database while the
/// reader runs, writes them to the server log, `log`) and both SQL shapes.
pub async fn explain(url: &str, day: Date, log: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let client = archive_size::connect(url).await?;
    let all = cases(&client, &[day], 3).await?;
    let scan_cap = GatewayConfig::default().history_scan_cap;
    client
        .batch_execute(
            "ALTER DATABASE postgres SET session_preload_libraries = 'auto_explain';
             ALTER DATABASE postgres SET auto_explain.log_min_duration = 0;
             ALTER DATABASE postgres SET auto_explain.log_analyze = on;
             ALTER DATABASE postgres SET auto_explain.log_buffers = on",
        )
        .await?;
    let logged_from = std::fs::metadata(log)?.len();
    let explained = async {
        let reader = ArchiveReader::connect(url).await?;
        for case in &all {
            for before in [true, false] {
                let filter = Filter::parse(&case.sym)?;
                reader_page(&reader, case, before, &filter, scan_cap).await?;
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    client
        .batch_execute("ALTER DATABASE postgres RESET ALL")
        .await?;
    explained?;
    let text = std::fs::read(log)?;
    let names: Vec<String> = all
        .iter()
        .map(|c| format!("{} ({} events)", c.sym, c.events))
        .collect();
    println!(
        "== the reader's queries, {} on {day}, before the close then after the open:\n{}",
        names.join(", "),
        String::from_utf8_lossy(text.get(logged_from as usize..).unwrap_or_default())
    );
    for case in &all {
        for shape in Shape::ALL {
            for (sql, at) in shape
                .sql()
                .iter()
                .zip([edge_ms(day, true), edge_ms(day, false)])
            {
                println!(
                    "\n== {} on {day} ({} events), {}:\n{sql}",
                    case.sym,
                    case.events,
                    shape.name()
                );
                let rows = client
                    .query(
                        &format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"),
                        &[&SqlDate(day), &case.sym, &at],
                    )
                    .await?;
                for row in rows {
                    println!("{}", row.get::<_, &str>(0));
                }
            }
        }
    }
    Ok(())
}
