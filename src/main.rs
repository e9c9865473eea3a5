//! flowtape: real-time options flow in your terminal.
//!
//! `flowtape` runs the full-screen tape; `flowtape tail` prints matching
//! events for scripts. Flags beat environment variables, which beat the
//! config file (see `assets/config.example.toml` and `docs/tui.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowtape::app::replay::clock::MAX_SPEED;
use flowtape::app::replay::ReplayStart;
use flowtape::app::scope::View;
use flowtape::config::{default_config_path, ConfigError, FileConfig, Overrides, Settings};
use flowtape::tail::{self, TailFormat, TailOptions};
use flowtape::theme::ColorSupport;
use flowtape_core::clock::parse_time;
use flowtape_core::filter::Filter;

const EXAMPLES: &str = "\
Examples:
  flowtape                                   live tape from ws://127.0.0.1:8765/ws
  flowtape --demo                            a self-contained demo, no server needed
  flowtape --demo --view all                 every print, not just notable flow
  flowtape --server ws://a:8765/ws --server ws://b:8765/ws
                                             fail over from a to b
  flowtape --filter 'AAPL TSLA premium>=250k sweep'
  FLOWTAPE_TOKEN=secret flowtape --server ws://flow.internal:8765/ws
  flowtape --server wss://flow.internal:8765/ws --ca-file gateway.pem
                                             TLS, trusting a private CA or self-signed cert
  flowtape --ascii --theme basic16           for plain terminals
  flowtape --replay 2026-11-20 --speed 10    replay that day's tape at 10x (space, <, >, [, ], t)
  flowtape --demo --replay 10:30             replay the demo's stream from 10:30 today
  flowtape tail --filter golden --limit 10   ten golden orders as NDJSON
  flowtape tail --filter notable             notable flow (tail prints every print by default)
  flowtape tail --format table --backfill 100

Config: $XDG_CONFIG_HOME/flowtape/config.toml (else ~/.config/flowtape/config.toml).
Logs:   $XDG_STATE_HOME/flowtape/flowtape.log (else ~/.local/state/flowtape/flowtape.log).";

const TAIL_EXAMPLES: &str = "\
Examples:
  flowtape tail --filter 'premium>=1m' | jq .sym
  flowtape tail --backfill 500 --limit 500 > last500.ndjson
  flowtape tail --since 1734700000200-0      everything after a cursor, up to now
  flowtape tail --since 09:30 --until 10:00 --filter SPY
                                             SPY's flow from 09:30 to 10:00 New York time, then exit
  flowtape tail --since 2026-11-20 --until 2026-11-21 > day.ndjson
                                             a whole (archived) day
  flowtape tail -f --since '2026-12-04 15:00 UTC' everything since then, then live
  flowtape tail --format table --filter 'SPY puts dte<=0'

Exit status: 0 when done (--until or the live edge reached, --limit reached,
stdout closed), 1 when the server cannot be reached, rejects the token or
fails, 2 for a bad filter or bad arguments (--follow with --until, a time
in the future, --until not after --since).";

/// Real-time options flow in your terminal.
#[derive(Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Show only events matching this filter (the shared filter language).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Start on notable flow (the `notable` preset) or all prints [default: notable].
    #[arg(long, value_enum)]
    view: Option<View>,
    /// Config file [default: $XDG_CONFIG_HOME/flowtape/config.toml].
    #[arg(long, value_name = "PATH", env = "FLOWTAPE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Draw with plain ASCII: no box glyphs, ^/v instead of ▲/▼.
    #[arg(long)]
    ascii: bool,
    /// Theme: default, basic16, mono, or a file in the config dir's themes/.
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Run against an in-process demo gateway with simulated flow (no server needed).
    #[arg(long, conflicts_with = "servers")]
    demo: bool,
    /// Replay the tape from this day or time (2026-11-20, "2026-11-20 10:30",
    /// 10:30; New York time unless it ends in UTC or Z).
    #[arg(long, value_name = "DATE|TIME")]
    replay: Option<String>,
    /// Replay speed, times real time.
    #[arg(long, value_name = "N", requires = "replay", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SPEED)))]
    speed: u32,
}

#[derive(Args)]
struct ConnArgs {
    /// Gateway WebSocket URL; repeat for failover, tried in order
    /// [default: ws://127.0.0.1:8765/ws].
    #[arg(
        long = "server",
        id = "servers",
        value_name = "URL",
        env = "FLOWTAPE_SERVER",
        value_delimiter = ','
    )]
    servers: Vec<String>,
    /// Bearer token for the gateway.
    #[arg(long, env = "FLOWTAPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Trust wss:// gateways whose certificate chains to this PEM file (a
    /// private CA, or the gateway's self-signed certificate) instead of the
    /// system's CA bundle.
    #[arg(long, value_name = "PATH", env = "FLOWTAPE_CA_FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Print matching events to stdout (NDJSON or a table), for scripts and pipes.
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(TailArgs),
}

#[derive(Args)]
struct TailArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only events matching this filter; `notable` is notable flow [default:
    /// every print, or the config's `filter`].
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Start with the last N matching events (the gateway caps it).
    #[arg(long, value_name = "N", conflicts_with = "since")]
    backfill: Option<u32>,
    /// Print every matching event from this time (10:30, 10:30:15,
    /// 2026-12-04 10:30, 2026-12-04; New York time unless it ends in UTC or
    /// Z) or after this cursor (an event's `id`), up to now (or --until),
    /// read by history pages.
    #[arg(long, value_name = "TIME|CURSOR")]
    since: Option<String>,
    /// Print the matching events before this time or cursor, then exit.
    #[arg(long, value_name = "TIME|CURSOR", requires = "since")]
    until: Option<String>,
    /// After the history from --since, go on live (without --since tail is
    /// live anyway); not with --until.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Exit after N events.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TailFormat::Ndjson)]
    format: TailFormat,
}

fn load_settings(
    config: Option<PathBuf>,
    over: Overrides,
    support: ColorSupport,
) -> Result<Settings, ConfigError> {
    let (path, required) = match config {
        Some(p) => (p, true),
        None => (
            default_config_path().unwrap_or_else(|| PathBuf::from("flowtape.toml")),
            false,
        ),
    };
    let (file, text) = FileConfig::load(&path, required)?;
    Settings::resolve(file, &text, &path, over, support)
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("flowtape: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}"), 1),
    };
    flowtape::run::init_logging();
    match cli.command {
        Some(Command::Tail(args)) => runtime.block_on(run_tail(cli.config, args)),
        None => runtime.block_on(run_tui(cli)),
    }
}

async fn run_tail(config: Option<PathBuf>, args: TailArgs) -> ExitCode {
    let over = Overrides {
        servers: args.conn.servers,
        token: args.conn.token,
        ca_file: args.conn.ca_file,
        filter: args.filter,
        ..Overrides::default()
    };
    let settings = match load_settings(config, over, ColorSupport::None) {
        Ok(s) => s,
        Err(e) => return fail(e, 2),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let window = match tail::Window::parse(
        args.since.as_deref(),
        args.until.as_deref(),
        args.follow,
        now_ms,
    ) {
        Ok(w) => w,
        Err(e) => return fail(&e, e.exit_code() as u8),
    };
    let opts = TailOptions {
        servers: settings.servers,
        token: settings.token,
        filter: settings.filter,
        presets: settings.filter_presets,
        backfill: if args.since.is_some() {
            None
        } else {
            args.backfill
        },
        window,
        limit: args.limit,
        format: args.format,
        max_failures: 10,
        trust: settings.trust,
    };
    let mut stdout = std::io::stdout().lock();
    match tail::tail(opts, &mut stdout).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e, e.exit_code() as u8),
    }
}

/// Starts a whole server in this process (memory bus, simulated market,
/// processor, gateway on a free loopback port) and runs the TUI against it
/// over a real WebSocket.
#[cfg(feature = "demo")]
async fn run_demo(settings: Settings, filter: Filter, replay: Option<ReplayStart>) -> ExitCode {
    let node = match flowtape_server::node::Node::start_demo(flowtape::run::DEMO_RATE).await {
        Ok(node) => node,
        Err(e) => {
            return fail(
                format!("--demo: cannot start the in-process server: {e}"),
                1,
            )
        }
    };
    let Some(addr) = node.gateway_addr() else {
        return fail("--demo: the in-process server has no gateway", 1);
    };
    let result = flowtape::run::run_demo(format!("ws://{addr}/ws"), settings, filter, replay).await;
    node.shutdown();
    node.wait().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}

/// This build has no server in it (built without the `demo` feature).
#[cfg(not(feature = "demo"))]
async fn run_demo(_: Settings, _: Filter, _: Option<ReplayStart>) -> ExitCode {
    fail(
        "--demo: this flowtape was built without the embedded demo server (cargo feature `demo`)",
        2,
    )
}

async fn run_tui(cli: Cli) -> ExitCode {
    let over = Overrides {
        servers: cli.conn.servers,
        token: cli.conn.token,
        ca_file: cli.conn.ca_file,
        filter: cli.filter,
        view: cli.view,
        theme: cli.theme,
        ascii: cli.ascii,
    };
    let settings = match load_settings(cli.config, over, ColorSupport::from_env()) {
        Ok(s) => s,
        Err(e) => return fail(e, 2),
    };
    let filter = match Filter::parse_with(&settings.filter, &settings.filter_presets) {
        Ok(f) => f,
        Err(e) => return fail(tail::bad_filter(&settings.filter, e), 2),
    };
    let replay = match &cli.replay {
        Some(text) => match parse_time(text, flowtape::run::now_ms()) {
            Ok(at_ms) => Some(ReplayStart {
                at_ms,
                speed: cli.speed,
            }),
            Err(e) => return fail(format!("--replay: {e}"), 2),
        },
        None => None,
    };
    if cli.demo {
        return run_demo(settings, filter, replay).await;
    }
    match flowtape::run::run_tui(settings, filter, replay).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}
