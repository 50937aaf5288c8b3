//! AdamW with its state in the open, so that a checkpoint can hold it and a resumed run takes
//! exactly the step it would have taken (candle's `AdamW` keeps its moments private).

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

/// Decoupled-weight-decay Adam (Loshchilov & Hutter), β = (0.9, 0.999), ε = 1e-8.
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    /// Steps taken (for bias correction).
    pub steps: u64,
    /// Current learning rate.
    pub lr: f64,
    weight_decay: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    /// An optimizer over named variables, in the given order.
    pub fn new(vars: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let first = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?;
        let second = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?;
        Ok(Self {
            vars,
            first,
            second,
            steps: 0,
            lr,
            weight_decay,
        })
    }

    /// The variables.
    #[must_use]
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps as i32);
        let correction2 = 1.0 - BETA2.powi(self.steps as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let m = ((&self.first[i] * BETA1)? + (grad * (1.0 - BETA1))?)?;
            let v = ((&self.second[i] * BETA2)? + (grad.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&m / correction1)? / ((&v / correction2)?.sqrt()? + EPS)?)?;
            let decayed = (var.as_tensor() * (1.0 - self.lr * self.weight_decay))?;
            var.set(&(decayed - (update * self.lr)?)?)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }

    /// Weights and moments by name, for a checkpoint.
    #[must_use]
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut state = HashMap::new();
        for (i, (name, var)) in self.vars.iter().enumerate() {
            state.insert(format!("weights.{name}"), var.as_tensor().clone());
            state.insert(format!("adam.m.{name}"), self.first[i].clone());
            state.insert(format!("adam.v.{name}"), self.second[i].clone());
        }
        state
    }

    /// Restores weights and moments saved by [`AdamW::state`]; a missing tensor is an error.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let get = |key: String| {
            state
                .get(&key)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{key}`")))
        };
        for (i, (name, var)) in self.vars.iter().enumerate() {
            var.set(&get(format!("weights.{name}"))?)?;
            self.first[i] = get(format!("adam.m.{name}"))?;
            self.second[i] = get(format!("adam.v.{name}"))?;
        }
        self.steps = steps;
        Ok(())
    }
}

/// The checkpoint key of the optimizer-step counter.
const STEP_KEY: &str = "trainer.step";

impl AdamW {
    /// Saves weights, moments, the step counter `step` and `extra` tensors to one safetensors
    /// file, atomically (a crash leaves the previous checkpoint intact).
    pub fn save_checkpoint(
        &self,
        path: &std::path::Path,
        step: u64,
        extra: HashMap<String, Tensor>,
    ) -> Result<()> {
        let mut state = self.state();
        state.extend(extra);
        state.insert(STEP_KEY.to_owned(), scalar_tensor(step)?);
        let tmp = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&state, &tmp)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Restores a checkpoint written by [`AdamW::save_checkpoint`]; returns its step and
    /// everything the file holds, so the caller can read back its extra tensors.
    pub fn load_checkpoint(
        &mut self,
        path: &std::path::Path,
    ) -> Result<(u64, HashMap<String, Tensor>)> {
        let device = self
            .vars
            .first()
            .map_or(candle_core::Device::Cpu, |(_, v)| v.device().clone());
        let state = candle_core::safetensors::load(path, &device)?;
        let step = checkpoint_scalar(&state, STEP_KEY)?;
        self.restore(&state, step)?;
        Ok((step, state))
    }
}

/// A counter as a checkpoint tensor (f64 holds every count a run reaches exactly).
pub fn scalar_tensor(value: u64) -> Result<Tensor> {
    Tensor::new(&[value as f64], &candle_core::Device::Cpu)
}

/// A counter saved with [`scalar_tensor`].
pub fn checkpoint_scalar<S: std::hash::BuildHasher>(
    state: &HashMap<String, Tensor, S>,
    key: &str,
) -> Result<u64> {
    let tensor = state
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{key}`")))?;
    Ok(tensor.to_vec1::<f64>()?.first().copied().unwrap_or(0.0) as u64)
}
