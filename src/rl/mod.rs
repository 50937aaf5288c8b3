//! Reinforcement learning: GRPO on rollouts of the KV-cache sampler, scored by the plan's
//! reward expressions. [`grpo`] holds the objective's pieces; [`update`] turns one batch of
//! scored rollouts into optimizer steps. The stage loop (prompts, rollouts, checkpoints,
//! metrics) is in `run::rl`.

pub mod grpo;

use candle_core::{Device, Result, Tensor};

use crate::model::Transformer;
use crate::plan::RlSpec;
use crate::tokenizer::PAD;
use crate::train::clip_grad_norm;
use crate::train::optim::AdamW;
use crate::train::trainer::token_log_probs;

/// One rollout: the prompt it continued and the sampled completion (its stop token included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// Completion ids.
    pub completion: Vec<u32>,
}

/// Rollouts as tensors, right-padded to the longest: inputs, targets, and the mask of target
/// positions that are completion tokens (the prompt is not trained on), each (rows, tokens).
pub fn rollout_tensors(rollouts: &[Rollout], device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let len = rollouts
        .iter()
        .map(|r| r.prompt.len() + r.completion.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1);
    let rows = rollouts.len();
    let mut inputs = vec![PAD; rows * len];
    let mut targets = vec![PAD; rows * len];
    let mut mask = vec![0u8; rows * len];
    for (i, r) in rollouts.iter().enumerate() {
        let sequence: Vec<u32> = r.prompt.iter().chain(&r.completion).copied().collect();
        for j in 0..sequence.len().saturating_sub(1) {
            inputs[i * len + j] = sequence[j];
            targets[i * len + j] = sequence[j + 1];
            mask[i * len + j] = u8::from(j + 1 >= r.prompt.len());
        }
    }
    Ok((
        Tensor::from_vec(inputs, (rows, len), device)?,
        Tensor::from_vec(targets, (rows, len), device)?,
        Tensor::from_vec(mask, (rows, len), device)?,
    ))
}

/// What one batch's update measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// The policy loss of the last epoch.
    pub policy_loss: f64,
    /// The k3 KL to the reference model (0 without one), last epoch.
    pub kl: f64,
    /// Share of response tokens whose ratio was clipped, last epoch.
    pub clip_fraction: f64,
    /// Token-mean entropy of the policy on the responses, before the update.
    pub entropy: f64,
    /// Global gradient norm before clipping, last epoch.
    pub grad_norm: f64,
}

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The gradient's global norm was NaN or infinite; the weights were not updated.
    #[error("the gradient norm became {norm}")]
    NonFiniteGradient {
        /// The norm.
        norm: f64,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Applies GRPO to one batch of scored rollouts: `spec.epochs` optimizer steps on the whole
/// batch, each on the clipped objective (plus `spec.kl` times the k3 KL to `reference`).
/// The ratio's denominator is the policy before the first step.
pub fn update(
    model: &Transformer,
    reference: Option<&Transformer>,
    optimizer: &mut AdamW,
    rollouts: &[Rollout],
    advantages: &[f64],
    spec: &RlSpec,
) -> std::result::Result<UpdateStats, UpdateError> {
    let device = model.device().clone();
    let (inputs, targets, mask) = rollout_tensors(rollouts, &device)?;
    let advantages: Vec<f32> = advantages.iter().map(|&a| a as f32).collect();
    let advantages = Tensor::from_vec(advantages, (rollouts.len(), 1), &device)?;
    let logp_ref = match reference {
        Some(reference) if spec.kl > 0.0 => {
            let logits = reference.forward(&inputs)?.detach();
            Some(token_log_probs(
                &logits,
                &targets,
                reference.fused_kernels(),
            )?)
        }
        _ => None,
    };
    let mut logp_old: Option<Tensor> = None;
    let mut stats = UpdateStats {
        policy_loss: 0.0,
        kl: 0.0,
        clip_fraction: 0.0,
        entropy: 0.0,
        grad_norm: 0.0,
    };
    for epoch in 0..spec.epochs.max(1) {
        // The objective as a function of the responses' log-probabilities (and the logits, for
        // the entropy), as `Transformer::loss_and_grads` differentiates it.
        let mut policy_value = None;
        let objective = |logp: &Tensor, logits: &Tensor| -> Result<Tensor> {
            if epoch == 0 {
                stats.entropy = grpo::entropy(logits, &mask)?;
            }
            let old = logp_old.get_or_insert_with(|| logp.detach()).clone();
            let (policy, clip_fraction) = grpo::policy_loss(
                logp,
                &old,
                &advantages,
                &mask,
                spec.clip_low,
                spec.clip_high,
            )?;
            stats.clip_fraction = clip_fraction;
            policy_value = Some(f64::from(policy.to_scalar::<f32>()?));
            let mut loss = policy;
            if let Some(logp_ref) = &logp_ref {
                let kl = grpo::kl_k3(logp, logp_ref, &mask)?;
                stats.kl = f64::from(kl.to_scalar::<f32>()?);
                loss = (loss + (kl * spec.kl)?)?;
            }
            Ok(loss)
        };
        let (_, mut grads) = model.loss_and_grads(&inputs, &targets, objective)?;
        stats.policy_loss = policy_value.unwrap_or(f64::NAN);
        stats.grad_norm = clip_grad_norm(&optimizer.vars(), &mut grads, spec.grad_clip)?;
        if !stats.grad_norm.is_finite() {
            return Err(UpdateError::NonFiniteGradient {
                norm: stats.grad_norm,
            });
        }
        optimizer.step(&grads)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_tensors_mask_the_prompt_and_the_padding() {
        let rollouts = [
            Rollout {
                prompt: vec![1, 5, 6],
                completion: vec![7, 2],
            },
            Rollout {
                prompt: vec![1, 5],
                completion: vec![9],
            },
        ];
        let (inputs, targets, mask) = rollout_tensors(&rollouts, &Device::Cpu).unwrap();
        let inputs: Vec<Vec<u32>> = inputs.to_vec2().unwrap();
        let targets: Vec<Vec<u32>> = targets.to_vec2().unwrap();
        let mask: Vec<Vec<u8>> = mask.to_vec2().unwrap();
        assert_eq!(inputs, [[1, 5, 6, 7], [1, 5, PAD, PAD]]);
        assert_eq!(targets, [[5, 6, 7, 2], [5, 9, PAD, PAD]]);
        // Only the completion's tokens are targets that count.
        assert_eq!(mask, [[0, 0, 1, 1], [0, 1, 0, 0]]);
    }
}
