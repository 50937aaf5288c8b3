//! Warnings of the analysis phase (its errors: `analysis_error.rs`). Every variant says when
//! it fires; every code is explained at length by `rlp explain CODE` (see `explain.rs`).

use miette::Diagnostic;
use thiserror::Error;

use crate::syntax::Span;

/// A legal but suspicious choice: printed, but `rlp check` still exits 0.
#[derive(Debug, Clone, Error, Diagnostic)]
pub enum AnalysisWarning {
    /// The file has no `seed`: runs use seed 0.
    #[error("no `seed` given: seed 0 is used")]
    #[diagnostic(
        code(rlp::W0101),
        severity(Warning),
        help("write `seed 1234` at the top so the experiment's seed is visible")
    )]
    NoSeed {
        /// The start of the file.
        #[label("no seed in this file")]
        span: Span,
    },

    /// A definition that nothing uses.
    #[error("{kind} `{name}` is never used")]
    #[diagnostic(code(rlp::W0102), severity(Warning), help("remove it, or use it"))]
    UnusedDefinition {
        /// What kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// Where.
        #[label("defined here")]
        span: Span,
    },

    /// Several samples at temperature 0: they are all the same.
    #[error("{samples} samples at temperature 0 are all identical")]
    #[diagnostic(
        code(rlp::W0103),
        severity(Warning),
        help("sample at a temperature above 0 (the reference uses 0.7), or take 1 sample")
    )]
    GreedySamples {
        /// Samples.
        samples: u64,
        /// Where.
        #[label("greedy decoding")]
        span: Span,
    },

    /// The learning rate rises from start to end.
    #[error("the learning rate rises from {start} to {end}")]
    #[diagnostic(
        code(rlp::W0104),
        severity(Warning),
        help("a decay schedule goes from the peak down to a floor: `lr 1e-3 -> 1e-4 cosine`")
    )]
    LrRises {
        /// Start.
        start: String,
        /// End.
        end: String,
        /// Where.
        #[label("rises")]
        span: Span,
    },

    /// A user definition shadows a prelude definition.
    #[error("{kind} `{name}` shadows the prelude's `{name}`")]
    #[diagnostic(
        code(rlp::W0105),
        severity(Warning),
        help("rename it to keep both, or drop `use prelude`")
    )]
    ShadowsPrelude {
        /// What kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// Where.
        #[label("shadows the prelude")]
        span: Span,
    },

    /// A reward that does not depend on any primitive gives the same reward to every rollout.
    #[error("reward `{name}` does not depend on any primitive")]
    #[diagnostic(
        code(rlp::W0106),
        severity(Warning),
        help(
            "GRPO normalises rewards within a group: a constant reward gives zero advantage and no learning"
        )
    )]
    ConstantReward {
        /// The reward.
        name: String,
        /// Where.
        #[label("constant")]
        span: Span,
    },

    /// Answer-only metric at laptop scale.
    #[error("metric `answer` counts lucky guesses as correct")]
    #[diagnostic(
        code(rlp::W0107),
        severity(Warning),
        help(
            "small models often guess small answers right; `metric verified` checks every step. The report prints the guessing baseline next to answer-only scores"
        )
    )]
    AnswerMetric {
        /// Where.
        #[label("answer-only")]
        span: Span,
    },

    /// A budget whose shares add up to less than 100%.
    #[error("stages use only {percent}% of budget `{budget}`{cell}")]
    #[diagnostic(
        code(rlp::W0108),
        severity(Warning),
        help("compute-matched comparisons usually spend the whole budget")
    )]
    BudgetUnderspent {
        /// The budget.
        budget: String,
        /// Share used.
        percent: String,
        /// The sweep cell, if any.
        cell: String,
        /// Where.
        #[label("underspent")]
        span: Span,
    },

    /// A held-out context split whose phrasing never prints context names.
    #[error(
        "split `{split}` holds out contexts, but phrasing `{phrasing}` never shows context names"
    )]
    #[diagnostic(
        code(rlp::W0109),
        severity(Warning),
        help(
            "context experiments need a phrasing that uses {{entity}} and {{item}} names, such as `english`"
        )
    )]
    ContextInvisible {
        /// The split.
        split: String,
        /// The phrasing.
        phrasing: String,
        /// Where.
        #[label("held out, but invisible")]
        span: Span,
    },

    /// More than half of training is warmup.
    #[error("warmup takes {percent}% of the stage")]
    #[diagnostic(
        code(rlp::W0110),
        severity(Warning),
        help("the reference warms up for 5% (pre-training) or 15% (mid-training)")
    )]
    LongWarmup {
        /// Warmup share.
        percent: String,
        /// Where.
        #[label("long warmup")]
        span: Span,
    },

    /// Stages but no eval: the run produces no scores.
    #[error("the file trains models but has no `eval` block")]
    #[diagnostic(
        code(rlp::W0111),
        severity(Warning),
        help("add `eval {{ models ...; split ...; ... }}` to measure what the stages learn")
    )]
    NoEval {
        /// The first stage.
        #[label("trained but never evaluated")]
        span: Span,
    },

    /// A file with no items at all.
    #[error("the file declares nothing (it is empty or holds only comments)")]
    #[diagnostic(
        code(rlp::W0112),
        severity(Warning),
        help("start from `pipelines/quickstart.rlp`, or check that this is the file you meant")
    )]
    EmptyFile {
        /// The start of the file.
        #[label("nothing here")]
        span: Span,
    },

    /// `use prelude` written more than once.
    #[error("`use prelude` is written more than once")]
    #[diagnostic(code(rlp::W0113), severity(Warning), help("remove the repeat"))]
    RepeatedImport {
        /// The repeat.
        #[label(primary, "again here")]
        span: Span,
        /// The first one.
        #[label("first here")]
        first: Span,
    },

    /// Problems whose whole text can exceed the model's context.
    #[error(
        "model `{model}` has a context of {context} tokens, but {what} can reach about {needed} tokens"
    )]
    #[diagnostic(
        code(rlp::W0114),
        severity(Warning),
        help(
            "{effect}; to avoid it, raise the model's `context`, lower the op range or turn `distractors off`"
        )
    )]
    LongExamples {
        /// The model.
        model: String,
        /// Its context.
        context: u64,
        /// What is long.
        what: String,
        /// The estimate.
        needed: u64,
        /// What happens to them.
        effect: &'static str,
        /// Where.
        #[label("up to about {needed} tokens")]
        span: Span,
    },
}
