//! The one training loop for `pretrain` and `midtrain`: batches of packed sequences -> masked
//! next-token loss -> gradients -> clipping -> AdamW with the scheduled learning rate.
//! Checkpoints hold weights, optimizer moments, the step and whatever the caller adds (the
//! data stream's position), so a resumed stage takes exactly the steps it would have taken.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarMap;

use super::clip_grad_norm;
use super::data::Sequence;
use super::optim::AdamW;
use super::schedule::lr_at;
use crate::model::Transformer;
use crate::plan::TrainSpec;

/// The next-token loss averaged over the positions the mask keeps; `fused` as
/// [`token_log_probs`].
pub fn masked_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    fused: bool,
) -> Result<Tensor> {
    masked_mean_nll(&token_log_probs(logits, targets, fused)?, mask)
}

/// The negative log-likelihood averaged over the positions the mask keeps, from the targets'
/// log-probabilities (batch, seq): the next-token loss.
pub fn masked_mean_nll(log_probs: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?;
    let kept = mask.sum_all()?.maximum(1.0)?;
    (log_probs * &mask)?.sum_all()?.neg()?.div(&kept)
}

pub use crate::model::token_log_probs;

/// Why a training step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The loss was NaN or infinite; the weights were not updated.
    #[error("the loss became {value} at step {step}")]
    NonFinite {
        /// The step (0-based) whose loss it was.
        step: u64,
        /// The loss.
        value: f64,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// The tensors of a batch of sequences: inputs, targets and loss mask, each (sequences, seq).
pub fn batch_tensors(sequences: &[Sequence], device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let seq = sequences.first().map_or(0, |b| b.mask.len());
    let inputs: Vec<u32> = sequences
        .iter()
        .flat_map(|b| b.tokens[..seq].iter().copied())
        .collect();
    let targets: Vec<u32> = sequences
        .iter()
        .flat_map(|b| b.tokens[1..=seq].iter().copied())
        .collect();
    let mask: Vec<u8> = sequences
        .iter()
        .flat_map(|b| b.mask.iter().map(|&m| u8::from(m)))
        .collect();
    let n = sequences.len();
    Ok((
        Tensor::from_vec(inputs, (n, seq), device)?,
        Tensor::from_vec(targets, (n, seq), device)?,
        Tensor::from_vec(mask, (n, seq), device)?,
    ))
}

/// The masked loss of a model on sequences, without an update (held-out loss).
pub fn evaluate_loss(model: &Transformer, sequences: &[Sequence]) -> Result<f64> {
    let (inputs, targets, mask) = batch_tensors(sequences, model.device())?;
    let logits = model.forward(&inputs)?.detach();
    let loss = masked_cross_entropy(&logits, &targets, &mask, model.fused_kernels())?;
    Ok(f64::from(loss.to_scalar::<f32>()?))
}

/// Trains a model on sequences.
pub struct Trainer {
    optimizer: AdamW,
    spec: TrainSpec,
    total_steps: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// Differentiate with candle's autograd even where the fused CPU path's hand-written
    /// backward pass exists (`Transformer::autograd_loss_and_grads`): the same gradients,
    /// slower; for benchmarks comparing the two.
    pub candle_autograd: bool,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("step", &self.step)
            .field("total_steps", &self.total_steps)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// A trainer for the variables of `varmap`, taking `total_steps` steps under `spec`.
    pub fn new(varmap: &VarMap, spec: &TrainSpec, total_steps: u64) -> Result<Self> {
        // Variables in name order, so checkpoints and updates are deterministic.
        let vars = crate::model::sorted_vars(varmap)?;
        let optimizer = AdamW::new(vars, lr_at(&spec.lr, 0, total_steps), spec.weight_decay)?;
        Ok(Self {
            optimizer,
            spec: spec.clone(),
            total_steps,
            step: 0,
            candle_autograd: false,
        })
    }

    /// Saves weights, optimizer moments, the step counter and `extra` tensors to one
    /// safetensors file, atomically (a crash leaves the previous checkpoint intact).
    pub fn save(&self, path: &std::path::Path, extra: HashMap<String, Tensor>) -> Result<()> {
        self.optimizer.save_checkpoint(path, self.step, extra)
    }

    /// Restores a checkpoint written by [`Trainer::save`] into this trainer's variables;
    /// returns everything the file holds, so the caller can read back its extra tensors.
    pub fn load(&mut self, path: &std::path::Path) -> Result<HashMap<String, Tensor>> {
        let (step, state) = self.optimizer.load_checkpoint(path)?;
        self.step = step;
        Ok(state)
    }

    /// The learning rate of the next step.
    #[must_use]
    pub fn learning_rate(&self) -> f64 {
        lr_at(&self.spec.lr, self.step, self.total_steps)
    }

    /// One optimizer step on a batch of sequences; returns the loss before the step. A loss that
    /// is not finite is an error and leaves the weights untouched.
    pub fn step(
        &mut self,
        model: &Transformer,
        sequences: &[Sequence],
    ) -> std::result::Result<f64, StepError> {
        let (inputs, targets, mask) = batch_tensors(sequences, model.device())?;
        let loss = |log_probs: &Tensor, _: &Tensor| masked_mean_nll(log_probs, &mask);
        let (loss, mut grads) = if self.candle_autograd {
            model.autograd_loss_and_grads(&inputs, &targets, loss)?
        } else {
            model.loss_and_grads(&inputs, &targets, loss)?
        };
        let value = f64::from(loss.to_scalar::<f32>()?);
        if !value.is_finite() {
            return Err(StepError::NonFinite {
                step: self.step,
                value,
            });
        }
        clip_grad_norm(&self.optimizer.vars(), &mut grads, self.spec.grad_clip)?;
        self.optimizer.lr = self.learning_rate();
        self.optimizer.step(&grads)?;
        self.step += 1;
        Ok(value)
    }
}
