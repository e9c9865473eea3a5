//! What the end-to-end tests share (each test file uses some of it).
#![allow(dead_code)]

pub mod ws;

use flowtape_server::bus::Bus;
use flowtape_server::feed::SimConfig;
use flowtape_server::gateway::GatewayConfig;
use flowtape_server::node::{FeedChoice, Node, NodeConfig};
use flowtape_server::pipeline::ProcessorConfig;

/// A node running only a gateway on `bus`, on a free loopback port; its `ws://` URL.
pub async fn gateway_node(bus: &Bus) -> (Node, String) {
    let node = Node::start(
        bus.clone(),
        NodeConfig {
            gateway: Some(GatewayConfig {
                listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                ..GatewayConfig::default()
            }),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "ws://{}/ws",
        node.gateway_addr().unwrap_or_else(|| panic!("no gateway"))
    );
    (node, url)
}

/// A node running the simulated market at `rate` prints/s into `bus` and
/// a processor (consumer `consumer`), no gateway.
pub async fn market_node(bus: &Bus, rate: f64, consumer: &str) -> Node {
    Node::start(
        bus.clone(),
        NodeConfig {
            feed: Some(FeedChoice::Sim(sim_from_now(rate))),
            process: Some(ProcessorConfig::new(consumer.into())),
            gateway: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The simulated market at `rate` prints/s, its clock starting now.
pub fn sim_from_now(rate: f64) -> SimConfig {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    SimConfig {
        rate,
        start_ns: now_ns,
        ..SimConfig::default()
    }
}
