//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// rlp: controlled experiments on how pre-training, mid-training and RL shape the reasoning of
/// small language models.
#[derive(Debug, Parser)]
#[command(name = "rlp", version, about, propagate_version = true)]
pub struct Arguments {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check .rlp files and report every problem (exit 0 clean, 1 problems, 2 usage or I/O error).
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Print the resolved plan of a file as JSON: defaults filled, sweep cells expanded, stage hashes.
    Plan {
        /// The file.
        file: PathBuf,
        /// Print what the file will cost instead of the plan: tokens, optimizer steps,
        /// rollouts, FLOPs and GPU-hours per stage instance and eval, and in total.
        #[arg(long)]
        cost: bool,
        /// Sustained training throughput of one GPU, in FLOP/s, for the GPU-hours.
        #[arg(long, default_value_t = 4e14, requires = "cost")]
        throughput: f64,
    },
    /// Explain a diagnostic code, with an example (`rlp explain E0405`); without a code, list them all.
    Explain {
        /// A code such as `E0405` or `rlp::E0405`.
        code: Option<String>,
        /// Print every explanation as one Markdown page (`docs/diagnostics.md` is this output).
        #[arg(long, conflicts_with = "code")]
        markdown: bool,
    },
    /// Print problems from a source of the file's tasks, with gold solutions and op.
    Sample {
        /// The .rlp file that defines the task.
        file: PathBuf,
        /// A source such as `arith[op 5, context zoo]`.
        #[arg(long)]
        source: String,
        /// How many problems.
        #[arg(short = 'n', default_value_t = 5)]
        count: u64,
        /// Seed of the stream (default: the file's seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Print JSONL records instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a stage's data (training texts or RL prompts) as JSONL, and its dataset hash.
    Data {
        /// The .rlp file.
        file: PathBuf,
        /// The stage.
        #[arg(long)]
        stage: String,
        /// The sweep cell, when the stage differs between cells.
        #[arg(long)]
        cell: Option<String>,
        /// Where to write the JSONL.
        #[arg(long)]
        out: PathBuf,
        /// How many examples.
        #[arg(short = 'n', default_value_t = 1000)]
        count: u64,
        /// The record layout: rlp's own, or what verl or TRL read for RL.
        #[arg(long, value_enum, default_value_t = crate::cli::commands::data::DataFormat::Rlp)]
        format: crate::cli::commands::data::DataFormat,
    },
    /// Score model completions step by step: JSONL records with the gold `solution` (and
    /// optionally `answer`) and a `completion`; writes one score record per input.
    Verify {
        /// The input JSONL (`-` for standard input).
        input: PathBuf,
        /// Where to write the scores (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The phrasing the solutions are written in (a prelude phrasing).
        #[arg(long, default_value = "english")]
        phrasing: String,
    },
    /// Run a pipeline: check it, train its stages, evaluate, and write `OUT/<name>/<cell>/`.
    /// Finished stages are reused; an interrupted run resumes from its last checkpoint.
    Run {
        /// The .rlp file.
        file: PathBuf,
        /// Where run directories go.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Threads for tensor kernels (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Where tensors live.
        #[arg(long, value_enum, default_value_t = crate::cli::commands::run::DeviceChoice::Cpu)]
        device: crate::cli::commands::run::DeviceChoice,
        /// Run only this sweep cell (its stages and evals).
        #[arg(long)]
        cell: Option<String>,
        /// Run only this stage instance (no eval); its parent must have finished. With several
        /// instances of the name across cells, `--cell` picks one.
        #[arg(long, conflicts_with = "eval")]
        stage: Option<String>,
        /// Run only this eval (no training); the stages it evaluates must have finished. With
        /// several cells, `--cell` picks one.
        #[arg(long)]
        eval: Option<String>,
    },
    /// Compare a run directory's cells: pass@k with 95% intervals per cell and per group of
    /// replicas, each model minus the model it was trained from on the same problems (paired
    /// intervals), areas under pass@1 against op, plots and training curves, stage timings.
    /// Several run directories make one report of all their cells, each labelled with its run.
    Report {
        /// The run directories (`runs/<name>`).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where the report goes (default: RUN/report; required with several runs).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The pass@k to show, e.g. `--k 1,8,32` (default: every k the evals estimate; the
        /// tables show up to five, else four spread over them).
        #[arg(long, value_delimiter = ',')]
        k: Vec<u32>,
        /// Also pair these two models on the same problems (repeatable): `post:base` (an older
        /// ancestor), `post[variant=strict]:post[variant=outcome]` (siblings of one run),
        /// `f2-size/widen:f2-context/widen` (two runs). Each model cell is paired with the
        /// base's cell that agrees with it on every sweep variable the base does not name (a
        /// sweep zipped with a named one follows it).
        #[arg(long, value_name = "MODEL:BASE")]
        pair: Vec<crate::report::PairRequest>,
        /// Also count these ops together (repeatable): `8..=10` or `8,10` gives every cell,
        /// group and pair, in each split that has all of those ops, a row over their problems
        /// beside its row of each op, and the pool a chart of pass@k against k.
        #[arg(long, value_name = "OPS")]
        ops: Vec<crate::report::OpPool>,
        /// What to write (repeatable; default: all three).
        #[arg(long, value_enum)]
        format: Vec<crate::cli::commands::report::ReportFormat>,
    },
    /// Write a finished stage as a Hugging Face Qwen2 checkpoint (config, weights, tokenizer)
    /// that `transformers` and vLLM load as they are.
    Export {
        /// The run directory (`runs/<name>`).
        run: PathBuf,
        /// The stage.
        #[arg(long)]
        stage: String,
        /// The sweep cell, when the stage differs between cells.
        #[arg(long)]
        cell: Option<String>,
        /// The directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Where every stage instance and eval of a run directory stands: pending, running (step,
    /// owner, heartbeat), interrupted, abandoned, failed (with the error), blocked, finished.
    Status {
        /// The run directory (`runs/<name>`).
        run: PathBuf,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Submit a pipeline's unfinished work to Slurm: one job per stage instance and one per
    /// cell's evals, with `--dependency=afterok` edges that mirror the plan; the job scripts and
    /// `submit.sh` go to `OUT/<name>/slurm/`.
    Submit {
        /// The .rlp file.
        file: PathBuf,
        /// The scheduler (the one there is).
        #[arg(long, required = true)]
        slurm: bool,
        /// Where run directories go.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Write the job scripts and `submit.sh`, print it, and submit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Options for the jobs of one kind only, `KIND=OPTIONS` with KIND `pretrain`,
        /// `midtrain`, `rl` or `eval` (repeatable), e.g. `--kind rl='--gres=gpu:1 --time=2:00:00'`.
        #[arg(long = "kind", value_name = "KIND=OPTIONS")]
        kinds: Vec<String>,
        /// Options for every `sbatch` (after `--`), e.g. `-- --partition=gpu --gres=gpu:1`.
        #[arg(last = true)]
        sbatch: Vec<String>,
    },
    /// Format files in place in canonical form, keeping comments.
    Fmt {
        /// Files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write: print a diff and exit 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
    },
}

/// How `rlp check` prints diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Code frames for people (on stderr).
    Human,
    /// One JSON document for tools (on stdout).
    Json,
}
