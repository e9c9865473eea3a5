//! Market feeds: where raw [`Print`]s come from.
//!
//! Every feed has the same output contract: it is a task that sends batches of
//! prints, in time order, into a `tokio::sync::mpsc::Sender<Vec<Print>>` until
//! its input ends, the receiver goes away, or shutdown is signalled, and then
//! returns its [`FeedStats`]. Batches keep the channel cheap at tens of
//! thousands of prints per second; a full channel makes the feed wait
//! (backpressure), it never drops prints.
//!
//! Two kinds of source meet that contract:
//! - Generated and recorded sources implement the synchronous [`PrintSource`]
//!   (a pull iterator of prints in time order) and are turned into a feed by
//!   [`run_paced`], which replays them at recorded speed, a multiple of it, or
//!   as fast as the channel takes them. These are [`SimMarket`] (a seeded
//!   synthetic options market, [`sim`]) and [`ReplayReader`] (NDJSON files,
//!   [`replay`], format in `docs/replay.md`); [`record`] writes any source out
//!   as such a file.
//! - A live vendor adapter (a WebSocket client with reconnects and a circuit
//!   breaker) is asynchronous by nature: it owns its loop, decodes frames into
//!   prints, and sends them to the same kind of sink, counting undecodable
//!   records in [`FeedStats::malformed`] exactly as the driver does.
//!
//! A malformed record is never fatal: it is counted, logged and skipped.

pub mod breaker;
mod driver;
pub mod massive;
mod record;
pub mod replay;
mod rng;
pub mod sim;

pub use driver::{run_paced, FeedEnd, FeedStats, Pace, PaceError};
pub use record::{record, RecordError};
pub use replay::{OpenError, ReplayReader};
pub use sim::{SimConfig, SimConfigError, SimMarket};

use flowtape_core::event::Print;

/// A record a source could not turn into a [`Print`]. The driver counts it,
/// logs it and carries on with the next record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct SourceError {
    /// 1-based line (record) number in the source's input.
    pub line: u64,
    /// What is wrong with it, as the parser put it.
    pub reason: String,
}

/// A synchronous source of prints in time order: a generator or a recording.
///
/// `next_print` is called on the driver's task, so it must not block for long;
/// reading a local file or generating in memory is fine.
pub trait PrintSource: Send {
    /// The next print; `Some(Err(_))` for a record that could not be read (the
    /// source carries on after it), `None` once the source is exhausted.
    fn next_print(&mut self) -> Option<Result<Print, SourceError>>;
}

impl<S: PrintSource + ?Sized> PrintSource for Box<S> {
    fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
        (**self).next_print()
    }
}
