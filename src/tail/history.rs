//! Reading a window of history: `after` pages from `--since` on, each
//! matching event printed once and in order, until `--until`, `--limit` or
//! the live edge (a page with `more: false`: the newest event the gateway
//! had). Page notices (past the stream's retention, an archive that is not
//! configured or misses a day, …) go to stderr, each once.

use std::io::Write;

use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;

use super::pages::Pager;
use super::print::{Printed, Printer};
use super::TailError;

/// Where reading the window stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reached {
    /// `--until` or `--limit`: tail is done.
    End,
    /// The live edge; everything up to this position was read (printed or
    /// not matching), so a live stream resumed after it has no gap and no
    /// duplicate.
    LiveEdge(Cursor),
}

/// Prints the matching events after `since` (and before `until`).
pub(super) async fn read<W: Write>(
    pager: &mut Pager,
    since: Cursor,
    until: Option<Cursor>,
    filter: &Filter,
    printer: &mut Printer<'_, W>,
) -> Result<Reached, TailError> {
    let mut pos = since;
    let mut said: Option<String> = None;
    loop {
        let page = pager.after(pos).await?;
        if page.notice.is_some() && page.notice != said {
            eprintln!(
                "flowtape tail: {}",
                page.notice.as_deref().unwrap_or_default()
            );
            said = page.notice;
        }
        let start = pos;
        for item in page.events {
            if item.cursor <= pos {
                continue;
            }
            if until.is_some_and(|u| item.cursor >= u) {
                printer.flush()?;
                return Ok(Reached::End);
            }
            pos = item.cursor;
            let event = match serde_json::from_str::<FlowEvent>(item.event.get()) {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, cursor = %item.cursor, "event does not match the schema");
                    continue;
                }
            };
            if filter.matches(&event)
                && printer.print(&event, Some(&item.event))? == Printed::Enough
            {
                printer.flush()?;
                return Ok(Reached::End);
            }
        }
        printer.flush()?;
        if !page.more {
            return Ok(Reached::LiveEdge(pos));
        }
        pos = pos.max(page.next.unwrap_or(pos));
        if pos == start {
            return Err(TailError::Server(format!(
                "a history page said there is more after {pos} but did not move on from it"
            )));
        }
        if until.is_some_and(|u| pos >= u) {
            return Ok(Reached::End);
        }
    }
}
