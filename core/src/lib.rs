//! # flowtape-core
//!
//! The vocabulary every part of flowtape speaks. It does no I/O and reads no
//! clock: callers pass "now" and the text of any table they load.
//!
//! - [`date`]: calendar dates and the New York market clock.
//! - [`day`]: the day's premium totals per ticker and contract, ranked.
//! - [`clock`]: times as users type them, and where they fall in the stream.
//! - [`occ`]: option contracts and OCC/OSI symbols.
//! - [`cursor`]: positions in the flow stream.
//! - [`event`]: raw [`event::Print`]s and scored [`event::FlowEvent`]s (the public schema).
//! - [`conditions`]: what trade condition codes mean for detection.
//! - [`filter`]: the filter language shared by the gateway, the TUI and `flowtape tail`.
//! - [`detect`]: flow detection — side, sweeps, blocks, tags, score.
//! - [`protocol`]: the client wire protocol.
//! - [`text_position`]: line and column of an offset, for errors in config files.

pub mod clock;
pub mod conditions;
pub mod cursor;
pub mod date;
pub mod day;
pub mod detect;
pub mod event;
pub mod filter;
pub mod occ;
pub mod protocol;
pub mod text_position;
