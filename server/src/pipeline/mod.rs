//! The pipeline's roles, as long-running tasks over a [`Bus`](crate::bus::Bus).
//!
//! - [`ingest`]: takes batches of prints from a feed and appends them to the
//!   sharded raw streams.
//! - [`process`]: one worker per raw shard, holding the shard's lease, turns
//!   raw prints into flow events exactly once.
//!
//! Each role runs until its [`Shutdown`](crate::shutdown::Shutdown) fires and
//! then drains: ingest writes what the feed already handed it, processors
//! commit what is complete, leave the rest pending, and release their leases.

pub mod ingest;
pub mod process;

pub use ingest::{run_ingest, IngestStats};
pub use process::{run_processor, ProcessStats, ProcessorConfig};
