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

/// What one RL step runs besides sampling: `epochs` training passes over the kept rollouts,
/// the frozen reference's forward pass when the stage has a KL term, and a forward pass of the
/// policy for the old log-probabilities when the step has several mini-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlPasses {
    /// Training passes.
    pub epochs: u32,
    /// Whether the reference model runs.
    pub reference: bool,
    /// Whether the old policy's log-probabilities take their own forward pass.
    pub old_policy: bool,
}

/// The FLOPs of one RL step.
#[must_use]
pub fn rl_step_flops(params: u64, tokens: RlStepTokens, passes: RlPasses) -> f64 {
    let params = params as f64;
    let forwards = f64::from(u8::from(passes.reference) + u8::from(passes.old_policy));
    params
        * (FORWARD * tokens.sampled as f64
            + (FORWARD * forwards + TRAIN * f64::from(passes.epochs.max(1)))
                * tokens.trained as f64)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // small integers, exact in f64
mod tests {
    use super::*;

    fn passes(epochs: u32, reference: bool, old_policy: bool) -> RlPasses {
        RlPasses {
            epochs,
            reference,
            old_policy,
        }
    }

    #[test]
    fn a_trained_token_costs_three_forward_tokens() {
        assert_eq!(train_flops(1000, 10), 60_000.0);
        let tokens = RlStepTokens {
            sampled: 10,
            trained: 0,
        };
        assert_eq!(
            rl_step_flops(1000, tokens, passes(1, true, false)),
            20_000.0
        );
    }

    #[test]
    fn the_reference_pass_and_each_epoch_add_their_share() {
        let tokens = RlStepTokens {
            sampled: 0,
            trained: 10,
        };
        assert_eq!(
            rl_step_flops(1000, tokens, passes(1, false, false)),
            60_000.0
        );
        assert_eq!(
            rl_step_flops(1000, tokens, passes(1, true, false)),
            80_000.0
        );
        assert_eq!(
            rl_step_flops(1000, tokens, passes(2, true, false)),
            140_000.0
        );
        assert_eq!(
            rl_step_flops(1000, tokens, passes(1, true, true)),
            100_000.0
        );
    }
}
