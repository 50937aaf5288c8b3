//! `rlp status`: where every stage instance and eval of a run directory stands, read from the
//! files runs leave (the plan, `done.json`, checkpoints, locks and their heartbeats, metrics,
//! manifests), so it works while runs are going, on any machine that sees the directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::lock::{lock_path, read_lock};
use super::{Manifest, Status};
use crate::plan::Plan;

/// A lock whose heartbeat is older than this is reported as abandoned.
const ABANDONED_AFTER_S: u64 = 60;

/// Where one stage instance or eval stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    /// Not started.
    Pending,
    /// Cannot start: a stage's parent failed or is itself blocked, or an eval's model has not
    /// finished.
    Blocked {
        /// The parent.
        on: String,
    },
    /// A run holds its lock and beats.
    Running {
        /// The run (`host:pid`).
        owner: String,
        /// The last step written to its metrics.
        step: u64,
        /// Of how many.
        of: u64,
        /// Seconds since the owner's last heartbeat.
        heartbeat_age_s: u64,
    },
    /// Stopped with a checkpoint; the next run resumes it.
    Interrupted {
        /// The last step written.
        step: u64,
        /// Of how many.
        of: u64,
    },
    /// Its lock's heartbeat stopped: its run was killed; the next run takes it over.
    Abandoned {
        /// The run that held it.
        owner: String,
        /// Seconds since its last heartbeat.
        heartbeat_age_s: u64,
    },
    /// Stopped by an error (as a cell's manifest recorded it).
    Failed {
        /// The error.
        error: String,
    },
    /// Finished.
    Finished {
        /// Optimizer steps.
        steps: u64,
        /// Seconds it took.
        seconds: f64,
    },
}

/// One line of the status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// `stage` or `eval`.
    pub kind: &'static str,
    /// The stage's or eval's name.
    pub name: String,
    /// The cells it belongs to (for an eval, its cell).
    pub cells: Vec<String>,
    /// Its directory under the run (`stages/<dir>` or `<cell>/eval`).
    pub dir: String,
    /// The Slurm job id, when `rlp submit` submitted it (its last submission).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Where it stands.
    #[serde(flatten)]
    pub state: State,
}

/// The last `step` in a metrics file.
fn last_step(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["step"].as_u64())
        })
        .unwrap_or(0)
}

/// The status of the run directory `run`, whose plan is `plan`: each stage instance in plan
/// order, then each cell's evals.
#[must_use]
pub fn status(run: &Path, plan: &Plan, stage_dir: &dyn Fn(usize) -> String) -> Vec<Line> {
    let manifests: Vec<Manifest> = plan
        .cells
        .iter()
        .filter_map(|c| {
            let text = std::fs::read_to_string(run.join(&c.name).join("manifest.json")).ok()?;
            serde_json::from_str(&text).ok()
        })
        .collect();
    // `rlp submit` records "<job name> <id>" per line; later submissions come later.
    let jobs: std::collections::HashMap<String, String> =
        std::fs::read_to_string(run.join("slurm").join("jobs.txt"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(name, id)| (name.to_owned(), id.trim().to_owned()))
            .collect();
    let mut lines: Vec<Line> = Vec::new();
    for (index, stage) in plan.stages.iter().enumerate() {
        let dir_name = stage_dir(index);
        let dir = run.join("stages").join(&dir_name);
        let steps = stage.spec.steps();
        let done = super::stage::finished(&dir, stage);
        let failed_file = std::fs::read_to_string(dir.join("failed.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let failed = failed_file.or_else(|| {
            manifests.iter().find_map(|m| {
                let record = m
                    .stages
                    .iter()
                    .find(|s| s.dir.ends_with(&dir_name) && s.status == Status::Failed)?;
                Some(
                    m.error
                        .clone()
                        .unwrap_or_else(|| format!("stage `{}` failed", record.name)),
                )
            })
        });
        let parent_line = stage.parent.and_then(|p| lines.get(p.0));
        let state = if let Some(done) = done {
            State::Finished {
                steps: done.steps,
                seconds: done.seconds,
            }
        } else if let Some(info) = read_lock(&lock_path(&dir)) {
            let age = super::unix_now().saturating_sub(info.heartbeat_unix);
            if age > ABANDONED_AFTER_S || super::lock::owner_gone(&info) {
                State::Abandoned {
                    owner: info.owner,
                    heartbeat_age_s: age,
                }
            } else {
                State::Running {
                    owner: info.owner,
                    step: last_step(&dir.join("metrics.jsonl")),
                    of: steps,
                    heartbeat_age_s: age,
                }
            }
        } else if let Some(error) = failed {
            State::Failed { error }
        } else if dir.join("checkpoint.safetensors").is_file() {
            State::Interrupted {
                step: last_step(&dir.join("metrics.jsonl")),
                of: steps,
            }
        } else if let Some(parent) =
            parent_line.filter(|p| matches!(p.state, State::Failed { .. } | State::Blocked { .. }))
        {
            State::Blocked {
                on: parent.name.clone(),
            }
        } else {
            State::Pending
        };
        lines.push(Line {
            kind: "stage",
            name: stage.name.clone(),
            cells: stage
                .cells
                .iter()
                .map(|&c| plan.cells[c].name.clone())
                .collect(),
            dir: format!("stages/{dir_name}"),
            job: jobs.get(&dir_name).cloned(),
            state,
        });
    }
    for cell in &plan.cells {
        let manifest = manifests.iter().find(|m| m.cell == cell.name);
        for eval in &cell.evals {
            let finished = manifest
                .and_then(|m| m.evals.iter().find(|e| e.name == eval.name))
                .map(|record| record.seconds)
                .or_else(|| {
                    // Run on its own (`--eval`), before the cell's other evals finished.
                    let models: Vec<String> = eval.models.iter().map(|m| stage_dir(m.0)).collect();
                    super::eval::table_done(eval, &models, &run.join(&cell.name)).then_some(0.0)
                });
            let blocked = eval.models.iter().find_map(|m| match &lines[m.0].state {
                State::Finished { .. } => None,
                _ => Some(lines[m.0].name.clone()),
            });
            let state = match (finished, blocked) {
                (Some(seconds), _) => State::Finished { steps: 0, seconds },
                (None, _) if manifest.is_some_and(|m| m.status == Status::Failed) => {
                    State::Failed {
                        error: manifest.and_then(|m| m.error.clone()).unwrap_or_default(),
                    }
                }
                (None, Some(on)) => State::Blocked { on },
                (None, None) => State::Pending,
            };
            lines.push(Line {
                kind: "eval",
                name: eval.name.clone(),
                cells: vec![cell.name.clone()],
                dir: format!("{}/eval", cell.name),
                job: jobs
                    .get(&format!("eval-{}-{}", cell.name, eval.name))
                    // Submitted by an rlp that made one job per cell's evals.
                    .or_else(|| jobs.get(&format!("eval-{}", cell.name)))
                    .cloned(),
                state,
            });
        }
    }
    lines
}

/// The status as a table for people.
#[must_use]
pub fn render(lines: &[Line]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for line in lines {
        let what = match &line.state {
            State::Pending => "pending".to_owned(),
            State::Blocked { on } => format!("blocked: `{on}` has not finished"),
            State::Running {
                owner,
                step,
                of,
                heartbeat_age_s,
            } => format!("running: step {step}/{of}, {owner}, heartbeat {heartbeat_age_s} s ago"),
            State::Interrupted { step, of } => {
                format!("interrupted at step {step}/{of}; resumable")
            }
            State::Abandoned {
                owner,
                heartbeat_age_s,
            } => format!(
                "abandoned by {owner} (heartbeat {heartbeat_age_s} s ago); the next run takes it over"
            ),
            State::Failed { error } => format!("failed: {error}"),
            State::Finished { steps, seconds } if line.kind == "stage" => {
                format!("finished: {steps} steps, {seconds:.0} s")
            }
            State::Finished { seconds, .. } => format!("finished: {seconds:.0} s"),
        };
        let cells = match line.cells.as_slice() {
            [one] => one.clone(),
            many => format!("{} cells", many.len()),
        };
        let job = line
            .job
            .as_ref()
            .map_or_else(String::new, |id| format!(" (job {id})"));
        let _ = writeln!(
            out,
            "{:<6} {:<10} {:<28} {:<44} {what}{job}",
            line.kind, line.name, line.dir, cells
        );
    }
    out
}

/// A run directory as a later command reads it: its plan, its tokenizer file, and where each
/// stage instance's directory is.
#[derive(Debug)]
pub struct RunDir {
    /// `runs/<name>`.
    pub root: PathBuf,
    /// The plan it ran.
    pub plan: Plan,
    /// Its `tokenizer.json`, as written.
    pub tokenizer_json: Vec<u8>,
    tokenizer_hash: String,
}

impl RunDir {
    /// Reads the plan and tokenizer of the run directory `run`.
    ///
    /// # Errors
    /// They cannot be read: not a run directory.
    pub fn open(run: &Path) -> Result<Self, String> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let tokenizer_json = read(&run.join("tokenizer.json"))
            .map_err(|e| format!("{e} (is it a run directory, `runs/<name>`?)"))?;
        let plan_path = run.join("plan.json");
        let plan_path = if plan_path.is_file() {
            plan_path
        } else {
            // Run directories written before the plan was kept at their top: a cell's copy.
            std::fs::read_dir(run)
                .map_err(|e| format!("cannot read {}: {e}", run.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path().join("plan.json"))
                .find(|p| p.is_file())
                .ok_or_else(|| format!("{} holds no plan.json", run.display()))?
        };
        let plan: Plan = serde_json::from_slice(&read(&plan_path)?)
            .map_err(|e| format!("{}: {e}", plan_path.display()))?;
        Ok(Self {
            root: run.to_owned(),
            plan,
            tokenizer_hash: super::sha256_hex(&tokenizer_json),
            tokenizer_json,
        })
    }

    /// The directory name of stage instance `id` under `stages/`.
    #[must_use]
    pub fn stage_dir_name(&self, id: usize) -> String {
        super::stage_dir_name(&self.plan.stages[id], &self.tokenizer_hash)
    }

    /// The directory of stage instance `id`.
    #[must_use]
    pub fn stage_dir(&self, id: usize) -> PathBuf {
        self.root.join("stages").join(self.stage_dir_name(id))
    }
}

/// Where every stage instance and eval of the run directory `run` stands ([`status()`]).
///
/// # Errors
/// The run's plan or tokenizer cannot be read: not a run directory.
pub fn run_status(run: &Path) -> Result<(Plan, Vec<Line>), String> {
    let dir = RunDir::open(run)?;
    let lines = status(run, &dir.plan, &|i| dir.stage_dir_name(i));
    Ok((dir.plan, lines))
}
