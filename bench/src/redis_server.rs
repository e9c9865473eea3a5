//! The Redis a run measures against: a private `redis-server` the harness
//! starts, or one given with `--redis`, and what its `INFO` says.
//!
//! [`RedisServer::start`] runs `redis-server` from `PATH` (or `$REDIS_SERVER`)
//! on a free loopback port in a fresh temporary directory, with persistence
//! off (`--save "" --appendonly no`), and waits until it answers `PING`. The
//! process is killed and the directory removed when the value is dropped, on
//! every exit path of the harness.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh `redis-server` may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    #[error("redis-server not found on PATH: install it (apt-get install redis-server), set REDIS_SERVER, or pass --redis URL")]
    NotFound,
    #[error("cannot start redis-server: {0}")]
    Spawn(std::io::Error),
    #[error("redis-server on port {0} did not answer within {START_TIMEOUT:?}")]
    NotReady(u16),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("INFO has no field {0}")]
    MissingField(&'static str),
}

/// A `redis-server` child process, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The program `name`: the path in the environment variable `env` if it is
/// set, else the first `name` on `PATH` or in the usual system directories
/// (`sbin` too, where Debian puts daemons such as nginx).
pub fn find_program(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin"])
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|candidate| candidate.is_file());
    found
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free port for a cluster node: the node also listens on the port
/// 10,000 above it (its cluster bus), so that one must exist and be free too.
pub fn free_cluster_port() -> std::io::Result<u16> {
    for _ in 0..1000 {
        let port = free_port()?;
        if port <= u16::MAX - 10_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "no free port pair for a cluster node",
    ))
}

impl RedisServer {
    /// Starts a private server and waits until it answers.
    pub async fn start() -> Result<RedisServer, RedisServerError> {
        let bin = find_program("REDIS_SERVER", "redis-server").ok_or(RedisServerError::NotFound)?;
        let port = free_port().map_err(RedisServerError::Spawn)?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("flowtape-bench-{}-{nonce:x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(RedisServerError::Spawn)?;
        let child = Command::new(bin)
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(RedisServerError::Spawn(e));
            }
        };
        let server = RedisServer { child, port, dir };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<(), RedisServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(mut info) = Info::connect(&self.url()).await {
                if info.ping().await.is_ok() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(RedisServerError::NotReady(self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, for its CPU figures.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `INFO` reading of the fields a run reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfoSnapshot {
    pub used_memory: u64,
    pub total_commands_processed: u64,
    /// `used_cpu_user + used_cpu_sys`, seconds.
    pub cpu_seconds: f64,
    /// Calls per command (`cmdstat_*`), as Redis counts them (commands run
    /// by scripts included).
    pub calls: BTreeMap<String, u64>,
}

/// Connections for `INFO` and `PING`: to one Redis, or to each seed node
/// of a `redis+cluster://` URL (figures are then summed over the nodes).
pub struct Info {
    conns: Vec<redis::aio::MultiplexedConnection>,
}

impl Info {
    pub async fn connect(url: &str) -> Result<Info, RedisServerError> {
        let urls: Vec<String> = match url.strip_prefix("redis+cluster://") {
            Some(rest) => {
                let (userinfo, hosts) = match rest.rfind('@') {
                    Some(at) => (&rest[..=at], &rest[at + 1..]),
                    None => ("", rest),
                };
                hosts
                    .trim_end_matches('/')
                    .split(',')
                    .map(|h| format!("redis://{userinfo}{h}"))
                    .collect()
            }
            None => vec![url.to_string()],
        };
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            let client = redis::Client::open(url)?;
            let conn = tokio::time::timeout(
                Duration::from_secs(2),
                client.get_multiplexed_async_connection(),
            )
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
            conns.push(conn);
        }
        Ok(Info { conns })
    }

    async fn ping(&mut self) -> Result<(), RedisServerError> {
        for conn in &mut self.conns {
            let _: String = redis::cmd("PING").query_async(conn).await?;
        }
        Ok(())
    }

    /// The (first) server's `redis_version`.
    pub async fn version(&mut self) -> Result<String, RedisServerError> {
        let conn = self
            .conns
            .first_mut()
            .ok_or(RedisServerError::MissingField("a node"))?;
        let text: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
        text.lines()
            .find_map(|l| {
                l.trim_end()
                    .strip_prefix("redis_version:")
                    .map(str::to_string)
            })
            .ok_or(RedisServerError::MissingField("redis_version"))
    }

    /// Reads memory, stats, CPU and command statistics, summed over the nodes
    /// that answer.
    pub async fn snapshot(&mut self) -> Result<InfoSnapshot, RedisServerError> {
        let mut sum = InfoSnapshot::default();
        let mut answered = 0;
        for conn in &mut self.conns {
            // A node killed on purpose (`--kill-master`) is left out of the sum.
            let Ok(text) = redis::cmd("INFO")
                .arg("memory")
                .arg("stats")
                .arg("cpu")
                .arg("commandstats")
                .query_async::<String>(conn)
                .await
            else {
                continue;
            };
            answered += 1;
            let one = parse_info(&text)?;
            sum.used_memory += one.used_memory;
            sum.total_commands_processed += one.total_commands_processed;
            sum.cpu_seconds += one.cpu_seconds;
            for (name, calls) in one.calls {
                *sum.calls.entry(name).or_default() += calls;
            }
        }
        if answered == 0 {
            return Err(RedisServerError::MissingField("an answer to INFO"));
        }
        Ok(sum)
    }
}

fn parse_info(text: &str) -> Result<InfoSnapshot, RedisServerError> {
    let fields: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect();
    let num = |key: &'static str| -> Result<f64, RedisServerError> {
        fields
            .get(key)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or(RedisServerError::MissingField(key))
    };
    let calls = fields
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?;
            let calls = v
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect();
    Ok(InfoSnapshot {
        used_memory: num("used_memory")? as u64,
        total_commands_processed: num("total_commands_processed")? as u64,
        cpu_seconds: num("used_cpu_user")? + num("used_cpu_sys")?,
        calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read() {
        let text = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\r\n# Stats\r\n\
                    total_commands_processed:42\r\n# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n\
                    # Commandstats\r\ncmdstat_xadd:calls=30,usec=60,usec_per_call=2.00,rejected_calls=0\r\n\
                    cmdstat_evalsha:calls=7,usec=9,usec_per_call=1.29\r\n";
        let info = parse_info(text).unwrap_or_default();
        assert_eq!(info.used_memory, 1 << 20);
        assert_eq!(info.total_commands_processed, 42);
        assert!((info.cpu_seconds - 3.75).abs() < 1e-9);
        assert_eq!(info.calls.get("xadd"), Some(&30));
        assert_eq!(info.calls.get("evalsha"), Some(&7));
        assert!(matches!(
            parse_info("used_memory:1\r\n"),
            Err(RedisServerError::MissingField(_))
        ));
    }
}
