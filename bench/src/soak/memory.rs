//! Whether a process's memory levels off: its plateau and its slope after a
//! warm-up, from samples taken over a run.
//!
//! - The plateau is the median of the samples in the second half of the
//!   process's life (a restarted process's life begins at its restart).
//! - The slope is the least-squares line through the samples taken after
//!   the warm-up, in MiB per hour, with its standard error. A one-time step
//!   (a burst, a restart) tilts it as growth would; the late slope, over
//!   the last third of the life only, tells whether memory still grows at
//!   the end. It is shown beside the verdict, which it does not change.
//! - Memory has levelled off when the slope is under [`Trend::threshold`]:
//!   the larger of [`FLAT_MIB_PER_HOUR`] and [`FLAT_SHARE_PER_HOUR`] of the
//!   plateau. That is about what a 25-minute fit can resolve when the
//!   allocator moves RSS by a MiB or two between samples; a leak under it
//!   adds less than 100 MiB a day to a process of a few hundred MiB.

use serde::Serialize;

/// A slope under this many MiB per hour counts as flat whatever the size.
pub const FLAT_MIB_PER_HOUR: f64 = 4.0;
/// A slope under this share of the plateau per hour counts as flat.
pub const FLAT_SHARE_PER_HOUR: f64 = 0.01;
/// Fewest samples after the warm-up for a slope.
pub const MIN_SAMPLES: usize = 6;

/// One reading: seconds since the run began, and MiB.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub mib: f64,
}

/// The verdict on one series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Trend {
    /// Samples the slope was fitted to.
    pub samples: usize,
    /// Median MiB over the second half of the life.
    pub plateau_mib: f64,
    /// Least-squares slope after the warm-up, MiB per hour, and its standard error.
    pub slope_mib_per_h: f64,
    pub slope_stderr: f64,
    /// The slope over the last third of the life, MiB per hour.
    pub late_slope_mib_per_h: Option<f64>,
    /// The slope under which memory counts as levelled off, MiB per hour.
    pub threshold: f64,
    pub levelled: bool,
}

/// The median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The least-squares slope of `(x, y)` points and its standard error, or
/// `None` with fewer than three points or no spread in `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let b = sxy / sxx;
    let a = mean_y - b * mean_x;
    let residuals: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let stderr = (residuals / (nf - 2.0) / sxx).sqrt();
    Some((b, stderr))
}

/// The trend of one life's samples (in time order), ignoring the first
/// `warmup_s` seconds of it; `None` when too few samples follow the warm-up.
pub fn trend(samples: &[Sample], warmup_s: f64) -> Option<Trend> {
    let (first, last) = (samples.first()?.at_s, samples.last()?.at_s);
    let settled: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at_s >= first + warmup_s)
        .map(|s| (s.at_s / 3600.0, s.mib))
        .collect();
    if settled.len() < MIN_SAMPLES {
        return None;
    }
    let (slope_mib_per_h, slope_stderr) = slope(&settled)?;
    let late: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at_s >= last - (last - first) / 3.0)
        .map(|s| (s.at_s / 3600.0, s.mib))
        .collect();
    let late_slope_mib_per_h = match late.len() >= MIN_SAMPLES {
        true => slope(&late).map(|(b, _)| b),
        false => None,
    };
    let half = (first + last) / 2.0;
    let second_half: Vec<f64> = samples
        .iter()
        .filter(|s| s.at_s >= half)
        .map(|s| s.mib)
        .collect();
    let plateau_mib = median(&second_half);
    let threshold = FLAT_MIB_PER_HOUR.max(FLAT_SHARE_PER_HOUR * plateau_mib);
    Some(Trend {
        samples: settled.len(),
        plateau_mib,
        slope_mib_per_h,
        slope_stderr,
        late_slope_mib_per_h,
        threshold,
        levelled: slope_mib_per_h < threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample every 10 s for `minutes`, from `mib(t in s)`.
    fn run(minutes: f64, mib: impl Fn(f64) -> f64) -> Vec<Sample> {
        (0..=(minutes * 6.0) as usize)
            .map(|i| {
                let at_s = i as f64 * 10.0;
                Sample {
                    at_s,
                    mib: mib(at_s),
                }
            })
            .collect()
    }

    #[test]
    fn median_and_slope_arithmetic() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0 + 2.0 * i as f64)).collect();
        let (b, se) = slope(&line).unwrap_or((0.0, 1.0));
        assert!((b - 2.0).abs() < 1e-12 && se < 1e-9, "{b} ± {se}");
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn memory_that_rises_then_holds_has_levelled_off() {
        // Warms up to 80 MiB in five minutes, then wobbles by ±1 MiB.
        let samples = run(30.0, |t| {
            let wobble = if (t / 10.0) as u64 % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            80.0 * (t / 300.0).min(1.0) + wobble
        });
        let t = trend(&samples, 300.0).unwrap_or_else(|| panic!("a trend"));
        assert_eq!(t.samples, 151);
        assert!((t.plateau_mib - 80.0).abs() <= 1.0, "{t:?}");
        assert!(t.slope_mib_per_h.abs() < 1.0, "{t:?}");
        assert_eq!(t.threshold, FLAT_MIB_PER_HOUR);
        assert!(t.levelled);
    }

    #[test]
    fn memory_that_keeps_growing_has_not() {
        // 50 MiB plus 12 MiB an hour: 6 MiB over the half hour.
        let samples = run(30.0, |t| 50.0 + 12.0 * t / 3600.0);
        let t = trend(&samples, 300.0).unwrap_or_else(|| panic!("a trend"));
        assert!((t.slope_mib_per_h - 12.0).abs() < 1e-9, "{t:?}");
        assert!(!t.levelled);
        // A large process may wobble more: the threshold grows with it.
        let big = run(30.0, |t| 2_000.0 + 12.0 * t / 3600.0);
        let t = trend(&big, 300.0).unwrap_or_else(|| panic!("a trend"));
        assert!((t.threshold - 20.0).abs() < 0.1, "{t:?}");
        assert!(t.levelled);
    }

    #[test]
    fn a_step_tilts_the_slope_but_not_the_late_slope() {
        // 50 MiB, then 55 MiB from minute 15 on (a burst the allocator keeps).
        let samples = run(30.0, |t| if t < 900.0 { 50.0 } else { 55.0 });
        let t = trend(&samples, 300.0).unwrap_or_else(|| panic!("a trend"));
        assert!(t.slope_mib_per_h > 10.0 && !t.levelled, "{t:?}");
        assert_eq!(t.late_slope_mib_per_h, Some(0.0));
        assert_eq!(t.plateau_mib, 55.0);
    }

    #[test]
    fn too_short_a_life_has_no_verdict() {
        let samples = run(1.5, |_| 10.0);
        assert_eq!(trend(&samples, 60.0), None);
        assert!(trend(&samples, 0.0).is_some());
    }
}
