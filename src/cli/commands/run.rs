//! `rlp run FILE [--out DIR] [--threads N] [--device cpu|cuda]`

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::super::{Status, compile_file, eprint_line, print_raw, read};
use crate::eval::report;
use crate::plan::{Plan, StageId};
use crate::run::{
    CellReport, Input, Observer, RunError, RunOptions, execute, execute_cell, execute_eval,
    execute_stage, sha256_hex,
};

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// The CPU (always available).
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Progress bars on stderr; where stderr is not a terminal, a line per 10% instead.
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    label: Mutex<String>,
    last_logged: Mutex<u64>,
    hidden: bool,
}

impl Bars {
    fn new() -> Self {
        Self {
            bar: Mutex::new(None),
            label: Mutex::new(String::new()),
            last_logged: Mutex::new(0),
            hidden: ProgressDrawTarget::stderr().is_hidden(),
        }
    }
}

impl Observer for Bars {
    fn begin(&self, label: &str, total: u64) {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>16} [{bar:28}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
        if let Ok(mut slot) = self.label.lock() {
            label.clone_into(&mut slot);
        }
        if let Ok(mut last) = self.last_logged.lock() {
            *last = 0;
        }
        if self.hidden {
            eprint_line(&format!("{label}: 0/{total}"));
        }
    }

    fn advance(&self, done: u64, message: &str) {
        let Ok(slot) = self.bar.lock() else { return };
        let Some(bar) = slot.as_ref() else { return };
        bar.set_position(done);
        bar.set_message(message.to_owned());
        let total = bar.length().unwrap_or(0).max(1);
        if self.hidden
            && let Ok(mut last) = self.last_logged.lock()
            && (done * 10 / total > *last * 10 / total || done == total)
            && done > *last
        {
            *last = done;
            let label = self.label.lock().map(|l| l.clone()).unwrap_or_default();
            eprint_line(&format!("{label}: {done}/{total} {message}"));
        }
    }

    fn end(&self, message: &str) {
        let label = self.label.lock().map(|l| l.clone()).unwrap_or_default();
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
        eprint_line(&format!("{label}: {message}"));
    }

    fn note(&self, message: &str) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.println(message);
            return;
        }
        eprint_line(message);
    }
}

/// The end-of-run summary of one cell.
fn summary(cell: &CellReport) -> String {
    use std::fmt::Write as _;
    let mut out = format!("cell `{}` → {}\n", cell.name, cell.dir.display());
    for stage in &cell.manifest.stages {
        if let Some(done) = &stage.done {
            let outcome = match (done.reward, done.heldout_loss) {
                (Some(reward), _) => format!(
                    "reward {reward:.3}, {} response tokens, {:.0} s at {:.0} tok/s",
                    done.tokens, done.seconds, done.tokens_per_second
                ),
                (None, heldout) => format!(
                    "{} tokens, loss {:.3}, held-out {}, {:.0} s at {:.0} tok/s",
                    done.tokens,
                    done.final_loss,
                    heldout.map_or_else(|| "-".to_owned(), |h| format!("{h:.3}")),
                    done.seconds,
                    done.tokens_per_second
                ),
            };
            let flops = done
                .flops
                .map_or_else(String::new, |f| format!(", {f:.2e} FLOPs"));
            let _ = writeln!(
                out,
                "  {} {:<12} {:?}: {} steps, {outcome}{flops}",
                stage.kind, stage.name, stage.status, done.steps
            );
        }
    }
    for (eval, rows) in &cell.evals {
        for line in report::summary(eval, rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// Sets the thread count of candle's kernels before any of them starts. candle's matrix
/// products and rlp's fused kernels run on `RAYON_NUM_THREADS` threads (candle re-reads
/// /proc/cpuinfo on every matmul when it is unset). candle's element-wise ops have a pool of
/// their own, sized by `CANDLE_NUM_THREADS`, whose workers spin for a while after each op and
/// so take a core from the next matrix product; the heavy element-wise work is in the fused
/// kernels, so that pool gets no extra workers unless the environment already says otherwise.
fn set_threads(threads: usize) {
    // SAFETY: called at the start of `rlp run`, before this process starts any thread (the
    // Ctrl-C handler and candle's pools come later), so nothing reads the environment
    // concurrently.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
    }
}

/// Which part of a file `rlp run` runs: everything, one cell, one stage instance, or one
/// eval of one cell.
pub(crate) struct Part {
    pub(crate) cell: Option<String>,
    pub(crate) stage: Option<String>,
    pub(crate) eval: Option<String>,
}

/// What a part names in the plan.
enum Target {
    All,
    Cell(usize),
    Stage(StageId),
    Eval(usize, String),
}

/// Resolves `--cell` and `--stage` against the plan, or says what they could have been.
fn target(plan: &Plan, part: &Part) -> Result<Target, String> {
    let cells: Vec<usize> = match &part.cell {
        None => (0..plan.cells.len()).collect(),
        Some(name) => {
            let Some(index) = plan.cells.iter().position(|c| c.name == *name) else {
                let names: Vec<&str> = plan.cells.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "no cell `{name}` in the plan; its cells are: {}",
                    names.join(", ")
                ));
            };
            vec![index]
        }
    };
    let in_cell = part
        .cell
        .as_ref()
        .map(|c| format!(" in cell `{c}`"))
        .unwrap_or_default();
    if let Some(eval) = &part.eval {
        let with_it: Vec<usize> = cells
            .iter()
            .copied()
            .filter(|&c| plan.cells[c].evals.iter().any(|e| e.name == *eval))
            .collect();
        return match with_it.as_slice() {
            [cell] => Ok(Target::Eval(*cell, eval.clone())),
            [] => Err(format!("no eval `{eval}`{in_cell}")),
            many => Err(format!(
                "eval `{eval}` is run by {} cells; pick one with `--cell`",
                many.len()
            )),
        };
    }
    let Some(stage) = &part.stage else {
        return Ok(match part.cell {
            Some(_) => Target::Cell(cells[0]),
            None => Target::All,
        });
    };
    let mut ids: Vec<StageId> = Vec::new();
    for &c in &cells {
        for &id in &plan.cells[c].stages {
            if plan.stages[id.0].name == *stage && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    match ids.as_slice() {
        [id] => Ok(Target::Stage(*id)),
        [] => Err(format!("no stage `{stage}`{in_cell}")),
        many => Err(format!(
            "stage `{stage}` has {} instances across cells; pick one with `--cell`",
            many.len()
        )),
    }
}

pub(crate) fn run(
    file: &Path,
    out: &Path,
    threads: Option<usize>,
    device: DeviceChoice,
    part: &Part,
    color: bool,
) -> Status {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    set_threads(threads);
    let bytes = match read(file) {
        Ok(bytes) => bytes,
        Err(status) => return status,
    };
    let plan = match compile_file(file, color) {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let target = match target(&plan, part) {
        Ok(target) => target,
        Err(message) => {
            eprint_line(&format!("error: {message}"));
            return Status::Error;
        }
    };
    let device = match device {
        DeviceChoice::Cpu => candle_core::Device::Cpu,
        DeviceChoice::Cuda => match candle_core::Device::new_cuda(0) {
            Ok(device) => device,
            Err(error) => {
                eprint_line(&format!(
                    "error: no CUDA device: {error}\n  help: CUDA needs a build with `cargo build --release --features cuda` on a machine with the CUDA toolkit"
                ));
                return Status::Error;
            }
        },
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: stop now (the last checkpoint is still on disk).
            std::process::exit(130);
        }
    });
    let options = RunOptions {
        out: out.to_owned(),
        device,
        threads,
        interrupt,
    };
    let input = Input {
        file: file.display().to_string(),
        sha256: sha256_hex(&bytes),
    };
    let bars = Bars::new();
    let outcome = match target {
        Target::All => execute(&plan, &input, &options, &bars),
        Target::Cell(index) => {
            execute_cell(&plan, &input, &options, &bars, index).map(|cell| vec![cell])
        }
        Target::Eval(cell, eval) => {
            execute_eval(&plan, &input, &options, &bars, cell, &eval).map(|(status, report)| {
                eprint_line(&format!(
                    "eval `{eval}` of cell `{}`: {status:?}{}",
                    plan.cells[cell].name,
                    if report.is_some() {
                        ""
                    } else {
                        " (the cell's manifest waits for its other evals)"
                    }
                ));
                report.into_iter().collect()
            })
        }
        Target::Stage(id) => {
            execute_stage(&plan, &input, &options, &bars, id).map(|(status, done)| {
                let stage = &plan.stages[id.0];
                eprint_line(&format!(
                    "stage `{}` ({}): {status:?}, {} steps",
                    stage.name, stage.hash, done.steps
                ));
                Vec::new()
            })
        }
    };
    match outcome {
        Ok(cells) => {
            let text: String = cells.iter().map(summary).collect();
            print_raw(&text);
            Status::Success
        }
        Err(error) => {
            let interrupted = matches!(
                error,
                RunError::Interrupted { .. } | RunError::EvalInterrupted { .. }
            );
            let report = miette::Report::new(error);
            eprint_line(&format!("{report:?}"));
            if interrupted {
                Status::Interrupted
            } else {
                Status::Problems
            }
        }
    }
}
