//! Durable mode (`--wait-replicas N`): a write counts as stored only once
//! `WAIT N` says N replicas have it, sent behind the write in the same
//! pipeline, so on a cluster it runs on the master that took the write.
//!
//! A master with fewer than N replicas (its replica was just promoted in its
//! place, and the old master has not come back) can never satisfy `WAIT N`.
//! Then a write counts once every replica the master has took it, and the
//! master's count is remembered for [`SHORT_FOR`], so writes meanwhile do not
//! each wait out the timeout. `docs/redis.md` ("Durability") says what that
//! window can lose.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Pipeline, Value};

use super::target::Conn;
use crate::bus::BusError;

/// How many more `WAIT`s a write whose replicas are there but slow gets
/// before it counts as failed (and is done again).
const RE_WAITS: usize = 3;

/// How long a master's replica count, found short, is believed: finding it
/// out again costs one `WAIT` timeout on that connection.
const SHORT_FOR: Duration = Duration::from_secs(30);

pub(super) struct Durability {
    wanted: u32,
    timeout: Duration,
    /// By key: the replicas its master has, fewer than wanted, and until when that is believed.
    short: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Durability {
    pub(super) fn new(wanted: u32, timeout: Duration) -> Durability {
        Durability {
            wanted,
            timeout,
            short: Mutex::new(HashMap::new()),
        }
    }

    /// Adds `WAIT` for the writes to `key` to `pipe`, in durable mode.
    /// Returns how many replicas it waits for (`None`: no `WAIT` was added).
    pub(super) fn wait_behind(&self, pipe: &mut Pipeline, key: &str) -> Option<u32> {
        if self.wanted == 0 {
            return None;
        }
        let n = {
            let mut short = self
                .short
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match short.get(key) {
                Some(&(n, until)) if until > Instant::now() => n,
                Some(_) => {
                    short.remove(key);
                    self.wanted
                }
                None => self.wanted,
            }
        };
        if n == 0 {
            return None;
        }
        pipe.cmd("WAIT")
            .arg(n)
            .arg(self.timeout.as_millis().max(1) as u64);
        Some(n)
    }

    /// Checks the reply of the `WAIT` that [`Durability::wait_behind`] added
    /// (`asked` replicas). Short of them, asks `key`'s master how many
    /// replicas it has: a write every one of them took counts.
    pub(super) async fn confirm(
        &self,
        c: &mut Conn,
        key: &str,
        asked: Option<u32>,
        reply: Option<Result<&Value, &redis::RedisError>>,
    ) -> Result<(), BusError> {
        let Some(asked) = asked else { return Ok(()) };
        let acked = match reply {
            Some(Ok(Value::Int(acked))) => *acked,
            Some(Err(e)) => return Err(e.clone().into()),
            other => return Err(BusError::Protocol(format!("WAIT reply: {other:?}"))),
        };
        if acked >= i64::from(asked) {
            return Ok(());
        }
        let has = replicas_of(c, key).await?;
        if has >= self.wanted {
            // The replicas are there but behind (a busy machine): wait for
            // them a little longer before the write counts as failed.
            let mut acked = acked;
            for _ in 0..RE_WAITS {
                acked = wait_again(c, key, asked, self.timeout).await?;
                if acked >= i64::from(asked) {
                    return Ok(());
                }
            }
            return Err(BusError::NotReplicated {
                acked,
                wanted: asked,
            });
        }
        tracing::warn!(
            key,
            replicas = has,
            wanted = self.wanted,
            "the master has fewer replicas than --wait-replicas asks: writes count once the ones it has took them"
        );
        self.short
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_string(), (has, Instant::now() + SHORT_FOR));
        if acked >= i64::from(has) {
            Ok(())
        } else {
            Err(BusError::NotReplicated { acked, wanted: has })
        }
    }
}

/// `WAIT` again on `key`'s master, for the writes already sent on this
/// connection; how many replicas have them.
async fn wait_again(c: &mut Conn, key: &str, n: u32, timeout: Duration) -> Result<i64, BusError> {
    let (_, acked): (Value, i64) = redis::pipe()
        .cmd("EXISTS")
        .arg(key)
        .cmd("WAIT")
        .arg(n)
        .arg(timeout.as_millis().max(1) as u64)
        .query_async(c)
        .await?;
    Ok(acked)
}

/// How many replicas the master of `key` has connected (`ROLE`, sent behind
/// a read of `key` so a cluster routes it to that master).
async fn replicas_of(c: &mut Conn, key: &str) -> Result<u32, BusError> {
    let (_, role): (Value, Value) = redis::pipe()
        .cmd("EXISTS")
        .arg(key)
        .cmd("ROLE")
        .query_async(c)
        .await?;
    match role {
        Value::Array(parts) => match parts.get(2) {
            Some(Value::Array(replicas)) => Ok(replicas.len() as u32),
            _ => Ok(0),
        },
        other => Err(BusError::Protocol(format!("ROLE reply: {other:?}"))),
    }
}
