//! The soak (`--scenario soak`): the system at the steady rate for half an
//! hour (`--duration`) while clients come and go and change filters, one
//! gateway is restarted halfway, and every process's memory is read every
//! [`SAMPLE_EVERY`], to show that memory levels off and nothing is lost.
//!
//! Processes, each measured on its own (`VmRSS`):
//! - `redis-server`: private (unless `--redis`); its `used_memory` too;
//! - `ingest`: the bench's server half running only the feed and ingest:
//!   the sim held at `--rate` ([`source`](crate::source)), which
//!   `flowtape-server ingest`'s sim, following the time of day, cannot do;
//! - `process`, `gateway-a`, `gateway-b`: `flowtape-server` binaries;
//! - `clients`: the soak's clients half ([`churn`]).
//!
//! The streams are trimmed as in production (`--flow-max-len`,
//! `--raw-max-len`), so Redis can level off too. The clients therefore
//! keep ledgers by minute of cursor time ([`ledger`]), and [`SETTLE`] after
//! each minute ends the harness checks that minute against the stream while
//! it is still kept ([`check`]). The table row of minute `m` ([`report`])
//! holds the memory read at `m` and the check of the minute before.
//! Halfway through the feed gateway-b gets SIGTERM and a new one starts on
//! its port; its clients resume by cursor. At the end [`memory`] judges
//! each process's plateau and slope.

pub mod check;
pub mod churn;
pub mod ledger;
pub mod memory;
pub mod report;
pub mod roles;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use self::check::EpochCheck;
use self::ledger::Epochs;
use self::memory::Sample;
use self::report::{GatewayCounters, MemoryVerdict, Minute, Restart, Series, Soak};
use self::roles::{RoleProcess, RoleProcessArgs};
use crate::clients::wall_us;
use crate::control::{
    ChurnCommand, ChurnEpoch, ChurnReply, ControlError, FeedSpec, Link, ServerCommand, ServerReply,
};
use crate::mix::Mix;
use crate::procfs;
use crate::report::MIB;
use crate::run::{start_server, unexpected, Env, HalfRoles, ServerLink};
use crate::BenchError;
use flowtape_core::cursor::Cursor;

/// How often memory is read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The checking unit: a minute of cursor time.
pub const EPOCH: Duration = Duration::from_secs(60);
/// How long after a minute ends it is checked: clients away (churn,
/// restart) are back and have resumed by then.
pub const SETTLE: Duration = Duration::from_secs(20);
/// Stream retention of a soak unless given: about 4 minutes of flow events
/// at 1,000 prints/s, and 20,000 prints per raw shard.
pub const FLOW_MAX_LEN: u64 = 200_000;
pub const RAW_MAX_LEN: u64 = 20_000;
/// Churning clients unless `--churn-clients` says otherwise.
pub const CHURN_CLIENTS: usize = 200;
/// How long a role may take to drain after SIGTERM.
const STOP_PATIENCE: Duration = Duration::from_secs(15);
/// After the feed, the flow stream must stay unchanged this long to count as drained.
const DRAIN_QUIET: Duration = Duration::from_secs(3);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

type ChurnLink = Link<ChurnCommand, ChurnReply>;

/// Runs the soak at `rate` prints/s for `duration` seconds.
pub(crate) async fn run(
    env: &mut Env<'_>,
    mix: &Mix,
    redis_pid: Option<u32>,
    rate: f64,
    duration: f64,
) -> Result<Soak, BenchError> {
    let args = env.args;
    if args.nginx || args.kill_master.is_some() {
        return Err(BenchError::Config(
            "--nginx and --kill-master do not apply to the soak".into(),
        ));
    }
    let churn = args.churn_clients.unwrap_or(CHURN_CLIENTS);
    let warmup_s = args.warmup.min(duration / 3.0).max(0.0);
    let Servers {
        mut ingest,
        process,
        gateway_a,
        mut gateway_b,
        addrs,
        binary,
        role_args,
    } = Servers::start(env, mix.clients + churn).await?;

    let origin_ms = (wall_us() / 1000) as u64;
    let started = Instant::now();
    let epochs = Epochs {
        origin_ms,
        length_ms: EPOCH.as_millis() as u64,
    };
    let since = env.bus.flow_bounds().await?.last.unwrap_or(Cursor::ZERO);
    let mut clients = start_clients(mix, churn, &addrs, epochs, since).await?;

    let mut soak = Soak {
        base_clients: mix.clients,
        churn_clients: churn,
        warmup_s,
        sample_every_s: SAMPLE_EVERY.as_secs_f64(),
        ..Soak::default()
    };
    let mut book = Book::new(redis_pid);
    book.follow("ingest", ingest.pid());
    book.follow("process", process.pid());
    book.follow("gateway-a", gateway_a.pid());
    book.follow("gateway-b", gateway_b.pid());
    book.follow("clients", clients.pid());
    soak.processes = book.names();
    println!("{}", soak.heading());

    let feed_started = Instant::now();
    ingest
        .send(&ServerCommand::Feed(FeedSpec {
            sim_seed: args.sim_seed,
            rate,
            seconds: Some(duration),
            prints: None,
            fast: false,
        }))
        .await?;
    let restart_at = feed_started + Duration::from_secs_f64(duration / 2.0);
    let mut restart: Option<Restart> = None;
    let mut counters = Vec::new();
    let mut fed: Option<(u64, f64)> = None;
    let mut drained_at: Option<Instant> = None;
    let mut tick = 0u32;
    let mut next_epoch = 0u32;
    let mut read_to = since;
    let mut pending: BTreeMap<u32, Minute> = BTreeMap::new();
    loop {
        let check_due = started + EPOCH * (next_epoch + 1) + SETTLE;
        let mut wake = started + SAMPLE_EVERY * tick;
        if restart.is_none() {
            wake = wake.min(restart_at);
        }
        if drained_at.is_none() {
            wake = wake.min(check_due);
        }
        tokio::select! {
            reply = ingest.recv(), if fed.is_none() => {
                fed = Some(match reply? {
                    ServerReply::Fed { prints, seconds } => (prints, seconds),
                    ServerReply::Error { message } => {
                        return Err(ControlError::Failed { half: ingest.half(), message }.into())
                    }
                    other => return Err(unexpected(ingest.half(), other, "fed")),
                });
                drain(env).await?;
                drained_at = Some(Instant::now());
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if restart.is_none() && now >= restart_at {
            counters.push(gateway_counters("gateway-b (first life)", addrs[1]).await);
            let (new, r) =
                restart_gateway(gateway_b, &binary, &role_args, addrs[1], started).await?;
            gateway_b = new;
            book.restarted("gateway-b", gateway_b.pid());
            tracing::info!(
                stop_s = r.stop_s,
                down_s = r.down_s,
                "gateway-b restarted (SIGTERM, then a new process on its port)"
            );
            restart = Some(r);
        }
        if started + SAMPLE_EVERY * tick <= now {
            // One reading for every tick that has come (a slow check may have held the loop up).
            let rss = book
                .sample(started.elapsed().as_secs_f64(), &mut env.info)
                .await;
            while started + SAMPLE_EVERY * tick <= now {
                if tick % 6 == 0 {
                    pending.insert(
                        tick / 6,
                        Minute {
                            minute: tick / 6,
                            rss_mib: rss.clone(),
                            redis_used_mib: book.redis_used_now(),
                            load: load_average(),
                            ..Minute::default()
                        },
                    );
                }
                tick += 1;
            }
        }
        // Minute k of cursor time is checked SETTLE after it ends, one a
        // turn so that memory is read in between.
        if drained_at.is_none() && check_due <= Instant::now() {
            let report = epoch_report(&mut clients, next_epoch).await?;
            let check =
                check::check_epoch(&env.bus, &epochs, next_epoch, &mut read_to, &report).await?;
            finish_row(&mut soak, &mut pending, &book, next_epoch, check, &report);
            next_epoch += 1;
        }
        if drained_at.is_some_and(|at| at.elapsed() >= SETTLE) {
            break;
        }
    }

    // The feed has ended and drained: check every minute left, through the stream's end.
    let through = env.bus.flow_bounds().await?.last.unwrap_or(since);
    match clients.call(&ChurnCommand::Finish { through }).await? {
        ChurnReply::Finished => {}
        other => return Err(unexpected(clients.half(), other, "finished")),
    }
    book.sample(started.elapsed().as_secs_f64(), &mut env.info)
        .await;
    let last_epoch = epochs.of(through).max(next_epoch);
    for k in next_epoch..=last_epoch {
        let report = epoch_report(&mut clients, k).await?;
        let check = check::check_epoch(&env.bus, &epochs, k, &mut read_to, &report).await?;
        finish_row(&mut soak, &mut pending, &book, k, check, &report);
    }

    counters.push(gateway_counters("gateway-a", addrs[0]).await);
    counters.push(
        gateway_counters(
            if restart.is_some() {
                "gateway-b (restarted)"
            } else {
                "gateway-b"
            },
            addrs[1],
        )
        .await,
    );
    clients.quit(&ChurnCommand::Quit).await;
    for role in [gateway_a, gateway_b, process] {
        let name = role.name().to_string();
        if role
            .terminate(STOP_PATIENCE)
            .await
            .is_none_or(|s| !s.success())
        {
            tracing::warn!(role = name, "did not exit cleanly");
        }
    }
    ingest.quit(&ServerCommand::Quit).await;

    let (prints, feed_s) = fed.unwrap_or_default();
    soak.prints = prints;
    soak.feed_s = feed_s;
    soak.restart = restart;
    soak.gateways = counters;
    soak.e2e_ms = report::quantiles(&soak.e2e);
    soak.memory = book
        .lives
        .iter()
        .map(|s| MemoryVerdict::of(s, warmup_s))
        .collect();
    soak.redis_used = Some(MemoryVerdict::of(&book.redis_used, warmup_s));
    soak.series = book.lives;
    soak.series.push(book.redis_used);
    Ok(soak)
}

/// The server processes of a soak, started.
struct Servers {
    /// The bench's server half, feed and ingest only.
    ingest: ServerLink,
    process: RoleProcess,
    gateway_a: RoleProcess,
    gateway_b: RoleProcess,
    /// The gateways' addresses, a then b.
    addrs: [SocketAddr; 2],
    binary: PathBuf,
    role_args: RoleProcessArgs,
}

impl Servers {
    /// Starts ingest, the processor and two gateways for `clients`, and
    /// waits until the gateways are healthy.
    async fn start(env: &Env<'_>, clients: usize) -> Result<Servers, BenchError> {
        let binary = roles::server_binary()?;
        let role_args = RoleProcessArgs {
            redis: env.url.clone(),
            namespace: env.namespace.clone(),
            shards: env.args.shards,
            wait_replicas: env.args.wait_replicas,
            retention: env.retention,
            coalesce_ms: env.args.coalesce_ms,
            max_connections: (clients + 100).max(10_000),
        };
        let only_ingest = HalfRoles {
            process: false,
            gateway: false,
        };
        let (ingest, _) = start_server(env, 100, only_ingest).await?;
        let process = RoleProcess::spawn("process", &binary, &role_args.process())?;
        let addrs = [free_addr()?, free_addr()?];
        let gateway_a = RoleProcess::spawn("gateway-a", &binary, &role_args.gateway(addrs[0]))?;
        let gateway_b = RoleProcess::spawn("gateway-b", &binary, &role_args.gateway(addrs[1]))?;
        for addr in addrs {
            roles::wait_healthy(addr).await?;
        }
        Ok(Servers {
            ingest,
            process,
            gateway_a,
            gateway_b,
            addrs,
            binary,
            role_args,
        })
    }
}

/// A free loopback address for a gateway.
fn free_addr() -> Result<SocketAddr, BenchError> {
    let port = crate::redis_server::free_port()?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The machine's 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Starts the soak's clients half and waits until the base clients are live.
async fn start_clients(
    mix: &Mix,
    churn: usize,
    gateways: &[SocketAddr],
    epochs: Epochs,
    since: Cursor,
) -> Result<ChurnLink, BenchError> {
    let connect: Vec<String> = gateways.iter().map(|g| format!("ws://{g}/ws")).collect();
    let args: Vec<String> = vec![
        "--soak-clients".into(),
        "--connect".into(),
        connect.join(","),
        "--clients".into(),
        mix.clients.to_string(),
        "--premium-clients".into(),
        mix.premium.to_string(),
        "--churn-clients".into(),
        churn.to_string(),
        "--watchlist".into(),
        mix.watchlist.to_string(),
        "--client-seed".into(),
        mix.client_seed.to_string(),
        "--sim-seed".into(),
        mix.sim_seed.to_string(),
        "--epoch-origin-ms".into(),
        epochs.origin_ms.to_string(),
        "--since".into(),
        since.to_string(),
    ];
    let mut link = ChurnLink::spawn("soak clients", &args)?;
    match link.recv().await? {
        ChurnReply::Ready { live, .. } => {
            if live < mix.clients {
                tracing::warn!("only {live} of {} base clients are live", mix.clients);
            }
            Ok(link)
        }
        ChurnReply::Error { message } => Err(ControlError::Failed {
            half: link.half(),
            message,
        }
        .into()),
        other => Err(unexpected(link.half(), other, "ready")),
    }
}

async fn epoch_report(clients: &mut ChurnLink, epoch: u32) -> Result<ChurnEpoch, BenchError> {
    match clients.call(&ChurnCommand::Epoch { epoch }).await? {
        ChurnReply::Epoch(report) => Ok(*report),
        other => Err(unexpected(clients.half(), other, "epoch")),
    }
}

/// Completes the row of minute `k + 1` with the check of minute `k` (and
/// the latest memory readings if none were taken then), prints it, and adds it up.
fn finish_row(
    soak: &mut Soak,
    pending: &mut BTreeMap<u32, Minute>,
    book: &Book,
    k: u32,
    check: EpochCheck,
    report: &ChurnEpoch,
) {
    let mut row = pending.remove(&(k + 1)).unwrap_or_else(|| Minute {
        minute: k + 1,
        rss_mib: book.latest(),
        redis_used_mib: book.redis_used_now(),
        load: load_average(),
        ..Minute::default()
    });
    row.check = check;
    row.activity = report.activity.clone();
    row.e2e_ms = report::quantiles(&report.e2e);
    println!("{}", soak.row(&row));
    soak.add(row, &report.e2e);
}

/// Waits until the flow stream has stopped growing: everything fed is processed.
async fn drain(env: &Env<'_>) -> Result<(), BenchError> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut last = env.bus.flow_bounds().await?.last;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = env.bus.flow_bounds().await?.last;
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= DRAIN_QUIET {
            return Ok(());
        }
    }
    tracing::warn!("the flow stream was still growing {DRAIN_TIMEOUT:?} after the feed ended");
    Ok(())
}

/// SIGTERMs the gateway, starts a new one on its address, waits until it is healthy.
async fn restart_gateway(
    old: RoleProcess,
    binary: &Path,
    role_args: &RoleProcessArgs,
    addr: SocketAddr,
    started: Instant,
) -> Result<(RoleProcess, Restart), BenchError> {
    let at = Instant::now();
    let old_pid = old.pid();
    let name = old.name().to_string();
    let status = old.terminate(STOP_PATIENCE).await;
    let stop_s = at.elapsed().as_secs_f64();
    let new = RoleProcess::spawn(name, binary, &role_args.gateway(addr))?;
    roles::wait_healthy(addr).await?;
    let restart = Restart {
        at_s: (at - started).as_secs_f64(),
        old_pid,
        new_pid: new.pid(),
        stop_s,
        down_s: at.elapsed().as_secs_f64(),
        clean_exit: status.is_some_and(|s| s.success()),
    };
    Ok((new, restart))
}

/// A gateway's own counters, or zeros if it does not answer.
async fn gateway_counters(name: &str, addr: SocketAddr) -> GatewayCounters {
    let text = match roles::get(addr, "/metrics").await {
        Ok((200, body)) => body,
        _ => {
            tracing::warn!("{name} did not answer /metrics");
            String::new()
        }
    };
    let m = |family: &str| roles::metric(&text, &format!("flowtape_gateway_{family}"));
    GatewayCounters {
        name: name.to_string(),
        connections_total: m("connections_total"),
        slow_consumer_disconnects: m("slow_consumer_disconnects_total"),
        lag_resumes: m("lag_resumes_total"),
        heartbeat_timeouts: m("heartbeat_timeouts_total"),
        history_lost: m("history_lost_total"),
    }
}

/// The memory samples of every process's lives, and of Redis's `used_memory`.
struct Book {
    /// Each process's current life, in column order, by index into `lives`.
    current: Vec<usize>,
    lives: Vec<Series>,
    redis_used: Series,
}

impl Book {
    fn new(redis_pid: Option<u32>) -> Book {
        let mut book = Book {
            current: Vec::new(),
            lives: Vec::new(),
            redis_used: Series {
                name: "redis used_memory".into(),
                pid: redis_pid.unwrap_or(0),
                samples: Vec::new(),
            },
        };
        if let Some(pid) = redis_pid {
            book.follow("redis-server", pid);
        }
        book
    }

    fn follow(&mut self, name: &str, pid: u32) {
        self.current.push(self.lives.len());
        self.lives.push(Series {
            name: name.into(),
            pid,
            samples: Vec::new(),
        });
    }

    /// `name` is a new process `pid` from now on.
    fn restarted(&mut self, name: &str, pid: u32) {
        let Some(slot) = self
            .current
            .iter_mut()
            .find(|i| self.lives[**i].name.starts_with(name))
        else {
            return;
        };
        let first = &mut self.lives[*slot];
        if !first.name.contains('(') {
            first.name = format!("{name} (first life)");
        }
        *slot = self.lives.len();
        self.lives.push(Series {
            name: format!("{name} (restarted)"),
            pid,
            samples: Vec::new(),
        });
    }

    /// The processes' names, in column order.
    fn names(&self) -> Vec<String> {
        self.current
            .iter()
            .map(|&i| {
                let name = &self.lives[i].name;
                name.split(" (").next().unwrap_or(name).to_string()
            })
            .collect()
    }

    /// Reads every process's RSS and Redis's `used_memory`; returns the RSS
    /// in column order (0 for a process that could not be read).
    async fn sample(&mut self, at_s: f64, info: &mut crate::redis_server::Info) -> Vec<f64> {
        let mut row = Vec::with_capacity(self.current.len());
        for &i in &self.current {
            let life = &mut self.lives[i];
            let mib = procfs::rss_bytes(life.pid).map_or(0.0, |b| b as f64 / MIB);
            if mib > 0.0 {
                life.samples.push(Sample { at_s, mib });
            }
            row.push(mib);
        }
        match info.snapshot().await {
            Ok(snap) => self.redis_used.samples.push(Sample {
                at_s,
                mib: snap.used_memory as f64 / MIB,
            }),
            Err(e) => tracing::warn!("redis INFO: {e}"),
        }
        row
    }

    /// Each process's last reading, in column order.
    fn latest(&self) -> Vec<f64> {
        self.current
            .iter()
            .map(|&i| self.lives[i].samples.last().map_or(0.0, |s| s.mib))
            .collect()
    }

    fn redis_used_now(&self) -> f64 {
        self.redis_used.samples.last().map_or(0.0, |s| s.mib)
    }
}
