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
    flowtape_server::binary::run(
        "flowtape-bench",
        &cli.log,
        flowtape_server::config::LogFormat::Text,
        flowtape_bench::run(cli.bench),
    )
}
