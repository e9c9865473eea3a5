//! Every raw shard's backlog as a processor last sampled it: who holds the
//! shard's lease, the group's lag and pending count ([`ShardBacklog`]).
//!
//! Each processor samples every shard every [`ProcessorConfig::sample_every`]
//! (not per batch), for `/metrics` and for its `/healthz` verdict, which is
//! judged from the last sample without I/O of its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ProcessorConfig;
use crate::bus::{Bus, ShardBacklog};
use crate::shutdown::Shutdown;

/// The last sample, shared by the sampler and the readers.
#[derive(Debug, Default)]
pub struct Backlog {
    inner: Mutex<Sampled>,
}

#[derive(Debug, Default)]
struct Sampled {
    shards: Vec<ShardBacklog>,
    /// When the last sample succeeded.
    at: Option<Instant>,
    /// Why the last attempt failed, if it did.
    error: Option<String>,
    /// Since when each shard without a lease holder has been seen without one.
    unowned_since: HashMap<u16, Instant>,
}

/// What the last sample says, read at one instant.
#[derive(Clone, Debug, Default)]
pub struct BacklogView {
    pub shards: Vec<ShardBacklog>,
    /// How long ago the last sample succeeded (`None`: none has yet).
    pub age: Option<Duration>,
    /// Why the last attempt failed, if it did.
    pub error: Option<String>,
    /// Shards no processor has held a lease on, and for how long.
    pub unowned: Vec<(u16, Duration)>,
}

impl Backlog {
    pub fn view(&self) -> BacklogView {
        let s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut unowned: Vec<(u16, Duration)> = s
            .unowned_since
            .iter()
            .map(|(shard, since)| (*shard, since.elapsed()))
            .collect();
        unowned.sort_unstable();
        BacklogView {
            shards: s.shards.clone(),
            age: s.at.map(|at| at.elapsed()),
            error: s.error.clone(),
            unowned,
        }
    }

    fn record(&self, sample: Result<Vec<ShardBacklog>, String>) {
        let mut s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match sample {
            Ok(shards) => {
                let now = Instant::now();
                let unowned_since = shards
                    .iter()
                    .filter(|b| b.owner.is_none())
                    .map(|b| (b.shard, *s.unowned_since.get(&b.shard).unwrap_or(&now)))
                    .collect();
                *s = Sampled {
                    shards,
                    at: Some(now),
                    error: None,
                    unowned_since,
                };
            }
            Err(e) => s.error = Some(e),
        }
    }
}

/// How long one sample may take before it counts as failed.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Samples every shard into `backlog` every `config.sample_every` until shutdown.
pub(super) async fn sample(
    bus: Bus,
    backlog: &Backlog,
    config: &ProcessorConfig,
    shutdown: Shutdown,
) {
    loop {
        let sample = match tokio::time::timeout(SAMPLE_TIMEOUT, bus.shard_backlog()).await {
            Ok(Ok(shards)) => Ok(shards),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", SAMPLE_TIMEOUT.as_secs())),
        };
        if let Err(e) = &sample {
            tracing::debug!("cannot sample the shards' backlog: {e}");
        }
        backlog.record(sample);
        tokio::select! {
            _ = tokio::time::sleep(config.sample_every) => {}
            _ = shutdown.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(shard: u16, owner: Option<&str>) -> ShardBacklog {
        ShardBacklog {
            shard,
            owner: owner.map(str::to_string),
            lag: Some(0),
            pending: 0,
        }
    }

    #[test]
    fn an_unowned_shard_is_timed_from_the_first_sample_without_owner() {
        let b = Backlog::default();
        assert!(b.view().age.is_none());
        b.record(Ok(vec![shard(0, Some("a")), shard(1, None)]));
        let first = b.view();
        assert_eq!(first.unowned.len(), 1);
        std::thread::sleep(Duration::from_millis(20));
        b.record(Ok(vec![shard(0, None), shard(1, None)]));
        let second = b.view();
        let of = |k: u16| {
            second
                .unowned
                .iter()
                .find(|(s, _)| *s == k)
                .map(|(_, d)| *d)
        };
        assert!(of(1) >= Some(Duration::from_millis(20)), "{second:?}");
        assert!(of(0) < of(1), "{second:?}");
        // A failed sample keeps the last one and says why.
        b.record(Err("down".into()));
        let failed = b.view();
        assert_eq!(failed.error.as_deref(), Some("down"));
        assert_eq!(failed.shards.len(), 2);
        b.record(Ok(vec![shard(0, Some("a")), shard(1, Some("b"))]));
        assert!(b.view().unowned.is_empty());
    }
}
