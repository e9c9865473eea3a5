//! One Redis hop, two ways: how long an event takes from the processor's
//! commit to a gateway, over Pub/Sub (what the gateway uses) and over a
//! blocking stream read (`XREAD BLOCK`, the alternative the gateway issue
//! allows). Each message is written by one Lua script that both appends it to
//! a stream and publishes it, exactly as `COMMIT_FLOW` does, stamped with the
//! wall clock in ns; both readers record `now − stamp`.
//!
//! ```sh
//! redis-server --port 6390 --save "" &
//! cargo run --release -p flowtape-bench --example fanout_hop -- redis://127.0.0.1:6390 10000 10
//! ```
//! Arguments: Redis URL, messages per second, seconds. Results are quoted in
//! `docs/bench.md`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::Value;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn summary(name: &str, mut v: Vec<i64>) {
    v.sort_unstable();
    let q = |p: f64| {
        v.get(((v.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1e6
    };
    println!(
        "{name:>12}: n={} p50={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        v.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("redis://127.0.0.1:6379", String::as_str);
    let rate: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let total = rate * secs;
    let client = redis::Client::open(url)?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let () = redis::cmd("DEL")
        .arg("hop:st")
        .query_async(&mut admin)
        .await?;

    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe("hop:ch").await?;
    let via_pubsub = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(total as usize);
        let mut stream = pubsub.into_on_message();
        while (lat.len() as u64) < total {
            let Some(msg) = stream.next().await else {
                break;
            };
            if let Ok(stamp) = msg.get_payload::<i64>() {
                lat.push(now_ns() - stamp);
            }
        }
        lat
    });
    let mut reader = client.get_multiplexed_async_connection().await?;
    let via_xread = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(total as usize);
        let mut last = "$".to_string();
        while (lat.len() as u64) < total {
            let reply: Result<Value, _> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg("hop:st")
                .arg(&last)
                .query_async(&mut reader)
                .await;
            let Ok(Value::Array(streams)) = reply else {
                continue;
            };
            let now = now_ns();
            for s in streams {
                let Value::Array(kv) = s else { continue };
                let Some(Value::Array(entries)) = kv.into_iter().nth(1) else {
                    continue;
                };
                for e in entries {
                    let Value::Array(pair) = e else { continue };
                    let mut pair = pair.into_iter();
                    if let Some(Value::BulkString(id)) = pair.next() {
                        last = String::from_utf8_lossy(&id).into_owned();
                    }
                    if let Some(Value::Array(fields)) = pair.next() {
                        if let Some(Value::BulkString(v)) = fields.get(1) {
                            if let Ok(stamp) = String::from_utf8_lossy(v).parse::<i64>() {
                                lat.push(now - stamp);
                            }
                        }
                    }
                }
            }
        }
        lat
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let script = redis::Script::new(
        "redis.call('XADD', KEYS[1], 'MAXLEN', '~', 100000, '*', 't', ARGV[1]) \
         redis.call('PUBLISH', ARGV[2], ARGV[1]) return 1",
    );
    let start = Instant::now();
    let mut writer = client.get_multiplexed_async_connection().await?;
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let _: i64 = script
            .key("hop:st")
            .arg(now_ns())
            .arg("hop:ch")
            .invoke_async(&mut writer)
            .await?;
    }
    summary("pubsub", via_pubsub.await?);
    summary("xread block", via_xread.await?);
    Ok(())
}
