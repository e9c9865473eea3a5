//! Synthetic flow events for benchmarks that need a full flow stream fast:
//! [`event`] makes the `k`-th (shaped like the sim's: varied tickers, tags,
//! optional fields; 50 a millisecond from a start time, e.g. [`T0`]),
//! [`fill`] commits `0..n` of them to a bus ([`commit`]: any stored events,
//! as the processor commits them). Deterministic: the same `k` and start,
//! the same event.

use std::time::Duration;

use flowtape_core::cursor::Cursor;
use flowtape_core::event::{FlowEvent, Kind, Sentiment, Side, Tag, Tags};
use flowtape_core::occ::Right;
use flowtape_server::bus::{Bus, BusError, NewEvent};

const TICKERS: [&str; 8] = ["SPY", "QQQ", "TSLA", "NVDA", "AAPL", "AMD", "META", "IWM"];
/// 2024-12-20 15:00 UTC: every event on one trading day, as in a session.
pub const T0: i64 = 1_734_706_800_000;

/// Synthetic event number `k` of a tape starting at `t0` (ms): its fields
/// vary with `k`, its tags from a hash of it.
pub fn event(k: u64, t0: i64) -> FlowEvent {
    let tags: Tags = Tag::ALL
        .into_iter()
        .filter(|t| (k.wrapping_mul(2_654_435_761) >> (*t as u8 + 7)) & 3 == 0)
        .collect();
    let sym = TICKERS[(k % 8) as usize];
    let strike = 100.0 + (k % 200) as f64 * 2.5;
    FlowEvent {
        id: String::new(),
        ts: t0 + (k / 50) as i64,
        sym: sym.into(),
        occ: format!("{sym}241220C{:08}", (strike * 1000.0) as u64),
        expiry: "2024-12-20".into(),
        strike,
        right: if k % 2 == 0 { Right::Call } else { Right::Put },
        side: [Side::Ask, Side::Bid, Side::Mid, Side::AboveAsk][(k % 4) as usize],
        size: 1 + k % 500,
        price: 0.05 + (k % 997) as f64 / 100.0,
        premium: 500.0 + (k % 99_991) as f64 * 3.7,
        kind: Kind::ALL[(k % 4) as usize],
        legs: 1 + (k % 5) as u32,
        exchanges: vec![1 + (k % 20) as u16],
        spot: Some(450.0 + (k % 100) as f64 / 10.0),
        otm: Some(2.5 - (k % 50) as f64 / 10.0),
        dte: 0,
        oi: (k % 3 != 0).then_some(1000 + k % 50_000),
        vol: 10 + k % 100_000,
        iv: (k % 7 != 0).then_some(0.2 + (k % 60) as f64 / 100.0),
        bid: Some(1.0),
        ask: Some(1.05),
        tags,
        sentiment: [Sentiment::Bull, Sentiment::Bear, Sentiment::Neutral][(k % 3) as usize],
        score: (k % 100) as u8,
    }
}

/// Commits events `0..n` of a tape starting at `t0` to the flow stream of
/// `bus`, in batches of 10 000, as the processor would (shard 0's lease
/// taken as `bench`).
pub async fn fill(bus: &Bus, n: u64, t0: i64) -> Result<(), BusError> {
    bus.acquire_lease(0, "bench", Duration::from_secs(3600))
        .await?;
    let mut k = 0;
    while k < n {
        let end = (k + 10_000).min(n);
        let batch: Vec<(u64, String)> = (k..end)
            .map(|i| (i + 1, event(i, t0).to_stored_json()))
            .collect();
        commit(bus, "bench", &batch).await?;
        k = end;
    }
    Ok(())
}

/// Commits `events` to shard 0's flow stream as `owner`, who holds its
/// lease, as the processor would: each a stored event's JSON and the raw
/// print (leg) it came from, by number; a leg commits once. Their stream
/// ids, `None` for an event whose leg was committed before.
pub async fn commit(
    bus: &Bus,
    owner: &str,
    events: &[(u64, String)],
) -> Result<Vec<Option<Cursor>>, BusError> {
    let legs: Vec<[Cursor; 1]> = events
        .iter()
        .map(|(leg, _)| [Cursor::new(*leg, 0)])
        .collect();
    let new: Vec<NewEvent<'_>> = events
        .iter()
        .zip(&legs)
        .map(|((_, json), legs)| NewEvent {
            legs,
            json,
            deltas: &[],
        })
        .collect();
    bus.commit_flow(0, owner, &new, &[]).await
}
