//! Why a run stops: every error `rlp run` reports, with its code and help.

use std::path::{Path, PathBuf};

use crate::tasks::GenerateError;

/// Why a run stopped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    /// A file could not be written or read.
    #[error("{path}: {message}")]
    #[diagnostic(code(rlp::run::io))]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A training loss, or RL's gradient norm, became NaN or infinite.
    #[error("stage `{stage}`: the {quantity} became {value} at step {step}; training stopped")]
    #[diagnostic(
        code(rlp::run::non_finite_loss),
        help(
            "the last good checkpoint is kept{}; lower the learning rate or raise warmup, then run again (it resumes from that checkpoint; delete it to start over)",
            checkpoint.as_ref().map(|c| format!(" at {}", c.display())).unwrap_or_default()
        )
    )]
    NonFinite {
        /// The stage.
        stage: String,
        /// What became non-finite: `loss` or `gradient norm`.
        quantity: &'static str,
        /// The step whose loss it was.
        step: u64,
        /// The loss.
        value: f64,
        /// The last checkpoint, if one was written.
        checkpoint: Option<PathBuf>,
    },
    /// The run was interrupted (Ctrl-C) and saved a checkpoint.
    #[error("interrupted in stage `{stage}` at step {step}; a checkpoint was saved")]
    #[diagnostic(
        code(rlp::run::interrupted),
        help("run the same command again to resume where it stopped")
    )]
    Interrupted {
        /// The stage.
        stage: String,
        /// Steps done.
        step: u64,
    },
    /// The run was interrupted during an evaluation (which restarts when resumed).
    #[error("interrupted during eval `{eval}`")]
    #[diagnostic(
        code(rlp::run::interrupted),
        help("run the same command again: finished stages are kept, the evaluation restarts")
    )]
    EvalInterrupted {
        /// The eval.
        eval: String,
    },
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    #[diagnostic(code(rlp::run::tensor))]
    Tensor(#[from] candle_core::Error),
    /// A problem could not be generated.
    #[error(transparent)]
    #[diagnostic(code(rlp::run::generate))]
    Generate(#[from] GenerateError),
    /// `rlp run --stage` on a stage whose parent has not finished.
    #[error("stage `{stage}` starts from `{parent}`, which has not finished")]
    #[diagnostic(
        code(rlp::run::parent_unfinished),
        help(
            "run `{parent}` first (`rlp run FILE --stage {parent}`, with `--cell` if it differs between cells)"
        )
    )]
    ParentUnfinished {
        /// The stage asked for.
        stage: String,
        /// Its parent.
        parent: String,
    },
    /// `rlp run --eval` on an eval one of whose models has not finished.
    #[error("eval `{eval}` of cell `{cell}` evaluates `{stage}`, which has not finished")]
    #[diagnostic(
        code(rlp::run::model_unfinished),
        help(
            "run `{stage}` first (`rlp run FILE --stage {stage} --cell {cell}`), or the whole cell (`--cell {cell}`)"
        )
    )]
    ModelUnfinished {
        /// The eval asked for.
        eval: String,
        /// Its cell.
        cell: String,
        /// The first of its models that has not finished.
        stage: String,
    },
    /// The weights of a checkpoint a stage starts from changed after the file was checked.
    #[error("stage `{stage}` starts from {}, whose weights changed since the file was checked", path.display())]
    #[diagnostic(
        code(rlp::run::checkpoint_changed),
        help(
            "check the file again (`rlp check`), which records the new weights under a new stage key"
        )
    )]
    CheckpointChanged {
        /// The stage.
        stage: String,
        /// The weights file.
        path: PathBuf,
    },
    /// A checkpoint a stage starts from that cannot be loaded for its model.
    #[error("stage `{stage}` cannot start from its checkpoint: {reason}")]
    #[diagnostic(code(rlp::run::checkpoint_unusable))]
    CheckpointUnusable {
        /// The stage.
        stage: String,
        /// Why.
        reason: String,
    },
    /// An rl stage whose data has (almost) no prompt under its `max_prompt_tokens`.
    #[error(
        "stage `{stage}`: {tries} prompts in a row were longer than its `max_prompt_tokens` ({limit})"
    )]
    #[diagnostic(
        code(rlp::run::prompts_too_long),
        help("raise `max_prompt_tokens`, or lower the op range of its prompts")
    )]
    PromptsTooLong {
        /// The stage.
        stage: String,
        /// The limit.
        limit: u32,
        /// Prompts drawn.
        tries: u32,
    },
    /// Something that should not happen.
    #[error("internal error: {0}")]
    #[diagnostic(code(rlp::run::internal))]
    Internal(String),
}

impl RunError {
    pub(crate) fn io(path: &Path, error: &std::io::Error) -> Self {
        RunError::Io {
            path: path.to_owned(),
            message: error.to_string(),
        }
    }
}
