//! Losing the whole Redis Cluster behaves as losing the single Redis does:
//! the gateway reports 503 on `/healthz` while it is gone, ingest and the
//! processor hold on and retry, and when the cluster is back (empty: no
//! persistence) everything recovers by itself — `/healthz` is 200 again and
//! new events reach the flow stream.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use flowtape_bench::redis_cluster::RedisCluster;
use flowtape_server::bus::{Bus, BusConfig};
use flowtape_server::gateway::GatewayConfig;
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;

mod support;
use support::sim_from_now;

/// The status code of `GET /healthz`, or `None` if the gateway does not answer.
fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// Waits up to `within` for `/healthz` to answer `code`.
async fn health_becomes(addr: SocketAddr, code: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = tokio::task::spawn_blocking(move || healthz(addr))
            .await
            .unwrap_or(None);
        if got == Some(code) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not answer {code} within {within:?} (last: {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits up to `within` for the flow stream to hold events; failing, says
/// what the bus last answered and what the gateway's `/healthz` says.
async fn events_flow(bus: &Bus, gateway: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let last = match bus.flow_bounds().await {
            Ok(b) if b.len > 0 => return,
            Ok(b) => format!("an empty stream ({b:?})"),
            Err(e) => format!("error: {e}"),
        };
        if Instant::now() >= deadline {
            let health = tokio::task::spawn_blocking(move || healthz(gateway))
                .await
                .unwrap_or(None);
            panic!(
                "no events reached the flow stream in {within:?}; the bus last answered \
                 {last}; /healthz: {health:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_whole_cluster_is_reported_and_recovered_from() {
    let mut cluster = RedisCluster::start(3, Duration::from_millis(1000))
        .await
        .unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}"));
    let bus = Bus::redis(
        &cluster.url(),
        BusConfig {
            shards: 4,
            ..BusConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(100.0))),
            process: Some(ProcessorConfig::new("outage-test".into())),
            gateway: Some(GatewayConfig {
                listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                ..GatewayConfig::default()
            }),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = node.gateway_addr().unwrap_or_else(|| panic!("no gateway"));
    // Generous bounds: on a loaded 2-core machine forming the cluster and
    // the first sweep of the simulator can take a while; the test is about
    // recovering, not speed.
    events_flow(&bus, addr, Duration::from_secs(60)).await;
    health_becomes(addr, 200, Duration::from_secs(60)).await;

    cluster.kill_all();
    health_becomes(addr, 503, Duration::from_secs(30)).await;

    cluster
        .restart_stopped()
        .await
        .unwrap_or_else(|e| panic!("the cluster did not come back: {e}"));
    // The cluster came back empty: events in the flow stream now are new ones.
    events_flow(&bus, addr, Duration::from_secs(120)).await;
    health_becomes(addr, 200, Duration::from_secs(120)).await;

    node.shutdown();
    node.wait().await;
}
