//! Estimates with 95% intervals: pass@k per problem from its sample counts (the unbiased
//! estimator, for verified and answer-only alike, since a run keeps counts, not orders), the
//! mean over problems, a percentile bootstrap over problems, and for replicas (cells that differ
//! only in a seed) the mean over replicas with the bootstrap resampling problems within each.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::eval::pass_at_k_unbiased;

/// Bootstrap resamples per interval.
pub const ROUNDS: usize = 1000;

/// One pass@k with its interval, and the spread of the per-replica values when there are
/// several.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// k.
    pub k: u32,
    /// The mean over problems (over replicas of the per-replica means).
    pub value: f64,
    /// The 2.5% bootstrap percentile.
    pub lo: f64,
    /// The 97.5% bootstrap percentile.
    pub hi: f64,
    /// The lowest per-replica value, with several replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_min: Option<f64>,
    /// The highest per-replica value, with several replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_max: Option<f64>,
}

/// pass@k for each k of every problem of every replica: `[replica][problem][k index]`, from
/// (samples, correct) counts.
#[must_use]
pub fn per_problem(replicas: &[Vec<(u64, u64)>], ks: &[u32]) -> Vec<Vec<Vec<f64>>> {
    replicas
        .iter()
        .map(|problems| {
            problems
                .iter()
                .map(|&(n, c)| {
                    ks.iter()
                        .map(|&k| pass_at_k_unbiased(n, c, u64::from(k)))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The estimates for every k of `values` (`[replica][problem][k index]`; no replica may be
/// empty). The bootstrap's seed is fixed, so the same counts give the same intervals.
#[must_use]
pub fn estimates(values: &[Vec<Vec<f64>>], ks: &[u32]) -> Vec<Estimate> {
    let means = |replica: &[Vec<f64>], j: usize| {
        replica.iter().map(|p| p[j]).sum::<f64>() / replica.len().max(1) as f64
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // [round][k index]: the mean over replicas of the resampled per-replica means.
    let mut rounds = vec![vec![0.0; ks.len()]; ROUNDS];
    for round in &mut rounds {
        for replica in values {
            let mut sums = vec![0.0; ks.len()];
            for _ in 0..replica.len() {
                let problem = &replica[rng.random_range(0..replica.len())];
                for (sum, v) in sums.iter_mut().zip(problem) {
                    *sum += v;
                }
            }
            for (r, sum) in round.iter_mut().zip(sums) {
                *r += sum / replica.len() as f64 / values.len() as f64;
            }
        }
    }
    ks.iter()
        .enumerate()
        .map(|(j, &k)| {
            let per_replica: Vec<f64> = values.iter().map(|r| means(r, j)).collect();
            let mut resampled: Vec<f64> = rounds.iter().map(|r| r[j]).collect();
            resampled.sort_by(f64::total_cmp);
            let several = per_replica.len() > 1;
            Estimate {
                k,
                value: per_replica.iter().sum::<f64>() / per_replica.len().max(1) as f64,
                lo: resampled[ROUNDS * 25 / 1000],
                hi: resampled[ROUNDS * 975 / 1000 - 1],
                seed_min: several
                    .then(|| per_replica.iter().copied().fold(f64::INFINITY, f64::min)),
                seed_max: several.then(|| {
                    per_replica
                        .iter()
                        .copied()
                        .fold(f64::NEG_INFINITY, f64::max)
                }),
            }
        })
        .collect()
}

/// The estimates of a paired difference, `values[pair][problem][k index]` (a model minus its
/// base, problem by problem). When every pair has the same problems (`shared`), the bootstrap
/// resamples problems once for all pairs, keeping what the replicas share about a problem;
/// otherwise within each pair, as [`estimates`]. The spread is over the pairs' means.
#[must_use]
pub fn paired_estimates(values: &[Vec<Vec<f64>>], shared: bool, ks: &[u32]) -> Vec<Estimate> {
    if !shared || values.len() < 2 {
        return estimates(values, ks);
    }
    let pairs = values.len() as f64;
    let means: Vec<Vec<f64>> = (0..values[0].len())
        .map(|i| {
            (0..ks.len())
                .map(|j| values.iter().map(|p| p[i][j]).sum::<f64>() / pairs)
                .collect()
        })
        .collect();
    estimates(&[means], ks)
        .into_iter()
        .enumerate()
        .map(|(j, e)| {
            let per_pair = values
                .iter()
                .map(|p| p.iter().map(|problem| problem[j]).sum::<f64>() / p.len() as f64);
            Estimate {
                seed_min: Some(per_pair.clone().fold(f64::INFINITY, f64::min)),
                seed_max: Some(per_pair.fold(f64::NEG_INFINITY, f64::max)),
                ..e
            }
        })
        .collect()
}

/// The area under a curve of (op, value) points sorted by op, by the trapezoid rule: GSM-
/// Infinite's one-number summary of accuracy against op. A single point has area 0.
#[must_use]
pub fn area(points: &[(u32, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| f64::from(w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact cases
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing_problems_give_a_point_interval() {
        let values = per_problem(&[vec![(4, 4); 10]], &[1, 4]);
        let e = estimates(&values, &[1, 4]);
        assert_eq!((e[0].value, e[0].lo, e[0].hi), (1.0, 1.0, 1.0));
        assert_eq!(e[0].seed_min, None);
    }

    #[test]
    fn the_interval_brackets_the_mean_and_narrows_with_more_problems() {
        let problems = |n: usize| (0..n).map(|i| (8, (i % 3) as u64)).collect::<Vec<_>>();
        let few = estimates(&per_problem(&[problems(12)], &[1]), &[1])[0];
        let many = estimates(&per_problem(&[problems(300)], &[1]), &[1])[0];
        for e in [few, many] {
            assert!(e.lo < e.value && e.value < e.hi, "{e:?}");
        }
        assert!(many.hi - many.lo < few.hi - few.lo, "{few:?} {many:?}");
    }

    #[test]
    fn replicas_are_averaged_with_their_spread() {
        let values = per_problem(&[vec![(2, 2); 5], vec![(2, 0); 5]], &[1]);
        let e = estimates(&values, &[1])[0];
        assert_eq!(
            (e.value, e.seed_min, e.seed_max),
            (0.5, Some(0.0), Some(1.0))
        );
        assert_eq!(
            (e.lo, e.hi),
            (0.5, 0.5),
            "no problem-level noise within a replica"
        );
    }

    #[test]
    fn paired_replicas_sharing_problems_are_resampled_together() {
        // Two pairs whose differences alternate out of phase: every problem's mean difference
        // is 0.5, so resampling problems once for both gives a point interval; resampling
        // within each pair would not.
        let a: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i % 2)]).collect();
        let b: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from((i + 1) % 2)]).collect();
        let values = vec![a, b];
        let joint = paired_estimates(&values, true, &[1])[0];
        assert_eq!((joint.value, joint.lo, joint.hi), (0.5, 0.5, 0.5));
        assert_eq!((joint.seed_min, joint.seed_max), (Some(0.5), Some(0.5)));
        let apart = paired_estimates(&values, false, &[1])[0];
        assert!(apart.lo < 0.5 && apart.hi > 0.5, "{apart:?}");
    }

    #[test]
    fn area_is_the_trapezoid_sum() {
        assert_eq!(area(&[(2, 1.0), (3, 0.5), (5, 0.0)]), 0.75 + 0.5);
        assert_eq!(area(&[(2, 1.0)]), 0.0);
    }
}
