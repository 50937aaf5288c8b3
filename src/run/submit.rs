//! The plan's work as scheduler jobs: one job per distinct stage instance that has not finished
//! (`rlp run FILE --stage NAME --cell CELL`), after its parent's job, and one job per cell for
//! its evals (`rlp run FILE --cell CELL`, which reuses the finished stages), after the jobs of
//! its stages. A shared base is one job that every cell's later jobs wait for.

use crate::plan::{Plan, StageId};

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
    /// One cell's evals (its stages finished by then).
    Cell {
        /// The cell.
        cell: String,
    },
}

/// One job: its name, its work, and the jobs it waits for (indices into the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// A name unique in the run: the stage's directory name, or `eval-<cell>`.
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
            Work::Cell { cell } => vec!["--cell".to_owned(), cell.clone()],
        }
    }
}

/// The jobs of `plan`, parents before children, given which stage instances and cells have
/// finished (they get no job) and each instance's directory name.
#[must_use]
pub fn jobs(
    plan: &Plan,
    finished: &dyn Fn(StageId) -> bool,
    cell_finished: &dyn Fn(usize) -> bool,
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
        if cell_finished(index) {
            continue;
        }
        let mut after: Vec<usize> = cell.stages.iter().filter_map(|s| job_of[s.0]).collect();
        after.sort_unstable();
        after.dedup();
        jobs.push(Job {
            name: format!("eval-{}", cell.name),
            work: Work::Cell {
                cell: cell.name.clone(),
            },
            after,
        });
    }
    jobs
}
