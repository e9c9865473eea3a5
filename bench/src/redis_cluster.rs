//! A private Redis Cluster on this machine, for the failover tests and
//! `flowtape-bench --cluster`.
//!
//! [`RedisCluster::start`] runs `2 × masters` `redis-server` processes
//! (cluster mode, no persistence, a short `cluster-node-timeout`) on free
//! loopback ports in one temporary directory, joins them with
//! `redis-cli --cluster create … --cluster-replicas 1`, and waits until every
//! node reports `cluster_state:ok`. It can SIGKILL a node and wait for the
//! cluster to serve every slot again. Every process is killed and the
//! directory removed when the value is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

use crate::redis_server::{find_program, free_cluster_port, RedisServerError};

/// How long forming the cluster, or recovering from a failover, may take.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// One node: its port, and its process while it runs.
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running cluster of masters with one replica each.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    bin: PathBuf,
    node_timeout: Duration,
}

/// Which master serves which slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotOwner {
    pub start: u16,
    pub end: u16,
    pub port: u16,
}

impl RedisCluster {
    /// Starts `masters` masters and as many replicas; `node_timeout` is how
    /// long a master may be silent before its replica takes over.
    pub async fn start(
        masters: usize,
        node_timeout: Duration,
    ) -> Result<RedisCluster, RedisServerError> {
        let bin = find_program("REDIS_SERVER", "redis-server").ok_or(RedisServerError::NotFound)?;
        let cli = find_program("REDIS_CLI", "redis-cli").ok_or(RedisServerError::NotFound)?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("flowtape-cluster-{}-{nonce:x}", std::process::id()));
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
            bin,
            node_timeout,
        };
        for _ in 0..masters * 2 {
            // A port found free can be taken before redis-server binds it
            // (another process's outgoing connection draws from the same
            // range): a node that does not come up is retried on new ports.
            let mut attempt = 1;
            loop {
                let port = free_cluster_port().map_err(RedisServerError::Spawn)?;
                std::fs::create_dir_all(cluster.dir.join(port.to_string()))
                    .map_err(RedisServerError::Spawn)?;
                let mut child = cluster.spawn(port)?;
                match wait_answers(port).await {
                    Ok(()) => {
                        cluster.nodes.push(Node {
                            port,
                            child: Some(child),
                        });
                        break;
                    }
                    Err(e) if attempt >= 3 => return Err(e),
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        attempt += 1;
                    }
                }
            }
        }
        let created = Command::new(cli)
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(RedisServerError::Spawn)?;
        if !created.status.success() {
            return Err(RedisServerError::Spawn(std::io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stdout)
            ))));
        }
        cluster.wait_ok().await?;
        cluster.wait_replicated().await?;
        Ok(cluster)
    }

    /// Starts the node on `port` in its directory (which keeps its
    /// `nodes.conf`, so a restarted node rejoins its cluster; it keeps no data).
    fn spawn(&self, port: u16) -> Result<Child, RedisServerError> {
        Command::new(&self.bin)
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.join(port.to_string()))
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .arg("--cluster-node-timeout")
            .arg(self.node_timeout.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(RedisServerError::Spawn)
    }

    /// SIGKILLs every node: the whole cluster is gone.
    pub fn kill_all(&mut self) {
        let ports: Vec<u16> = self.live_ports();
        for port in ports {
            self.kill(port);
        }
    }

    /// Starts every stopped node again on its port (empty: no persistence)
    /// and waits until the cluster serves every slot.
    pub async fn restart_stopped(&mut self) -> Result<(), RedisServerError> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                let child = self.spawn(self.nodes[i].port)?;
                self.nodes[i].child = Some(child);
            }
        }
        for node in &self.nodes {
            wait_answers(node.port).await?;
        }
        self.wait_ok().await
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The process ids of the nodes still running.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Which master serves each slot range, as a running node sees it.
    pub async fn slot_owners(&self) -> Result<Vec<SlotOwner>, RedisServerError> {
        let mut last = None;
        for port in self.live_ports() {
            match slots_of(port).await {
                Ok(owners) => return Ok(owners),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(RedisServerError::NotReady(0)))
    }

    /// The port of the master that serves `key`.
    pub async fn master_of(&self, key: &str) -> Result<u16, RedisServerError> {
        let slot = key_slot(key);
        self.slot_owners()
            .await?
            .into_iter()
            .find(|o| (o.start..=o.end).contains(&slot))
            .map(|o| o.port)
            .ok_or(RedisServerError::MissingField("slot owner"))
    }

    /// SIGKILLs the node on `port` (no chance to hand anything over).
    pub fn kill(&mut self, port: u16) {
        for node in &mut self.nodes {
            if node.port == port {
                if let Some(mut child) = node.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }

    /// Waits until every master has a replica whose link to it is up (a
    /// replica syncs a moment after the cluster forms; until then a
    /// `WAIT 1` cannot be satisfied).
    pub async fn wait_replicated(&self) -> Result<(), RedisServerError> {
        let live = self.live_ports();
        poll(&live, async || {
            for &port in &live {
                if !replication_up(port).await.unwrap_or(false) {
                    return false;
                }
            }
            true
        })
        .await
    }

    /// Waits until every running node says `cluster_state:ok` and no slot
    /// is served by a node that is not running.
    pub async fn wait_ok(&self) -> Result<(), RedisServerError> {
        let live = self.live_ports();
        poll(&live, async || {
            for &port in &live {
                if !cluster_state_ok(port).await.unwrap_or(false) {
                    return false;
                }
            }
            let Ok(owners) = self.slot_owners().await else {
                return false;
            };
            let covered: u32 = owners.iter().map(|o| u32::from(o.end - o.start) + 1).sum();
            covered == 16384 && owners.iter().all(|o| live.contains(&o.port))
        })
        .await
    }
}

/// Checks `done` every 50 ms until it holds, for at most [`FORM_TIMEOUT`].
async fn poll(live: &[u16], mut done: impl AsyncFnMut() -> bool) -> Result<(), RedisServerError> {
    let deadline = Instant::now() + FORM_TIMEOUT;
    while !done().await {
        if Instant::now() > deadline {
            return Err(RedisServerError::NotReady(
                live.first().copied().unwrap_or(0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(port: u16) -> Result<redis::aio::MultiplexedConnection, RedisServerError> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| RedisServerError::NotReady(port))?
    .map_err(RedisServerError::from)
}

async fn wait_answers(port: u16) -> Result<(), RedisServerError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut c) = connect(port).await {
            let pong: Result<String, _> = redis::cmd("PING").query_async(&mut c).await;
            if pong.is_ok() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(RedisServerError::NotReady(port))
}

async fn cluster_state_ok(port: u16) -> Result<bool, RedisServerError> {
    let mut c = connect(port).await?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut c)
        .await?;
    Ok(info.lines().any(|l| l.trim_end() == "cluster_state:ok"))
}

/// A master with a connected replica, or a replica whose link to its master is up.
async fn replication_up(port: u16) -> Result<bool, RedisServerError> {
    let mut c = connect(port).await?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut c)
        .await?;
    let has = |line: &str| info.lines().any(|l| l.trim_end() == line);
    let replicas = info
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("connected_slaves:"))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    Ok(
        (has("role:master") && replicas >= 1)
            || (has("role:slave") && has("master_link_status:up")),
    )
}

/// `CLUSTER SLOTS` as seen by the node on `port`.
async fn slots_of(port: u16) -> Result<Vec<SlotOwner>, RedisServerError> {
    let mut c = connect(port).await?;
    let v: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut c)
        .await?;
    let Value::Array(ranges) = v else {
        return Err(RedisServerError::MissingField("CLUSTER SLOTS"));
    };
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => u16::try_from(*n).ok(),
        _ => None,
    };
    let mut out = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let master_port = match parts.get(2) {
            Some(Value::Array(master)) => int(master.get(1)),
            _ => None,
        };
        if let (Some(start), Some(end), Some(port)) =
            (int(parts.first()), int(parts.get(1)), master_port)
        {
            out.push(SlotOwner { start, end, port });
        }
    }
    Ok(out)
}

/// The cluster slot of a key (CRC16/XMODEM of its hash tag, mod 16384).
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16(tagged) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values from the Redis Cluster specification's reference implementation.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("ft:{ft:flow}:events"), key_slot("ft:flow"));
        assert_eq!(key_slot("{}x"), key_slot("{}x"));
        assert_ne!(key_slot("{}x"), key_slot("x"));
    }
}
