//! `flowtape tail`: matching events on stdout, for scripts and pipes.
//!
//! NDJSON prints each event object exactly as the gateway sent it, one per
//! line (the FlowEvent schema, `docs/schema.md`); `--format table` prints
//! aligned columns ([`print`]). The filter is checked locally before
//! connecting (with the config's presets, so `--filter notable` is the
//! notable-flow view), sent to the gateway in canonical form (presets
//! expanded) and applied locally as well.
//!
//! Without `--since`, tail is live ([`live`]). With `--since` (a cursor or a
//! time, [`window`]) it reads the history by pages ([`history`], [`pages`]),
//! each event once and in order, and then, like unix `tail`: with `--until`
//! it stops at the first event at or after it (or at the live edge, if that
//! comes first); with `--follow` it goes on live, resuming exactly after the
//! last position the pages read; otherwise it ends at the live edge.
//! `--follow` with `--until` is refused. Exit codes: 0 done (or `--limit`
//! reached, or stdout closed), 1 connection or server failure, 2 bad input.
//! Diagnostics go to stderr.

mod history;
mod live;
mod pages;
mod print;
mod window;

use std::io::{self, Write};

use flowtape_core::filter::{Filter, FilterError, Presets};
use flowtape_server::wsclient::TrustRoots;

use crate::client::{Backoff, ClientOptions};
use history::Reached;
use pages::Pager;
pub use print::table_line;
use print::Printer;
pub use window::Window;

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TailFormat {
    /// One FlowEvent JSON object per line.
    #[default]
    Ndjson,
    /// Aligned columns for people.
    Table,
}

/// What to tail.
#[derive(Clone, Debug)]
pub struct TailOptions {
    pub servers: Vec<String>,
    pub token: Option<String>,
    pub filter: String,
    /// What preset words in the filter stand for.
    pub presets: Presets,
    /// Start live with the last N matching events (without `--since`).
    pub backfill: Option<u32>,
    /// The history to read first, and how it ends.
    pub window: Window,
    pub limit: Option<u64>,
    pub format: TailFormat,
    /// Failed connects in a row before giving up, once connected; as many
    /// history pages the event store could not serve.
    pub max_failures: u32,
    /// Whom `wss://` servers are checked against (`--ca-file`).
    pub trust: TrustRoots,
}

/// Why `tail` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("bad filter: {0}\n  {1}\n  {2}^")]
    BadFilter(FilterError, String, String),
    #[error("{0}")]
    BadTime(String),
    #[error("{0}")]
    BadArgs(String),
    #[error("{0}")]
    Connection(String),
    #[error("server: {0}")]
    Server(String),
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}

impl TailError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            TailError::BadFilter(..) | TailError::BadTime(_) | TailError::BadArgs(_) => 2,
            _ => 1,
        }
    }
}

/// A filter error with the filter text and a caret under its column.
pub fn bad_filter(text: &str, e: FilterError) -> TailError {
    let pad = " ".repeat(e.column.saturating_sub(1));
    TailError::BadFilter(e, text.to_string(), pad)
}

/// Prints matching events to `out` until the window's end, the limit, the
/// end of the stream or a failure. Returns how many events were written.
pub async fn tail(opts: TailOptions, out: &mut impl Write) -> Result<u64, TailError> {
    let filter =
        Filter::parse_with(&opts.filter, &opts.presets).map_err(|e| bad_filter(&opts.filter, e))?;
    if opts.window.follow && opts.window.until.is_some() {
        return Err(TailError::BadArgs(
            "--follow goes on live after the history, --until stops at a point in it: \
             give one of them"
                .into(),
        ));
    }
    let mut printer = match Printer::start(out, opts.format, opts.limit) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    match run(opts, &filter, &mut printer).await {
        Err(TailError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(printer.written()),
        other => other.map(|()| printer.written()),
    }
}

async fn run<W: Write>(
    opts: TailOptions,
    filter: &Filter,
    printer: &mut Printer<'_, W>,
) -> Result<(), TailError> {
    if printer.done() {
        return Ok(());
    }
    let window = opts.window;
    let mut client_opts = ClientOptions {
        servers: opts.servers,
        token: opts.token,
        filter: filter.canonical(),
        backfill: opts.backfill,
        since: None,
        backoff: Backoff::default(),
        max_failures: Some(opts.max_failures.max(1)),
        fail_fast: true,
        keep_raw: true,
        trust: opts.trust,
        day_every: None,
    };
    let Some(since) = window.since else {
        return live::follow(client_opts, filter, printer).await;
    };
    let mut pager = Pager::new(&client_opts)?;
    let reached = history::read(&mut pager, since, window.until, filter, printer).await?;
    drop(pager);
    match reached {
        Reached::LiveEdge(last) if window.follow => {
            client_opts.backfill = None;
            client_opts.since = Some(last);
            live::follow(client_opts, filter, printer).await
        }
        Reached::LiveEdge(_) | Reached::End => Ok(()),
    }
}

#[cfg(test)]
mod tests;
