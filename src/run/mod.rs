//! `rlp run`: executing a plan into a run directory.
//!
//! ```text
//! runs/<plan>/
//!   tokenizer.json                  the plan's vocabulary
//!   stages/<stage>-<key>/           one directory per distinct stage (cells share them)
//!     metrics.jsonl                 one row per step: loss, lr, tokens, tok/s, held-out loss
//!     checkpoint.safetensors        while running: weights, AdamW moments, step, stream position
//!     model.safetensors             when finished: the weights (Qwen2 names)
//!     done.json                     when finished: steps, tokens, losses, timing
//!   <cell>/
//!     plan.json                     the resolved plan
//!     manifest.json                 version, input hash, seeds, device, timings, status
//!     metrics.jsonl                 the cell's stage metrics, then its eval rows
//!     eval/<eval>.json|.csv         tables: per model, split, op and context
//!     eval/<eval>-samples.jsonl     per model and problem: prompt, first completion, scores
//!     eval/<eval>-<split>.svg       pass@k against op
//! ```
//!
//! A stage's `key` hashes its content hash (spec, parent, seed) with the tokenizer, so a stage
//! with a `done.json` is finished work and is not re-run, and an interrupted stage resumes from
//! its checkpoint. A stage this run lacks but another run directory under the same `--out` has
//! finished (another pipeline that declares the same stage) is copied from there, so
//! experiments that share a base train it once. Evaluations are skipped likewise when their table records the same key.

mod error;
mod eval;
mod files;
pub mod lock;
mod rl;
mod stage;
pub mod status;
pub mod submit;
mod train;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use candle_core::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::error::RunError;
pub use self::files::write_atomically;
pub use self::stage::{FilterRecord, StageDone};
pub use self::status::{RunDir, run_status};
pub use self::submit::submission;
use crate::eval::runner::Row;
use crate::plan::{CellPlan, Checkpoint, EvalSpec, Plan, StageId, StagePlan, StageSpec};
use crate::tokenizer::Tokenizer;

/// The version of `manifest.json`.
pub const MANIFEST_SCHEMA: u32 = 1;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The directory run directories go under (`runs`).
    pub out: PathBuf,
    /// Where tensors live.
    pub device: Device,
    /// Threads for candle's kernels (recorded in the manifest).
    pub threads: usize,
    /// Set (by Ctrl-C) to stop at the next step, after a checkpoint.
    pub interrupt: Arc<AtomicBool>,
}

/// Progress of long steps. `rlp run` draws bars; tests stay silent.
pub trait Observer {
    /// A task of `total` units begins.
    fn begin(&self, label: &str, total: u64);
    /// `done` units of the current task are done.
    fn advance(&self, done: u64, message: &str);
    /// The current task ended.
    fn end(&self, message: &str);
    /// A line of information.
    fn note(&self, message: &str);
}

/// An observer that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64, _: &str) {}
    fn end(&self, _: &str) {}
    fn note(&self, _: &str) {}
}

/// How a stage or the run ended, as the manifest records it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In progress (or killed without a chance to say so).
    Running,
    /// Done in this run.
    Finished,
    /// Found finished in an earlier run.
    Reused,
    /// Stopped by Ctrl-C; resumable.
    Interrupted,
    /// Stopped by an error.
    Failed,
}

/// A stage as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    /// The stage's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its seed.
    pub seed: u64,
    /// Its content hash (from the plan).
    pub hash: String,
    /// Its directory, relative to the cell directory.
    pub dir: String,
    /// How it ended.
    pub status: Status,
    /// What it left, once finished.
    pub done: Option<StageDone>,
}

/// An eval as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalRecord {
    /// The eval's name.
    pub name: String,
    /// Its seed.
    pub seed: u64,
    /// How it ended.
    pub status: Status,
    /// Seconds it took in the run that computed it.
    pub seconds: f64,
    /// Its files, relative to the cell directory.
    pub files: Vec<String>,
}

/// `manifest.json` of a cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Version of this structure.
    pub schema: u32,
    /// The rlp version that ran it.
    pub rlp_version: String,
    /// The experiment.
    pub name: String,
    /// The cell.
    pub cell: String,
    /// The cell's sweep bindings.
    pub bindings: Vec<(String, String)>,
    /// The input file as given.
    pub input: String,
    /// SHA-256 of the input file's bytes.
    pub input_sha256: String,
    /// The plan's root seed.
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Kernel threads.
    pub threads: usize,
    /// Unix time the run started.
    pub started_unix: u64,
    /// Unix time of the last update.
    pub updated_unix: u64,
    /// Wall seconds of this invocation, so far.
    pub seconds: f64,
    /// How the run ended (so far).
    pub status: Status,
    /// The error, if it failed.
    pub error: Option<String>,
    /// The cell's stages in order.
    pub stages: Vec<StageRecord>,
    /// The cell's evals.
    pub evals: Vec<EvalRecord>,
}

/// What was run: the input's name and bytes' hash.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file as given on the command line.
    pub file: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// The report of one cell.
#[derive(Debug, Clone)]
pub struct CellReport {
    /// The cell's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its eval tables, by eval.
    pub evals: Vec<(EvalSpec, Vec<Row>)>,
}

/// SHA-256 of bytes, hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn create_dir(path: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(path).map_err(|e| RunError::io(path, &e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    write_atomically(path, bytes).map_err(|e| RunError::io(path, &e))
}

/// Runs every cell of `plan` under `options.out/<plan name>/`.
pub fn execute(
    plan: &Plan,
    input: &Input,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<Vec<CellReport>, RunError> {
    let runner = Runner::new(plan, input, options, observer)?;
    plan.cells.iter().map(|cell| runner.cell(cell)).collect()
}

/// Runs one cell of `plan` (`plan.cells[index]`), its stages and evals, as [`execute`] does.
///
/// # Errors
/// As [`execute`].
pub fn execute_cell(
    plan: &Plan,
    input: &Input,
    options: &RunOptions,
    observer: &dyn Observer,
    index: usize,
) -> Result<CellReport, RunError> {
    let cell = plan
        .cells
        .get(index)
        .ok_or_else(|| RunError::Internal(format!("no cell {index}")))?;
    Runner::new(plan, input, options, observer)?.cell(cell)
}

/// A stage's directory name: its name and a key over its content hash and the SHA-256 (hex)
/// of the run directory's `tokenizer.json`.
fn stage_dir_name(stage: &StagePlan, tokenizer_hash: &str) -> String {
    let key = sha256_hex(format!("{}\n{tokenizer_hash}", stage.hash).as_bytes());
    format!("{}-{}", stage.name, &key[..12])
}

/// Brings one stage instance of `plan` to finished, as [`execute`] would in a cell that runs
/// it, and nothing else: no eval, no cell manifest (a scheduler's unit of work). Its parent
/// must have finished.
///
/// # Errors
/// [`RunError::ParentUnfinished`], or whatever training the stage raises.
pub fn execute_stage(
    plan: &Plan,
    input: &Input,
    options: &RunOptions,
    observer: &dyn Observer,
    id: StageId,
) -> Result<(Status, StageDone), RunError> {
    let runner = Runner::new(plan, input, options, observer)?;
    let stage = &plan.stages[id.0];
    if let Some(parent) = stage.parent {
        if !runner.finished(parent) {
            return Err(RunError::ParentUnfinished {
                stage: stage.name.clone(),
                parent: plan.stages[parent.0].name.clone(),
            });
        }
    }
    runner.stage(id)
}

/// Runs one eval of one cell (`plan.cells[cell]`) and nothing else: its models must have
/// finished (no stage is trained). Once every eval of the cell has its table, the cell's
/// manifest and metrics are written, as [`execute_cell`] writes them (everything reused);
/// until then the cell is left without them, so that evals of one cell may run at once.
///
/// # Errors
/// [`RunError::ModelUnfinished`], or whatever evaluating raises.
pub fn execute_eval(
    plan: &Plan,
    input: &Input,
    options: &RunOptions,
    observer: &dyn Observer,
    cell: usize,
    eval: &str,
) -> Result<(Status, Option<CellReport>), RunError> {
    let runner = Runner::new(plan, input, options, observer)?;
    let cell = plan
        .cells
        .get(cell)
        .ok_or_else(|| RunError::Internal(format!("no cell {cell}")))?;
    let spec =
        cell.evals.iter().find(|e| e.name == eval).ok_or_else(|| {
            RunError::Internal(format!("cell `{}` has no eval `{eval}`", cell.name))
        })?;
    if let Some(&model) = spec.models.iter().find(|&&m| !runner.finished(m)) {
        return Err(RunError::ModelUnfinished {
            eval: eval.to_owned(),
            cell: cell.name.clone(),
            stage: plan.stages[model.0].name.clone(),
        });
    }
    let dir = runner.root.join(&cell.name);
    create_dir(&dir.join("eval"))?;
    let (_, status) = runner.eval(spec, &dir)?;
    let cell_done = cell.evals.iter().all(|e| runner.eval_done(e, &dir))
        && cell.stages.iter().all(|&s| runner.finished(s));
    let report = if cell_done {
        Some(runner.cell(cell)?)
    } else {
        None
    };
    Ok((status, report))
}

/// The state shared by a run's cells.
struct Runner<'a> {
    plan: &'a Plan,
    input: &'a Input,
    options: &'a RunOptions,
    observer: &'a dyn Observer,
    root: PathBuf,
    tokenizer: Tokenizer,
    tokenizer_hash: String,
}

impl<'a> Runner<'a> {
    /// The run directory `options.out/<plan name>/` with its tokenizer written.
    fn new(
        plan: &'a Plan,
        input: &'a Input,
        options: &'a RunOptions,
        observer: &'a dyn Observer,
    ) -> Result<Self, RunError> {
        // Before any training or sampling, so that every stage and eval runs in one mode.
        crate::model::denormals::flush_to_zero();
        let root = options.out.join(&plan.name);
        create_dir(&root.join("stages"))?;
        let tokenizer = Tokenizer::for_plan(plan);
        let tokenizer_json = serde_json::to_vec(&tokenizer)
            .map_err(|e| RunError::Internal(format!("tokenizer JSON: {e}")))?;
        write(&root.join("tokenizer.json"), &tokenizer_json)?;
        // For `rlp status`, which must read the plan before any cell has a directory.
        write(&root.join("plan.json"), &files::pretty_json(plan)?)?;
        Ok(Runner {
            plan,
            input,
            options,
            observer,
            root,
            tokenizer_hash: sha256_hex(&tokenizer_json),
            tokenizer,
        })
    }

    /// A stage's directory name.
    fn stage_dir(&self, stage: usize) -> String {
        stage_dir_name(&self.plan.stages[stage], &self.tokenizer_hash)
    }

    /// Whether a stage instance's directory holds its finished result.
    fn finished(&self, id: StageId) -> bool {
        stage::finished(&self.stage_path(id), &self.plan.stages[id.0]).is_some()
    }

    /// A stage's directory.
    fn stage_path(&self, id: StageId) -> PathBuf {
        self.root.join("stages").join(self.stage_dir(id.0))
    }

    fn cell(&self, cell: &CellPlan) -> Result<CellReport, RunError> {
        let started = Instant::now();
        let dir = self.root.join(&cell.name);
        create_dir(&dir.join("eval"))?;
        write(&dir.join("plan.json"), &files::pretty_json(self.plan)?)?;
        let mut manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            rlp_version: env!("CARGO_PKG_VERSION").to_owned(),
            name: self.plan.name.clone(),
            cell: cell.name.clone(),
            bindings: cell.bindings.clone(),
            input: self.input.file.clone(),
            input_sha256: self.input.sha256.clone(),
            seed: self.plan.seed,
            device: if self.options.device.is_cuda() {
                "cuda"
            } else {
                "cpu"
            }
            .to_owned(),
            threads: self.options.threads,
            started_unix: unix_now(),
            updated_unix: unix_now(),
            seconds: 0.0,
            status: Status::Running,
            error: None,
            stages: cell
                .stages
                .iter()
                .map(|&id| {
                    let stage = &self.plan.stages[id.0];
                    StageRecord {
                        name: stage.name.clone(),
                        kind: stage.spec.keyword().to_owned(),
                        seed: stage.seed,
                        hash: stage.hash.clone(),
                        dir: format!("../stages/{}", self.stage_dir(id.0)),
                        status: Status::Running,
                        done: None,
                    }
                })
                .collect(),
            evals: Vec::new(),
        };
        let save = |manifest: &mut Manifest| {
            manifest.updated_unix = unix_now();
            manifest.seconds = started.elapsed().as_secs_f64();
            write(&dir.join("manifest.json"), &files::pretty_json(manifest)?)
        };
        save(&mut manifest)?;
        let outcome = self.cell_work(cell, &dir, &mut manifest, &save);
        match &outcome {
            Ok(_) => manifest.status = Status::Finished,
            Err(error) => {
                manifest.status = match error {
                    RunError::Interrupted { .. } | RunError::EvalInterrupted { .. } => {
                        Status::Interrupted
                    }
                    _ => Status::Failed,
                };
                manifest.error = Some(error.to_string());
                for stage in &mut manifest.stages {
                    if stage.status == Status::Running {
                        stage.status = manifest.status;
                        break;
                    }
                }
            }
        }
        save(&mut manifest)?;
        let evals = outcome?;
        cell_metrics(&dir, &manifest, &evals)?;
        Ok(CellReport {
            name: cell.name.clone(),
            dir,
            manifest,
            evals,
        })
    }

    /// The stages, then the evals, of one cell.
    fn cell_work(
        &self,
        cell: &CellPlan,
        dir: &Path,
        manifest: &mut Manifest,
        save: &dyn Fn(&mut Manifest) -> Result<(), RunError>,
    ) -> Result<Vec<(EvalSpec, Vec<Row>)>, RunError> {
        for (position, &id) in cell.stages.iter().enumerate() {
            let (status, done) = self.stage(id)?;
            manifest.stages[position].status = status;
            manifest.stages[position].done = Some(done);
            save(manifest)?;
        }
        let mut evals = Vec::new();
        for eval in &cell.evals {
            let started = Instant::now();
            let (rows, status) = self.eval(eval, dir)?;
            let mut files = vec![
                format!("eval/{}.json", eval.name),
                format!("eval/{}.csv", eval.name),
                format!("eval/{}-samples.jsonl", eval.name),
            ];
            files.extend(
                eval.splits
                    .iter()
                    .map(|s| format!("eval/{}-{}.svg", eval.name, s.name)),
            );
            manifest.evals.push(EvalRecord {
                name: eval.name.clone(),
                seed: eval.seed,
                status,
                seconds: started.elapsed().as_secs_f64(),
                files,
            });
            save(manifest)?;
            evals.push((eval.clone(), rows));
        }
        Ok(evals)
    }

    /// Brings one stage instance to finished: reused when its directory holds a finished
    /// result, else adopted from a sibling run, else trained (under its lock).
    fn stage(&self, id: StageId) -> Result<(Status, StageDone), RunError> {
        let stage = &self.plan.stages[id.0];
        let dir_name = self.stage_dir(id.0);
        let stage_dir = self.root.join("stages").join(&dir_name);
        let done_path = stage_dir.join("done.json");
        let finished = stage::finished(&stage_dir, stage).is_some();
        // Held while this run adopts, trains or checks the stage: another run that reaches
        // the same instance waits, then reuses it.
        let _lock = if finished {
            None
        } else {
            Some(self.lock_stage(stage, &stage_dir)?)
        };
        if !done_path.is_file()
            && let Some(source) =
                files::adopt_finished_stage(&self.options.out, &self.root, &dir_name, &stage_dir)?
        {
            self.observer.note(&format!(
                "stage `{}`: the same stage finished in {}, copied",
                stage.name,
                source.display()
            ));
        }
        let reused = stage::read_done(&stage_dir).filter(|done| {
                let fits = stage::finished(&stage_dir, stage).is_some();
                if !fits {
                    self.forget_descendants(stage);
                    self.forget_evals(stage);
                    self.observer.note(&format!(
                        "stage `{}`: finished in an earlier run with {} steps where the plan now takes {}, trained again",
                        stage.name,
                        done.steps,
                        stage.spec.steps()
                    ));
                }
                fits
            });
        let (status, done) = if let Some(done) = reused {
            self.observer.note(&format!(
                "stage `{}`: finished in an earlier run ({} steps), reused",
                stage.name, done.steps
            ));
            (Status::Reused, done)
        } else {
            create_dir(&stage_dir)?;
            let parent = match stage.spec.start() {
                Some(start) => Some(self.checkpoint_weights(stage, start)?),
                None => stage.parent.map(|p| {
                    self.root
                        .join("stages")
                        .join(self.stage_dir(p.0))
                        .join("model.safetensors")
                }),
            };
            // `failed.json` says why the last attempt stopped, for `rlp status`; an
            // interruption is not a failure.
            let failed = stage_dir.join("failed.json");
            let _ = std::fs::remove_file(&failed);
            let done = match &stage.spec {
                StageSpec::Pretrain(spec) | StageSpec::Midtrain(spec) => {
                    train::run(self, stage, spec, parent.as_deref(), &stage_dir)
                }
                StageSpec::Rl(spec) => match parent {
                    Some(parent) => rl::run(self, stage, spec, &parent, &stage_dir),
                    None => Err(RunError::Internal(format!(
                        "`rl {}` has no parent",
                        stage.name
                    ))),
                },
            };
            let done = done.inspect_err(|error| {
                if !matches!(error, RunError::Interrupted { .. }) {
                    let text = serde_json::json!({ "error": error.to_string() }).to_string();
                    let _ = write_atomically(&failed, text.as_bytes());
                }
            })?;
            (Status::Finished, done)
        };
        Ok((status, done))
    }

    /// The weights file of the checkpoint directory a stage starts from, once it is known to
    /// be what `rlp check` accepted: the same weights (by SHA-256), for this model and
    /// tokenizer, zero biases where the model has none.
    fn checkpoint_weights(
        &self,
        stage: &StagePlan,
        start: &Checkpoint,
    ) -> Result<PathBuf, RunError> {
        let weights = start.dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(|e| RunError::io(&weights, &e))?;
        if sha256_hex(&bytes) != start.weights_sha256 {
            return Err(RunError::CheckpointChanged {
                stage: stage.name.clone(),
                path: weights,
            });
        }
        let model = &self.plan.models[stage.spec.model().0];
        crate::model::hf::read_dir(&start.dir, model, &self.tokenizer)
            .map_err(|e| RunError::Internal(format!("stage `{}`: {e}", stage.name)))?;
        Ok(weights)
    }

    /// Takes the lock of a stage directory, saying so when it had to wait or take it over.
    fn lock_stage(&self, stage: &StagePlan, dir: &Path) -> Result<lock::StageLock, RunError> {
        let acquired =
            lock::StageLock::acquire(dir).map_err(|e| RunError::io(&lock::lock_path(dir), &e))?;
        Ok(match acquired {
            lock::Acquired::Free(held) => held,
            lock::Acquired::AfterWaiting(held, owner) => {
                self.observer.note(&format!(
                    "stage `{}`: waited for {owner}, which held it",
                    stage.name
                ));
                held
            }
            lock::Acquired::TakenOver(held, owner) => {
                self.observer.note(&format!(
                    "stage `{}`: taken over from {owner}, which is no longer running",
                    stage.name
                ));
                held
            }
        })
    }

    /// Marks every stage trained from `stage` (directly or further down) unfinished, and
    /// forgets its cells' evals: they were trained from weights that are about to change. Done
    /// before `stage` trains again, so an interruption cannot leave a stale child finished.
    fn forget_descendants(&self, stage: &StagePlan) {
        let descends = |mut id: Option<crate::plan::StageId>| {
            while let Some(current) = id {
                if current == stage.id {
                    return true;
                }
                id = self.plan.stages[current.0].parent;
            }
            false
        };
        for child in self.plan.stages.iter().filter(|s| descends(s.parent)) {
            let done = self
                .root
                .join("stages")
                .join(self.stage_dir(child.id.0))
                .join("done.json");
            if std::fs::remove_file(&done).is_ok() {
                self.observer.note(&format!(
                    "stage `{}`: its parent is trained again, so it will be too",
                    child.name
                ));
            }
            self.forget_evals(child);
        }
    }

    /// Removes the eval tables of every cell that runs `stage`, and every model's kept rows,
    /// so that a stage trained again in its old directory is evaluated again (an eval's key
    /// names the directories of its models, not their weights). Rare enough that the kept
    /// rows of other models going too costs little.
    fn forget_evals(&self, stage: &StagePlan) {
        let _ = std::fs::remove_dir_all(self.root.join("evals"));
        for cell in &stage.cells {
            let evals = self.root.join(&self.plan.cells[*cell].name).join("eval");
            for entry in std::fs::read_dir(&evals).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "json") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The cell's `metrics.jsonl`: its stages' step rows, then its eval rows.
fn cell_metrics(
    dir: &Path,
    manifest: &Manifest,
    evals: &[(EvalSpec, Vec<Row>)],
) -> Result<(), RunError> {
    let mut text = String::new();
    for stage in &manifest.stages {
        let path = dir.join(&stage.dir).join("metrics.jsonl");
        let stage_rows = std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, &e))?;
        text.push_str(&stage_rows);
    }
    for (eval, rows) in evals {
        for row in rows {
            let mut value = serde_json::to_value(row)
                .map_err(|e| RunError::Internal(format!("row JSON: {e}")))?;
            value["eval"] = eval.name.clone().into();
            text.push_str(&value.to_string());
            text.push('\n');
        }
    }
    write(&dir.join("metrics.jsonl"), text.as_bytes())
}

/// An eval's JSON file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalTable {
    /// The eval's name.
    pub eval: String,
    /// What the results depend on (eval spec and model keys).
    pub key: String,
    /// The rows.
    pub rows: Vec<Row>,
}
