//! The harness: starts Redis and the two halves, runs a scenario's measured
//! windows, checks loss, and reports.
//!
//! Every child (and the private `redis-server`) is owned by a value that
//! kills it when dropped, so an error, a finished run and Ctrl-C all leave
//! nothing behind. A normal end asks the halves to `quit` first, so the
//! gateway closes its clients cleanly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::control::{
    ClientsCommand, ClientsReply, ClientsReport, ControlError, FeedSpec, Link, ServerCommand,
    ServerReply, ServerStats,
};
use super::hist::Histogram;
use super::mix::Mix;
use super::nginx::Nginx;
use super::procfs::{self, CpuMeter};
use super::redis_cluster::RedisCluster;
use super::redis_server::{Info, InfoSnapshot, RedisServer};
use super::report::{
    bucket_quantiles, Capacity, Firehose, Idle, Machine, Report, Settings, Window, MIB,
};
use super::server::Retention;
use super::tally::Accounting;
use super::{server, soak, verify, BenchArgs, BenchError, KillMaster, Scenario};
use flowtape_core::cursor::Cursor;
use flowtape_server::bus::{Bus, Keys};

pub(crate) type ServerLink = Link<ServerCommand, ServerReply>;
type ClientsLink = Link<ClientsCommand, ClientsReply>;

/// How often the harness looks whether a window has drained.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// The longest a window may take to drain after its feed ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a firehose may take to process what it ingested.
const FIREHOSE_TIMEOUT: Duration = Duration::from_secs(600);
/// Idle clients are left to settle this long before memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// The client mix these arguments ask for.
pub fn mix(args: &BenchArgs) -> Mix {
    let clients = args.clients.unwrap_or(match args.scenario {
        Scenario::Idle => 10_000,
        _ => 1_000,
    });
    Mix {
        clients,
        premium: args.premium_clients.unwrap_or(clients / 10).min(clients),
        watchlist: args.watchlist,
        client_seed: args.client_seed,
        sim_seed: args.sim_seed,
    }
}

/// `(rate, duration)` of a scenario unless overridden.
fn defaults(args: &BenchArgs) -> (f64, f64) {
    let (rate, duration) = match args.scenario {
        Scenario::Steady => (1_000.0, 60.0),
        Scenario::Burst => (10_000.0, 10.0),
        Scenario::Capacity => (250.0, 10.0),
        Scenario::Idle => (0.0, 5.0),
        Scenario::Firehose => (50_000.0, 0.0),
        Scenario::Soak => (1_000.0, 1_800.0),
    };
    (args.rate.unwrap_or(rate), args.duration.unwrap_or(duration))
}

/// The stream retention these arguments ask for: everything, so that a
/// window's loss check finds it, unless given; a soak trims as production does.
pub fn retention(args: &BenchArgs) -> Retention {
    let default = match args.scenario {
        Scenario::Soak => Retention {
            flow_max_len: soak::FLOW_MAX_LEN,
            raw_max_len: soak::RAW_MAX_LEN,
        },
        _ => Retention::KEEP_ALL,
    };
    Retention {
        flow_max_len: args.flow_max_len.unwrap_or(default.flow_max_len),
        raw_max_len: args.raw_max_len.unwrap_or(default.raw_max_len),
    }
}

/// Runs the scenario, prints the table, writes the JSON.
pub async fn harness(args: BenchArgs) -> Result<(), BenchError> {
    let (rate, duration) = defaults(&args);
    if args.scenario != Scenario::Idle && !(rate.is_finite() && rate > 0.0) {
        return Err(BenchError::Config(format!(
            "--rate must be a positive number, got {rate}"
        )));
    }
    if !(duration.is_finite() && duration > 0.0) && args.scenario != Scenario::Firehose {
        return Err(BenchError::Config(format!(
            "--duration must be a positive number of seconds, got {duration}"
        )));
    }
    let report = tokio::select! {
        r = scenario(&args, rate, duration) => r?,
        _ = flowtape_server::shutdown::signal() => return Err(BenchError::Interrupted),
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")?;
    }
    Ok(())
}

/// The Redis a run started for itself: kept alive until the run ends, and
/// killed when dropped.
#[derive(Default)]
struct Private {
    _server: Option<RedisServer>,
    cluster: Option<RedisCluster>,
}

/// What every scenario works with.
pub(crate) struct Env<'a> {
    pub(crate) args: &'a BenchArgs,
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) info: Info,
    pub(crate) bus: Bus,
    pub(crate) retention: Retention,
    /// The private cluster of `--cluster` (for `--kill-master`).
    cluster: Option<RedisCluster>,
}

async fn scenario(args: &BenchArgs, rate: f64, duration: f64) -> Result<Report, BenchError> {
    // Dropped (killed) when this function returns, however it returns.
    let (mut private, url) = match &args.redis {
        Some(url) => (Private::default(), url.clone()),
        None if args.cluster => {
            let cluster = RedisCluster::start(3, std::time::Duration::from_secs(2)).await?;
            let url = cluster.url();
            (
                Private {
                    cluster: Some(cluster),
                    ..Private::default()
                },
                url,
            )
        }
        None => {
            let redis = RedisServer::start().await?;
            let url = redis.url();
            (
                Private {
                    _server: Some(redis),
                    ..Private::default()
                },
                url,
            )
        }
    };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    let namespace = format!("{}-{}-{nonce}", args.namespace, std::process::id());
    let mut info = Info::connect(&url).await?;
    let version = info.version().await?;
    let retention = retention(args);
    let bus = Bus::redis(
        &url,
        server::bus_config(&namespace, args.shards, args.wait_replicas, retention),
    )
    .await?;
    let mix = mix(args);
    let mut env = Env {
        args,
        url,
        namespace,
        info,
        bus,
        retention,
        cluster: private.cluster.take(),
    };
    let settings = Settings {
        rate,
        duration_s: duration,
        clients: mix.clients,
        premium_clients: mix.premium,
        watchlist: mix.watchlist,
        shards: args.shards,
        sim_seed: args.sim_seed,
        client_seed: args.client_seed,
        redis: args.redis.clone().unwrap_or_else(|| "started".into()),
    };
    let mut report = Report {
        scenario: args.scenario.name().to_string(),
        machine: Machine::describe(version),
        settings,
        window: Window::default(),
        steps: Vec::new(),
        capacity: None,
        idle: None,
        firehose: None,
        soak: None,
    };
    match args.scenario {
        Scenario::Steady | Scenario::Burst => {
            let mut rig = Rig::start(&env, &mix).await?;
            report.window = measure(&mut env, &mut rig, rate, duration).await?;
            rig.quit().await;
        }
        Scenario::Capacity => {
            let mut rig = Rig::start(&env, &mix).await?;
            let (steps, capacity) = capacity(&mut env, &mut rig, rate, duration).await?;
            rig.quit().await;
            let best = steps
                .iter()
                .filter(|s| s.held == Some(true))
                .max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s))
                .or(steps.first());
            report.window = best.cloned().unwrap_or_default();
            report.steps = steps;
            report.capacity = Some(capacity);
        }
        Scenario::Idle => {
            let (window, idle) = idle(&mut env, &mix, duration).await?;
            report.window = window;
            report.idle = Some(idle);
        }
        Scenario::Firehose => {
            let (window, firehose) = firehose(&mut env, rate).await?;
            report.window = window;
            report.firehose = Some(firehose);
        }
        Scenario::Soak => {
            let redis_pid = private._server.as_ref().map(RedisServer::pid);
            let soak = soak::run(&mut env, &mix, redis_pid, rate, duration).await?;
            report.window = Window {
                rate,
                prints: soak.prints,
                feed_s: soak.feed_s,
                prints_per_s: soak.prints as f64 / soak.feed_s.max(1e-9),
                events: soak.events,
                e2e_ms: soak.e2e_ms,
                delivered: soak.accounting.delivered + soak.switch_events,
                accounting: soak.accounting,
                drained: true,
                ..Window::default()
            };
            report.soak = Some(soak);
        }
    }
    drop(private);
    Ok(report)
}

pub(crate) fn unexpected(
    half: &'static str,
    got: impl std::fmt::Debug,
    want: &'static str,
) -> BenchError {
    let mut got = format!("{got:?}");
    got.truncate(200);
    BenchError::Control(ControlError::Unexpected { half, got, want })
}

/// Which roles a server half runs beside the feed and ingest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HalfRoles {
    pub(crate) process: bool,
    pub(crate) gateway: bool,
}

impl HalfRoles {
    /// A processor and a gateway.
    pub(crate) const ALL: HalfRoles = HalfRoles {
        process: true,
        gateway: true,
    };
}

/// Starts the server half; returns it and its gateway's address.
pub(crate) async fn start_server(
    env: &Env<'_>,
    max_connections: usize,
    roles: HalfRoles,
) -> Result<(ServerLink, Option<SocketAddr>), BenchError> {
    let mut args: Vec<String> = [
        "--server-only",
        "--redis",
        &env.url,
        "--namespace",
        &env.namespace,
        "--shards",
        &env.args.shards.to_string(),
        "--wait-replicas",
        &env.args.wait_replicas.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        &max_connections.to_string(),
        "--flow-max-len",
        &env.retention.flow_max_len.to_string(),
        "--raw-max-len",
        &env.retention.raw_max_len.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if !roles.gateway {
        args.push("--no-gateway".into());
    }
    if !roles.process {
        args.push("--no-process".into());
    }
    if let Some(ms) = env.args.coalesce_ms {
        args.extend(["--coalesce-ms".into(), ms.to_string()]);
    }
    let mut link = ServerLink::spawn("server half", &args)?;
    match link.recv().await? {
        ServerReply::Ready { gateway, .. } => Ok((link, gateway)),
        ServerReply::Error { message } => Err(ControlError::Failed {
            half: link.half(),
            message,
        }
        .into()),
        other => Err(unexpected(link.half(), other, "ready")),
    }
}

/// Starts the clients half against `gateway` and waits until they are live.
async fn start_clients(
    mix: &Mix,
    gateway: SocketAddr,
) -> Result<(ClientsLink, Vec<String>, usize), BenchError> {
    let args: Vec<String> = vec![
        "--clients-only".into(),
        "--connect".into(),
        format!("ws://{gateway}/ws"),
        "--clients".into(),
        mix.clients.to_string(),
        "--premium-clients".into(),
        mix.premium.to_string(),
        "--watchlist".into(),
        mix.watchlist.to_string(),
        "--client-seed".into(),
        mix.client_seed.to_string(),
        "--sim-seed".into(),
        mix.sim_seed.to_string(),
    ];
    let mut link = ClientsLink::spawn("clients half", &args)?;
    match link.recv().await? {
        ClientsReply::Ready { filters, live, .. } => Ok((link, filters, live)),
        ClientsReply::Error { message } => Err(ControlError::Failed {
            half: link.half(),
            message,
        }
        .into()),
        other => Err(unexpected(link.half(), other, "ready")),
    }
}

/// A server half with a gateway and a clients half attached to it.
struct Rig {
    server: ServerLink,
    clients: ClientsLink,
    filters: Vec<String>,
    /// With `--nginx`: what the clients connect through (stopped on drop).
    _nginx: Option<Nginx>,
}

impl Rig {
    async fn start(env: &Env<'_>, mix: &Mix) -> Result<Rig, BenchError> {
        let (server, gateway) =
            start_server(env, (mix.clients + 100).max(10_000), HalfRoles::ALL).await?;
        let gateway =
            gateway.ok_or_else(|| BenchError::Config("the server half runs no gateway".into()))?;
        let nginx = match env.args.nginx {
            true => Some(Nginx::start(&[gateway]).await?),
            false => None,
        };
        let connect = nginx.as_ref().map_or(gateway, Nginx::addr);
        let (clients, filters, live) = start_clients(mix, connect).await?;
        if live < filters.len() {
            tracing::warn!("only {live} of {} clients are live", filters.len());
        }
        Ok(Rig {
            server,
            clients,
            filters,
            _nginx: nginx,
        })
    }

    async fn quit(self) {
        self.clients.quit(&ClientsCommand::Quit).await;
        self.server.quit(&ServerCommand::Quit).await;
    }
}

async fn server_stats(server: &mut ServerLink) -> Result<ServerStats, BenchError> {
    match server.call(&ServerCommand::Stats).await? {
        ServerReply::Stats(s) => Ok(*s),
        other => Err(unexpected(server.half(), other, "stats")),
    }
}

/// Runs one feed; returns (prints, seconds).
async fn feed(server: &mut ServerLink, spec: FeedSpec) -> Result<(u64, f64), BenchError> {
    match server.call(&ServerCommand::Feed(spec)).await? {
        ServerReply::Fed { prints, seconds } => Ok((prints, seconds)),
        ServerReply::Error { message } => Err(ControlError::Failed {
            half: server.half(),
            message,
        }
        .into()),
        other => Err(unexpected(server.half(), other, "fed")),
    }
}

/// Waits until everything ingested is processed and, with a gateway, every
/// committed event has been taken by it and dealt to every connected client,
/// and no client is still catching up after lagging.
/// Returns the last stats, and whether that happened within `deadline`.
async fn drain(
    env: &Env<'_>,
    server: &mut ServerLink,
    deadline: Duration,
) -> Result<(ServerStats, bool), BenchError> {
    let until = Instant::now() + deadline;
    let mut previous: Option<ServerStats> = None;
    loop {
        let stats = server_stats(server).await?;
        let stream = env.bus.flow_bounds().await?.len;
        let dealt = stats.gateway.as_ref().is_none_or(|g| {
            g.events_in >= stream
                && g.catching_up == 0
                && g.events_out + g.events_filtered >= g.events_in * g.connections
        });
        let done = stats.processed >= stats.ingested && dealt;
        if done && previous.as_ref() == Some(&stats) {
            return Ok((stats, true));
        }
        if Instant::now() >= until {
            tracing::warn!(
                ingested = stats.ingested,
                processed = stats.processed,
                stream,
                "the run did not drain within {deadline:?}; reporting what arrived"
            );
            return Ok((stats, false));
        }
        previous = Some(stats);
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn quantiles(h: &Histogram) -> Option<super::hist::Quantiles> {
    (h.count() > 0).then(|| h.quantiles())
}

/// Redis CPU as percent of one core between two `INFO` readings.
fn redis_cpu(before: &InfoSnapshot, after: &InfoSnapshot, wall: Duration) -> f64 {
    // A node killed in between takes its CPU out of `after`: never below 0.
    100.0 * (after.cpu_seconds - before.cpu_seconds).max(0.0) / wall.as_secs_f64().max(1e-9)
}

/// SIGKILLs the master `which` names (`--kill-master`).
async fn kill_master(
    cluster: &mut RedisCluster,
    keys: &Keys,
    shards: u16,
    which: KillMaster,
) -> Result<(), BenchError> {
    let flow = cluster.master_of(&keys.flow_stream()).await?;
    let port = match which {
        KillMaster::Flow => flow,
        KillMaster::Raw => {
            let mut raw = None;
            for shard in 0..shards {
                let port = cluster.master_of(&keys.raw_stream(shard)).await?;
                if port != flow {
                    raw = Some(port);
                    break;
                }
            }
            raw.ok_or_else(|| BenchError::Config("no master serves raw shards only".into()))?
        }
    };
    tracing::warn!(port, ?which, "killing a Redis master (--kill-master)");
    cluster.kill(port);
    Ok(())
}

/// One measured window: feed at `rate` for `seconds` with the clients attached.
async fn measure(
    env: &mut Env<'_>,
    rig: &mut Rig,
    rate: f64,
    seconds: f64,
) -> Result<Window, BenchError> {
    let before = env.bus.flow_bounds().await?.last.unwrap_or(Cursor::ZERO);
    match rig.clients.call(&ClientsCommand::Begin).await? {
        ClientsReply::Begun => {}
        other => return Err(unexpected(rig.clients.half(), other, "begun")),
    }
    let stats0 = server_stats(&mut rig.server).await?;
    let info0 = env.info.snapshot().await?;
    let server_cpu = CpuMeter::start(rig.server.pid())?;
    let client_cpu = CpuMeter::start(rig.clients.pid())?;
    let started = Instant::now();
    let spec = FeedSpec {
        sim_seed: env.args.sim_seed,
        rate,
        seconds: Some(seconds),
        prints: None,
        fast: false,
    };
    let feeding = feed(&mut rig.server, spec);
    let (prints, feed_s) = match (env.args.kill_master, env.cluster.as_mut()) {
        (Some(which), Some(cluster)) => {
            let keys = Keys::new(&env.namespace);
            let halfway = Duration::from_secs_f64(seconds / 2.0);
            let kill = async {
                tokio::time::sleep(halfway).await;
                kill_master(cluster, &keys, env.args.shards, which).await
            };
            let (fed, killed) = tokio::join!(feeding, kill);
            killed?;
            fed?
        }
        _ => feeding.await?,
    };
    let server_cpu_pct = server_cpu.percent()?;
    let client_cpu_pct = client_cpu.percent()?;
    let info1 = env.info.snapshot().await?;
    let redis_cpu_pct = redis_cpu(&info0, &info1, started.elapsed());

    let (stats1, drained) = drain(env, &mut rig.server, DRAIN_TIMEOUT).await?;
    let through = env.bus.flow_bounds().await?.last.unwrap_or(before);
    let report: ClientsReport = match rig.clients.call(&ClientsCommand::Report).await? {
        ClientsReply::Report(r) => *r,
        other => return Err(unexpected(rig.clients.half(), other, "report")),
    };
    let server_rss = procfs::peak_rss_bytes(rig.server.pid())?;
    let client_rss = procfs::rss_bytes(rig.clients.pid())?;
    let used_memory = env.info.snapshot().await?.used_memory;
    let expected = verify::expected(&env.bus, before, through, &rig.filters).await?;
    let accounting = Accounting::compare(&expected.expected, &report.tallies);
    if expected.malformed > 0 {
        tracing::warn!(
            "{} flow entries in the window are not flow events",
            expected.malformed
        );
    }

    let mut stages = BTreeMap::new();
    for (name, h) in [
        ("feed_to_stream", &report.feed_to_stream),
        ("stream_to_client", &report.stream_to_client),
        ("client_decode", &report.decode),
    ] {
        if let Some(q) = quantiles(h) {
            stages.insert(name.to_string(), q);
        }
    }
    let (g0, g1) = (
        stats0.gateway.unwrap_or_default(),
        stats1.gateway.unwrap_or_default(),
    );
    stages.insert(
        "gateway_stream_to_hub".into(),
        bucket_quantiles(&g1.stream_to_hub, &g0.stream_to_hub),
    );
    stages.insert(
        "gateway_hub_to_socket".into(),
        bucket_quantiles(&g1.hub_to_socket, &g0.hub_to_socket),
    );
    let feed_s = feed_s.max(1e-9);
    Ok(Window {
        rate,
        prints,
        feed_s,
        prints_per_s: prints as f64 / feed_s,
        events: expected.events,
        e2e_ms: quantiles(&report.e2e),
        e2e_single_block_ms: quantiles(&report.e2e_single_block),
        e2e_sweep_split_ms: quantiles(&report.e2e_sweep_split),
        stages_ms: stages,
        delivered: accounting.delivered,
        delivered_per_s: accounting.delivered as f64 / feed_s,
        accounting,
        frames: report.frames,
        batches_out: g1.batches_out.saturating_sub(g0.batches_out),
        slow_consumer_disconnects: g1
            .slow_consumer_disconnects
            .saturating_sub(g0.slow_consumer_disconnects),
        lag_resumes: g1.lag_resumes.saturating_sub(g0.lag_resumes),
        server_cpu_pct,
        server_rss_mib: server_rss as f64 / MIB,
        client_cpu_pct,
        client_rss_mib: client_rss as f64 / MIB,
        redis_cpu_pct,
        redis_used_memory_mib: used_memory as f64 / MIB,
        drained,
        held: None,
    })
}

/// Raises the rate by `--step-factor` from `start` until a step fails.
async fn capacity(
    env: &mut Env<'_>,
    rig: &mut Rig,
    start: f64,
    seconds: f64,
) -> Result<(Vec<Window>, Capacity), BenchError> {
    let limit = env.args.p99_limit_ms;
    let factor = env.args.step_factor.max(1.05);
    let mut steps: Vec<Window> = Vec::new();
    let mut rate = start;
    let stopped = loop {
        let mut w = measure(env, rig, rate, seconds).await?;
        // Sweeps and splits wait out the sweep window (20 ms of feed time) by
        // design, and are about 4 % of events: judge the latency the system
        // adds on the events detection does not hold back.
        let p99 = w
            .e2e_single_block_ms
            .or(w.e2e_ms)
            .map_or(f64::INFINITY, |q| q.p99);
        let a = &w.accounting;
        let why = if a.lost > 0 || a.mismatched_clients > 0 {
            Some(format!(
                "{} events lost, {} clients mismatched at {rate:.0} prints/s",
                a.lost, a.mismatched_clients
            ))
        } else if w.slow_consumer_disconnects > 0 || a.disconnected_clients > 0 {
            Some(format!(
                "{} clients disconnected at {rate:.0} prints/s",
                a.disconnected_clients
            ))
        } else if p99 > limit {
            Some(format!(
                "single/block p99 {p99:.2} ms > {limit} ms at {rate:.0} prints/s"
            ))
        } else {
            None
        };
        w.held = Some(why.is_none());
        tracing::info!(
            rate,
            held = why.is_none(),
            delivered_per_s = w.delivered_per_s,
            p99,
            "capacity step"
        );
        steps.push(w);
        if let Some(why) = why {
            break why;
        }
        rate *= factor;
        if rate > env.args.max_rate {
            break format!("reached --max-rate {}", env.args.max_rate);
        }
    };
    let best = steps
        .iter()
        .filter(|s| s.held == Some(true))
        .max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s));
    let capacity = Capacity {
        best_delivered_per_s: best.map_or(0.0, |s| s.delivered_per_s),
        best_rate: best.map_or(0.0, |s| s.rate),
        p99_limit_ms: limit,
        stopped,
    };
    Ok((steps, capacity))
}

/// Connects the clients with no feed and reads the gateway's memory before and after.
async fn idle(env: &mut Env<'_>, mix: &Mix, hold: f64) -> Result<(Window, Idle), BenchError> {
    let (mut server, gateway) = start_server(env, mix.clients + 100, HalfRoles::ALL).await?;
    let gateway =
        gateway.ok_or_else(|| BenchError::Config("the server half runs no gateway".into()))?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let before = procfs::rss_bytes(server.pid())?;
    let (clients, _filters, _live) = start_clients(mix, gateway).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let info0 = env.info.snapshot().await?;
    let server_cpu = CpuMeter::start(server.pid())?;
    let client_cpu = CpuMeter::start(clients.pid())?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let after = procfs::rss_bytes(server.pid())?;
    let client_rss = procfs::rss_bytes(clients.pid())?;
    let info1 = env.info.snapshot().await?;
    let connected = server_stats(&mut server)
        .await?
        .gateway
        .map_or(0, |g| g.connections);
    let per = |bytes: u64| bytes as f64 / 1024.0 / connected.max(1) as f64;
    let window = Window {
        server_cpu_pct: server_cpu.percent()?,
        client_cpu_pct: client_cpu.percent()?,
        redis_cpu_pct: redis_cpu(&info0, &info1, started.elapsed()),
        server_rss_mib: procfs::peak_rss_bytes(server.pid())? as f64 / MIB,
        client_rss_mib: client_rss as f64 / MIB,
        redis_used_memory_mib: info1.used_memory as f64 / MIB,
        drained: true,
        ..Window::default()
    };
    let idle = Idle {
        clients: mix.clients,
        connected,
        server_rss_before_mib: before as f64 / MIB,
        server_rss_after_mib: after as f64 / MIB,
        server_kib_per_connection: per(after.saturating_sub(before)),
        client_kib_per_connection: per(client_rss),
    };
    clients.quit(&ClientsCommand::Quit).await;
    server.quit(&ServerCommand::Quit).await;
    Ok((window, idle))
}

/// Pushes `--prints` prints through ingest and processing as fast as they go.
async fn firehose(env: &mut Env<'_>, rate: f64) -> Result<(Window, Firehose), BenchError> {
    let prints = env.args.prints.max(1);
    let (mut server, _) = start_server(
        env,
        100,
        HalfRoles {
            process: true,
            gateway: false,
        },
    )
    .await?;
    let info0 = env.info.snapshot().await?;
    let server_cpu = CpuMeter::start(server.pid())?;
    let started = Instant::now();
    let spec = FeedSpec {
        sim_seed: env.args.sim_seed,
        rate,
        seconds: None,
        prints: Some(prints),
        fast: true,
    };
    let (fed, _) = feed(&mut server, spec).await?;
    let ingest_s = started.elapsed().as_secs_f64();
    let (stats, drained) = drain(env, &mut server, FIREHOSE_TIMEOUT).await?;
    // The drain's last polls confirm it; the work ended one poll earlier.
    let total_s = (started.elapsed().saturating_sub(DRAIN_POLL * 2))
        .as_secs_f64()
        .max(ingest_s);
    let server_cpu_pct = server_cpu.percent()?;
    let info1 = env.info.snapshot().await?;
    let wall = started.elapsed();
    let per_print = |n: u64| n as f64 / fed.max(1) as f64;
    let calls = info1
        .calls
        .iter()
        .filter_map(|(name, after)| {
            let delta = after.saturating_sub(info0.calls.get(name).copied().unwrap_or(0));
            (delta > 0 && name != "info").then(|| (name.clone(), per_print(delta)))
        })
        .collect();
    let firehose = Firehose {
        prints: fed,
        ingest_s,
        ingest_prints_per_s: fed as f64 / ingest_s.max(1e-9),
        total_s,
        prints_per_s: fed as f64 / total_s.max(1e-9),
        events: stats.events,
        redis_commands_per_print: per_print(
            info1
                .total_commands_processed
                .saturating_sub(info0.total_commands_processed),
        ),
        redis_calls_per_print: calls,
    };
    let window = Window {
        rate,
        prints: fed,
        feed_s: total_s,
        prints_per_s: firehose.prints_per_s,
        events: stats.events,
        server_cpu_pct,
        server_rss_mib: procfs::peak_rss_bytes(server.pid())? as f64 / MIB,
        redis_cpu_pct: redis_cpu(&info0, &info1, wall),
        redis_used_memory_mib: info1.used_memory as f64 / MIB,
        drained,
        ..Window::default()
    };
    server.quit(&ServerCommand::Quit).await;
    Ok((window, firehose))
}
