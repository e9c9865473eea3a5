//! The `day` op: the day's premium totals, answered as a `day` frame.
//!
//! [`DayCache`] is shared by every connection of a gateway: it reads a
//! day's totals from the bus at most once per `day_cache` (however many
//! clients ask) and keeps them ranked, so an answer is a copy of the top N.
//! [`answer`] checks the request (a future date or `top` over
//! [`MAX_DAY_TOP`] is a `bad_field` error; the connection stays) and sends
//! the frame. A day older than the bus keeps is summed from the archive
//! (once: past days do not change); without an archive, or for a day it
//! does not hold, the `bad_field` error says so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::auth::Entitlement;
use super::delivery::bus_call;
use super::outbox::Outbox;
use super::session::{Context, End};
use crate::archive::{ArchiveReader, Held, QueryError};
use crate::bus::{now_ms, Bus, BusError};
use flowtape_core::date::{market_date, Date};
use flowtape_core::day::{DayReport, DEFAULT_DAY_TOP, MAX_DAY_TOP};
use flowtape_core::protocol::{ErrorCode, ServerMessage};

/// One day's totals as last read, ranked to [`MAX_DAY_TOP`], or why they
/// could not be read (remembered as long, so that clients asking while
/// Redis does not answer do not each wait out a read of their own).
struct Cached {
    read: Instant,
    report: Result<Arc<DayReport>, String>,
}

/// The day totals a gateway read last, per day asked for.
pub(crate) struct DayCache {
    ttl: Duration,
    /// Held across a read, so clients asking at once wait for one read.
    days: Mutex<HashMap<Date, Cached>>,
    /// Past days' totals from the archive: they no longer change, so they
    /// are kept (up to [`ARCHIVED_DAYS_KEPT`] days).
    archived: Mutex<HashMap<Date, Arc<DayReport>>>,
}

/// Past days whose totals a gateway keeps; past it, the cache starts over.
const ARCHIVED_DAYS_KEPT: usize = 64;

/// What the archive answered for a past day.
enum Archived {
    Report(Arc<DayReport>),
    /// No event of that day is archived; what the archive holds.
    Missing(Option<Held>),
}

impl DayCache {
    pub(crate) fn new(ttl: Duration) -> DayCache {
        DayCache {
            ttl,
            days: Mutex::new(HashMap::new()),
            archived: Mutex::new(HashMap::new()),
        }
    }

    /// `day`'s totals, read from the bus unless read (or failed) less than
    /// `ttl` ago. The error is the bus's, for the log.
    async fn get(&self, bus: &Bus, day: Date) -> Result<Arc<DayReport>, String> {
        let mut days = self.days.lock().await;
        let now = Instant::now();
        days.retain(|_, c| now.duration_since(c.read) < self.ttl);
        if let Some(c) = days.get(&day) {
            return c.report.clone();
        }
        let report = bus_call(bus.day_totals(day))
            .await
            .map(|totals| {
                if totals.skipped > 0 {
                    tracing::warn!(%day, skipped = totals.skipped, "day totals: unreadable fields left out");
                }
                Arc::new(totals.report(day, now_ms() as i64, MAX_DAY_TOP as usize))
            })
            .map_err(|e: BusError| e.to_string());
        days.insert(
            day,
            Cached {
                read: Instant::now(),
                report: report.clone(),
            },
        );
        report
    }
}

impl DayCache {
    /// A past `day`'s totals summed from the archive (read once, then kept).
    async fn archived(&self, archive: &ArchiveReader, day: Date) -> Result<Archived, QueryError> {
        let mut days = self.archived.lock().await;
        if let Some(report) = days.get(&day) {
            return Ok(Archived::Report(report.clone()));
        }
        let Some(totals) = archive.day_totals(day).await? else {
            return Ok(Archived::Missing(archive.held().await?));
        };
        let report = Arc::new(totals.report(day, now_ms() as i64, MAX_DAY_TOP as usize));
        if days.len() >= ARCHIVED_DAYS_KEPT {
            days.clear();
        }
        days.insert(day, report.clone());
        Ok(Archived::Report(report))
    }
}

/// A `day` request that can be answered.
#[derive(Debug, PartialEq, Eq)]
struct Asked {
    date: Date,
    top: usize,
    /// Older than the bus keeps: only the archive has it.
    past: bool,
}

/// Why a `day` request is refused.
fn check(
    date: Option<Date>,
    top: Option<u32>,
    today: Date,
    kept_days: i64,
) -> Result<Asked, String> {
    let top = top.unwrap_or(DEFAULT_DAY_TOP);
    if top > MAX_DAY_TOP {
        return Err(format!("day: top {top} is over the cap of {MAX_DAY_TOP}"));
    }
    let date = date.unwrap_or(today);
    if date > today {
        return Err(format!(
            "day: {date} is in the future (the New York trading day is {today})"
        ));
    }
    Ok(Asked {
        date,
        top: top as usize,
        past: date < today.add_days(-kept_days),
    })
}

/// Answers one `day` request.
pub(super) async fn answer(
    ctx: &Context,
    out: &Outbox,
    date: Option<Date>,
    top: Option<u32>,
) -> Result<(), End> {
    if ctx.entitlement == Entitlement::Delayed {
        return Ok(out.error(
            ErrorCode::Unauthorized,
            "day: the day's totals are real time, and this token's entitlement is delayed",
        )?);
    }
    let today = market_date(now_ms() as i64);
    // Per-day keys live `day_ttl` after their last write, at the day's end at the latest.
    let kept_days = (ctx.bus.config().day_ttl.as_secs() / 86_400) as i64;
    let Asked { date, top, past } = match check(date, top, today, kept_days) {
        Ok(asked) => asked,
        Err(message) => return Ok(out.error(ErrorCode::BadField, message)?),
    };
    if past {
        return answer_past(ctx, out, date, top, today.add_days(-kept_days)).await;
    }
    match ctx.day.get(&ctx.bus, date).await {
        Ok(report) => send(out, &report, top),
        Err(e) => {
            ctx.metrics
                .redis_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!("cannot read the day's totals: {e}");
            Ok(out.error(
                ErrorCode::Unavailable,
                "day: the day's totals cannot be read right now; ask again shortly",
            )?)
        }
    }
}

/// Sends the top `top` of `report`.
fn send(out: &Outbox, report: &DayReport, top: usize) -> Result<(), End> {
    let mut report = report.clone();
    report.tickers.truncate(top);
    report.contracts.truncate(top);
    Ok(out.message(&ServerMessage::Day(report))?)
}

/// Answers for a day older than the bus keeps (`oldest` on), from the archive.
async fn answer_past(
    ctx: &Context,
    out: &Outbox,
    date: Date,
    top: usize,
    oldest: Date,
) -> Result<(), End> {
    let Some(archive) = &ctx.archive else {
        return Ok(out.error(
            ErrorCode::BadField,
            format!(
                "day: {date} is older than the day totals kept (from {oldest}) and no archive \
                 is configured"
            ),
        )?);
    };
    match ctx.day.archived(archive, date).await {
        Ok(Archived::Report(report)) => send(out, &report, top),
        Ok(Archived::Missing(held)) => {
            let holds = match held {
                Some(h) => format!("the archive holds {} to {}", h.first_day, h.last_day),
                None => "the archive holds nothing yet".into(),
            };
            Ok(out.error(
                ErrorCode::BadField,
                format!("day: {date} is not archived ({holds})"),
            )?)
        }
        Err(e) => {
            tracing::warn!("cannot read a past day's totals from the archive: {e}");
            Ok(out.error(
                ErrorCode::Unavailable,
                "day: the archive cannot be read right now; ask again shortly",
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusConfig;

    fn date(s: &str) -> Date {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn requests_are_checked() {
        let today = date("2026-12-07");
        let asked = |date, top, past| Asked { date, top, past };
        assert_eq!(check(None, None, today, 2), Ok(asked(today, 10, false)));
        assert_eq!(
            check(Some(date("2026-12-05")), Some(100), today, 2),
            Ok(asked(date("2026-12-05"), 100, false))
        );
        assert_eq!(
            check(Some(date("2026-12-04")), None, today, 2),
            Ok(asked(date("2026-12-04"), 10, true))
        );
        let refused = |d: &str, top| {
            check(Some(date(d)), top, today, 2)
                .err()
                .unwrap_or_default()
        };
        assert_eq!(
            refused("2026-12-08", None),
            "day: 2026-12-08 is in the future (the New York trading day is 2026-12-07)"
        );
        assert_eq!(
            refused("2026-12-07", Some(101)),
            "day: top 101 is over the cap of 100"
        );
    }

    #[tokio::test]
    async fn many_askers_cost_one_read_per_interval() {
        let bus = Bus::memory(BusConfig::default());
        let cache = DayCache::new(Duration::from_secs(3600));
        let day = date("2026-12-07");
        let first = cache.get(&bus, day).await.unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..5 {
            let again = cache.get(&bus, day).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(
                Arc::ptr_eq(&first, &again),
                "read again within the interval"
            );
        }
        let other = cache
            .get(&bus, date("2026-12-06"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.date, date("2026-12-06"));
        let fresh = DayCache::new(Duration::ZERO);
        let a = fresh.get(&bus, day).await.unwrap_or_else(|e| panic!("{e}"));
        let b = fresh.get(&bus, day).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(&a, &b), "an expired entry is read again");
    }
}
