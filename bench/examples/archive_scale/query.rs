//! `query` and `explain`: the first history page of one ticker on one day,
//! both ways a client opens it: the 200 newest events before the close, and
//! the 200 first after the open. Tickers are picked across the popularity
//! ranks (the five heaviest, then evenly down the tail), every day.
//!
//! Two SQL shapes of that page: paged by stream cursor, as the protocol's
//! `history` pages are (`before`/`after` a cursor), and paged by event
//! time, which the `(sym, ts)` index serves. Each query is prepared once,
//! run with its parameters and its rows decoded into events
//! ([`event_from_row`]), as a reader would; the time is from sending it to
//! the last event decoded.

use std::time::{Duration, Instant};

use flowtape_bench::archive_size;
use flowtape_core::date::{market_instant_ms, Date};
use flowtape_server::archive::row::{event_from_row, SqlDate, SELECT_EVENT};
use tokio_postgres::{Client, Statement};

/// Events in a first page.
const PAGE: i64 = 200;
/// Heaviest tickers always measured.
const HEAVY: usize = 5;

/// A way of writing the page's SQL.
#[derive(Clone, Copy)]
enum Shape {
    /// `(cursor_ms, cursor_seq)` before/after a cursor, in cursor order.
    Cursor,
    /// `ts` before/after an instant, in time order.
    Time,
}

impl Shape {
    const ALL: [Shape; 2] = [Shape::Cursor, Shape::Time];

    fn name(self) -> &'static str {
        match self {
            Shape::Cursor => "by cursor",
            Shape::Time => "by time",
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
) -> Result<(), Box<dyn std::error::Error>> {
    let client = archive_size::connect(url).await?;
    let cases = cases(&client, days, tickers).await?;
    println!(
        "{} queries a direction a round: {tickers} tickers x {} days",
        cases.len(),
        days.len()
    );
    for shape in Shape::ALL {
        let [before, after] = shape.sql();
        let statements = [
            ("before the close", client.prepare(&before).await?),
            ("after the open", client.prepare(&after).await?),
        ];
        for round in 1..=rounds {
            for (which, statement) in &statements {
                let mut times = Vec::with_capacity(cases.len());
                for case in &cases {
                    let at = if *which == "before the close" {
                        market_instant_ms(case.day, 16, 0)
                    } else {
                        market_instant_ms(case.day, 9, 30)
                    };
                    let took = page(&client, statement, case, at).await?;
                    times.push((took, case));
                }
                report(shape, round, which, &mut times);
            }
        }
    }
    Ok(())
}

/// Runs one page; its time.
async fn page(
    client: &Client,
    statement: &Statement,
    case: &Case,
    at_ms: i64,
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
    if events.len() as i64 != PAGE.min(case.events) {
        return Err(format!(
            "{} on {}: {} events, expected {}",
            case.sym,
            case.day,
            events.len(),
            PAGE.min(case.events)
        )
        .into());
    }
    Ok(took)
}

/// p50, p99 and the slowest of a round.
fn report(shape: Shape, round: usize, which: &str, times: &mut [(Duration, &Case)]) {
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
        "{} round {round}, {which}: p50 {:.2} ms, p99 {:.2} ms; slowest: {}",
        shape.name(),
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

/// `EXPLAIN (ANALYZE, BUFFERS)` of both shapes, both directions, for the
/// heaviest ticker, one from the middle and one from the tail of the
/// middle day.
pub async fn explain(url: &str, days: &[Date]) -> Result<(), Box<dyn std::error::Error>> {
    let client = archive_size::connect(url).await?;
    let day = *days.get(days.len() / 2).ok_or("no days")?;
    let all = cases(&client, &[day], 3).await?;
    for case in &all {
        for shape in Shape::ALL {
            for (sql, at) in shape.sql().iter().zip([
                market_instant_ms(day, 16, 0),
                market_instant_ms(day, 9, 30),
            ]) {
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
