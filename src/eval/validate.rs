//! Validation during RL: the policy's greedy completion of each of a fixed set of problems,
//! scored step by step, as the reference validates its policy every 20 steps. The problems are
//! a function of the plan's seed and the source alone, so every `rl` stage validating on the
//! same source (another seed, another reward) sees the same problems.

use std::collections::BTreeMap;

use super::runner::{BATCH_ROWS, EvalProblem, Evaluator, judge};
use crate::model::Transformer;
use crate::model::sample::{Request, Sampling, sample_batch};
use crate::plan::{Plan, ValidateSpec};
use crate::tasks::trace::TraceFormat;
use crate::tasks::{GenerateError, trace_formats};
use crate::tokenizer::Tokenizer;

/// The fixed problems of a `validate` line and how to answer them.
#[derive(Debug)]
pub struct Validator<'p> {
    tokenizer: &'p Tokenizer,
    problems: Vec<EvalProblem>,
    formats: Vec<TraceFormat>,
    sampling: Sampling,
}

/// Shares of the problems answered right (`answer`) and right at every step (`verified`), over
/// all of them and per op, with the mean share of steps right and the mean completion length.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Process-verified accuracy over every problem.
    pub verified: f64,
    /// Answer accuracy over every problem.
    pub answer: f64,
    /// Mean process accuracy (the share of a solution's steps that are right: partial credit).
    pub process: f64,
    /// Mean completion length in tokens.
    pub length: f64,
    /// Op → (verified, answer).
    pub by_op: BTreeMap<u32, (f64, f64)>,
    /// The completion of the first problem, to read what the policy writes as it trains.
    pub first_completion: String,
}

impl<'p> Validator<'p> {
    /// Generates the problems of `spec`; completions get at most `max_new_tokens`.
    pub fn new(
        plan: &'p Plan,
        tokenizer: &'p Tokenizer,
        spec: &ValidateSpec,
        max_new_tokens: u32,
    ) -> Result<Self, GenerateError> {
        let problems = Evaluator::new(plan, tokenizer).problems(
            &spec.source,
            spec.problems_per_op,
            spec.seed,
        )?;
        Ok(Self {
            tokenizer,
            problems,
            formats: trace_formats(plan),
            sampling: Sampling::completions(tokenizer, 0.0, 1.0, max_new_tokens),
        })
    }

    /// Scores `model`'s greedy completion of every problem, sampled in batches of the eval's
    /// size (a paper-scale validation has thousands of problems).
    pub fn measure(&self, model: &Transformer) -> candle_core::Result<Validation> {
        let mut completions = Vec::with_capacity(self.problems.len());
        for chunk in self.problems.chunks(BATCH_ROWS) {
            let requests: Vec<Request<'_>> = chunk
                .iter()
                .map(|p| Request {
                    prompt: &p.prompt,
                    n: 1,
                    seed: p.seed,
                })
                .collect();
            completions.extend(sample_batch(model, &requests, &self.sampling)?);
        }
        // Op → (problems, verified, answered).
        let mut counts: BTreeMap<u32, (u32, u32, u32)> = BTreeMap::new();
        let (mut process, mut length) = (0.0, 0usize);
        let mut first_completion = None;
        for (problem, completion) in self.problems.iter().zip(completions) {
            let ids = completion.first().map_or(&[][..], Vec::as_slice);
            let text = self.tokenizer.decode(ids);
            length += ids.len();
            let judgement = judge(
                &problem.gold,
                &problem.answer,
                &text,
                &self.formats[problem.format_task],
            );
            process += judgement.process_acc;
            first_completion.get_or_insert(text);
            let c = counts.entry(problem.op).or_default();
            c.0 += 1;
            c.1 += u32::from(judgement.verified);
            c.2 += u32::from(judgement.answer);
        }
        let share = |part: u32, all: u32| f64::from(part) / f64::from(all.max(1));
        let (all, verified, answered) = counts
            .values()
            .fold((0, 0, 0), |(n, v, a), c| (n + c.0, v + c.1, a + c.2));
        let problems = self.problems.len().max(1) as f64;
        Ok(Validation {
            verified: share(verified, all),
            answer: share(answered, all),
            process: process / problems,
            length: length as f64 / problems,
            by_op: counts
                .iter()
                .map(|(&op, c)| (op, (share(c.1, c.0), share(c.2, c.0))))
                .collect(),
            first_completion: first_completion.unwrap_or_default(),
        })
    }
}
