//! `flowtape tail`: matching events on stdout, for scripts and pipes.
//!
//! NDJSON prints each event object exactly as the gateway sent it, one per
//! line (the FlowEvent schema, `docs/schema.md`); `--format table` prints
//! aligned columns. The filter is checked locally before connecting (with
//! the config's presets, so `--filter notable` is the notable-flow view),
//! sent to the gateway in canonical form (presets expanded) and applied
//! locally as well. `--since`/`--until` take a cursor or a time
//! ([`window`]); with `--until`, tail prints the events before it and exits
//! (at the first event at or after it, or once the replay of the stream up
//! to the subscribe is over, whichever comes first). Exit codes: 0 done (or
//! `--limit` reached, or stdout closed), 1 connection or server failure,
//! 2 bad input. Diagnostics go to stderr.

mod window;

use std::io::{self, Write};

use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Sentiment};
use flowtape_core::filter::{Filter, FilterError, Presets};
use flowtape_core::protocol::{ErrorCode, ServerMessage};
use flowtape_server::wsclient::TrustRoots;
use tokio::sync::mpsc;

use crate::client::{self, Backoff, ClientEvent, ClientOptions};
use crate::format;
use crate::ui::tape::tag_words;
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
    pub backfill: Option<u32>,
    pub since: Option<Cursor>,
    /// Print only events before this position, then exit.
    pub until: Option<Cursor>,
    pub limit: Option<u64>,
    pub format: TailFormat,
    /// Failed connects in a row before giving up, once connected.
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
            TailError::BadFilter(..) | TailError::BadTime(_) => 2,
            _ => 1,
        }
    }
}

/// A filter error with the filter text and a caret under its column.
pub fn bad_filter(text: &str, e: FilterError) -> TailError {
    let pad = " ".repeat(e.column.saturating_sub(1));
    TailError::BadFilter(e, text.to_string(), pad)
}

const TABLE_HEADER: &str =
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

/// Streams matching events to `out` until the limit, the end of the stream
/// or a failure. Returns how many events were written.
pub async fn tail(opts: TailOptions, out: &mut impl Write) -> Result<u64, TailError> {
    let filter =
        Filter::parse_with(&opts.filter, &opts.presets).map_err(|e| bad_filter(&opts.filter, e))?;
    let client_opts = ClientOptions {
        servers: opts.servers,
        token: opts.token,
        filter: filter.canonical(),
        backfill: opts.backfill,
        since: opts.since,
        backoff: Backoff::default(),
        max_failures: Some(opts.max_failures.max(1)),
        fail_fast: true,
        keep_raw: true,
        trust: opts.trust,
        day_every: None,
    };
    let (_cmd_tx, cmd_rx) = mpsc::channel(1);
    let (ev_tx, mut ev_rx) = mpsc::channel(1024);
    let client = tokio::spawn(client::run(client_opts, cmd_rx, ev_tx));
    let stop = Stop {
        limit: opts.limit,
        until: opts.until,
    };
    let result = pump(&mut ev_rx, &filter, stop, opts.format, out).await;
    client.abort();
    match result {
        Err(TailError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        other => other,
    }
}

/// When `tail` is done.
#[derive(Clone, Copy, Debug, Default)]
struct Stop {
    /// After this many events.
    limit: Option<u64>,
    /// At the first event at or after this position, or at the end of the
    /// replay (which covers the stream up to the subscribe, after `until`).
    until: Option<Cursor>,
}

async fn pump(
    ev_rx: &mut mpsc::Receiver<ClientEvent>,
    filter: &Filter,
    stop: Stop,
    format: TailFormat,
    out: &mut impl Write,
) -> Result<u64, TailError> {
    let Stop { limit, until } = stop;
    let mut written = 0u64;
    if limit == Some(0) {
        return Ok(0);
    }
    if format == TailFormat::Table {
        writeln!(out, "{TABLE_HEADER}")?;
    }
    while let Some(ev) = ev_rx.recv().await {
        match ev {
            ClientEvent::Events(items) => {
                for item in items.iter().filter(|i| filter.matches(&i.event)) {
                    if until.is_some_and(|u| item.cursor >= u) {
                        out.flush()?;
                        return Ok(written);
                    }
                    match (format, &item.raw) {
                        (TailFormat::Ndjson, Some(raw)) => writeln!(out, "{}", raw.get())?,
                        (TailFormat::Ndjson, None) => writeln!(
                            out,
                            "{}",
                            serde_json::to_string(&item.event).unwrap_or_default()
                        )?,
                        (TailFormat::Table, _) => writeln!(out, "{}", table_line(&item.event))?,
                    }
                    written += 1;
                    if limit.is_some_and(|l| written >= l) {
                        out.flush()?;
                        return Ok(written);
                    }
                }
                out.flush()?;
            }
            ClientEvent::Server(m) => match *m {
                ServerMessage::Error { code, message } => match code {
                    ErrorCode::BadFilter
                    | ErrorCode::Unauthorized
                    | ErrorCode::BadCursor
                    | ErrorCode::BadField => {
                        return Err(TailError::Server(format!("{message} ({code:?})")));
                    }
                    _ => eprintln!("flowtape tail: server: {message} ({code:?})"),
                },
                ServerMessage::Status {
                    notice, lost, live, ..
                } => {
                    // A loss always comes with its notice; a bare one is said too.
                    if let Some(n) = notice.or_else(|| lost.map(|l| l.notice())) {
                        eprintln!("flowtape tail: {n}");
                    }
                    if live && until.is_some() {
                        // `until` was before the subscribe: all of it came.
                        out.flush()?;
                        return Ok(written);
                    }
                }
                _ => {}
            },
            ClientEvent::Connected { .. }
            | ClientEvent::Connecting { .. }
            | ClientEvent::Subscribed { .. } => {}
            ClientEvent::Disconnected { server, reason } => {
                eprintln!("flowtape tail: {server}: {reason}; retrying");
            }
            ClientEvent::Failed { reason } => return Err(TailError::Connection(reason)),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
