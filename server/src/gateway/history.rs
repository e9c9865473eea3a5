//! `history` requests: one page of the flow stream next to a cursor, for
//! scrolling back or reading on from a time.
//!
//! A page holds at most `limit` matching events strictly before `before` or
//! strictly after `after`, oldest first, read with the replays' steps
//! ([`super::replay`]) and at most `history_scan_cap` entries per page;
//! `more` and `next` let a sparse filter go on with the next request. Pages
//! never reach past the client's tier (its tap's newest event). A page is
//! one frame in the client's send queue, so live events keep their order
//! around it, and the session's cursor does not move. Requests are rate
//! limited per connection (`history_rate`); every refusal is an error frame.

use std::time::Instant;

use super::config::GatewayConfig;
use super::delivery::bus_call;
use super::ratelimit::{TokenBucket, Verdict};
use super::replay::{Replay, ReplayError};
use super::session::{End, Session};
use crate::archive::{ArchivePage, ArchiveReader, Held, PageSide};
use flowtape_core::clock::format_ny;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::market_date;
use flowtape_core::filter::Filter;
use flowtape_core::protocol::{
    event_frame, page_frame, ErrorCode, HistoryRequest, PageHead, HISTORY_PAGE_DEFAULT,
    MAX_HISTORY_PAGE,
};

/// One connection's page requests: their rate limit.
pub(super) struct Pages {
    bucket: TokenBucket,
}

impl Pages {
    pub(super) fn new(config: &GatewayConfig, now: Instant) -> Pages {
        Pages {
            bucket: TokenBucket::new(&config.history_rate, now),
        }
    }
}

/// Which side of its cursor a page lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Before(Cursor),
    After(Cursor),
}

/// A request that can be answered.
#[derive(Debug)]
struct Plan {
    side: Side,
    limit: usize,
    /// The request's own filter; the subscription's when `None`.
    filter: Option<Filter>,
}

/// Checks a request, as of `now_ms`; what is wrong with a bad one.
fn plan(req: &HistoryRequest, now_ms: u64) -> Result<Plan, String> {
    let side = match (req.before, req.after) {
        (Some(_), Some(_)) => return Err("give before or after, not both".into()),
        (None, None) => {
            return Err("give before or after: the cursor the page is next to".into());
        }
        (Some(b), None) => Side::Before(b),
        (None, Some(a)) => Side::After(a),
    };
    let (Side::Before(c) | Side::After(c)) = side;
    if c.ms > now_ms {
        return Err(format!(
            "cursor {c} is in the future ({} is after now, {})",
            format_ny(c.ms as i64),
            format_ny(now_ms as i64)
        ));
    }
    let limit = req.limit.unwrap_or(HISTORY_PAGE_DEFAULT);
    if limit == 0 || limit > MAX_HISTORY_PAGE {
        return Err(format!(
            "limit must be 1 to {MAX_HISTORY_PAGE}, got {limit}"
        ));
    }
    let filter = match &req.filter {
        Some(text) => Some(Filter::parse(text).map_err(|e| format!("filter: {e}"))?),
        None => None,
    };
    Ok(Plan {
        side,
        limit: limit as usize,
        filter,
    })
}

/// What one page holds besides its text.
struct Found {
    frames: Vec<tokio_tungstenite::tungstenite::Utf8Bytes>,
    more: bool,
    next: Option<Cursor>,
    notice: Option<String>,
}

impl Session {
    /// Answers one `history` request with a page or an error frame.
    pub(super) async fn history(&mut self, req: HistoryRequest) -> Result<(), End> {
        if self.pages.bucket.take(Instant::now()) != Verdict::Allow {
            let r = &self.ctx.config.history_rate;
            let message = format!(
                "too many history requests (at most {} a second, {} at once); slow down",
                r.per_second, r.burst
            );
            return Ok(self
                .out
                .refuse(req.id.as_deref(), ErrorCode::RateLimited, message)?);
        }
        let plan = match plan(&req, crate::bus::now_ms()) {
            Ok(plan) => plan,
            Err(why) => {
                return Ok(self
                    .out
                    .refuse(req.id.as_deref(), ErrorCode::BadHistory, why)?)
            }
        };
        let bounds = match bus_call(self.ctx.bus.flow_bounds()).await {
            Ok(bounds) => bounds,
            Err(e) => return self.history_unavailable(&req, &e.to_string()),
        };
        let newest = self.ctx.tap.last();
        let read = match &self.ctx.archive {
            // The archive answers below the stream's first entry, the stream from it.
            Some(archive) => {
                // An empty stream (e.g. a Redis restarted without its data):
                // whatever it holds next comes after now and after the
                // newest event this gateway saw; the archive has the rest.
                let seam = bounds.first.unwrap_or_else(|| {
                    newest.successor().max(Cursor::new(crate::bus::now_ms(), 0))
                });
                self.read_page_with(&plan, archive, seam).await
            }
            None => self.read_stream_page(&plan).await.map(|mut found| {
                found.notice = bounds
                    .first
                    .and_then(|first| past_retention(plan.side, first));
                found
            }),
        };
        let found = match read {
            Ok(found) => found,
            Err(ReplayError::Bus(e)) => return self.history_unavailable(&req, &e),
            Err(ReplayError::Slow) => {
                self.out.close_slow_consumer();
                return Err(End);
            }
        };
        let head = PageHead {
            id: req.id.as_deref(),
            more: found.more,
            next: found.next,
            notice: found.notice.as_deref(),
        };
        let text = page_frame(&head, found.frames.iter().map(|f| f.as_str()));
        if self
            .out
            .text_patiently(text, self.ctx.config.catch_up_patience)
            .await
            .is_err()
        {
            self.out.close_slow_consumer();
            return Err(End);
        }
        Ok(())
    }

    /// Reads the page `plan` asks for from the stream, up to the client's tier.
    async fn read_stream_page(&self, plan: &Plan) -> Result<Found, ReplayError> {
        match plan.side {
            Side::Before(before) => Ok(self.stream_before(plan, before, plan.limit).await?.0),
            Side::After(after) => self.stream_after(plan, after, plan.limit).await,
        }
    }

    /// Up to `want` matching stream events strictly before `before`, and
    /// whether the stream's start was reached.
    async fn stream_before(
        &self,
        plan: &Plan,
        before: Cursor,
        want: usize,
    ) -> Result<(Found, bool), ReplayError> {
        let newest = self.ctx.tap.last();
        let Some(upto) = before.predecessor().map(|p| p.min(newest)) else {
            return Ok((Found::nothing(), true));
        };
        let replay = self.replay_with(plan.filter.as_ref());
        let back = replay
            .backwards(want, upto, self.ctx.config.history_scan_cap)
            .await?;
        let found = Found {
            frames: back.found.iter().rev().map(|d| d.frame.clone()).collect(),
            more: !back.start,
            next: if back.start { None } else { back.oldest },
            notice: None,
        };
        Ok((found, back.start))
    }

    /// Up to `want` matching stream events strictly after `after`.
    async fn stream_after(
        &self,
        plan: &Plan,
        after: Cursor,
        want: usize,
    ) -> Result<Found, ReplayError> {
        let newest = self.ctx.tap.last();
        let scan_cap = self.ctx.config.history_scan_cap;
        let replay = self.replay_with(plan.filter.as_ref());
        let mut found = Found::nothing();
        let (mut pos, mut scanned) = (after, 0);
        while pos < newest {
            let step = replay
                .forwards(pos, newest, want - found.frames.len())
                .await?;
            found
                .frames
                .extend(step.found.iter().map(|d| d.frame.clone()));
            scanned += step.scanned;
            pos = step.last;
            if step.end {
                break;
            }
            if found.frames.len() >= want || scanned >= scan_cap {
                found.more = true;
                found.next = Some(pos);
                break;
            }
        }
        Ok(found)
    }

    /// Reads the page `plan` asks for from the archive below `seam` (the
    /// stream's first entry) and the stream from it: `before` pages walk
    /// the stream, then the archive; `after` pages the archive, then the stream.
    async fn read_page_with(
        &self,
        plan: &Plan,
        archive: &ArchiveReader,
        seam: Cursor,
    ) -> Result<Found, ReplayError> {
        let filter = plan.filter.as_ref().unwrap_or(&self.filter);
        let scan_cap = self.ctx.config.history_scan_cap;
        let archived = |side, want| async move {
            archive
                .page_below(side, Some(seam), want, filter, scan_cap)
                .await
                .map_err(|e| ReplayError::Bus(e.to_string()))
        };
        match plan.side {
            Side::Before(before) => {
                let mut found = Found::nothing();
                if before > seam {
                    let (stream, start) = self.stream_before(plan, before, plan.limit).await?;
                    if !start || stream.frames.len() >= plan.limit {
                        return Ok(stream);
                    }
                    found = stream;
                }
                let page = archived(
                    PageSide::Before(before.min(seam)),
                    plan.limit - found.frames.len(),
                )
                .await?;
                let mut frames = archived_frames(&page);
                frames.append(&mut found.frames);
                Ok(Found {
                    frames,
                    more: page.more,
                    next: page.next,
                    notice: (!page.more)
                        .then(|| archive_start(before, page.held))
                        .flatten(),
                })
            }
            Side::After(after) => {
                if after.successor() >= seam {
                    return self.stream_after(plan, after, plan.limit).await;
                }
                let page = archived(PageSide::After(after), plan.limit).await?;
                let notice = not_archived_after(after, page.held);
                let mut frames = archived_frames(&page);
                if page.more {
                    return Ok(Found {
                        frames,
                        more: true,
                        next: page.next,
                        notice,
                    });
                }
                let from = seam.predecessor().map_or(after, |p| p.max(after));
                let mut rest = self
                    .stream_after(plan, from, plan.limit - frames.len())
                    .await?;
                frames.append(&mut rest.frames);
                Ok(Found {
                    frames,
                    notice,
                    ..rest
                })
            }
        }
    }

    /// This client's replays with `filter`, or the subscription's.
    fn replay_with<'a>(&'a self, filter: Option<&'a Filter>) -> Replay<'a> {
        Replay {
            bus: &self.ctx.bus,
            config: &self.ctx.config,
            metrics: &self.ctx.metrics,
            out: &self.out,
            filter: filter.unwrap_or(&self.filter),
        }
    }

    fn history_unavailable(&mut self, req: &HistoryRequest, why: &str) -> Result<(), End> {
        tracing::warn!("cannot read a history page for a client: {why}");
        Ok(self.out.refuse(
            req.id.as_deref(),
            ErrorCode::HistoryUnavailable,
            "the event store is unavailable; ask for the page again shortly",
        )?)
    }
}

impl Found {
    fn nothing() -> Found {
        Found {
            frames: Vec::new(),
            more: false,
            next: None,
            notice: None,
        }
    }
}

/// Each archived event's `event` frame, oldest first.
fn archived_frames(page: &ArchivePage) -> Vec<tokio_tungstenite::tungstenite::Utf8Bytes> {
    page.events
        .iter()
        .map(|e| event_frame(&e.id, &e.to_stored_json()).into())
        .collect()
}

/// What the archive holds, for notices.
fn holds(held: Option<Held>) -> String {
    match held {
        Some(h) if h.first_day == h.last_day => format!("the archive holds {}", h.first_day),
        Some(h) => format!("the archive holds {} to {}", h.first_day, h.last_day),
        None => "the archive holds nothing yet".into(),
    }
}

/// A time and its trading day, for notices.
fn time_and_day(c: Cursor) -> String {
    format!(
        "{} (trading day {})",
        format_ny(c.ms as i64),
        market_date(c.ms as i64)
    )
}

/// The notice for an `after` page from before the archive's oldest event.
fn not_archived_after(after: Cursor, held: Option<Held>) -> Option<String> {
    let from = after.successor();
    if held.is_some_and(|h| h.first <= from) {
        return None;
    }
    Some(format!(
        "history from {} is not archived ({}), showing from there",
        time_and_day(from),
        holds(held)
    ))
}

/// The notice for a `before` page that reached the archive's start.
fn archive_start(before: Cursor, held: Option<Held>) -> Option<String> {
    Some(match held {
        Some(h) if h.first < before => format!("the start of the archive ({})", holds(held)),
        _ => format!(
            "history before {} is not archived ({})",
            time_and_day(before),
            holds(held)
        ),
    })
}

/// The notice for a page that reaches back past the oldest event kept
/// (without an archive).
fn past_retention(side: Side, first: Cursor) -> Option<String> {
    let oldest = format_ny(first.ms as i64);
    match side {
        // Named as a time: a cursor made from a time is just before it.
        Side::After(after) if after.successor() < first => Some(format!(
            "history from {} is older than the stream keeps (oldest kept: {oldest}; \
             no archive configured), showing from there",
            format_ny(after.successor().ms as i64)
        )),
        Side::Before(before) if before < first => Some(format!(
            "history before {} is older than the stream keeps (oldest kept: {oldest}; \
             no archive configured)",
            format_ny(before.ms as i64)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000_000;

    fn req(before: Option<Cursor>, after: Option<Cursor>, limit: Option<u32>) -> HistoryRequest {
        HistoryRequest {
            before,
            after,
            limit,
            ..HistoryRequest::default()
        }
    }

    fn refused(r: &HistoryRequest) -> String {
        plan(r, NOW)
            .err()
            .unwrap_or_else(|| panic!("{r:?} was accepted"))
    }

    #[test]
    fn requests_are_checked() {
        let c = Cursor::new(NOW - 10, 0);
        assert!(refused(&req(Some(c), Some(c), None)).contains("not both"));
        assert!(refused(&req(None, None, None)).contains("give before or after"));
        assert_eq!(
            refused(&req(Some(c), None, Some(0))),
            "limit must be 1 to 1000, got 0"
        );
        assert_eq!(
            refused(&req(None, Some(c), Some(1001))),
            "limit must be 1 to 1000, got 1001"
        );
        let future = Cursor::new(NOW + 1, 0);
        assert!(refused(&req(Some(future), None, None)).contains("in the future"));
        let bad_filter = HistoryRequest {
            filter: Some("premium>=".into()),
            ..req(Some(c), None, None)
        };
        assert!(refused(&bad_filter).starts_with("filter: "));
        let ok = plan(&req(Some(c), None, None), NOW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.side, Side::Before(c));
        assert_eq!(ok.limit, HISTORY_PAGE_DEFAULT as usize);
        assert!(ok.filter.is_none());
        let ok = plan(&req(None, Some(c), Some(1000)), NOW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ok.side, ok.limit), (Side::After(c), 1000));
    }

    #[test]
    fn a_page_past_retention_says_so() {
        let first = Cursor::new(1_796_000_000_000, 4);
        let after = past_retention(Side::After(Cursor::new(5, 0)), first).unwrap_or_default();
        assert!(
            after.contains("older than the stream keeps (oldest kept: "),
            "{after}"
        );
        assert!(after.ends_with("showing from there"), "{after}");
        // The time asked for, not a cursor: from a time of 07:33 ET.
        let from_time = Cursor::new(1_796_646_780_000 - 1, u64::MAX);
        let later = Cursor::new(1_796_646_780_000 + 60_000, 0);
        let notice = past_retention(Side::After(from_time), later).unwrap_or_default();
        assert!(
            notice.starts_with("history from 2026-12-07 07:33:00 ET is older"),
            "{notice}"
        );
        assert!(past_retention(Side::Before(Cursor::new(5, 0)), first).is_some());
        // Right next to the oldest kept: nothing was trimmed in between.
        assert_eq!(
            past_retention(Side::After(Cursor::new(first.ms, 3)), first),
            None
        );
        assert_eq!(past_retention(Side::Before(first), first), None);
        assert_eq!(past_retention(Side::After(first), first), None);
    }
}
