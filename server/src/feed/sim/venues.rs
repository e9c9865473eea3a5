//! The sixteen US options exchanges, numbered as Massive/Polygon number them
//! (their `exchange` ids for options venues), with rough market shares.

use crate::feed::rng::Rng;

/// Cboe Options: home of SPX, XSP and RUT options.
pub const CBOE: u16 = 302;
/// Nasdaq PHLX: home of NDX options in the simulator.
pub const PHLX: u16 = 323;

/// `(id, name, approximate share of prints in percent)`. The shares add up to 100.
pub const VENUES: [(u16, &str, f64); 16] = [
    (300, "NYSE American Options", 8.0),
    (301, "BOX Options", 4.0),
    (CBOE, "Cboe Options", 15.0),
    (303, "MIAX Emerald", 4.0),
    (304, "Cboe EDGX Options", 5.0),
    (307, "Nasdaq GEMX", 3.0),
    (308, "Nasdaq ISE", 8.0),
    (309, "Nasdaq MRX", 1.0),
    (312, "MIAX Options", 6.0),
    (313, "NYSE Arca Options", 10.0),
    (315, "MIAX Pearl", 6.0),
    (316, "Nasdaq Options Market", 6.0),
    (319, "Nasdaq BX Options", 1.0),
    (322, "Cboe C2", 3.0),
    (PHLX, "Nasdaq PHLX", 13.0),
    (325, "Cboe BZX Options", 7.0),
];

/// The most venues one sweep can touch.
pub const MAX_SWEEP_VENUES: usize = 8;

/// A venue id drawn by market share.
pub fn pick(rng: &mut Rng) -> u16 {
    let mut x = rng.unit() * 100.0;
    for (id, _, share) in VENUES {
        if x < share {
            return id;
        }
        x -= share;
    }
    VENUES[VENUES.len() - 1].0
}

/// `k` distinct venue ids (at most [`MAX_SWEEP_VENUES`]), in random order.
pub fn pick_distinct(rng: &mut Rng, k: usize) -> Vec<u16> {
    let mut ids: [u16; 16] = VENUES.map(|(id, _, _)| id);
    let k = k.min(MAX_SWEEP_VENUES);
    for i in 0..k {
        let j = i + rng.below((ids.len() - i) as u64) as usize;
        ids.swap(i, j);
    }
    ids[..k].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_ids_are_distinct() {
        let total: f64 = VENUES.iter().map(|v| v.2).sum();
        assert!((total - 100.0).abs() < 1e-9);
        let mut ids: Vec<u16> = VENUES.iter().map(|v| v.0).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 16);
        let mut rng = Rng::new(5);
        for k in 2..=8 {
            let mut got = pick_distinct(&mut rng, k);
            got.sort_unstable();
            got.dedup();
            assert_eq!(got.len(), k);
        }
        assert!((0..1000).all(|_| ids.contains(&pick(&mut rng))));
    }
}
