//! `flowtape-bench`: the end-to-end benchmark (docs/bench.md). See `--help`.

use std::process::ExitCode;

use clap::Parser;
use flowtape_bench::{BenchArgs, EXAMPLES};

/// Benchmark flowtape end to end: its own redis-server, the server, and real WebSocket clients.
#[derive(Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
    /// Log filter (tracing `EnvFilter` syntax); logs go to stderr.
    #[arg(long, env = "FLOWTAPE_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flowtape-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(flowtape_bench::run(cli.bench)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowtape-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
