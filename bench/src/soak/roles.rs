//! The real `flowtape-server` processes a soak runs (`process`, `gateway`):
//! started from the binary beside this one, stopped with SIGTERM as in
//! production, killed if they do not stop (and on drop).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::redis_server::find_program;
use crate::server::Retention;
use crate::BenchError;

/// How long a gateway may take to answer `/healthz` with 200 after it starts.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest an HTTP request to a gateway may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The `flowtape-server` binary: `$FLOWTAPE_SERVER`, else the one beside
/// this executable (a workspace build puts them together), else on `PATH`.
pub fn server_binary() -> Result<PathBuf, BenchError> {
    if let Some(p) = std::env::var_os("FLOWTAPE_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()?
        .parent()
        .map(|dir| dir.join("flowtape-server"));
    beside
        .filter(|p| p.is_file())
        .or_else(|| find_program("FLOWTAPE_SERVER", "flowtape-server"))
        .ok_or_else(|| {
            BenchError::Config(
                "flowtape-server not found beside flowtape-bench or on PATH: build the \
                 workspace (cargo build --release --workspace) or set FLOWTAPE_SERVER"
                    .into(),
            )
        })
}

/// What every role of a soak is started with.
#[derive(Clone, Debug)]
pub struct RoleProcessArgs {
    pub redis: String,
    pub namespace: String,
    pub shards: u16,
    pub wait_replicas: u32,
    pub retention: Retention,
    /// The gateways' `--coalesce-ms`, if not their default.
    pub coalesce_ms: Option<u64>,
    pub max_connections: usize,
}

impl RoleProcessArgs {
    fn common(&self, role: &str) -> Vec<String> {
        [
            role,
            "--redis",
            &self.redis,
            "--namespace",
            &self.namespace,
            "--shards",
            &self.shards.to_string(),
            "--wait-replicas",
            &self.wait_replicas.to_string(),
            "--flow-max-len",
            &self.retention.flow_max_len.to_string(),
            "--raw-max-len",
            &self.retention.raw_max_len.to_string(),
            "--log",
            "warn",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `flowtape-server process …`
    pub fn process(&self) -> Vec<String> {
        self.common("process")
    }

    /// `flowtape-server gateway …` listening on `listen`.
    pub fn gateway(&self, listen: SocketAddr) -> Vec<String> {
        let mut args = self.common("gateway");
        args.extend([
            "--listen".into(),
            listen.to_string(),
            "--max-connections".into(),
            self.max_connections.to_string(),
        ]);
        if let Some(ms) = self.coalesce_ms {
            args.extend(["--coalesce-ms".into(), ms.to_string()]);
        }
        args
    }
}

/// One running `flowtape-server` role.
pub struct RoleProcess {
    name: String,
    child: Child,
    pid: u32,
}

impl RoleProcess {
    /// Starts `flowtape-server <args>`; its logs go to this process's stderr.
    pub fn spawn(
        name: impl Into<String>,
        binary: &Path,
        args: &[String],
    ) -> Result<RoleProcess, BenchError> {
        let name = name.into();
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Config(format!("cannot start {name}: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Config(format!("{name} exited at once")))?;
        Ok(RoleProcess { name, child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends SIGTERM and waits up to `patience` for the process to drain and
    /// exit, then kills it. Returns its exit status, if it exited by itself.
    pub async fn terminate(mut self, patience: Duration) -> Option<ExitStatus> {
        // SIGTERM through kill(1): the workspace forbids unsafe code.
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if signalled {
            if let Ok(Ok(status)) = tokio::time::timeout(patience, self.child.wait()).await {
                return Some(status);
            }
        }
        tracing::warn!(role = self.name, "did not stop on SIGTERM; killing it");
        let _ = self.child.kill().await;
        None
    }
}

/// One plain HTTP GET to a gateway: the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), std::io::Error> {
    let request = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let text = tokio::time::timeout(HTTP_TIMEOUT, request)
        .await
        .map_err(|_| std::io::Error::other(format!("GET {path} timed out")))??;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("GET {path}: no status line")))?;
    Ok((code, body.to_string()))
}

/// Waits until the gateway at `addr` answers `/healthz` with 200.
pub async fn wait_healthy(addr: SocketAddr) -> Result<(), BenchError> {
    let deadline = tokio::time::Instant::now() + HEALTHY_TIMEOUT;
    loop {
        match get(addr, "/healthz").await {
            Ok((200, _)) => return Ok(()),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(BenchError::Config(format!(
                    "the gateway on {addr} was not healthy within {HEALTHY_TIMEOUT:?}"
                )))
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The sum of every series of the metric family `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_families_are_summed() {
        let text = "# TYPE flowtape_gateway_history_lost_total counter\n\
                    flowtape_gateway_history_lost_total{at=\"live\"} 2\n\
                    flowtape_gateway_history_lost_total{at=\"resume\"} 3\n\
                    flowtape_gateway_connections 7\n\
                    flowtape_gateway_connections_total 12\n";
        assert_eq!(metric(text, "flowtape_gateway_history_lost_total"), 5.0);
        assert_eq!(metric(text, "flowtape_gateway_connections"), 7.0);
        assert_eq!(metric(text, "flowtape_gateway_connections_total"), 12.0);
        assert_eq!(metric(text, "flowtape_gateway_missing"), 0.0);
    }
}
