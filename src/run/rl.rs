//! Running an `rl` stage: GRPO from the parent stage's weights. Each step draws
//! `prompts_per_step` prompts from the stage's source (through the competence filter when one
//! is declared), samples a group of rollouts per prompt with the KV-cache sampler, scores them
//! with the stage's reward, and applies [`crate::rl::update`].
//!
//! Every random draw is a function of the stage seed and a counter (the step, the candidate
//! prompt's index), and the checkpoint holds the weights, the optimizer moments, the step and
//! the next candidate prompt, so a resumed stage takes exactly the steps it would have taken.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::stage::{FilterRecord, Recent, StageDir, StageDone, mean};
use super::{RunError, Runner};
use crate::eval::validate::{Validation, Validator};
use crate::model::Config;
use crate::model::sample::{Request, Sampling, sample_batch};
use crate::plan::cost::{RlPasses, RlStepTokens, rl_step_flops};
use crate::plan::{RewardSpec, RlSpec, StagePlan};
use crate::rl::{Rollout, UpdateError, grpo, update};
use crate::tasks::reward::Primitives;
use crate::tasks::stream::{example, example_seed};
use crate::tasks::trace::TraceFormat;
use crate::tasks::{Generator, Problem, trace_formats};
use crate::tokenizer::Tokenizer;
use crate::train::optim::{AdamW, checkpoint_scalar, scalar_tensor};

/// Salts of the rollout and filter sampling seeds.
const ROLLOUT_SALT: u64 = 0x726f_6c6c_6f75_7473;
const FILTER_SALT: u64 = 0x6669_6c74_6572_7321;

/// Consecutive prompts over `max_prompt_tokens` after which a stage stops: its data has almost
/// none that fit.
const MAX_SKIPPED_PROMPTS: u32 = 10_000;

/// At most this many candidates per kept prompt are tried in one step before the step trains
/// on what it has.
const FILTER_TRIES_PER_PROMPT: u64 = 8;

/// A rollout whose reward is at least this counts as a pass for the competence filter.
const PASS: f64 = 1.0 - 1e-9;

/// One scored rollout.
struct Scored {
    rollout: Rollout,
    reward: f64,
    primitives: Primitives,
    verified: bool,
}

/// What the stage needs to draw and score rollouts.
struct Scorer<'a> {
    tokenizer: &'a Tokenizer,
    reward: &'a RewardSpec,
    formats: Vec<TraceFormat>,
    sampling: Sampling,
    /// Positions sampled since the counter was last taken, for the FLOPs of the step.
    sampled: Cell<u64>,
}

impl Scorer<'_> {
    /// `n` rollouts of each problem (with its seed), scored, sampled as one batch.
    fn rollouts(
        &self,
        model: &crate::model::Transformer,
        problems: &[(&Problem, u64)],
        n: usize,
    ) -> candle_core::Result<Vec<Vec<Scored>>> {
        let prompts: Vec<Vec<u32>> = problems
            .iter()
            .map(|(p, _)| self.tokenizer.prompt_ids(&p.rendered.prompt()))
            .collect();
        let requests: Vec<Request<'_>> = prompts
            .iter()
            .zip(problems)
            .map(|(prompt, &(_, seed))| Request { prompt, n, seed })
            .collect();
        let completions = sample_batch(model, &requests, &self.sampling)?;
        let positions: usize = prompts.iter().map(Vec::len).sum::<usize>()
            + completions.iter().flatten().map(Vec::len).sum::<usize>();
        self.sampled.set(self.sampled.get() + positions as u64);
        Ok(problems
            .iter()
            .zip(prompts)
            .zip(completions)
            .map(|((&(problem, _), prompt), completions)| {
                let format = &self.formats[problem.task.0];
                let gold = problem.gold_graph();
                completions
                    .into_iter()
                    .map(|completion| {
                        let text = self.tokenizer.decode(&completion);
                        let (primitives, score) = Primitives::scored(
                            &gold,
                            &problem.rendered.answer,
                            &text,
                            format,
                            self.sampling.max_new_tokens as u32,
                        );
                        Scored {
                            rollout: Rollout {
                                prompt: prompt.clone(),
                                completion,
                            },
                            reward: primitives.reward(self.reward),
                            primitives,
                            verified: score.verified_correct,
                        }
                    })
                    .collect()
            })
            .collect())
    }
}

/// Per-op counts of the competence filter: candidates tried and kept.
type FilterCounts = BTreeMap<u32, (u64, u64)>;

/// Runs one `rl` stage in `dir` from the `parent` weights.
#[allow(clippy::too_many_lines)] // one loop, read top to bottom
pub(super) fn run(
    runner: &Runner<'_>,
    stage: &StagePlan,
    spec: &RlSpec,
    parent: &Path,
    dir: &Path,
) -> Result<StageDone, RunError> {
    let (plan, tokenizer, options, observer) = (
        runner.plan,
        &runner.tokenizer,
        runner.options,
        runner.observer,
    );
    let config = Config::from_spec(&plan.models[spec.model.0], tokenizer.len());
    let (mut varmap, model) = crate::model::build(&config, &options.device, None)?;
    varmap.load(parent)?;
    // The frozen starting model, for the KL term.
    let reference = if spec.kl > 0.0 {
        let (mut frozen, reference) = crate::model::build(&config, &options.device, None)?;
        frozen.load(parent)?;
        Some(reference)
    } else {
        None
    };
    let mut optimizer = AdamW::new(
        crate::model::sorted_vars(&varmap)?,
        spec.lr,
        spec.weight_decay,
    )?;
    let generator = Generator::new(plan);
    let scorer = Scorer {
        tokenizer,
        reward: &plan.rewards[spec.reward.0],
        formats: trace_formats(plan),
        sampling: Sampling::completions(
            tokenizer,
            spec.temperature,
            spec.top_p,
            spec.max_new_tokens,
        ),
        sampled: Cell::new(0),
    };
    let validator = spec
        .validate
        .as_ref()
        .map(|v| Validator::new(plan, tokenizer, v, spec.max_new_tokens))
        .transpose()?;
    let params = plan.models[spec.model.0].non_embedding_params;
    let total_steps = u64::from(spec.steps);
    let group = spec.group as usize;

    let mut files = StageDir::open(runner, stage, dir);
    let mut step = 0u64;
    let mut next_candidate = 0u64;
    let mut filter_counts = FilterCounts::new();
    // Unknown after resuming from a checkpoint written before FLOPs were counted.
    let mut flops = Some(0.0);
    if files.can_resume() {
        let state;
        (step, state) = optimizer.load_checkpoint(&files.checkpoint)?;
        next_candidate = checkpoint_scalar(&state, "rl.next_candidate")?;
        flops = match state.get("rl.flops") {
            Some(t) => t.to_vec1::<f64>()?.first().copied(),
            None => None,
        };
        if let Some(counts) = state.get("rl.filter_counts") {
            for row in counts.to_vec2::<f64>()? {
                filter_counts.insert(row[0] as u32, (row[1] as u64, row[2] as u64));
            }
        }
        files.resumed(step, total_steps)?;
    } else {
        files.fresh()?;
        // The starting policy's validation, as the reference validates before training.
        if let Some(validator) = &validator {
            let mut row = serde_json::json!({ "stage": stage.name, "step": 0 });
            validation_keys(&mut row, &validator.measure(&model)?);
            files.metrics.push(&row)?;
        }
    }
    // (step, next candidate, FLOPs so far): the counters a resumed stage continues from.
    let save = |(step, next_candidate, flops): (u64, u64, Option<f64>),
                counts: &FilterCounts,
                optimizer: &AdamW,
                files: &StageDir<'_>|
     -> Result<(), RunError> {
        let mut state = HashMap::new();
        state.insert(
            "rl.next_candidate".to_owned(),
            scalar_tensor(next_candidate)?,
        );
        if let Some(flops) = flops {
            state.insert("rl.flops".to_owned(), Tensor::new(&[flops], &Device::Cpu)?);
        }
        // A sentinel row keeps the tensor non-empty.
        let rows: Vec<f64> = std::iter::once([0.0; 3])
            .chain(
                counts
                    .iter()
                    .map(|(&op, &(seen, kept))| [f64::from(op), seen as f64, kept as f64]),
            )
            .flatten()
            .collect();
        let n = rows.len() / 3;
        state.insert(
            "rl.filter_counts".to_owned(),
            Tensor::from_vec(rows, (n, 3), &Device::Cpu)?,
        );
        Ok(optimizer.save_checkpoint(&files.checkpoint, step, state)?)
    };

    let started = Instant::now();
    let mut response_tokens = 0u64;
    let mut recent_rewards = Recent::default();
    let mut recent_losses = Recent::default();
    observer.begin(&format!("rl {}", stage.name), total_steps);
    observer.advance(step, "");
    while step < total_steps {
        if files.interrupt_requested() {
            save(
                (step, next_candidate, flops),
                &filter_counts,
                &optimizer,
                &files,
            )?;
            return Err(files.interrupted(step));
        }
        let step_started = Instant::now();
        // The next prompt of the stream and its position, skipping prompts longer than
        // `max_prompt_tokens`.
        let draw = |next: &mut u64| -> Result<(Problem, u64), RunError> {
            for _ in 0..MAX_SKIPPED_PROMPTS {
                let index = *next;
                *next += 1;
                let problem = example(&generator, &spec.prompts, stage.seed, index)?;
                let fits = spec.max_prompt_tokens.is_none_or(|limit| {
                    tokenizer.prompt_ids(&problem.rendered.prompt()).len() <= limit as usize
                });
                if fits {
                    return Ok((problem, index));
                }
            }
            Err(RunError::PromptsTooLong {
                stage: stage.name.clone(),
                limit: spec.max_prompt_tokens.unwrap_or(0),
                tries: MAX_SKIPPED_PROMPTS,
            })
        };
        // Prompts and their groups, through the competence filter when there is one.
        let wanted = spec.prompts_per_step as usize;
        let (prompts, scored, tries, in_band, candidate_rate) = if let Some(filter) = &spec.filter {
            // Dynamic sampling: a candidate's pass rate is estimated from its first
            // `filter.samples` samples, and a kept candidate's first `group` samples are its
            // rollouts, so every kept group carries the signal the filter saw in it.
            let draws = (filter.samples as usize).max(group);
            let budget = FILTER_TRIES_PER_PROMPT * wanted as u64;
            let mut prompts: Vec<Problem> = Vec::with_capacity(wanted);
            let mut scored: Vec<Scored> = Vec::with_capacity(wanted * group);
            let (mut tries, mut in_band, mut rate_sum) = (0u64, 0u64, 0.0);
            while prompts.len() < wanted && tries < budget {
                // Enough candidates for the prompts still wanted at the rate kept so far,
                // sampled as one batch.
                let (tried_all, kept_all) = filter_counts
                    .values()
                    .fold((0, 0), |(t, k), &(ti, ki)| (t + ti, k + ki));
                let rate = ((kept_all + 1) as f64 / (tried_all + 2) as f64)
                    .max(1.0 / FILTER_TRIES_PER_PROMPT as f64);
                let round = (((wanted - prompts.len()) as f64 / rate).ceil() as u64)
                    .clamp(1, budget - tries);
                let candidates = (0..round)
                    .map(|_| {
                        let (problem, index) = draw(&mut next_candidate)?;
                        Ok((problem, example_seed(stage.seed ^ FILTER_SALT, index)))
                    })
                    .collect::<Result<Vec<_>, RunError>>()?;
                tries += round;
                let items: Vec<(&Problem, u64)> = candidates.iter().map(|(p, s)| (p, *s)).collect();
                let groups = scorer.rollouts(&model, &items, draws)?;
                for ((problem, _), mut samples) in candidates.into_iter().zip(groups) {
                    let rate = mean(
                        samples[..filter.samples as usize]
                            .iter()
                            .map(|s| f64::from(u8::from(s.reward >= PASS))),
                    );
                    rate_sum += rate;
                    // Counted as kept when inside the band, even when the step already has
                    // its prompts: the counts measure the band, not the batch.
                    let keep = (filter.min_pass_rate..=filter.max_pass_rate).contains(&rate);
                    let counts = filter_counts.entry(problem.op).or_default();
                    counts.0 += 1;
                    counts.1 += u64::from(keep);
                    in_band += u64::from(keep);
                    if keep && prompts.len() < wanted {
                        samples.truncate(group);
                        scored.extend(samples);
                        prompts.push(problem);
                    }
                }
            }
            (
                prompts,
                scored,
                tries,
                in_band,
                rate_sum / tries.max(1) as f64,
            )
        } else {
            let prompts = (0..wanted as u64)
                .map(|_| draw(&mut next_candidate).map(|(problem, _)| problem))
                .collect::<Result<Vec<_>, _>>()?;
            let items: Vec<(&Problem, u64)> = prompts
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    (
                        p,
                        example_seed(stage.seed ^ ROLLOUT_SALT, (step << 32) | j as u64),
                    )
                })
                .collect();
            let scored = scorer
                .rollouts(&model, &items, group)?
                .into_iter()
                .flatten()
                .collect();
            (prompts, scored, wanted as u64, wanted as u64, f64::NAN)
        };
        let rewards: Vec<f64> = scored.iter().map(|s| s.reward).collect();
        let advantages = grpo::group_advantages(&rewards, group);
        let zero_std = grpo::zero_std_groups(&rewards, group);
        let rollouts: Vec<Rollout> = scored.iter().map(|s| s.rollout.clone()).collect();
        let stats = if rollouts.is_empty() {
            None
        } else {
            Some(
                update(
                    &model,
                    reference.as_ref(),
                    &mut optimizer,
                    &rollouts,
                    &advantages,
                    spec,
                )
                .map_err(|e| match e {
                    UpdateError::NonFiniteGradient { norm } => {
                        files.non_finite("gradient norm", step, norm)
                    }
                    UpdateError::Tensor(e) => e.into(),
                })?,
            )
        };
        step += 1;
        let step_tokens = RlStepTokens {
            sampled: scorer.sampled.replace(0),
            trained: rollouts
                .iter()
                .map(|r| (r.prompt.len() + r.completion.len()).saturating_sub(1) as u64)
                .sum(),
        };
        let passes = RlPasses {
            epochs: spec.epochs,
            reference: reference.is_some(),
            old_policy: spec.minibatches > 1,
        };
        let step_flops = rl_step_flops(params, step_tokens, passes);
        flops = flops.map(|f| f + step_flops);
        let lengths: Vec<f64> = scored
            .iter()
            .map(|s| s.rollout.completion.len() as f64)
            .collect();
        response_tokens += lengths.iter().sum::<f64>() as u64;
        let reward_mean = mean(rewards.iter().copied());
        let reward_std = if rewards.len() > 1 {
            (rewards
                .iter()
                .map(|r| (r - reward_mean).powi(2))
                .sum::<f64>()
                / (rewards.len() - 1) as f64)
                .sqrt()
        } else {
            0.0
        };
        let step_seconds = step_started.elapsed().as_secs_f64();
        let mut row = serde_json::json!({
            "stage": stage.name,
            "step": step,
            "reward/mean": reward_mean,
            "reward/std": reward_std,
            "reward/answer": mean(scored.iter().map(|s| s.primitives.answer)),
            "reward/process": mean(scored.iter().map(|s| s.primitives.process)),
            "reward/format": mean(scored.iter().map(|s| s.primitives.format)),
            "reward/length": mean(scored.iter().map(|s| s.primitives.length)),
            "rollout/verified_acc": mean(scored.iter().map(|s| f64::from(u8::from(s.verified)))),
            "rollout/answer_right_process_wrong": mean(scored.iter().map(|s| {
                f64::from(u8::from(s.primitives.answer >= 1.0 && !s.verified))
            })),
            "rollout/zero_std_frac": mean(zero_std.iter().map(|&z| f64::from(u8::from(z)))),
            "rollout/prompts": prompts.len(),
            "response_length/mean": mean(lengths.iter().copied()),
            "lr": spec.lr,
            "elapsed_s": started.elapsed().as_secs_f64(),
            "rollouts_per_s": scored.len() as f64 / step_seconds.max(1e-9),
            "compute/step_flops": step_flops,
        });
        if let Some(flops) = flops {
            row["compute/flops"] = flops.into();
        }
        if let Some(stats) = stats {
            row["actor/pg_loss"] = stats.policy_loss.into();
            row["actor/pg_clipfrac"] = stats.clip_fraction.into();
            row["actor/kl_loss"] = stats.kl.into();
            row["actor/entropy"] = stats.entropy.into();
            row["actor/grad_norm"] = stats.grad_norm.into();
            recent_losses.push(stats.policy_loss);
        }
        if spec.filter.is_some() {
            row["filter/tried"] = tries.into();
            row["filter/kept"] = in_band.into();
            row["filter/pass_rate"] = candidate_rate.into();
        }
        if let (Some(validator), Some(v)) = (&validator, &spec.validate)
            && v.due(step, total_steps)
        {
            validation_keys(&mut row, &validator.measure(&model)?);
        }
        files.metrics.push(&row)?;
        recent_rewards.push(reward_mean);
        if step % u64::from(spec.checkpoint_every) == 0 && step < total_steps {
            save(
                (step, next_candidate, flops),
                &filter_counts,
                &optimizer,
                &files,
            )?;
        }
        observer.advance(
            step,
            &format!(
                "reward {reward_mean:.3} · verified {:.2} · {:.1} rollouts/s",
                row["rollout/verified_acc"].as_f64().unwrap_or(0.0),
                row["rollouts_per_s"].as_f64().unwrap_or(0.0)
            ),
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = StageDone {
        steps: total_steps,
        tokens: response_tokens,
        final_loss: recent_losses.mean(),
        heldout_loss: None,
        seconds,
        tokens_per_second: response_tokens as f64 / seconds.max(1e-9),
        flops,
        reward: Some(recent_rewards.mean()),
        filter: spec.filter.as_ref().map(|_| {
            filter_counts
                .iter()
                .map(|(&op, &(tried, kept))| FilterRecord { op, tried, kept })
                .collect()
        }),
    };
    files.finish(
        &varmap,
        &done,
        &format!(
            "reward {:.3} (mean of the last 10 steps)",
            done.reward.unwrap_or(0.0)
        ),
    )?;
    Ok(done)
}

/// Adds a validation's keys to a metrics row: `val/verified`, `val/answer`, `val/process`,
/// `val/length`, per op `val/verified/opN` and `val/answer/opN`, and `val/first_completion`.
fn validation_keys(row: &mut serde_json::Value, validation: &Validation) {
    row["val/verified"] = validation.verified.into();
    row["val/answer"] = validation.answer.into();
    row["val/process"] = validation.process.into();
    row["val/length"] = validation.length.into();
    for (op, (verified, answer)) in &validation.by_op {
        row[format!("val/verified/op{op}")] = (*verified).into();
        row[format!("val/answer/op{op}")] = (*answer).into();
    }
    row["val/first_completion"] = validation.first_completion.clone().into();
}
