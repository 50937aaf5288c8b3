//! Running a `pretrain` or `midtrain` stage: the stage's example stream, packed into sequences,
//! through the [`Trainer`], with held-out loss, periodic checkpoints and resume.
//!
//! A stage directory holds `checkpoint.safetensors` (weights, optimizer moments, step and the
//! stream's position: the next example index and the packer's buffered tokens), the
//! `metrics.jsonl` of its steps, and once finished `model.safetensors` and `done.json`. A
//! resumed stage truncates the metrics to the checkpoint's step and continues the stream where
//! the checkpoint left it, so its losses are the ones an uninterrupted run would have logged.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::stage::{Recent, StageDir, StageDone};
use super::{RunError, Runner};
use crate::model::Config;
use crate::plan::{DataSpec, StagePlan, TrainSpec};
use crate::tasks::Generator;
use crate::tasks::stream::example;
use crate::tokenizer::{BOS, EOS, Tokenizer};
use crate::train::data::{Packer, Sequence};
use crate::train::trainer::{StepError, Trainer, evaluate_loss};

/// Held-out batches of the stage's distribution (under another seed) for the held-out loss.
const HELDOUT_BATCHES: usize = 4;

/// Salt of the held-out stream's seed.
const HELDOUT_SALT: u64 = 0x6865_6c64_5f6f_7574;

/// An example stream cut into sequences; its position can be saved and restored.
pub(crate) struct SequenceStream<'a> {
    generator: &'a Generator<'a>,
    tokenizer: &'a Tokenizer,
    data: &'a DataSpec,
    seed: u64,
    packer: Packer,
    next_example: u64,
}

impl<'a> SequenceStream<'a> {
    pub(crate) fn new(
        generator: &'a Generator<'a>,
        tokenizer: &'a Tokenizer,
        data: &'a DataSpec,
        seed: u64,
        spec: &TrainSpec,
    ) -> Result<Self, RunError> {
        let solution = tokenizer.tag_ids("<solution>");
        if solution.is_empty() {
            return Err(RunError::Internal("the vocabulary lacks <solution>".into()));
        }
        Ok(Self {
            generator,
            tokenizer,
            data,
            seed,
            packer: Packer::new(spec.seq_len as usize, spec.loss, &solution),
            next_example: 0,
        })
    }

    /// The next `n` sequences.
    pub(crate) fn sequences(&mut self, n: usize) -> Result<Vec<Sequence>, RunError> {
        let mut sequences = Vec::with_capacity(n);
        while sequences.len() < n {
            if let Some(sequence) = self.packer.next_sequence() {
                sequences.push(sequence);
                continue;
            }
            let problem = example(self.generator, self.data, self.seed, self.next_example)?;
            self.next_example += 1;
            let mut ids = vec![BOS];
            ids.extend(
                self.tokenizer
                    .encode(&problem.rendered.text())
                    .map_err(|e| RunError::Internal(format!("generated text: {e}")))?,
            );
            ids.push(EOS);
            self.packer.push(&ids);
        }
        Ok(sequences)
    }

    /// The position as checkpoint tensors.
    fn state(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let (tokens, counts) = self.packer.buffered();
        let mut state = HashMap::new();
        // A leading sentinel keeps the tensors non-empty.
        let tokens: Vec<u32> = std::iter::once(0).chain(tokens.iter().copied()).collect();
        let counts: Vec<u8> = std::iter::once(0)
            .chain(counts.iter().map(|&c| u8::from(c)))
            .collect();
        let (nt, nc) = (tokens.len(), counts.len());
        state.insert(
            "stream.next_example".to_owned(),
            Tensor::new(&[self.next_example as f64], &Device::Cpu)?,
        );
        state.insert(
            "stream.tokens".to_owned(),
            Tensor::from_vec(tokens, nt, &Device::Cpu)?,
        );
        state.insert(
            "stream.counts".to_owned(),
            Tensor::from_vec(counts, nc, &Device::Cpu)?,
        );
        Ok(state)
    }

    /// Restores a position saved by [`SequenceStream::state`].
    fn restore(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let get = |key: &str| {
            state
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{key}`")))
        };
        let next = get("stream.next_example")?.to_vec1::<f64>()?;
        let tokens = get("stream.tokens")?.to_vec1::<u32>()?;
        let counts = get("stream.counts")?.to_vec1::<u8>()?;
        self.next_example = next.first().copied().unwrap_or(0.0) as u64;
        self.packer.restore(
            tokens.into_iter().skip(1).collect(),
            counts.into_iter().skip(1).map(|c| c != 0).collect(),
        );
        Ok(())
    }
}

/// Trains one stage in `dir`, starting from `parent` weights (midtrain) or from scratch.
#[allow(clippy::too_many_lines)] // one loop, read top to bottom
pub(super) fn run(
    runner: &Runner<'_>,
    stage: &StagePlan,
    spec: &TrainSpec,
    parent: Option<&Path>,
    dir: &Path,
) -> Result<StageDone, RunError> {
    let (plan, tokenizer, options, observer) = (
        runner.plan,
        &runner.tokenizer,
        runner.options,
        runner.observer,
    );
    let config = Config::from_spec(&plan.models[spec.model.0], tokenizer.len());
    // A mid-training stage loads its parent's weights; only a fresh one draws its own.
    let seed = parent.is_none().then_some(stage.seed);
    let (mut varmap, model) = crate::model::build(&config, &options.device, seed)?;
    if let Some(parent) = parent {
        varmap.load(parent)?;
    }
    let tokens_per_step = u64::from(spec.batch) * u64::from(spec.seq_len);
    let total_steps = stage.spec.steps();
    // The schedule spans `tokens` even when `stop` ends the stage earlier.
    let mut trainer = Trainer::new(&varmap, spec, spec.schedule_steps())?;
    let generator = Generator::new(plan);
    let mut stream = SequenceStream::new(&generator, tokenizer, &spec.data, stage.seed, spec)?;
    let heldout = SequenceStream::new(
        &generator,
        tokenizer,
        &spec.data,
        stage.seed ^ HELDOUT_SALT,
        spec,
    )?
    .sequences(HELDOUT_BATCHES * spec.batch as usize)?;

    let mut files = StageDir::open(runner, stage, dir);
    if files.can_resume() {
        let state = trainer.load(&files.checkpoint)?;
        stream.restore(&state)?;
        files.resumed(trainer.step, total_steps)?;
    } else {
        files.fresh()?;
    }

    let started = Instant::now();
    let first_step = trainer.step;
    let mut recent = Recent::default();
    let mut heldout_loss = f64::NAN;
    observer.begin(
        &format!("{} {}", stage.spec.keyword(), stage.name),
        total_steps,
    );
    observer.advance(trainer.step, "");
    let save = |trainer: &Trainer, stream: &SequenceStream<'_>, files: &StageDir<'_>| {
        trainer.save(&files.checkpoint, stream.state()?)
    };
    while trainer.step < total_steps {
        if files.interrupt_requested() {
            save(&trainer, &stream, &files)?;
            return Err(files.interrupted(trainer.step));
        }
        let sequences = stream.sequences(spec.batch as usize)?;
        let lr = trainer.learning_rate();
        let loss = match trainer.step(&model, &sequences) {
            Ok(loss) => loss,
            Err(StepError::NonFinite { step, value }) => {
                return Err(files.non_finite("loss", step, value));
            }
            Err(StepError::Tensor(e)) => return Err(e.into()),
        };
        let step = trainer.step;
        recent.push(loss);
        let elapsed = started.elapsed().as_secs_f64();
        let tokens_per_second = (step - first_step) as f64 * tokens_per_step as f64 / elapsed;
        let mut row = serde_json::json!({
            "stage": stage.name,
            "step": step,
            "loss": loss,
            "lr": lr,
            "tokens": step * tokens_per_step,
            "elapsed_s": elapsed,
            "tokens_per_s": tokens_per_second,
        });
        if step % u64::from(spec.eval_every) == 0 || step == total_steps {
            heldout_loss = evaluate_loss(&model, &heldout)?;
            row["heldout_loss"] = heldout_loss.into();
        }
        files.metrics.push(&row)?;
        if step % u64::from(spec.checkpoint_every) == 0 && step < total_steps {
            save(&trainer, &stream, &files)?;
        }
        observer.advance(
            step,
            &format!(
                "loss {loss:.3}{} · {tokens_per_second:.0} tok/s",
                if heldout_loss.is_finite() {
                    format!(" · held-out {heldout_loss:.3}")
                } else {
                    String::new()
                }
            ),
        );
    }
    if total_steps == 0 {
        // A 0% share of a budget: the parent's model, passed on untouched.
        heldout_loss = evaluate_loss(&model, &heldout)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = StageDone {
        steps: total_steps,
        tokens: total_steps * tokens_per_step,
        final_loss: recent.mean(),
        heldout_loss: Some(heldout_loss),
        seconds,
        tokens_per_second: (total_steps - first_step) as f64 * tokens_per_step as f64
            / seconds.max(1e-9),
        flops: Some(crate::plan::cost::train_flops(
            plan.models[spec.model.0].non_embedding_params,
            total_steps * tokens_per_step,
        )),
        reward: None,
        filter: None,
    };
    files.finish(
        &varmap,
        &done,
        &format!(
            "loss {:.3} · held-out {:.3} · {:.0} tok/s",
            done.final_loss, heldout_loss, done.tokens_per_second
        ),
    )?;
    Ok(done)
}
