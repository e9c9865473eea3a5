//! flowtape: the terminal client.
use clap::Parser;

/// Real-time options flow in your terminal.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
