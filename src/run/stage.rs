//! What every training stage shares, `pretrain`/`midtrain` ([`super::train`]) and `rl`
//! ([`super::rl`]): its directory's checkpoint and metrics, resuming (the metrics cut back to
//! the checkpoint's step, so a killed run that logged past its last checkpoint is fine),
//! stopping at an interrupt or a non-finite value, the window of recent values its summary
//! averages, and finishing with the weights and `done.json`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::files::{JsonLines, pretty_json, write_atomically};
use super::{RunError, Runner};
use crate::plan::StagePlan;

/// What a finished stage left (`done.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageDone {
    /// Optimizer steps.
    pub steps: u64,
    /// Tokens trained on (steps × batch × seq).
    pub tokens: u64,
    /// Mean training loss over the last 10 steps (`rl`: the policy loss).
    pub final_loss: f64,
    /// The last held-out loss (none for `rl`).
    #[serde(default)]
    pub heldout_loss: Option<f64>,
    /// Seconds spent training in the run that finished the stage (resumed runs: that part).
    pub seconds: f64,
    /// Training tokens per second in that run (`rl`: response tokens sampled).
    pub tokens_per_second: f64,
    /// Model FLOPs of the whole stage ([`crate::plan::cost`]); none in manifests written
    /// before they were counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    /// `rl`: the mean reward of the last 10 steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// `rl` with a competence filter: candidates tried and kept, per op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<FilterRecord>>,
}

/// How many candidate prompts of one op the competence filter tried and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRecord {
    /// The op.
    pub op: u32,
    /// Candidates whose pass rate was estimated.
    pub tried: u64,
    /// Candidates inside the band.
    pub kept: u64,
}

/// Saves the weights of `varmap` to `path` atomically.
pub(crate) fn save_weights(varmap: &VarMap, path: &Path) -> Result<(), RunError> {
    let tmp = path.with_extension("safetensors.tmp");
    varmap.save(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| RunError::io(path, &e))
}

/// A stage's directory while the stage runs.
pub(super) struct StageDir<'r> {
    runner: &'r Runner<'r>,
    stage: &'r StagePlan,
    dir: &'r Path,
    /// `checkpoint.safetensors`: whatever the stage needs to resume.
    pub(super) checkpoint: PathBuf,
    /// `metrics.jsonl`: one row per step.
    pub(super) metrics: JsonLines,
}

impl<'r> StageDir<'r> {
    pub(super) fn open(runner: &'r Runner<'r>, stage: &'r StagePlan, dir: &'r Path) -> Self {
        Self {
            runner,
            stage,
            dir,
            checkpoint: dir.join("checkpoint.safetensors"),
            metrics: JsonLines::open(&dir.join("metrics.jsonl")),
        }
    }

    /// Whether a checkpoint is there to resume from.
    pub(super) fn can_resume(&self) -> bool {
        self.checkpoint.exists()
    }

    /// After the checkpoint of `step` is loaded: drops the metrics rows past it.
    pub(super) fn resumed(&mut self, step: u64, total_steps: u64) -> Result<(), RunError> {
        self.metrics
            .keep_while(|row| row["step"].as_u64().is_some_and(|s| s <= step))?;
        self.runner.observer.note(&format!(
            "stage `{}`: resuming at step {step} of {total_steps}",
            self.stage.name
        ));
        Ok(())
    }

    /// Starting afresh: drops the metrics rows an earlier attempt left.
    pub(super) fn fresh(&mut self) -> Result<(), RunError> {
        self.metrics.keep_while(|_| false)
    }

    /// Whether Ctrl-C asked the run to stop (checked at each step's boundary).
    pub(super) fn interrupt_requested(&self) -> bool {
        self.runner.options.interrupt.load(Ordering::SeqCst)
    }

    /// The error that ends the stage once its interrupt checkpoint is saved.
    pub(super) fn interrupted(&self, step: u64) -> RunError {
        self.runner
            .observer
            .end(&format!("interrupted at step {step}"));
        RunError::Interrupted {
            stage: self.stage.name.clone(),
            step,
        }
    }

    /// The error that ends the stage when `quantity` (the loss, the gradient norm) became
    /// `value`; the last checkpoint is kept.
    pub(super) fn non_finite(&self, quantity: &'static str, step: u64, value: f64) -> RunError {
        self.runner
            .observer
            .end(&format!("{quantity} {value} at step {step}"));
        RunError::NonFinite {
            stage: self.stage.name.clone(),
            quantity,
            step,
            value,
            checkpoint: self.can_resume().then(|| self.checkpoint.clone()),
        }
    }

    /// Writes the final weights and `done.json`, drops the checkpoint (its optimizer moments
    /// are no longer needed) and ends the progress line with `summary`.
    pub(super) fn finish(
        &self,
        varmap: &VarMap,
        done: &StageDone,
        summary: &str,
    ) -> Result<(), RunError> {
        save_weights(varmap, &self.dir.join("model.safetensors"))?;
        let done_path = self.dir.join("done.json");
        write_atomically(&done_path, &pretty_json(done)?)
            .map_err(|e| RunError::io(&done_path, &e))?;
        let _ = std::fs::remove_file(&self.checkpoint);
        self.runner.observer.end(summary);
        Ok(())
    }
}

/// The last ten values of a series, whose mean a finished stage reports.
#[derive(Default)]
pub(super) struct Recent(VecDeque<f64>);

impl Recent {
    const LEN: usize = 10;

    pub(super) fn push(&mut self, value: f64) {
        if self.0.len() == Self::LEN {
            self.0.pop_front();
        }
        self.0.push_back(value);
    }

    /// The mean, 0 when empty.
    pub(super) fn mean(&self) -> f64 {
        mean(self.0.iter().copied())
    }
}

/// The mean of `values`, 0 when there are none (a sum from +0, so no -0 reaches the JSON).
pub(super) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// A stage directory's `done.json`, whatever step count it records.
pub(super) fn read_done(dir: &Path) -> Option<StageDone> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("done.json")).ok()?).ok()
}

/// The result a stage directory holds for `stage` as the plan has it now: its `done.json`,
/// when it records the plan's step count (an older rlp may have taken another for the same
/// plan: a 0% share once took one step).
pub(super) fn finished(dir: &Path, stage: &StagePlan) -> Option<StageDone> {
    read_done(dir).filter(|done| done.steps == stage.spec.steps())
}
