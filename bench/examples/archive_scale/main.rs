//! The archive at scale (issue #17): a PostgreSQL archive of ten simulated
//! trading days, 20 million flow events or more, kept in a directory of its
//! own so that it is filled once and measured many times.
//!
//! - `fill`: writes the days through the archive writer (the archive role's
//!   per-batch work: decode each stream entry, binary COPY, cursor, commit),
//!   day by day; days already filled are skipped ([`fill`]).
//! - `query`: the history page a client asks for one ticker on one day, the
//!   200 newest before the close and the 200 first after the open, over
//!   tickers from the heaviest to the tail and every day, through the
//!   gateway's archive reader and as plain SQL; p50 and p99 ([`query`]);
//!   `explain` shows the plans.
//! - `export`: one whole day read back in pages of 1,000 ([`export`]).
//!
//! The PostgreSQL runs with `assets/deploy/postgresql/flowtape.conf` (the
//! deployed settings) on a free loopback port, and stops at the end; the
//! data directory stays. Figures and commands: docs/bench.md, "Archive at
//! scale".
//!
//! Run: `cargo run --release -p flowtape-bench --example archive_scale -- --dir /work/pgdata-bench fill`

mod export;
mod fill;
mod query;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use flowtape_bench::postgres_server::PostgresServer;
use flowtape_bench::sim_days::trading_days;
use flowtape_core::date::Date;

/// The ten trading days: 2026-05-04 to 2026-05-15.
const DAYS: usize = 10;
const LAST_DAY: (i32, u32, u32) = (2026, 5, 15);

#[derive(Parser)]
struct Cli {
    /// Where the PostgreSQL cluster lives (made on first use, kept).
    #[arg(long)]
    dir: PathBuf,
    /// Use the cluster already running from `--dir` at this URL (another
    /// run's, e.g. while it fills) instead of starting it.
    #[arg(long)]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fill the archive with EVENTS events over the ten days (skips days filled before).
    Fill {
        #[arg(long, default_value_t = 20_000_000)]
        events: u64,
        /// Events per archive transaction (the role's `batch_size`).
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
    /// Time first history pages of one ticker on one day.
    Query {
        /// Only the first DAYS of the ten (those filled so far).
        #[arg(long, default_value_t = DAYS)]
        days: usize,
        /// Tickers per day, picked across the popularity ranks.
        #[arg(long, default_value_t = 20)]
        tickers: usize,
        /// Times the whole set of queries runs.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Leave out the archive reader (only the SQL shapes).
        #[arg(long)]
        no_reader: bool,
    },
    /// Print `EXPLAIN (ANALYZE, BUFFERS)` of the reader's queries and the SQL shapes.
    Explain {
        /// 0-based index of the day among the ten.
        #[arg(long, default_value_t = 4)]
        day: usize,
    },
    /// Read one whole day back in pages.
    Export {
        /// 0-based index of the day among the ten.
        #[arg(long, default_value_t = 4)]
        day: usize,
        #[arg(long, default_value_t = 1000)]
        page: i64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let pg = match &cli.url {
        Some(_) => None,
        None => Some(start(&cli.dir).await?),
    };
    let url = cli
        .url
        .clone()
        .or(pg.as_ref().map(PostgresServer::url))
        .ok_or("no url")?;
    let url = url.as_str();
    let (year, month, day) = LAST_DAY;
    let days = trading_days(Date::from_ymd(year, month, day)?, DAYS);
    match cli.command {
        Command::Fill { events, batch } => fill::run(url, &days, events, batch).await?,
        Command::Query {
            days: filled,
            tickers,
            rounds,
            no_reader,
        } => query::run(url, &days[..filled.min(DAYS)], tickers, rounds, !no_reader).await?,
        Command::Explain { day } => {
            let day = *days.get(day).ok_or("--day is 0 to 9")?;
            query::explain(url, day, &cli.dir.join("server.log")).await?;
        }
        Command::Export { day, page, rounds } => {
            let day = *days.get(day).ok_or("--day is 0 to 9")?;
            export::run(url, day, page, rounds).await?;
        }
    }
    if let Some(pg) = pg {
        pg.stop()?;
    }
    Ok(())
}

/// The cluster in `dir`, running with the deployed PostgreSQL settings.
async fn start(dir: &Path) -> Result<PostgresServer, Box<dyn std::error::Error>> {
    let pg = PostgresServer::open(dir).await?;
    // A copy beside the cluster: it starts without this checkout too.
    let conf = dir.join("flowtape.conf");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/deploy/postgresql/flowtape.conf"),
        &conf,
    )?;
    if pg.include_config(&conf)? {
        pg.stop()?;
        pg.resume().await?;
    }
    println!(
        "PostgreSQL on port {} (data in {})",
        pg.port(),
        dir.display()
    );
    Ok(pg)
}
