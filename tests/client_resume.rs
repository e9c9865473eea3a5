//! The TUI's client against real in-process servers: it fails over from a
//! gateway that shuts down to another on the same bus, resumes with its last
//! cursor, and ends up with exactly the flow stream — no gap, no duplicate.

use std::time::{Duration, Instant};

use flowtape::client::{self, Backoff, ClientEvent, ClientOptions};
use flowtape_core::cursor::Cursor;
use flowtape_server::bus::{Bus, BusConfig};
use tokio::sync::mpsc;

mod support;
use support::{gateway_node, market_node};

/// Collects events until `until` passes, failing on any out-of-order cursor.
async fn collect(
    rx: &mut mpsc::Receiver<ClientEvent>,
    got: &mut Vec<Cursor>,
    until: Instant,
) -> usize {
    let mut connects = 0;
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(ClientEvent::Events(batch))) => {
                for r in batch {
                    if let Some(last) = got.last() {
                        assert!(
                            r.cursor > *last,
                            "cursor {} after {} (duplicate or out of order)",
                            r.cursor,
                            last
                        );
                    }
                    got.push(r.cursor);
                }
            }
            Ok(Some(ClientEvent::Connected { .. })) => connects += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the client stopped"),
            Err(_) => {}
        }
    }
    connects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fails_over_and_resumes_without_gap_or_duplicate() {
    let bus = Bus::memory(BusConfig {
        shards: 2,
        ..BusConfig::default()
    });
    let producer = market_node(&bus, 400.0, "resume-test").await;
    let (first, first_url) = gateway_node(&bus).await;
    let (second, second_url) = gateway_node(&bus).await;

    let (_cmd_tx, cmd_rx) = mpsc::channel(4);
    let (ev_tx, mut ev_rx) = mpsc::channel(1024);
    let options = ClientOptions {
        servers: vec![first_url, second_url],
        token: None,
        filter: String::new(),
        backfill: Some(20),
        since: None,
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        max_failures: None,
        fail_fast: false,
        keep_raw: false,
        trust: Default::default(),
        day_every: None,
    };
    let client = tokio::spawn(client::run(options, cmd_rx, ev_tx));

    let mut got = Vec::new();
    let mut connects = collect(
        &mut ev_rx,
        &mut got,
        Instant::now() + Duration::from_millis(1500),
    )
    .await;
    let before = got.len();
    assert!(before > 100, "only {before} events before the failover");
    // The first gateway goes away (clients get 1001 "going away").
    first.shutdown();
    first.wait().await;
    connects += collect(
        &mut ev_rx,
        &mut got,
        Instant::now() + Duration::from_millis(2000),
    )
    .await;
    assert!(
        connects >= 2,
        "the client should have reconnected ({connects} connects)"
    );
    assert!(
        got.len() > before + 100,
        "few events after the failover: {} → {}",
        before,
        got.len()
    );

    client.abort();
    // Exactly the stream between the first and last cursor received.
    let (first_id, last_id) = (got[0], got[got.len() - 1]);
    let mut expected = vec![first_id];
    let mut cursor = first_id;
    while cursor < last_id {
        let page = bus
            .flow_after(cursor, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!page.is_empty());
        for e in page {
            if e.id <= last_id {
                expected.push(e.id);
            }
            cursor = e.id;
        }
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "received {} events, the stream has {}",
        got.len(),
        expected.len()
    );
    assert_eq!(got, expected);

    second.shutdown();
    producer.shutdown();
    second.wait().await;
    producer.wait().await;
}
