//! # flowtape-server
//!
//! The server half of flowtape, and the vocabulary both halves share.
//!
//! ## Vocabulary (pure: no I/O; the TUI depends on these)
//! - [`date`]: calendar dates and the New York market clock.
//! - [`occ`]: option contracts and OCC/OSI symbols.
//! - [`cursor`]: positions in the flow stream.
//! - [`event`]: raw [`event::Print`]s and scored [`event::FlowEvent`]s (the public schema).
//! - [`conditions`]: what trade condition codes mean for detection.
//! - [`filter`]: the filter language shared by the gateway, the TUI and `flowtape tail`.
//! - [`process`]: flow detection — side, sweeps, blocks, tags, score.
//! - [`protocol`]: the client wire protocol.
//!
//! ## Roles (I/O)
//! - [`feed`]: where prints come from (the simulated market, replay files).
//! - [`bus`]: Redis Streams, or the embedded memory bus, behind one interface.
//! - [`pipeline`]: ingest (feed → raw shards) and processing (raw → flow events, exactly once).
//! - [`gateway`]: WebSocket fan-out to clients, with per-client filters.
//! - [`node`]: the roles of one process, started and stopped together.
//! - [`shutdown`]: the signal every long-running task drains on.
//! - [`wsclient`]: outgoing `ws://`/`wss://` connections (vendor feeds, the TUI).
//! - [`bench`]: the end-to-end benchmark harness (`flowtape-server bench`).

pub mod conditions;
pub mod cursor;
pub mod date;
pub mod event;
pub mod filter;
pub mod occ;
pub mod process;
pub mod protocol;

pub mod bench;
pub mod bus;
pub mod feed;
pub mod gateway;
pub mod node;
pub mod pipeline;
pub mod shutdown;
pub mod wsclient;
