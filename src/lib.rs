//! # flowtape, the terminal client
//!
//! A live, colour-coded options-flow tape for the terminal, fed by a flowtape
//! gateway over WebSocket. The pieces, one way:
//!
//! - [`config`]: the TOML config file and the settings resolved from flags,
//!   environment and file.
//! - [`keymap`] and [`theme`]: keys and colours as data, with compiled-in
//!   defaults and user overrides.
//! - [`client`]: the gateway connection (subscribe, reconnect, resume, fail over).
//! - [`app`]: the client state, changed by keys and server messages, no I/O.
//! - [`ui`]: rendering, a pure function of the state.
//! - [`term`] and [`run`]: the terminal and the event loop that ties them together;
//!   [`screen`]: drawing frames to the terminal in few bytes.
//! - [`tail`]: the headless `flowtape tail` for scripts.
//! - [`export`] and [`format`]: CSV export and the text forms of fields.

pub mod app;
pub mod client;
pub mod config;
pub mod export;
pub mod format;
pub mod keymap;
pub mod run;
pub mod screen;
pub mod tail;
pub mod term;
pub mod theme;
pub mod ui;
