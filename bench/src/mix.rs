//! The client mix: which filter each benchmark client subscribes with.
//!
//! The first `premium` clients watch every large order
//! ([`PREMIUM_FILTER`]); the others each watch a watchlist of `watchlist`
//! distinct tickers. Watchlist tickers are drawn, without replacement, in
//! proportion to how often each underlying prints in the sim's own tape for
//! the run's `--sim-seed` (measured over the first [`POPULARITY_SAMPLE`]
//! prints), so the skew is the sim's: its `1 / (rank + 1)` popularity by
//! listing rank, plus its news bursts. SPY, QQQ, SPX and the mega caps sit on
//! many watchlists, the long tail on few. The draw is seeded
//! (`--client-seed`): the same seeds give the same clients.

use std::collections::BTreeMap;

use super::tally::mix64;
use flowtape_core::filter::Filter;
use flowtape_server::feed::{PrintSource, SimConfig, SimConfigError, SimMarket};

/// The filter of the premium clients.
pub const PREMIUM_FILTER: &str = "premium>=50k";

/// Prints of the sim's tape read to measure each underlying's share.
pub const POPULARITY_SAMPLE: usize = 50_000;

/// How the clients are made up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    pub clients: usize,
    pub premium: usize,
    pub watchlist: usize,
    pub client_seed: u64,
    pub sim_seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error(transparent)]
    Sim(#[from] SimConfigError),
    #[error("a watchlist of {want} tickers is more than the {have} the sim trades")]
    Watchlist { want: usize, have: usize },
    #[error("filter {0:?} does not parse: {1}")]
    Filter(String, flowtape_core::filter::FilterError),
}

/// A seeded stream of uniform numbers in [0, 1).
pub(crate) struct Draw(pub(crate) u64);

impl Draw {
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(1);
        (mix64(self.0) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Underlyings of the sim's tape with their print counts, busiest first.
pub fn popularity(sim_seed: u64) -> Result<Vec<(String, u64)>, SimConfigError> {
    let mut sim = SimMarket::new(SimConfig {
        seed: sim_seed,
        ..SimConfig::default()
    })?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..POPULARITY_SAMPLE {
        match sim.next_print() {
            Some(Ok(p)) => {
                *counts
                    .entry(p.contract.underlying().to_string())
                    .or_default() += 1
            }
            Some(Err(_)) => {}
            None => break,
        }
    }
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(ranked)
}

impl Mix {
    /// Every client's filter text, premium clients first. Each is checked to parse.
    pub fn filters(&self) -> Result<Vec<String>, MixError> {
        // Only tickers the filter language can name (all of the sim's can; this is a guard).
        let names: Vec<(String, u64)> = popularity(self.sim_seed)?
            .into_iter()
            .filter(|(t, _)| Filter::parse(t).is_ok_and(|f| f.tickers().len() == 1))
            .collect();
        if self.watchlist > names.len() {
            return Err(MixError::Watchlist {
                want: self.watchlist,
                have: names.len(),
            });
        }
        let total: u64 = names.iter().map(|(_, n)| n).sum();
        let mut draw = Draw(mix64(self.client_seed));
        let mut out = Vec::with_capacity(self.clients);
        for i in 0..self.clients {
            if i < self.premium {
                out.push(PREMIUM_FILTER.to_string());
                continue;
            }
            let mut picked: Vec<usize> = Vec::with_capacity(self.watchlist);
            while picked.len() < self.watchlist {
                let mut at = (draw.unit() * total as f64) as u64;
                let choice = names
                    .iter()
                    .position(|(_, n)| match at.checked_sub(*n) {
                        Some(rest) => {
                            at = rest;
                            false
                        }
                        None => true,
                    })
                    .unwrap_or(names.len() - 1);
                if !picked.contains(&choice) {
                    picked.push(choice);
                }
            }
            let text: Vec<&str> = picked.iter().map(|i| names[*i].0.as_str()).collect();
            out.push(text.join(" "));
        }
        for f in &out {
            Filter::parse(f).map_err(|e| MixError::Filter(f.clone(), e))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_seeded_skewed_and_parses() {
        let mix = Mix {
            clients: 300,
            premium: 30,
            watchlist: 5,
            client_seed: 7,
            sim_seed: 1,
        };
        let a = mix.filters().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a,
            mix.filters().unwrap_or_default(),
            "same seeds, same clients"
        );
        assert_eq!(a.len(), 300);
        assert!(a[..30].iter().all(|f| f == PREMIUM_FILTER));
        let lists: Vec<Vec<&str>> = a[30..].iter().map(|f| f.split(' ').collect()).collect();
        assert!(lists.iter().all(|l| {
            let mut d = l.clone();
            d.sort_unstable();
            d.dedup();
            d.len() == 5
        }));
        let on = |t: &str| lists.iter().filter(|l| l.contains(&t)).count();
        let top = popularity(1).unwrap_or_default();
        let (busiest, quietest) = (&top[0].0, &top[top.len() - 1].0);
        assert!(
            on(busiest) > 60,
            "{busiest} is on {} watchlists",
            on(busiest)
        );
        assert!(on(busiest) > 5 * on(quietest).max(1));
        let other = Mix {
            client_seed: 8,
            ..mix
        };
        assert_ne!(a, other.filters().unwrap_or_default());
    }
}
