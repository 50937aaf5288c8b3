//! Evaluation: the pass@k estimators, their intervals ([`stats`]), the eval runner ([`runner`])
//! and its tables and plots ([`report`]), and validation during RL ([`validate`]).
//!
//! Two estimators, as the reference reports them (§F.3), always labelled:
//! - answer-only pass@k uses the unbiased estimator `1 - C(n-c, k) / C(n, k)` over n samples of
//!   which c are correct;
//! - process-verified pass@k (the paper's metric) uses the *first-k* estimator: a problem counts
//!   if its first VerifiedCorrect sample, by generation order, is among the first k.

pub mod report;
pub mod runner;
pub mod stats;
pub mod validate;

/// Unbiased pass@k for one problem: `1 - C(n-c, k) / C(n, k)`, computed as a product so it
/// neither overflows nor loses precision. Plans never ask for k > n (E0407); such a k, or
/// c > n, is clamped to n.
#[must_use]
pub fn pass_at_k_unbiased(n: u64, c: u64, k: u64) -> f64 {
    let (c, k) = (c.min(n), k.min(n));
    if n - c < k {
        return 1.0;
    }
    // C(n-c, k) / C(n, k) = prod_{i=0}^{k-1} (n-c-i) / (n-i)
    let miss: f64 = (0..k)
        .map(|i| (n - c - i) as f64 / (n - i) as f64)
        .product();
    1.0 - miss
}

/// First-k pass@k for one problem: 1 if the first correct sample (0-based rank in generation
/// order) is below k.
#[must_use]
pub fn pass_at_k_first(correct: &[bool], k: usize) -> f64 {
    f64::from(u8::from(correct.iter().take(k).any(|&c| c)))
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // hand-computed exact cases
mod tests {
    use super::*;

    #[test]
    fn unbiased_edges_and_hand_computed_cases() {
        assert_eq!(pass_at_k_unbiased(10, 0, 5), 0.0, "c = 0: never");
        assert_eq!(pass_at_k_unbiased(10, 10, 1), 1.0, "c = n: always");
        assert_eq!(
            pass_at_k_unbiased(10, 7, 5),
            1.0,
            "n - c < k: every k-subset has a correct one"
        );
        assert!(
            (pass_at_k_unbiased(10, 3, 1) - 0.3).abs() < 1e-12,
            "k = 1 is c / n"
        );
        // n = 4, c = 1, k = 2: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5.
        assert!((pass_at_k_unbiased(4, 1, 2) - 0.5).abs() < 1e-12);
        // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7.
        assert!((pass_at_k_unbiased(5, 2, 2) - 0.7).abs() < 1e-12);
        // Large n stays finite and in [0, 1].
        let p = pass_at_k_unbiased(1024, 3, 128);
        assert!(p > 0.0 && p < 1.0);
    }

    #[test]
    fn first_k_counts_by_generation_rank() {
        let samples = [false, false, true, false];
        assert_eq!(pass_at_k_first(&samples, 1), 0.0);
        assert_eq!(pass_at_k_first(&samples, 2), 0.0);
        assert_eq!(
            pass_at_k_first(&samples, 3),
            1.0,
            "the first correct sample has rank 2 < 3"
        );
        assert_eq!(pass_at_k_first(&[], 4), 0.0);
        assert_eq!(pass_at_k_first(&[true], 1), 1.0);
    }
}
