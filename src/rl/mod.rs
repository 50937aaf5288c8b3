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

/// One mini-batch of an update: its rollouts as tensors, their advantages, the reference's
/// and the old policy's log-probabilities.
struct MiniBatch {
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor,
    advantages: Tensor,
    logp_ref: Option<Tensor>,
    logp_old: Option<Tensor>,
}

impl MiniBatch {
    fn new(
        rollouts: &[Rollout],
        advantages: &[f64],
        reference: Option<&Transformer>,
        spec: &RlSpec,
        device: &Device,
    ) -> Result<Self> {
        let (inputs, targets, mask) = rollout_tensors(rollouts, device)?;
        let advantages: Vec<f32> = advantages.iter().map(|&a| a as f32).collect();
        let advantages = Tensor::from_vec(advantages, (rollouts.len(), 1), device)?;
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
        Ok(Self {
            inputs,
            targets,
            mask,
            advantages,
            logp_ref,
            logp_old: None,
        })
    }
}

/// Applies GRPO to one batch of scored rollouts: `spec.epochs` passes over it, each of
/// `spec.minibatches` optimizer steps on a share of its prompts (with all their rollouts), on
/// the clipped objective (plus `spec.kl` times the k3 KL to `reference`). The ratio's
/// denominator is the policy before the first step. The statistics are the means over the
/// last pass's steps (the entropy: over the first pass's).
pub fn update(
    model: &Transformer,
    reference: Option<&Transformer>,
    optimizer: &mut AdamW,
    rollouts: &[Rollout],
    advantages: &[f64],
    spec: &RlSpec,
) -> std::result::Result<UpdateStats, UpdateError> {
    let device = model.device().clone();
    let group = (spec.group as usize).max(1);
    let groups = rollouts.len().div_ceil(group);
    let per_batch = groups.div_ceil(spec.minibatches.max(1) as usize).max(1) * group;
    let mut batches = rollouts
        .chunks(per_batch)
        .zip(advantages.chunks(per_batch))
        .map(|(r, a)| MiniBatch::new(r, a, reference, spec, &device))
        .collect::<Result<Vec<_>>>()?;
    // With several steps per pass, every mini-batch's old log-probabilities come from the
    // policy before the first step; with one, the first step's own forward pass gives them.
    if batches.len() > 1 {
        for batch in &mut batches {
            let logits = model.forward(&batch.inputs)?.detach();
            batch.logp_old = Some(token_log_probs(
                &logits,
                &batch.targets,
                model.fused_kernels(),
            )?);
        }
    }
    let count = batches.len() as f64;
    let mut stats = UpdateStats {
        policy_loss: 0.0,
        kl: 0.0,
        clip_fraction: 0.0,
        entropy: 0.0,
        grad_norm: 0.0,
    };
    for epoch in 0..spec.epochs.max(1) {
        let last = epoch + 1 == spec.epochs.max(1);
        for batch in &mut batches {
            let mut step = UpdateStats {
                policy_loss: f64::NAN,
                kl: 0.0,
                clip_fraction: 0.0,
                entropy: 0.0,
                grad_norm: 0.0,
            };
            // The objective as a function of the responses' log-probabilities (and the
            // logits, for the entropy), as `Transformer::loss_and_grads` differentiates it.
            let objective = |logp: &Tensor, logits: &Tensor| -> Result<Tensor> {
                if epoch == 0 {
                    step.entropy = grpo::entropy(logits, &batch.mask)?;
                }
                let old = batch.logp_old.get_or_insert_with(|| logp.detach()).clone();
                let (policy, clip_fraction) = grpo::policy_loss(
                    logp,
                    &old,
                    &batch.advantages,
                    &batch.mask,
                    spec.clip_low,
                    spec.clip_high,
                )?;
                step.clip_fraction = clip_fraction;
                step.policy_loss = f64::from(policy.to_scalar::<f32>()?);
                let mut loss = policy;
                if let Some(logp_ref) = &batch.logp_ref {
                    let kl = grpo::kl_k3(logp, logp_ref, &batch.mask)?;
                    step.kl = f64::from(kl.to_scalar::<f32>()?);
                    loss = (loss + (kl * spec.kl)?)?;
                }
                Ok(loss)
            };
            let (_, mut grads) = model.loss_and_grads(&batch.inputs, &batch.targets, objective)?;
            step.grad_norm = clip_grad_norm(&optimizer.vars(), &mut grads, spec.grad_clip)?;
            if !step.grad_norm.is_finite() {
                return Err(UpdateError::NonFiniteGradient {
                    norm: step.grad_norm,
                });
            }
            optimizer.step(&grads)?;
            if epoch == 0 {
                stats.entropy += step.entropy / count;
            }
            if last {
                stats.policy_loss += step.policy_loss / count;
                stats.kl += step.kl / count;
                stats.clip_fraction += step.clip_fraction / count;
                stats.grad_norm += step.grad_norm / count;
            }
        }
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
