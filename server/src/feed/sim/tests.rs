//! Behaviour of the whole simulated tape, as a consumer sees it.

use std::collections::{HashMap, HashSet};

use super::orders::BLOCK_MIN_PREMIUM;
use super::*;
use flowtape_core::conditions::INTERMARKET_SWEEP;
use flowtape_core::event::Side;

fn sim(config: SimConfig) -> SimMarket {
    SimMarket::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn take(sim: &mut SimMarket, n: usize) -> Vec<Print> {
    (0..n)
        .filter_map(|_| sim.next_print().and_then(Result::ok))
        .collect()
}

fn side(p: &Print) -> Side {
    match (p.bid, p.ask) {
        (Some(_), Some(ask)) if p.price > ask + 1e-9 => Side::AboveAsk,
        (Some(_), Some(ask)) if (p.price - ask).abs() < 1e-9 => Side::Ask,
        (Some(bid), Some(_)) if (p.price - bid).abs() < 1e-9 => Side::Bid,
        (Some(bid), Some(_)) if p.price < bid - 1e-9 => Side::BelowBid,
        (Some(_), Some(_)) => Side::Mid,
        _ => Side::Unknown,
    }
}

/// 100,000 prints from the default config, shared by the shape tests.
fn sample() -> Vec<Print> {
    take(&mut sim(SimConfig::default()), 100_000)
}

#[test]
fn same_config_same_tape() {
    let config = SimConfig {
        seed: 77,
        rate: 5_000.0,
        ..SimConfig::default()
    };
    let a = take(&mut sim(config.clone()), 20_000);
    let b = take(&mut sim(config.clone()), 20_000);
    assert_eq!(a, b);
    let c = take(
        &mut sim(SimConfig {
            seed: 78,
            ..config.clone()
        }),
        100,
    );
    assert_ne!(a[..100], c[..]);
    assert!(a.iter().enumerate().all(|(i, p)| p.seq == i as u64 + 1));
    assert!(a.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    assert!(a[0].ts_ns >= config.start_ns);
}

#[test]
fn hundreds_of_names_with_the_majors_on_top() {
    let prints = sample();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for p in &prints {
        *by_name.entry(p.contract.underlying()).or_default() += 1;
    }
    assert!(by_name.len() >= 300, "{} names", by_name.len());
    let mut ranked: Vec<(&str, usize)> = by_name.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    let top10: HashSet<&str> = ranked[..10].iter().map(|r| r.0).collect();
    for major in ["SPY", "QQQ", "SPX", "TSLA", "NVDA"] {
        assert!(
            top10.contains(major),
            "{major} not in top 10: {:?}",
            &ranked[..10]
        );
    }
    let top10_share = ranked[..10].iter().map(|r| r.1).sum::<usize>() as f64 / prints.len() as f64;
    assert!(top10_share > 0.35, "{top10_share}");
    let spxw = prints
        .iter()
        .filter(|p| p.contract.root.as_str() == "SPXW")
        .count();
    assert!(spxw > 0, "SPX weeklies print under SPXW");
}

#[test]
fn quotes_are_sane_and_prints_land_on_every_side() {
    let prints = sample();
    let mut sides: HashMap<Side, usize> = HashMap::new();
    for p in &prints {
        let (bid, ask) = (p.bid.unwrap_or(0.0), p.ask.unwrap_or(0.0));
        assert!(p.price > 0.0 && bid > 0.0 && bid <= ask, "{p:?}");
        assert!(p.spot.is_some_and(|s| s > 0.0) && p.oi.is_some() && p.size >= 1);
        assert!(
            ((p.price * 100.0).round() - p.price * 100.0).abs() < 1e-6,
            "cents: {}",
            p.price
        );
        *sides.entry(side(p)).or_default() += 1;
    }
    let share = |s: Side| *sides.get(&s).unwrap_or(&0) as f64 / prints.len() as f64;
    assert!(
        share(Side::Ask) > 0.25 && share(Side::Bid) > 0.2 && share(Side::Mid) > 0.1,
        "{sides:?}"
    );
    assert!(
        share(Side::AboveAsk) > 0.005 && share(Side::BelowBid) > 0.005,
        "{sides:?}"
    );
}

#[test]
fn sizes_are_heavy_tailed() {
    let prints = sample();
    let small = prints.iter().filter(|p| p.size <= 10).count() as f64 / prints.len() as f64;
    let huge = prints.iter().filter(|p| p.size >= 1000).count();
    assert!(small > 0.6, "{small}");
    assert!(huge > 0 && huge < prints.len() / 100, "{huge}");
}

#[test]
fn sweeps_splits_blocks_and_repeats_appear() {
    let prints = take(
        &mut sim(SimConfig {
            rate: 50.0,
            ..SimConfig::default()
        }),
        100_000,
    );
    // Group consecutive ISO prints of one contract (other contracts may interleave).
    let mut open: HashMap<Contract, Vec<&Print>> = HashMap::new();
    let mut runs: Vec<Vec<&Print>> = Vec::new();
    for p in prints
        .iter()
        .filter(|p| p.conditions.contains(&INTERMARKET_SWEEP))
    {
        let run = open.entry(p.contract).or_default();
        if run
            .last()
            .is_some_and(|last| p.ts_ns - last.ts_ns > 1_000_000)
        {
            runs.push(std::mem::take(run));
        }
        run.push(p);
    }
    runs.extend(open.into_values());
    let venues = |run: &Vec<&Print>| {
        run.iter()
            .map(|p| p.exchange)
            .collect::<HashSet<u16>>()
            .len()
    };
    let sweeps: Vec<&Vec<&Print>> = runs
        .iter()
        .filter(|r| r.len() >= 2 && venues(r) == r.len())
        .collect();
    assert!(sweeps.len() > 100, "{} sweeps", sweeps.len());
    for run in &sweeps {
        let span = run.last().map_or(0, |l| l.ts_ns) - run[0].ts_ns;
        assert!((2..=8).contains(&run.len()) && span <= 5_000_000, "{run:?}");
        let buy = run[0].price >= run[0].ask.unwrap_or(f64::MAX);
        if buy {
            assert!(
                run.windows(2).all(|w| w[1].price >= w[0].price),
                "buy sweeps walk up: {run:?}"
            );
        }
    }
    let splits = runs
        .iter()
        .filter(|r| r.len() >= 2 && venues(r) == 1)
        .count();
    assert!(splits > 50, "{splits} splits");
    let blocks = prints
        .iter()
        .filter(|p| p.premium() >= BLOCK_MIN_PREMIUM && p.size >= 100)
        .count();
    assert!(blocks > 50, "{blocks} blocks");
    // Repeated hits: the same contract swept again minutes later.
    let mut sweep_times: HashMap<Contract, Vec<i64>> = HashMap::new();
    for run in &sweeps {
        sweep_times
            .entry(run[0].contract)
            .or_default()
            .push(run[0].ts_ns);
    }
    let repeated = sweep_times
        .values()
        .filter(|t| t.len() >= 3 && t.last().unwrap_or(&0) - t[0] <= 15 * 60 * 1_000_000_000)
        .count();
    assert!(repeated > 10, "{repeated} repeatedly swept contracts");
}

#[test]
fn chains_look_listed() {
    let prints = sample();
    let today = SimConfig::default().start_ns / 1_000_000;
    let today = flowtape_core::date::market_date(today);
    let dte: Vec<i64> = prints
        .iter()
        .map(|p| today.days_until(p.contract.expiry))
        .collect();
    assert!(dte.iter().all(|d| (0..=400).contains(d)));
    let front = dte.iter().filter(|d| **d <= 7).count() as f64 / dte.len() as f64;
    assert!(front > 0.5, "{front}");
    assert!(dte.iter().any(|d| *d > 300));
    assert!(prints.iter().all(|p| p.contract.expiry.weekday() < 5));
    let near = prints
        .iter()
        .filter(|p| {
            p.spot
                .is_some_and(|s| (p.contract.strike() / s - 1.0).abs() < 0.05)
        })
        .count() as f64
        / prints.len() as f64;
    assert!(near > 0.5, "{near}");
    // SPY trades on the $1 grid near the money.
    let spy_odd = prints
        .iter()
        .filter(|p| p.contract.root.as_str() == "SPY" && p.contract.strike_milli % 5_000 != 0)
        .count();
    assert!(spy_odd > 0 && prints.iter().all(|p| p.contract.strike_milli % 500 == 0));
}

#[test]
fn mean_rate_matches_the_config_over_a_session() {
    let rate = 40.0;
    let mut sim = sim(SimConfig {
        rate,
        ..SimConfig::default()
    });
    let start = sim.config().start_ns;
    let end = start + SESSION_NS;
    let mut count = 0u64;
    let mut first_hour = 0u64;
    let mut lunch_hour = 0u64;
    while let Some(Ok(p)) = sim.next_print() {
        if p.ts_ns >= end {
            break;
        }
        count += 1;
        let hour = (p.ts_ns - start) / 3_600_000_000_000;
        first_hour += u64::from(hour == 0);
        lunch_hour += u64::from(hour == 3);
    }
    let mean = count as f64 / (SESSION_NS as f64 / 1e9);
    assert!(
        (mean / rate - 1.0).abs() < 0.03,
        "mean rate {mean} vs {rate}"
    );
    assert!(
        first_hour as f64 > 1.4 * lunch_hour as f64,
        "U-shape: {first_hour} vs {lunch_hour}"
    );
}

#[test]
fn news_bursts_concentrate_on_one_name() {
    let mut sim = sim(SimConfig {
        rate: 200.0,
        ..SimConfig::default()
    });
    let burst = sim.session.bursts[0];
    let ticker = flowtape_core::occ::underlying_of_root(sim.universe.names[burst.underlying].root);
    let start = sim.config().start_ns;
    let (mut inside, mut inside_name, mut before, mut before_name) = (0, 0, 0, 0);
    while let Some(Ok(p)) = sim.next_print() {
        let at = p.ts_ns - start;
        if at >= burst.end_ns {
            break;
        }
        let is_name = p.contract.underlying() == ticker;
        if at >= burst.start_ns {
            inside += 1;
            inside_name += usize::from(is_name);
        } else {
            before += 1;
            before_name += usize::from(is_name);
        }
    }
    let share_inside = inside_name as f64 / inside as f64;
    let share_before = before_name as f64 / before.max(1) as f64;
    assert!(
        share_inside > 0.15 && share_inside > 5.0 * share_before,
        "{share_inside} vs {share_before}"
    );
}

#[test]
fn bad_configs_are_refused() {
    let bad = [
        SimConfig {
            rate: 0.0,
            ..SimConfig::default()
        },
        SimConfig {
            rate: f64::NAN,
            ..SimConfig::default()
        },
        SimConfig {
            start_ns: 0,
            ..SimConfig::default()
        },
        SimConfig {
            session_offset_ms: SESSION_NS / 1_000_000,
            ..SimConfig::default()
        },
    ];
    for config in bad {
        assert!(SimMarket::new(config.clone()).is_err(), "{config:?}");
    }
}

#[test]
fn a_long_run_rolls_to_new_trading_dates() {
    // One print a minute for five virtual days: chains must roll so no expired contract trades.
    let mut sim = sim(SimConfig {
        rate: 1.0 / 60.0,
        ..SimConfig::default()
    });
    let prints = take(&mut sim, 7_200);
    let last = prints.last().map_or(0, |p| p.ts_ns);
    assert!(last - sim.config().start_ns > 4 * 86_400 * 1_000_000_000);
    for p in &prints {
        assert!(
            p.contract.expiry >= flowtape_core::date::market_date(p.ts_ms()),
            "{p:?}"
        );
    }
}

#[test]
fn a_live_start_follows_the_new_york_clock() {
    let open = SimConfig::default().start_ns;
    let at_two = SimConfig::default().starting_at(open + 16_200 * 1_000_000_000);
    assert_eq!(
        (at_two.start_ns, at_two.session_offset_ms),
        (open + 16_200_000_000_000, 16_200_000)
    );
    let evening = SimConfig::default().starting_at(open + 12 * 3_600 * 1_000_000_000);
    assert_eq!(evening.session_offset_ms, 0);
    assert!(SimMarket::new(at_two).is_ok());
}
