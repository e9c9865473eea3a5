//! What `tail` writes: each event once, as NDJSON (the event object exactly
//! as the gateway sent it) or as a table row, counting towards `--limit`.
//! History pages and the live stream print through the same [`Printer`].

use std::io::{self, Write};

use flowtape_core::event::{FlowEvent, Sentiment};
use serde_json::value::RawValue;

use super::TailFormat;
use crate::format;
use crate::ui::tape::tag_words;

pub(super) const TABLE_HEADER: &str =
    "TIME          SYM      EXPIRY    STRIKE C/P SIDE    SIZE   PRICE    PREM KIND   SCORE TAGS";

/// One table line; plain ASCII, so it survives any pipe.
pub fn table_line(e: &FlowEvent) -> String {
    let dir = match e.sentiment {
        Sentiment::Bull => '^',
        Sentiment::Bear => 'v',
        Sentiment::Neutral => ' ',
    };
    format!(
        "{:<13} {dir} {:<6} {:<8} {:>7} {:<3} {:<4} {:>7} {:>7} {:>7} {:<6} {:>5} {}",
        format::time_ms(e.ts),
        e.sym,
        format::expiry_short(&e.expiry),
        format::strike(e.strike),
        e.right.letter(),
        e.side.code(),
        format::count(e.size),
        format::price(e.price),
        format::money(e.premium),
        e.kind.name(),
        e.score,
        tag_words(e),
    )
}

/// Whether printing goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Printed {
    More,
    /// `--limit` reached.
    Enough,
}

/// Writes events in one format and counts them against the limit.
pub(super) struct Printer<'a, W: Write> {
    out: &'a mut W,
    format: TailFormat,
    limit: Option<u64>,
    written: u64,
}

impl<'a, W: Write> Printer<'a, W> {
    /// A printer; the table format starts with its header.
    pub(super) fn start(
        out: &'a mut W,
        format: TailFormat,
        limit: Option<u64>,
    ) -> io::Result<Printer<'a, W>> {
        if format == TailFormat::Table && limit != Some(0) {
            writeln!(out, "{TABLE_HEADER}")?;
        }
        Ok(Printer {
            out,
            format,
            limit,
            written: 0,
        })
    }

    /// Whether the limit is reached before anything is printed (`--limit 0`).
    pub(super) fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.written >= l)
    }

    /// How many events were written.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// Prints one event: its raw JSON text if there is one (NDJSON).
    pub(super) fn print(
        &mut self,
        event: &FlowEvent,
        raw: Option<&RawValue>,
    ) -> io::Result<Printed> {
        match (self.format, raw) {
            (TailFormat::Ndjson, Some(raw)) => writeln!(self.out, "{}", raw.get())?,
            (TailFormat::Ndjson, None) => writeln!(
                self.out,
                "{}",
                serde_json::to_string(event).unwrap_or_default()
            )?,
            (TailFormat::Table, _) => writeln!(self.out, "{}", table_line(event))?,
        }
        self.written += 1;
        Ok(if self.done() {
            Printed::Enough
        } else {
            Printed::More
        })
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
