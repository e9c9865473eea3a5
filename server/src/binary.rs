//! What flowtape's headless binaries (`flowtape-server`, `flowtape-bench`)
//! share around their command: logs to stderr with a tracing filter, as text
//! or JSON lines, and a tokio runtime; a failure is printed as `NAME: error`
//! with exit status 1.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use crate::config::LogFormat;

/// Sets up logging (`filter` is an `EnvFilter`; a bad one falls back to
/// `info`) and runs `command` to its end on a new runtime.
pub fn run<E: Display>(
    name: &str,
    filter: &str,
    format: LogFormat,
    command: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line: timestamp, level, target and the event's
        // fields (the message among them), as in the text format.
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
