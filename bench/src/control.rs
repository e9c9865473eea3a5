//! The control protocol between the harness and its two halves.
//!
//! The harness starts each half as a child process (`flowtape-bench
//! --server-only …`, `… --clients-only …`, the soak's `… --soak-clients …`)
//! and talks to it over the child's stdin and stdout, one JSON object per
//! line: a command down, exactly one reply up, in order. Logs go to stderr and never mix with the replies. A
//! half whose stdin closes (the harness is gone) shuts down by itself.
//!
//! [`Link`] is the harness's end of one child: it sends commands, reads
//! replies, and kills the child if it is dropped before [`Link::quit`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::hist::Histogram;
use super::soak::ledger::ClientEpoch;
use super::tally::Tally;
use flowtape_core::cursor::Cursor;

/// How long a half may take to stop after `quit`.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the harness asks of the server half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ServerCommand {
    /// Run the sim feed into ingest; reply [`ServerReply::Fed`] when every
    /// print has been appended to the raw streams.
    Feed(FeedSpec),
    /// Reply with the current [`ServerStats`].
    Stats,
    Quit,
}

/// One feed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedSpec {
    pub sim_seed: u64,
    /// Target prints per second (the sim is calibrated to it).
    pub rate: f64,
    /// Stop after this much feed time (paced runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Stop after this many prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prints: Option<u64>,
    /// As fast as ingest takes them, instead of at the sim's pace.
    #[serde(default)]
    pub fast: bool,
}

/// The server half's answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ServerReply {
    /// Started: the gateway's address (when it runs one) and the process id.
    Ready {
        gateway: Option<SocketAddr>,
        pid: u32,
    },
    /// A feed run ended: prints handed to ingest, from the first to the last append.
    Fed {
        prints: u64,
        seconds: f64,
    },
    Stats(Box<ServerStats>),
    Error {
        message: String,
    },
}

/// Counters of the server half, cumulative since it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Prints appended to the raw streams.
    pub ingested: u64,
    /// Raw entries processed and acknowledged.
    pub processed: u64,
    /// Flow events committed.
    pub events: u64,
    pub ingest_errors: u64,
    pub process_errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayStats>,
}

/// The gateway's counters and stage histograms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayStats {
    pub connections: u64,
    pub events_in: u64,
    pub events_out: u64,
    pub events_filtered: u64,
    pub batches_out: u64,
    pub slow_consumer_disconnects: u64,
    pub lag_resumes: u64,
    /// Clients catching up after lagging, not yet live again.
    #[serde(default)]
    pub catching_up: u64,
    pub gap_repairs: u64,
    /// `stream_to_gateway` and `gateway_to_socket`, as the gateway buckets them.
    pub stream_to_hub: BucketHistogram,
    pub hub_to_socket: BucketHistogram,
}

/// A fixed-bucket histogram as `/metrics` exposes it: cumulative counts at
/// finite upper bounds in seconds, and the sum and count of everything
/// (which is the `+Inf` bucket).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketHistogram {
    pub bounds: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub sum_s: f64,
    pub count: u64,
}

/// What the harness asks of the clients half.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ClientsCommand {
    /// Start a measured window: forget the counts and histograms.
    Begin,
    /// Once nothing has arrived for a moment, report the window.
    Report,
    Quit,
}

/// The clients half's answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ClientsReply {
    /// Every client that could connect is subscribed and live.
    Ready {
        pid: u32,
        /// Each client's filter, in client order.
        filters: Vec<String>,
        live: usize,
    },
    Begun,
    Report(Box<ClientsReport>),
    Error {
        message: String,
    },
}

/// The clients' account of one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientsReport {
    /// One per client, in client order.
    pub tallies: Vec<Tally>,
    /// Frames decoded (an `events` batch is one frame).
    pub frames: u64,
    /// Feed hand-over → decoded by the client, every event.
    pub e2e: Histogram,
    /// The same for `single` and `block` events (no sweep window).
    pub e2e_single_block: Histogram,
    /// The same for `sweep` and `split` events, which wait out the sweep window.
    pub e2e_sweep_split: Histogram,
    /// Event `ts` → flow stream commit (stream id time; whole milliseconds).
    pub feed_to_stream: Histogram,
    /// Flow stream commit → decoded by the client.
    pub stream_to_client: Histogram,
    /// Frame received → decoded, per frame.
    pub decode: Histogram,
}

/// What the harness asks of the soak's clients half (`--soak-clients`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ChurnCommand {
    /// Report epoch `epoch` ([`ChurnReply::Epoch`]); its events are late from now on.
    Epoch {
        epoch: u32,
    },
    /// The feed has ended and `through` is the stream's last event: end
    /// the switches in flight there and change no filter any more.
    Finish {
        through: Cursor,
    },
    Quit,
}

/// The soak clients' answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ChurnReply {
    /// Every base client that could connect is live; the churn has begun.
    Ready {
        pid: u32,
        live: usize,
    },
    Epoch(Box<ChurnEpoch>),
    Finished,
    Error {
        message: String,
    },
}

/// The soak clients' report of one epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChurnEpoch {
    /// One per client (base clients first), in client order.
    pub clients: Vec<ClientEpoch>,
    /// What the clients did since the last report.
    pub activity: Activity,
    /// Clients not live again when the report was taken (after waiting).
    pub unsettled: u64,
    /// Feed hand-over → decoded, for every live event (not replays) received since the last report.
    pub e2e: Histogram,
}

/// What the soak clients did over a stretch of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// WebSocket connections opened, and attempts that failed.
    pub connects: u64,
    pub connect_failures: u64,
    /// Churn clients that left with a close handshake, or by dropping the connection.
    pub leaves: u64,
    pub drops: u64,
    /// Reconnections to end a switch no event proved.
    pub refreshes: u64,
    /// Connections the server ended, by close code or what happened.
    pub server_closes: BTreeMap<String, u64>,
    pub filter_ops: u64,
    /// Subscribes sent again after the server answered `unavailable`.
    pub resubscribes: u64,
    /// Clients live again after the server ended their connection, and how
    /// long that took (from the close to `live`), ms.
    pub resumes: u64,
    pub resume_ms_max: u64,
    pub resume_ms_total: u64,
    /// `lost` statuses and error frames received.
    pub history_lost: u64,
    pub errors: u64,
    /// Clients live at the time of the report.
    pub connected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot start {half}: {source}")]
    Spawn {
        half: &'static str,
        source: std::io::Error,
    },
    #[error("{half}: {source}")]
    Io {
        half: &'static str,
        source: std::io::Error,
    },
    #[error("{half} exited before answering")]
    Exited { half: &'static str },
    #[error("{half} sent an unreadable reply {line:?}: {source}")]
    BadReply {
        half: &'static str,
        line: String,
        source: serde_json::Error,
    },
    #[error("{half} reports: {message}")]
    Failed { half: &'static str, message: String },
    #[error("{half} answered {got} where {want} was expected")]
    Unexpected {
        half: &'static str,
        got: String,
        want: &'static str,
    },
}

/// The harness's end of one half.
pub struct Link<C, R> {
    half: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pid: u32,
    _types: std::marker::PhantomData<fn(C) -> R>,
}

impl<C: Serialize, R: DeserializeOwned> Link<C, R> {
    /// Starts `flowtape-bench <args>` (this same executable) as `half`.
    pub fn spawn(half: &'static str, args: &[String]) -> Result<Link<C, R>, ControlError> {
        let exe = std::env::current_exe().map_err(|source| ControlError::Spawn { half, source })?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ControlError::Spawn { half, source })?;
        let missing = || ControlError::Spawn {
            half,
            source: std::io::Error::other("no pipe to the child"),
        };
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let pid = child.id().ok_or(ControlError::Exited { half })?;
        Ok(Link {
            half,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            pid,
            _types: std::marker::PhantomData,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub async fn send(&mut self, command: &C) -> Result<(), ControlError> {
        let half = self.half;
        let mut line = serde_json::to_string(command).map_err(|e| ControlError::Io {
            half,
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|source| ControlError::Io { half, source })?;
        self.stdin
            .flush()
            .await
            .map_err(|source| ControlError::Io { half, source })
    }

    /// The next reply (a child's `error` reply is returned as it is).
    pub async fn recv(&mut self) -> Result<R, ControlError> {
        let half = self.half;
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|source| ControlError::Io { half, source })?
            .ok_or(ControlError::Exited { half })?;
        serde_json::from_str(&line).map_err(|source| ControlError::BadReply { half, line, source })
    }

    /// Sends a command and reads its reply.
    pub async fn call(&mut self, command: &C) -> Result<R, ControlError> {
        self.send(command).await?;
        self.recv().await
    }

    /// Asks the half to stop and waits for it; kills it if it does not.
    pub async fn quit(mut self, quit: &C) {
        let _ = self.send(quit).await;
        if tokio::time::timeout(QUIT_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(half = self.half, "did not stop after quit; killing it");
            let _ = self.child.kill().await;
        }
    }

    pub fn half(&self) -> &'static str {
        self.half
    }
}

/// The half's end: replies on stdout, one line each.
pub fn reply<R: Serialize>(reply: &R) -> std::io::Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// The half's end: the next command from stdin; `None` when stdin closed.
pub async fn next_command<C: DeserializeOwned>(
    lines: &mut Lines<BufReader<tokio::io::Stdin>>,
) -> std::io::Result<Option<Result<C, serde_json::Error>>> {
    loop {
        match lines.next_line().await? {
            None => return Ok(None),
            Some(line) if line.trim().is_empty() => continue,
            Some(line) => return Ok(Some(serde_json::from_str(&line))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_of_tagged_json() {
        let feed = ServerCommand::Feed(FeedSpec {
            sim_seed: 1,
            rate: 1000.0,
            seconds: Some(3.0),
            prints: None,
            fast: false,
        });
        let text = serde_json::to_string(&feed).unwrap_or_default();
        assert!(
            text.starts_with(r#"{"cmd":"feed","#) && !text.contains('\n'),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<ServerCommand>(&text).ok(),
            Some(feed)
        );
        let ready = r#"{"reply":"ready","gateway":"127.0.0.1:9","pid":5}"#;
        assert!(matches!(
            serde_json::from_str::<ServerReply>(ready),
            Ok(ServerReply::Ready {
                pid: 5,
                gateway: Some(_)
            })
        ));
        let begin = serde_json::to_string(&ClientsCommand::Begin).unwrap_or_default();
        assert_eq!(begin, r#"{"cmd":"begin"}"#);
    }
}
