//! Model FLOPs, the unit of `budget NAME = ... flops` and of what each stage reports having
//! spent: the usual approximation of 2·N FLOPs per token for a forward pass and 6·N for a
//! trained token (forward and backward), with N the parameters outside the embedding.
//! Attention over the context and padding are not counted, so the same work costs the same
//! FLOPs whatever the batch shapes and kernels that carry it out.

/// FLOPs per parameter and token of a forward pass.
pub const FORWARD: f64 = 2.0;

/// FLOPs per parameter and token of a training pass (forward and backward).
pub const TRAIN: f64 = 6.0;

/// The FLOPs of training `params` parameters on `tokens` tokens.
#[must_use]
pub fn train_flops(params: u64, tokens: u64) -> f64 {
    TRAIN * params as f64 * tokens as f64
}

/// What one RL step processed, in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RlStepTokens {
    /// Positions the sampler ran: each prompt once (its samples share its prefill), and every
    /// sampled completion token, candidates the competence filter discarded included.
    pub sampled: u64,
    /// Positions of the kept rollouts the update runs on (prompt and completion, less one).
    pub trained: u64,
}

/// The FLOPs of one RL step: sampling, the frozen reference's forward pass when the stage has
/// a KL term, and `epochs` training passes over the kept rollouts.
#[must_use]
pub fn rl_step_flops(params: u64, tokens: RlStepTokens, epochs: u32, reference: bool) -> f64 {
    let params = params as f64;
    let reference = if reference { FORWARD } else { 0.0 };
    params
        * (FORWARD * tokens.sampled as f64
            + (reference + TRAIN * f64::from(epochs.max(1))) * tokens.trained as f64)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // small integers, exact in f64
mod tests {
    use super::*;

    #[test]
    fn a_trained_token_costs_three_forward_tokens() {
        assert_eq!(train_flops(1000, 10), 60_000.0);
        let tokens = RlStepTokens {
            sampled: 10,
            trained: 0,
        };
        assert_eq!(rl_step_flops(1000, tokens, 1, true), 20_000.0);
    }

    #[test]
    fn the_reference_pass_and_each_epoch_add_their_share() {
        let tokens = RlStepTokens {
            sampled: 0,
            trained: 10,
        };
        assert_eq!(rl_step_flops(1000, tokens, 1, false), 60_000.0);
        assert_eq!(rl_step_flops(1000, tokens, 1, true), 80_000.0);
        assert_eq!(rl_step_flops(1000, tokens, 2, true), 140_000.0);
    }
}
