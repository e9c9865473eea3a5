//! A `--redis` that does not match the servers fails at start, with a
//! message that names the fix: a cluster node given as one Redis, a single
//! Redis given as a cluster, seeds of two different clusters, and a cluster
//! that does not serve every slot. Each case runs real `redis-server`s.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowtape_bench::redis_server::{find_program, free_cluster_port};
use flowtape_server::bus::{Bus, BusConfig};

/// A `redis-server` on a free port, killed on drop; in cluster mode with
/// `cluster`, holding every slot with `all_slots`.
struct Node {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(cluster: bool, all_slots: bool) -> Node {
        let bin = find_program("REDIS_SERVER", "redis-server")
            .unwrap_or_else(|| panic!("redis-server not found: apt-get install redis-server"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_cluster_port().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let node = Node {
            port,
            child,
            _dir: dir,
        };
        let mut c = node.wait_ready();
        if all_slots {
            let () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(0)
                .arg(16383)
                .query(&mut c)
                .unwrap_or_else(|e| panic!("{e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut c)
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the one-node cluster did not form"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        node
    }

    fn wait_ready(&self) -> redis::Connection {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
                .and_then(|c| c.get_connection())
            {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return c;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error `Bus::redis` gives for `url`.
async fn refusal(url: &str) -> String {
    match Bus::redis(url, BusConfig::default()).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_cluster_node_given_as_one_redis_is_refused() {
    let node = Node::start(true, true);
    let message = refusal(&format!("redis://{}", node.addr())).await;
    assert!(
        message.contains("is a Redis Cluster node") && message.contains("redis+cluster://"),
        "{message}"
    );
}

#[tokio::test]
async fn a_single_redis_given_as_a_cluster_is_refused() {
    let node = Node::start(false, false);
    let message = refusal(&format!("redis+cluster://{}", node.addr())).await;
    assert!(
        message.contains("is a single Redis, not a cluster node")
            && message.contains(&format!("redis://{}", node.addr())),
        "{message}"
    );
}

#[tokio::test]
async fn seeds_of_two_clusters_are_refused() {
    let (a, b) = (Node::start(true, true), Node::start(true, true));
    let message = refusal(&format!("redis+cluster://{},{}", a.addr(), b.addr())).await;
    assert!(
        message.contains("belong to two different clusters"),
        "{message}"
    );
}

#[tokio::test]
async fn a_cluster_with_uncovered_slots_is_refused() {
    let node = Node::start(true, false);
    let message = refusal(&format!("redis+cluster://{}", node.addr())).await;
    assert!(
        message.contains("does not serve every slot") && message.contains("0 of 16384"),
        "{message}"
    );
}

#[tokio::test]
async fn a_cluster_url_without_seeds_is_refused() {
    let message = refusal("redis+cluster://").await;
    assert!(message.contains("no seed node"), "{message}");
}
