//! # flowtape-server
//!
//! The server half of flowtape, and the vocabulary both halves share.
//!
//! Vocabulary (pure, no I/O; the TUI depends on these):
//! - [`date`]: calendar dates and the New York market clock.
//! - [`occ`]: option contracts and OCC/OSI symbols.
//! - [`cursor`]: positions in the flow stream.
//! - [`event`]: raw [`event::Print`]s and scored [`event::FlowEvent`]s.
//!
//! Pipeline (I/O):
//! - feeds produce prints, ingest appends them to sharded raw streams on a bus,
//!   processors turn them into flow events.
pub mod cursor;
pub mod date;
pub mod event;
pub mod occ;
pub mod bus;
pub mod conditions;
pub mod feed;
pub mod filter;
pub mod process;
pub mod protocol;
