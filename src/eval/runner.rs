//! Running an `eval` block: for each evaluated model and split, `problems_per_op` problems per
//! op, `samples` completions each from the KV-cache sampler, every completion scored step by
//! step by the task engine. Every model sees the same problems (paired comparisons), and the
//! guessing baselines are computed on those same problems.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{pass_at_k_first, pass_at_k_unbiased};
use crate::model::Transformer;
use crate::model::sample::{Request, Sampling, sample_batch};
use crate::plan::{ContextId, EvalSpec, Plan, SourceSpec, SplitSpec};
use crate::tasks::stream::{example_seed, from_source};
use crate::tasks::trace::{TraceFormat, parse};
use crate::tasks::verify::{outcome, score, well_formed};
use crate::tasks::{GenerateError, Generator, trace_formats};
use crate::tokenizer::Tokenizer;

/// Sequences per sampler call (problems × samples), at least one problem.
pub(super) const BATCH_ROWS: usize = 256;

/// Problems drawn per (split, op) to estimate the answer distribution the guessing baselines
/// guess from. Drawn under a different seed than the evaluated problems.
const BASELINE_DRAWS: u64 = 2000;

/// What one completion scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Judgement {
    /// The answer matches (`R_out`).
    pub answer: bool,
    /// Every step and the answer right (the strict criterion).
    pub verified: bool,
    /// Share of gold steps present and right.
    pub process_acc: f64,
    /// `… </solution> <answer> N </answer>`.
    pub well_formed: bool,
}

/// One evaluated problem: its samples' judgements, in generation order.
#[derive(Debug, Clone)]
pub struct ProblemOutcome {
    /// op(G).
    pub op: u32,
    /// The problem's context.
    pub context: ContextId,
    /// The judgements.
    pub judgements: Vec<Judgement>,
    /// Whether always answering the split's commonest answer at this op is right here.
    pub commonest_hits: bool,
    /// Probability that one answer drawn from the op's answer distribution is right here.
    pub guess_probability: f64,
}

/// A pass@k value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PassAt {
    /// k.
    pub k: u32,
    /// The estimate, averaged over problems.
    pub value: f64,
    /// The 95% bootstrap interval over problems ([`super::stats`]); none for the guessing
    /// baseline and in tables written before intervals were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<(f64, f64)>,
}

/// One line of an eval table: a model on a split, for one op (or all), one context (or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The evaluated stage.
    pub model: String,
    /// The split.
    pub split: String,
    /// The op, or `None` for the whole split.
    pub op: Option<u32>,
    /// The context, or `None` for all of them.
    pub context: Option<String>,
    /// Problems in the row.
    pub problems: usize,
    /// Samples per problem.
    pub samples: u32,
    /// Process-verified pass@k, first-k estimator.
    pub verified: Vec<PassAt>,
    /// Answer-only pass@k, unbiased estimator.
    pub answer: Vec<PassAt>,
    /// Mean `ProcessAcc` over samples.
    pub process_acc: f64,
    /// Share of well-formed samples.
    pub well_formed: f64,
    /// Answer-only score of always answering the commonest answer (the guessing floor).
    pub guess_commonest: f64,
    /// Answer-only pass@k of k answers drawn from the answer distribution.
    pub guess_sampled: Vec<PassAt>,
}

/// One problem as a model answered it: its first completion in full, and how all its samples
/// scored. Written one per line to `eval/<eval>-samples.jsonl` so that a table's numbers can be
/// read back to the texts behind them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRecord {
    /// The evaluated stage.
    pub model: String,
    /// The split.
    pub split: String,
    /// op(G).
    pub op: u32,
    /// The problem's context.
    pub context: String,
    /// The prompt as the model saw it (decoded, BOS left out).
    pub prompt: String,
    /// The gold answer.
    pub gold_answer: String,
    /// The first sample's completion.
    pub completion: String,
    /// The first sample's judgement.
    pub judgement: Judgement,
    /// How many of the problem's samples verified.
    pub verified_samples: usize,
    /// How many of them had the right answer.
    pub answer_samples: usize,
    /// Samples drawn.
    pub samples: usize,
}

/// What an evaluation produced: its table, and one [`SampleRecord`] per model and problem.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The table's rows.
    pub rows: Vec<Row>,
    /// The problems, as each model answered them.
    pub samples: Vec<SampleRecord>,
}

/// One evaluated problem, with its prompt: what [`evaluate`] samples from.
#[derive(Debug)]
pub(super) struct EvalProblem {
    pub(super) op: u32,
    context: ContextId,
    pub(super) prompt: Vec<u32>,
    pub(super) gold: crate::tasks::trace::ParsedSolution,
    pub(super) answer: String,
    pub(super) format_task: usize,
    pub(super) seed: u64,
}

/// A split's problems, and each op's answer distribution (answer → share).
type SplitProblems = (Vec<EvalProblem>, BTreeMap<u32, BTreeMap<String, f64>>);

/// Why an evaluation stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A problem could not be generated.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// Sampling failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// The run was interrupted.
    #[error("interrupted")]
    Interrupted,
}

/// A stable seed for a split's name, so renaming one split does not change another's problems.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The source restricted to one op.
fn at_op(source: &SourceSpec, op: u32) -> SourceSpec {
    SourceSpec {
        op_min: op,
        op_max: op,
        ..source.clone()
    }
}

/// Scores one completion against a problem's gold solution.
#[must_use]
pub fn judge(
    gold: &crate::tasks::trace::ParsedSolution,
    gold_answer: &str,
    completion: &str,
    format: &TraceFormat,
) -> Judgement {
    let s = score(gold, &parse(completion, format));
    Judgement {
        answer: outcome(completion, gold_answer, &format.answer_marker),
        verified: s.verified_correct,
        process_acc: s.process_acc,
        well_formed: well_formed(completion),
    }
}

/// The answer distribution of a split at one op: answer → share.
fn answer_distribution(
    generator: &Generator<'_>,
    source: &SourceSpec,
    seed: u64,
) -> Result<BTreeMap<String, f64>, GenerateError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..BASELINE_DRAWS {
        let mut rng = ChaCha8Rng::seed_from_u64(example_seed(seed, i));
        let problem = from_source(generator, source, &mut rng)?;
        *counts.entry(problem.rendered.answer).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|(a, c)| (a, c as f64 / BASELINE_DRAWS as f64))
        .collect())
}

/// Everything an evaluation needs besides the models.
#[derive(Debug)]
pub struct Evaluator<'p> {
    plan: &'p Plan,
    generator: Generator<'p>,
    tokenizer: &'p Tokenizer,
}

/// Reports progress: called with (problems done, problems in all).
pub type Tick<'a> = &'a mut dyn FnMut(u64, u64) -> bool;

impl<'p> Evaluator<'p> {
    /// An evaluator for a plan's problems, in a tokenizer's ids.
    #[must_use]
    pub fn new(plan: &'p Plan, tokenizer: &'p Tokenizer) -> Self {
        Self {
            plan,
            generator: Generator::new(plan),
            tokenizer,
        }
    }

    /// The problems of one split, with the guessing baselines of each op.
    fn split_problems(
        &self,
        eval: &EvalSpec,
        split: &SplitSpec,
    ) -> Result<SplitProblems, GenerateError> {
        let split_seed = eval.seed ^ name_seed(&split.name);
        let mut distributions = BTreeMap::new();
        for op in split.source.op_min..=split.source.op_max {
            let source = at_op(&split.source, op);
            distributions.insert(
                op,
                answer_distribution(&self.generator, &source, !split_seed ^ u64::from(op))?,
            );
        }
        let problems = self.problems(&split.source, eval.problems_per_op, split_seed)?;
        Ok((problems, distributions))
    }

    /// `per_op` problems of each op of `source`, a function of `seed`, the op and the index.
    pub(super) fn problems(
        &self,
        source: &SourceSpec,
        per_op: u32,
        seed: u64,
    ) -> Result<Vec<EvalProblem>, GenerateError> {
        let mut problems = Vec::new();
        for op in source.op_min..=source.op_max {
            let at = at_op(source, op);
            for i in 0..u64::from(per_op) {
                let problem_seed = example_seed(seed, (u64::from(op) << 32) | i);
                let mut rng = ChaCha8Rng::seed_from_u64(problem_seed);
                let problem = from_source(&self.generator, &at, &mut rng)?;
                let prompt = self.tokenizer.prompt_ids(&problem.rendered.prompt());
                problems.push(EvalProblem {
                    op,
                    context: problem.context,
                    prompt,
                    gold: problem.gold_graph(),
                    answer: problem.rendered.answer.clone(),
                    format_task: problem.task.0,
                    seed: example_seed(problem_seed, 1),
                });
            }
        }
        Ok(problems)
    }

    /// Evaluates `models` (stage name, model) on every split of `eval`; `tick` is called after
    /// each problem and stops the evaluation when it returns false.
    pub fn evaluate(
        &self,
        eval: &EvalSpec,
        models: &[(String, &Transformer)],
        tick: Tick<'_>,
    ) -> Result<Evaluation, EvalError> {
        let sampling = Sampling::completions(
            self.tokenizer,
            eval.temperature,
            eval.top_p,
            eval.max_new_tokens,
        );
        let formats = trace_formats(self.plan);
        let splits = eval
            .splits
            .iter()
            .map(|split| self.split_problems(eval, split))
            .collect::<Result<Vec<_>, _>>()?;
        let total = problem_count(eval, models.len());
        let mut done = 0;
        let mut rows = Vec::new();
        let mut samples = Vec::new();
        for (name, model) in models {
            for (split, (problems, distributions)) in eval.splits.iter().zip(&splits) {
                let mut outcomes = Vec::with_capacity(problems.len());
                // Several problems per sampler call, so that small sample counts still make
                // batches worth splitting across workers.
                let per_call = (BATCH_ROWS / (eval.samples as usize).max(1)).max(1);
                for chunk in problems.chunks(per_call) {
                    let requests: Vec<Request<'_>> = chunk
                        .iter()
                        .map(|p| Request {
                            prompt: &p.prompt,
                            n: eval.samples as usize,
                            seed: p.seed,
                        })
                        .collect();
                    let sampled = sample_batch(model, &requests, &sampling)?;
                    for (problem, completions) in chunk.iter().zip(sampled) {
                        let (outcome, record) = self.judge_problem(
                            problem,
                            &completions,
                            &formats[problem.format_task],
                            &distributions[&problem.op],
                        );
                        let count = |test: fn(&Judgement) -> bool| {
                            outcome.judgements.iter().filter(|j| test(j)).count()
                        };
                        let (verified, answered) = (count(|j| j.verified), count(|j| j.answer));
                        outcomes.push(outcome);
                        samples.extend(record.map(|(prompt, completion, judgement)| {
                            SampleRecord {
                                model: name.clone(),
                                split: split.name.clone(),
                                op: problem.op,
                                context: self.plan.contexts[problem.context.0].name.clone(),
                                prompt,
                                gold_answer: problem.answer.clone(),
                                completion,
                                judgement,
                                verified_samples: verified,
                                answer_samples: answered,
                                samples: completions.len(),
                            }
                        }));
                    }
                    done += chunk.len() as u64;
                    if !tick(done, total) {
                        return Err(EvalError::Interrupted);
                    }
                }
                rows.extend(self.rows(eval, name, split, &outcomes));
            }
        }
        Ok(Evaluation { rows, samples })
    }

    /// Scores one problem's completions; with the first completion's text and judgement for
    /// the samples file.
    fn judge_problem(
        &self,
        problem: &EvalProblem,
        completions: &[Vec<u32>],
        format: &TraceFormat,
        distribution: &BTreeMap<String, f64>,
    ) -> (ProblemOutcome, Option<(String, String, Judgement)>) {
        let texts: Vec<String> = completions
            .iter()
            .map(|ids| self.tokenizer.decode(ids))
            .collect();
        let judgements: Vec<Judgement> = texts
            .iter()
            .map(|text| judge(&problem.gold, &problem.answer, text, format))
            .collect();
        let first = texts.into_iter().next().zip(judgements.first().copied());
        let commonest = distribution
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(a, _)| a.as_str());
        let outcome = ProblemOutcome {
            op: problem.op,
            context: problem.context,
            judgements,
            commonest_hits: commonest == Some(problem.answer.as_str()),
            guess_probability: distribution.get(&problem.answer).copied().unwrap_or(0.0),
        };
        let record = first.map(|(completion, judgement)| {
            (
                self.tokenizer.decode(&problem.prompt[1..]),
                completion,
                judgement,
            )
        });
        (outcome, record)
    }

    /// The rows of one model on one split: per op, per op and context (when the split has
    /// several contexts), and the whole split.
    fn rows(
        &self,
        eval: &EvalSpec,
        model: &str,
        split: &SplitSpec,
        outcomes: &[ProblemOutcome],
    ) -> Vec<Row> {
        let mut rows = Vec::new();
        let contexts = &split.source.contexts;
        for op in split.source.op_min..=split.source.op_max {
            let of_op: Vec<&ProblemOutcome> = outcomes.iter().filter(|o| o.op == op).collect();
            rows.push(summarise(eval, model, split, Some(op), None, &of_op));
            if contexts.len() > 1 {
                for &context in contexts {
                    let subset: Vec<&ProblemOutcome> = of_op
                        .iter()
                        .copied()
                        .filter(|o| o.context == context)
                        .collect();
                    if !subset.is_empty() {
                        let name = self.plan.contexts[context.0].name.clone();
                        rows.push(summarise(eval, model, split, Some(op), Some(name), &subset));
                    }
                }
            }
        }
        let all: Vec<&ProblemOutcome> = outcomes.iter().collect();
        rows.push(summarise(eval, model, split, None, None, &all));
        rows
    }
}

/// Problems an eval samples from: models × ops × `problems_per_op`, over its splits.
#[must_use]
pub fn problem_count(eval: &EvalSpec, models: usize) -> u64 {
    let ops: u64 = eval
        .splits
        .iter()
        .map(|s| u64::from(s.source.op_max - s.source.op_min + 1))
        .sum();
    ops * u64::from(eval.problems_per_op) * models as u64
}

/// Averages problems into a row.
fn summarise(
    eval: &EvalSpec,
    model: &str,
    split: &SplitSpec,
    op: Option<u32>,
    context: Option<String>,
    outcomes: &[&ProblemOutcome],
) -> Row {
    let count = outcomes.len().max(1) as f64;
    let mean =
        |f: &dyn Fn(&ProblemOutcome) -> f64| outcomes.iter().map(|o| f(o)).sum::<f64>() / count;
    let per_sample = |f: &dyn Fn(&Judgement) -> f64| {
        mean(&|o: &ProblemOutcome| {
            o.judgements.iter().map(f).sum::<f64>() / o.judgements.len().max(1) as f64
        })
    };
    let ks = &eval.pass_at;
    Row {
        model: model.to_owned(),
        split: split.name.clone(),
        op,
        context,
        problems: outcomes.len(),
        samples: eval.samples,
        verified: with_intervals(ks, outcomes, &|o: &ProblemOutcome, k: u32| {
            let verified: Vec<bool> = o.judgements.iter().map(|j| j.verified).collect();
            pass_at_k_first(&verified, k as usize)
        }),
        answer: with_intervals(ks, outcomes, &|o: &ProblemOutcome, k: u32| {
            let correct = o.judgements.iter().filter(|j| j.answer).count() as u64;
            pass_at_k_unbiased(o.judgements.len() as u64, correct, u64::from(k))
        }),
        process_acc: per_sample(&|j: &Judgement| j.process_acc),
        well_formed: per_sample(&|j: &Judgement| f64::from(u8::from(j.well_formed))),
        guess_commonest: mean(&|o: &ProblemOutcome| f64::from(u8::from(o.commonest_hits))),
        guess_sampled: ks
            .iter()
            .map(|&k| PassAt {
                k,
                value: mean(&|o: &ProblemOutcome| {
                    1.0 - (1.0 - o.guess_probability).powi(k.try_into().unwrap_or(i32::MAX))
                }),
                interval: None,
            })
            .collect(),
    }
}

/// pass@k for every k, each problem scored by `score`, with its bootstrap interval over the
/// problems.
fn with_intervals(
    ks: &[u32],
    outcomes: &[&ProblemOutcome],
    score: &dyn Fn(&ProblemOutcome, u32) -> f64,
) -> Vec<PassAt> {
    let values: Vec<Vec<f64>> = outcomes
        .iter()
        .map(|o| ks.iter().map(|&k| score(o, k)).collect())
        .collect();
    if values.is_empty() {
        return ks
            .iter()
            .map(|&k| PassAt {
                k,
                value: 0.0,
                interval: None,
            })
            .collect();
    }
    super::stats::estimates(&[values], ks)
        .into_iter()
        .map(|e| PassAt {
            k: e.k,
            value: e.value,
            interval: Some((e.lo, e.hi)),
        })
        .collect()
}
