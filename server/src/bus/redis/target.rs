//! Where the Redis bus connects, and the command connections made there.
//!
//! A URL names one of two deployments, declared by its scheme (never guessed):
//! - `redis://[user:pass@]host:port[/db]`: one Redis;
//! - `redis+cluster://[user:pass@]host:port[,host:port…]`: seed nodes of a
//!   Redis Cluster (any reachable one will do; the rest are found from it).
//!
//! [`Target::check`] makes sure at start that the servers are what the URL
//! says, and fails with a message that names the fix otherwise. [`Conn`] is a
//! command connection to either: it reconnects by itself and, on a cluster,
//! routes each command by its key's slot and follows `MOVED`/`ASK`; a
//! cluster connection left with no node at all starts over from the seeds
//! ([`Healing`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::bus::BusError;

/// The scheme that declares a cluster.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a command may wait for its answer. Blocking reads ask for at
/// most [`crate::pipeline`]'s idle block (100 ms), far below it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One Redis, or seed nodes of a cluster.
#[derive(Clone)]
pub(super) enum Target {
    Single(redis::Client),
    Cluster {
        /// Each seed as a `redis://` URL, with the credentials.
        seeds: Vec<String>,
        client: Box<ClusterClient>,
    },
}

impl Target {
    /// Reads a `redis://` or `redis+cluster://` URL. `shown` is the URL with
    /// its password hidden, for messages.
    pub(super) fn parse(url: &str, shown: &str) -> Result<Target, BusError> {
        let bad = |reason: String| BusError::BadUrl {
            url: shown.to_string(),
            reason,
        };
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            let client = redis::Client::open(url).map_err(|e| bad(e.to_string()))?;
            return Ok(Target::Single(client));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if !matches!(path, "" | "/" | "/0") {
            return Err(bad(format!("a cluster has only database 0, not {path:?}")));
        }
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let seeds: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{userinfo}{h}"))
            .collect();
        if seeds.is_empty() {
            return Err(bad(
                "no seed node: expected redis+cluster://host:port[,host:port…]".into(),
            ));
        }
        for seed in &seeds {
            redis::Client::open(seed.as_str()).map_err(|e| bad(e.to_string()))?;
        }
        let client = cluster_builder(&seeds)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Target::Cluster {
            seeds,
            client: Box::new(client),
        })
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster { .. })
    }

    /// A new command connection.
    pub(super) async fn connect(&self) -> Result<Conn, redis::RedisError> {
        match self {
            Target::Single(client) => Ok(Conn::Single(
                client
                    .get_connection_manager_with_config(manager_config())
                    .await?,
            )),
            Target::Cluster { client, .. } => Ok(Conn::Cluster(Healing {
                conn: Arc::new(Mutex::new(Current {
                    conn: client.get_async_connection().await?,
                    started: Instant::now(),
                })),
                client: client.clone(),
            })),
        }
    }

    /// Checks that the servers are what the URL declares: a single Redis
    /// that is not a cluster node; or seeds that are nodes of one cluster
    /// whose 16384 slots are all served.
    pub(super) async fn check(&self, shown: &str) -> Result<(), BusError> {
        let wrong = |reason: String| BusError::Misconfigured {
            url: shown.to_string(),
            reason,
        };
        match self {
            Target::Single(client) => {
                let info = node_info(client).await.map_err(|e| BusError::Unavailable {
                    url: shown.to_string(),
                    reason: e.to_string(),
                })?;
                if info.cluster_enabled {
                    return Err(wrong(format!(
                        "this Redis is a Redis Cluster node: connect with {CLUSTER_SCHEME}host:port[,host:port…]"
                    )));
                }
                Ok(())
            }
            Target::Cluster { seeds, .. } => {
                check_cluster(seeds, &wrong).await.map_err(|e| match e {
                    SeedError::Wrong(e) => e,
                    SeedError::Unreachable(reason) => BusError::Unavailable {
                        url: shown.to_string(),
                        reason,
                    },
                })
            }
        }
    }
}

/// A cluster client's settings. A command that meets a failover is retried
/// for about 2.5 s (10 tries, 20 ms growing to 500 ms apart), while the
/// cluster promotes a replica; the library's default (1.28 s growing
/// between 16 tries) held commands for tens of seconds. Past that the
/// caller's own retry takes over.
pub(super) fn cluster_builder(seeds: &[String]) -> ClusterClientBuilder {
    ClusterClientBuilder::new(seeds.iter().map(String::as_str))
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(10)
        .min_retry_wait(20)
        .max_retry_wait(500)
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2))
}

enum SeedError {
    Wrong(BusError),
    Unreachable(String),
}

/// What one node says of itself.
struct NodeInfo {
    cluster_enabled: bool,
}

async fn node_info(client: &redis::Client) -> Result<NodeInfo, redis::RedisError> {
    let mut c = timeout(client.get_multiplexed_async_connection()).await?;
    let info: String = timeout(redis::cmd("INFO").arg("cluster").query_async(&mut c)).await?;
    Ok(NodeInfo {
        cluster_enabled: field(&info, "cluster_enabled") == Some("1"),
    })
}

/// Checks every reachable seed; at least one must answer.
async fn check_cluster(
    seeds: &[String],
    wrong: &dyn Fn(String) -> BusError,
) -> Result<(), SeedError> {
    // The node ids of the cluster the first reachable seed belongs to.
    let mut known: Option<(String, Vec<String>)> = None;
    let mut unreachable = Vec::new();
    for seed in seeds {
        let shown_seed = super::redact_url(seed);
        let answer = async {
            let client = redis::Client::open(seed.as_str())?;
            let mut c = timeout(client.get_multiplexed_async_connection()).await?;
            let info: String =
                timeout(redis::cmd("INFO").arg("cluster").query_async(&mut c)).await?;
            if field(&info, "cluster_enabled") != Some("1") {
                return Ok(None);
            }
            let state: String =
                timeout(redis::cmd("CLUSTER").arg("INFO").query_async(&mut c)).await?;
            let me: String = timeout(redis::cmd("CLUSTER").arg("MYID").query_async(&mut c)).await?;
            let nodes: String =
                timeout(redis::cmd("CLUSTER").arg("NODES").query_async(&mut c)).await?;
            Ok::<_, redis::RedisError>(Some((state, me, nodes)))
        }
        .await;
        let (state, me, nodes) = match answer {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err(SeedError::Wrong(wrong(format!(
                "seed {shown_seed} is a single Redis, not a cluster node: connect to it with {}",
                shown_seed
            ))))
            }
            Err(e) => {
                unreachable.push(format!("{shown_seed}: {e}"));
                continue;
            }
        };
        let assigned = field(&state, "cluster_slots_assigned").unwrap_or("0");
        let cluster_state = field(&state, "cluster_state").unwrap_or("unknown");
        if assigned != "16384" || cluster_state != "ok" {
            return Err(SeedError::Wrong(wrong(format!(
                "the cluster of {shown_seed} does not serve every slot: {assigned} of 16384 assigned, cluster_state {cluster_state} (assign the missing slots, e.g. redis-cli --cluster fix)"
            ))));
        }
        let ids: Vec<String> = nodes
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        match &known {
            None => known = Some((shown_seed, ids)),
            Some((first, first_ids)) => {
                if !first_ids.contains(&me) {
                    return Err(SeedError::Wrong(wrong(format!(
                        "seeds {first} and {shown_seed} belong to two different clusters"
                    ))));
                }
            }
        }
    }
    match known {
        Some(_) => {
            if !unreachable.is_empty() {
                tracing::warn!(
                    "some cluster seeds did not answer: {}",
                    unreachable.join("; ")
                );
            }
            Ok(())
        }
        None => Err(SeedError::Unreachable(format!(
            "no seed node answered ({})",
            unreachable.join("; ")
        ))),
    }
}

/// A `field:value` line of an `INFO`/`CLUSTER INFO` reply.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

async fn timeout<T>(
    fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, redis::RedisError> {
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "no answer in time").into()))
}

/// A command connection to one Redis or to a cluster; cheap to clone (the
/// clones share the connection).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(Healing),
}

/// Start over from the seeds at most this often.
const START_OVER_EVERY: Duration = Duration::from_secs(2);

/// A cluster connection that starts over from the seed nodes when a command
/// finds no connection to any node (`ClusterConnectionNotFound`). After
/// every node of a cluster restarted at once, redis-rs 1.8's own recovery
/// can stay in that state for good (seen in `tests/cluster_outage.rs`: no
/// command succeeded for 120 s after the cluster was back); a new
/// connection from the client maps the cluster afresh. The clones share the
/// current connection, so one start-over serves them all.
#[derive(Clone)]
pub(super) struct Healing {
    client: Box<ClusterClient>,
    conn: Arc<Mutex<Current>>,
}

/// The connection in use, and when it was made.
struct Current {
    conn: ClusterConnection,
    started: Instant,
}

impl Healing {
    /// The shared state (a panic elsewhere cannot leave it half-written:
    /// it is replaced whole).
    fn lock(&self) -> MutexGuard<'_, Current> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> ClusterConnection {
        self.lock().conn.clone()
    }

    /// After `result`, starts over if it says no node is connected and the
    /// connection in use is older than [`START_OVER_EVERY`]; the command
    /// itself is not retried (its caller retries, as after any failure).
    async fn after<T>(&self, result: &redis::RedisResult<T>) {
        let lost =
            matches!(result, Err(e) if e.kind() == redis::ErrorKind::ClusterConnectionNotFound);
        if !lost {
            return;
        }
        {
            let mut current = self.lock();
            if current.started.elapsed() < START_OVER_EVERY {
                return;
            }
            // Others wait for this attempt instead of starting their own.
            current.started = Instant::now();
        }
        match self.client.get_async_connection().await {
            Ok(conn) => {
                tracing::warn!(
                    "the cluster connection had no node left; started over from the seeds"
                );
                *self.lock() = Current {
                    conn,
                    started: Instant::now(),
                };
            }
            Err(e) => tracing::debug!("cannot start the cluster connection over yet: {e}"),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(h) => Box::pin(async move {
                let result = h.current().req_packed_command(cmd).await;
                h.after(&result).await;
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(h) => Box::pin(async move {
                let result = h
                    .current()
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                h.after(&result).await;
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, BusError> {
        Target::parse(url, url)
    }

    #[test]
    fn the_scheme_declares_a_cluster() {
        assert!(matches!(
            parse("redis://127.0.0.1:6379"),
            Ok(Target::Single(_))
        ));
        match parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001/") {
            Ok(Target::Cluster { seeds, .. }) => assert_eq!(
                seeds,
                vec!["redis://:pw@10.0.0.1:7000", "redis://:pw@10.0.0.2:7001"]
            ),
            Ok(_) => panic!("not a cluster"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn bad_cluster_urls_say_why() {
        let err = |url: &str| parse(url).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("redis+cluster://").contains("no seed node"));
        assert!(err("redis+cluster://a:1,b:2/3").contains("only database 0"));
        assert!(err("redis+cluster://a:notaport").contains("redis+cluster://a:notaport"));
    }

    #[test]
    fn info_fields() {
        let info = "# Cluster\r\ncluster_enabled:1\r\ncluster_state:ok\r\n";
        assert_eq!(field(info, "cluster_enabled"), Some("1"));
        assert_eq!(field(info, "cluster_state"), Some("ok"));
        assert_eq!(field(info, "cluster"), None);
    }
}
