//! The task engine: a plan's `task` + source → problems with gold step-by-step solutions,
//! and the verifier that checks any solution step by step.
//!
//! [`generate`] grows a dependency graph with an exact op(G) ([`graph`]), [`render`] writes it
//! through a context and a phrasing, [`trace`] parses a solution back into a graph, and
//! [`verify`] compares it with the gold one (`ProcessAcc`, `VerifiedCorrect`, `R_pv`). [`stream`]
//! draws deterministic example streams from a stage's data.

pub mod arith;
pub mod generate;
pub mod graph;
pub mod linear;
pub mod render;
pub mod reward;
pub mod stream;
pub mod trace;
pub mod verify;

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use self::generate::Rejection;
use self::graph::Graph;
use self::render::Rendered;
use self::trace::{ParsedNode, ParsedSolution, TraceFormat};
use crate::plan::template::Template;
use crate::plan::{ContextId, Mode, Plan, TaskId};

/// Attempts before giving up on one problem (a request the task cannot meet).
const MAX_ATTEMPTS: u32 = 1000;

/// One generated problem.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The task.
    pub task: TaskId,
    /// The context.
    pub context: ContextId,
    /// Forward or reverse.
    pub mode: Mode,
    /// op(G), exactly as requested.
    pub op: u32,
    /// The graph.
    pub graph: Graph,
    /// The text.
    pub rendered: Rendered,
    /// Attempts it took (1 = first try), for acceptance rates.
    pub attempts: u32,
}

/// A request that cannot be met.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("no problem with op {op} in {attempts} attempts (last failure: {last:?})")]
pub struct GenerateError {
    /// The op requested.
    pub op: u32,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last one failed.
    pub last: Rejection,
}

/// Generates problems for one plan; compiles each phrasing's templates once.
#[derive(Debug)]
pub struct Generator<'p> {
    /// The plan.
    pub plan: &'p Plan,
    /// Each phrasing's templates, compiled, by [`crate::plan::PhrasingId`].
    templates: Vec<Vec<Template>>,
}

impl<'p> Generator<'p> {
    /// A generator for `plan`.
    #[must_use]
    pub fn new(plan: &'p Plan) -> Self {
        let templates = plan
            .phrasings
            .iter()
            .map(|p| {
                p.templates
                    .iter()
                    .map(|(_, t)| Template::compile(t))
                    .collect()
            })
            .collect();
        Self { plan, templates }
    }

    /// The problem of `seed`: same plan, arguments and seed, same problem, anywhere.
    pub fn generate(
        &self,
        task: TaskId,
        context: ContextId,
        mode: Mode,
        op: u32,
        seed: u64,
    ) -> Result<Problem, GenerateError> {
        let task_spec = &self.plan.tasks[task.0];
        let context_spec = &self.plan.contexts[context.0];
        let phrasing = &self.plan.phrasings[task_spec.phrasing.0];
        let compiled = &self.templates[task_spec.phrasing.0];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut last = Rejection::Size;
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome =
                generate::attempt(task_spec, context_spec, mode, op, &mut rng).and_then(|g| {
                    render::render(
                        &g,
                        context_spec,
                        phrasing,
                        compiled,
                        mode,
                        task_spec.sentences,
                        &mut rng,
                    )
                    .map(|r| (g, r))
                });
            match outcome {
                Ok((generated, rendered)) => {
                    return Ok(Problem {
                        task,
                        context,
                        mode,
                        op,
                        graph: generated.graph,
                        rendered,
                        attempts: attempt,
                    });
                }
                Err(rejection) => last = rejection,
            }
        }
        Err(GenerateError {
            op,
            attempts: MAX_ATTEMPTS,
            last,
        })
    }
}

/// Generates the problem of `seed` (see [`Generator`], which is faster for many problems).
pub fn generate(
    plan: &Plan,
    task: TaskId,
    context: ContextId,
    mode: Mode,
    op: u32,
    seed: u64,
) -> Result<Problem, GenerateError> {
    Generator::new(plan).generate(task, context, mode, op, seed)
}

impl Problem {
    /// The graph as a parsed solution must look: names, values, parents and the answer.
    #[must_use]
    pub fn gold_graph(&self) -> ParsedSolution {
        let names = &self.rendered.names;
        let nodes = self
            .graph
            .order
            .iter()
            .map(|&n| {
                let node = &self.graph.nodes[n];
                let deps: BTreeSet<String> =
                    node.params.iter().map(|&p| names[p].clone()).collect();
                let var = self.rendered.vars[n];
                (
                    names[n].clone(),
                    ParsedNode {
                        var,
                        value: Some(node.value as f64),
                        deps,
                        consistent: true,
                    },
                )
            })
            .collect();
        let answer = self.rendered.answer.parse().ok();
        ParsedSolution { nodes, answer }
    }

    /// The reference's record: `{problem, question, solution, answer, op, id, template, mode}`.
    #[must_use]
    pub fn record(&self, plan: &Plan, id: u64) -> Record {
        Record {
            problem: self.rendered.problem.clone(),
            question: self.rendered.question.clone(),
            solution: self.rendered.solution.clone(),
            answer: self.rendered.answer.clone(),
            op: self.op,
            id,
            template: plan.contexts[self.context.0].name.clone(),
            mode: match self.mode {
                Mode::Forward => "normalforward",
                Mode::Reverse => "forwardreverse",
            },
            text: self.rendered.text(),
        }
    }
}

/// One JSONL record of `rlp data`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Record {
    /// The problem sentences.
    pub problem: String,
    /// The question.
    pub question: String,
    /// The gold solution, ending with the answer line.
    pub solution: String,
    /// The answer.
    pub answer: String,
    /// op(G).
    pub op: u32,
    /// Position in the stream.
    pub id: u64,
    /// The context's name (the reference calls it the template).
    pub template: String,
    /// `normalforward` or `forwardreverse`, as the reference writes it.
    pub mode: &'static str,
    /// The training text in the reference layout.
    pub text: String,
}

/// The trace format of a task's phrasing.
#[must_use]
pub fn trace_format(plan: &Plan, task: TaskId) -> TraceFormat {
    TraceFormat::of(&plan.phrasings[plan.tasks[task.0].phrasing.0])
}

/// The trace format of every task of the plan, indexed by task id.
#[must_use]
pub fn trace_formats(plan: &Plan) -> Vec<TraceFormat> {
    (0..plan.tasks.len())
        .map(|t| trace_format(plan, TaskId(t)))
        .collect()
}
