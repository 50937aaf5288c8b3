//! The plan's work as scheduler jobs: one job per distinct stage instance that has not finished
//! (`rlp run FILE --stage NAME --cell CELL`), after its parent's job, and one job per eval of
//! each cell (`rlp run FILE --eval NAME --cell CELL`), after the jobs of the stages it
//! evaluates. A shared base is one job that every cell's later jobs wait for.

use std::path::{Path, PathBuf};

use crate::plan::{EvalSpec, Plan, StageId};

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// One stage instance, named by a cell that runs it.
    Stage {
        /// The instance.
        id: StageId,
        /// A cell that runs it (for `--cell`).
        cell: String,
    },
    /// One eval of one cell (the stages it evaluates finished by then).
    Eval {
        /// The cell.
        cell: String,
        /// The eval.
        eval: String,
    },
}

/// One job: its name, its work, and the jobs it waits for (indices into the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// A name unique in the run: the stage's directory name, or `eval-<cell>-<eval>`.
    pub name: String,
    /// What it runs.
    pub work: Work,
    /// Jobs that must succeed first.
    pub after: Vec<usize>,
}

impl Job {
    /// The `rlp run` arguments after the file and `--out`.
    #[must_use]
    pub fn run_args(&self, plan: &Plan) -> Vec<String> {
        match &self.work {
            Work::Stage { id, cell } => vec![
                "--stage".to_owned(),
                plan.stages[id.0].name.clone(),
                "--cell".to_owned(),
                cell.clone(),
            ],
            Work::Eval { cell, eval } => vec![
                "--eval".to_owned(),
                eval.clone(),
                "--cell".to_owned(),
                cell.clone(),
            ],
        }
    }
}

/// The jobs of `plan`, parents before children, given which stage instances and which evals
/// of which cells have finished (they get no job) and each instance's directory name.
#[must_use]
pub fn jobs(
    plan: &Plan,
    finished: &dyn Fn(StageId) -> bool,
    eval_finished: &dyn Fn(usize, &EvalSpec) -> bool,
    stage_dir: &dyn Fn(StageId) -> String,
) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    // Stage instance → its job, when it has one.
    let mut job_of: Vec<Option<usize>> = vec![None; plan.stages.len()];
    // Plan order puts every parent before its children.
    for stage in &plan.stages {
        if finished(stage.id) {
            continue;
        }
        let cell = plan.cells[stage.cells[0]].name.clone();
        let after = stage.parent.and_then(|p| job_of[p.0]).into_iter().collect();
        job_of[stage.id.0] = Some(jobs.len());
        jobs.push(Job {
            name: stage_dir(stage.id),
            work: Work::Stage { id: stage.id, cell },
            after,
        });
    }
    for (index, cell) in plan.cells.iter().enumerate() {
        for eval in &cell.evals {
            if eval_finished(index, eval) {
                continue;
            }
            let mut after: Vec<usize> = eval.models.iter().filter_map(|s| job_of[s.0]).collect();
            after.sort_unstable();
            after.dedup();
            jobs.push(Job {
                name: format!("eval-{}-{}", cell.name, eval.name),
                work: Work::Eval {
                    cell: cell.name.clone(),
                    eval: eval.name.clone(),
                },
                after,
            });
        }
    }
    jobs
}

/// The run directory of `plan` under `out`, prepared as a run prepares it (tokenizer, plan),
/// and the scheduler jobs of its unfinished work ([`jobs`]).
///
/// # Errors
/// The directory cannot be written.
pub fn submission(plan: &Plan, out: &Path) -> Result<(PathBuf, Vec<Job>), super::RunError> {
    let options = super::RunOptions {
        out: out.to_owned(),
        device: candle_core::Device::Cpu,
        threads: 1,
        interrupt: std::sync::Arc::default(),
    };
    let input = super::Input {
        file: String::new(),
        sha256: String::new(),
    };
    let runner = super::Runner::new(plan, &input, &options, &super::Silent)?;
    let finished = |id: StageId| runner.finished(id);
    let eval_finished = |index: usize, eval: &EvalSpec| {
        runner.eval_done(eval, &runner.root.join(&plan.cells[index].name))
    };
    let jobs = jobs(plan, &finished, &eval_finished, &|id| {
        runner.stage_dir(id.0)
    });
    Ok((runner.root.clone(), jobs))
}
