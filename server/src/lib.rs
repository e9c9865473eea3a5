//! # flowtape-server
//!
//! The server roles, and the outgoing WebSocket connector the TUI shares.
//! The vocabulary they speak (events, filters, the protocol, detection) is
//! the `flowtape-core` crate.
//!
//! - [`archive`]: every flow event kept in PostgreSQL past the stream's retention.
//! - [`binary`]: logs and the runtime around a headless binary's command.
//! - [`config`]: the server's config file, under its flags and environment.
//! - [`feed`]: where prints come from (the simulated market, replay files, Massive).
//! - [`bus`]: Redis Streams, or the embedded memory bus, behind one interface.
//! - [`pipeline`]: ingest (feed → raw shards) and processing (raw → flow events, exactly once).
//! - [`gateway`]: WebSocket fan-out to clients, with per-client filters.
//! - [`metrics`]: what every role shows operators on `/metrics` and `/healthz`.
//! - `http`: the little HTTP/1.1 the gateway and the metrics server speak.
//! - [`node`]: the roles of one process, started and stopped together.
//! - [`shutdown`]: the signal every long-running task drains on.
//! - [`wsclient`]: outgoing `ws://`/`wss://` connections (vendor feeds, the TUI).
//!
//! Without the default `roles` feature only [`wsclient`] is built: that is
//! what the TUI links when it is built without its embedded demo.

#[cfg(feature = "roles")]
pub mod archive;
#[cfg(feature = "roles")]
pub mod binary;
#[cfg(feature = "roles")]
pub mod bus;
#[cfg(feature = "roles")]
pub mod config;
#[cfg(feature = "roles")]
pub mod feed;
#[cfg(feature = "roles")]
pub mod gateway;
#[cfg(feature = "roles")]
mod http;
#[cfg(feature = "roles")]
pub mod metrics;
#[cfg(feature = "roles")]
pub mod node;
#[cfg(feature = "roles")]
pub mod pipeline;
#[cfg(feature = "roles")]
pub mod shutdown;
pub mod wsclient;
