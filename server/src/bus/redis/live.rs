//! The live fan-out subscription of one gateway: every event a processor
//! commits, pushed by Redis as the commit script publishes it.
//!
//! On one Redis it is classic Pub/Sub ([`subscribe`]). On a cluster it is
//! sharded Pub/Sub ([`subscribe_sharded`]): `SSUBSCRIBE` to the channel of
//! the flow slot, on the master that owns it. Either way the task reports
//! [`Live::Gap`] whenever messages may have been missed (the hub then
//! repairs from the stream by cursor), and comes back by itself.

use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind};
use tokio::sync::mpsc;

use super::reply::{parse_live, string_of};
use super::target::{cluster_builder, Conn};
use crate::bus::{BusError, Live};

/// Live messages buffered for the hub.
const LIVE_BUFFER: usize = 8192;

/// How often the sharded subscription checks itself end to end.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A sharded subscription that has not heard its own probes for this long,
/// while they were being published, is opened again from scratch.
const PROBE_PATIENCE: Duration = Duration::from_secs(3);

/// Sends each event of one live message (one commit's events, a line each);
/// false once the receiver is gone.
async fn forward(payload: &str, tx: &mpsc::Sender<Live>) -> bool {
    for line in payload.split('\n') {
        let Some(entry) = parse_live(line) else {
            tracing::warn!("ignoring a malformed live message");
            continue;
        };
        if tx.send(Live::Entry(entry)).await.is_err() {
            return false;
        }
    }
    true
}

/// One Redis: a task that holds a Pub/Sub subscription to `channel`,
/// resubscribing with backoff when it is lost; after each loss it sends
/// [`Live::Gap`]. The task ends when the receiver is dropped.
pub(super) async fn subscribe(
    client: redis::Client,
    channel: String,
) -> Result<mpsc::Receiver<Live>, BusError> {
    let (tx, rx) = mpsc::channel(LIVE_BUFFER);
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channel).await?;
    tokio::spawn(async move {
        let mut pubsub = Some(pubsub);
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Some(ps) = pubsub.take() {
                backoff = Duration::from_millis(50);
                let mut stream = ps.into_on_message();
                while let Some(msg) = futures_util::StreamExt::next(&mut stream).await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    // One message carries one commit's events, a line each.
                    for line in payload.split('\n') {
                        let Some(entry) = parse_live(line) else {
                            tracing::warn!("ignoring a malformed live message");
                            continue;
                        };
                        if tx.send(Live::Entry(entry)).await.is_err() {
                            return;
                        }
                    }
                }
                tracing::warn!("lost the live subscription; resubscribing");
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            match client.get_async_pubsub().await {
                Ok(mut ps) => {
                    if ps.subscribe(&channel).await.is_ok() {
                        pubsub = Some(ps);
                        if tx.send(Live::Gap).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::debug!("resubscribe failed: {e}"),
            }
        }
    });
    Ok(rx)
}

/// A cluster: a task that holds a sharded subscription to `channel` and to
/// `probe` (a channel of the same slot), on a cluster connection of its own.
///
/// The client library resubscribes after a failover or a slot move by
/// itself; this task does not rely on it alone. It reports a gap on every
/// disconnection and resubscription the library announces, subscribes again
/// when the server unsubscribes it (the slot moved), and once a second
/// publishes a probe on `probe` through `conn`: a subscription that stops
/// hearing its probes while they are being published is opened again.
pub(super) async fn subscribe_sharded(
    seeds: Vec<String>,
    channel: String,
    probe: String,
    conn: Conn,
) -> Result<mpsc::Receiver<Live>, BusError> {
    let (tx, rx) = mpsc::channel(LIVE_BUFFER);
    let first = Sharded::open(&seeds, &channel, &probe).await?;
    tokio::spawn(async move {
        let mut sub = first;
        let token = format!("{}-{:x}", std::process::id(), nonce());
        let mut conn = conn;
        let mut heard = Instant::now();
        let mut published_since_heard = false;
        let mut tick = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                push = sub.pushes.recv() => {
                    let Some(push) = push else {
                        // The connection is gone; open a new one.
                        sub = reopen(&seeds, &channel, &probe, &tx).await;
                        continue;
                    };
                    match push.kind {
                        PushKind::SMessage => {
                            let (Some(on), Some(payload)) = (push.data.first().and_then(string_of), push.data.get(1).and_then(string_of)) else {
                                continue;
                            };
                            if on == probe {
                                if payload == token {
                                    heard = Instant::now();
                                    published_since_heard = false;
                                }
                            } else if !forward(&payload, &tx).await {
                                return;
                            }
                        }
                        PushKind::SUnsubscribe => {
                            // The slot moved or its master changed role: subscribe where it is now.
                            tracing::warn!("the live channel was unsubscribed by the server; subscribing again");
                            if tx.send(Live::Gap).await.is_err() {
                                return;
                            }
                            if sub.conn.ssubscribe(&[&channel, &probe]).await.is_err() {
                                sub = reopen(&seeds, &channel, &probe, &tx).await;
                            }
                        }
                        PushKind::Disconnection | PushKind::SSubscribe if tx.send(Live::Gap).await.is_err() => {
                            return;
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if tx.is_closed() {
                        return;
                    }
                    if published_since_heard && heard.elapsed() > PROBE_PATIENCE {
                        tracing::warn!("the live subscription stopped hearing its probes; opening it again");
                        sub = reopen(&seeds, &channel, &probe, &tx).await;
                        heard = Instant::now();
                        published_since_heard = false;
                    }
                    let sent: Result<i64, _> = redis::cmd("SPUBLISH").arg(&probe).arg(&token).query_async(&mut conn).await;
                    if sent.is_ok() {
                        published_since_heard = true;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// A sharded subscription: its cluster connection, and what Redis pushes on it.
struct Sharded {
    conn: redis::cluster_async::ClusterConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

impl Sharded {
    async fn open(seeds: &[String], channel: &str, probe: &str) -> Result<Sharded, BusError> {
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let client = cluster_builder(seeds)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push_tx)
            .build()?;
        let mut conn = client.get_async_connection().await?;
        conn.ssubscribe(&[channel, probe]).await?;
        Ok(Sharded { conn, pushes })
    }
}

/// Opens the subscription again, retrying with backoff until it works or
/// the receiver is gone; reports the gap.
async fn reopen(seeds: &[String], channel: &str, probe: &str, tx: &mpsc::Sender<Live>) -> Sharded {
    let mut backoff = Duration::from_millis(50);
    loop {
        match Sharded::open(seeds, channel, probe).await {
            Ok(sub) => {
                let _ = tx.send(Live::Gap).await;
                return sub;
            }
            Err(e) => tracing::debug!("resubscribe failed: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn nonce() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
