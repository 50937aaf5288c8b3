//! Errors of the analysis phase (its warnings: `analysis_warning.rs`). Every variant says when
//! it fires; every code is explained at length by `rlp explain CODE` (see `explain.rs`).

use miette::Diagnostic;
use thiserror::Error;

use crate::syntax::Span;

/// A problem that makes a file invalid: `rlp check` exits 1 and `rlp run` does not start.
#[derive(Debug, Clone, Error, Diagnostic)]
pub enum AnalysisError {
    /// A name refers to nothing defined (in the file or, with `use prelude`, the prelude).
    #[error("unknown {kind} `{name}`")]
    #[diagnostic(code(rlp::E0201))]
    UnknownName {
        /// What kind of thing was expected.
        kind: &'static str,
        /// The name as written.
        name: String,
        /// Where.
        #[label("no {kind} is called this")]
        span: Span,
        /// Did-you-mean.
        #[help]
        help: Option<String>,
    },

    /// Two definitions of the same kind share a name.
    #[error("{kind} `{name}` is defined twice")]
    #[diagnostic(code(rlp::E0202), help("rename one of them"))]
    DuplicateName {
        /// What kind of thing.
        kind: &'static str,
        /// The name.
        name: String,
        /// The second definition.
        #[label("defined again here")]
        span: Span,
        /// The first definition.
        #[label("first defined here")]
        first: Span,
    },

    /// A block starts with a word that is not a block kind.
    #[error("unknown block kind `{kind}`")]
    #[diagnostic(code(rlp::E0203))]
    UnknownBlockKind {
        /// The word.
        kind: String,
        /// Where.
        #[label("not a block kind")]
        span: Span,
        /// Did-you-mean, or the list of kinds.
        #[help]
        help: Option<String>,
    },

    /// A line in a block starts with a field the block does not have.
    #[error("`{block}` has no field `{field}`")]
    #[diagnostic(code(rlp::E0204))]
    UnknownField {
        /// The block kind.
        block: String,
        /// The field as written.
        field: String,
        /// Where.
        #[label("unknown field")]
        span: Span,
        /// Did-you-mean, or the list of fields.
        #[help]
        help: Option<String>,
    },

    /// A field that may appear once appears twice.
    #[error("field `{field}` is given twice")]
    #[diagnostic(code(rlp::E0205), help("keep one of them"))]
    DuplicateField {
        /// The field.
        field: String,
        /// The second one.
        #[label("given again here")]
        span: Span,
        /// The first one.
        #[label("first given here")]
        first: Span,
    },

    /// A required field is missing.
    #[error("`{block}` needs a `{field}` field")]
    #[diagnostic(code(rlp::E0206))]
    MissingField {
        /// The block kind.
        block: String,
        /// The missing field.
        field: &'static str,
        /// The block.
        #[label("`{field}` is missing here")]
        span: Span,
        /// An example line.
        #[help]
        help: Option<String>,
    },

    /// A block that must be named is not, or a name is given where none is allowed.
    #[error("a `{block}` block needs a name")]
    #[diagnostic(code(rlp::E0207), help("write `{block} NAME {{ ... }}`"))]
    MissingName {
        /// The block kind.
        block: String,
        /// The block's keyword.
        #[label("name it after the keyword")]
        span: Span,
    },

    /// `$name` is used but no `sweep name = [...]` defines it.
    #[error("unknown sweep variable `${name}`")]
    #[diagnostic(code(rlp::E0208))]
    UnknownSweepVariable {
        /// The variable's name.
        name: String,
        /// Where.
        #[label("not defined by any `sweep`")]
        span: Span,
        /// Did-you-mean, or how to define it.
        #[help]
        help: Option<String>,
    },

    /// A reward expression names something that is not a reward primitive.
    #[error("unknown reward primitive `{name}`")]
    #[diagnostic(code(rlp::E0209))]
    UnknownPrimitive {
        /// The name.
        name: String,
        /// Where.
        #[label("not a primitive")]
        span: Span,
        /// Did-you-mean, or the list of primitives.
        #[help]
        help: Option<String>,
    },

    /// A reward expression calls a function other than `min` and `max`, or with too few arguments.
    #[error("unknown function `{name}`")]
    #[diagnostic(
        code(rlp::E0210),
        help(
            "reward expressions can call `min(a, b, ...)` and `max(a, b, ...)`, with at least two arguments"
        )
    )]
    UnknownFunction {
        /// The name.
        name: String,
        /// Where.
        #[label("not `min` or `max`")]
        span: Span,
    },

    /// A template uses a `{placeholder}` that its slot does not provide.
    #[error("`{slot}` has no placeholder `{{{placeholder}}}`")]
    #[diagnostic(code(rlp::E0211))]
    UnknownPlaceholder {
        /// The template slot.
        slot: String,
        /// The placeholder as written.
        placeholder: String,
        /// The template.
        #[label("unknown placeholder in this template")]
        span: Span,
        /// The placeholders this slot provides.
        #[help]
        help: Option<String>,
    },

    /// `use` names something other than the prelude.
    #[error("nothing to import called `{name}`")]
    #[diagnostic(code(rlp::E0212), help("the only import is `use prelude`"))]
    UnknownImport {
        /// The name.
        name: String,
        /// Where.
        #[label("not importable")]
        span: Span,
    },

    /// `from` on a block that does not start from another stage.
    #[error("a `{block}` block cannot start `from` another stage")]
    #[diagnostic(code(rlp::E0213))]
    FromNotAllowed {
        /// The block kind.
        block: String,
        /// The `from` clause.
        #[label("remove this")]
        span: Span,
        /// What to do instead.
        #[help]
        help: Option<String>,
    },

    /// A `midtrain` or `rl` stage without `from`.
    #[error("a `{block}` stage must start `from` another stage")]
    #[diagnostic(code(rlp::E0214), help("write `{block} NAME from PARENT {{ ... }}`"))]
    MissingFrom {
        /// The block kind.
        block: String,
        /// The stage's name.
        #[label("starts from which stage?")]
        span: Span,
    },

    /// A name refers to a definition of the wrong kind, such as a model where a mixture belongs.
    #[error("`{name}` is a {found}, not a {expected}")]
    #[diagnostic(code(rlp::E0215))]
    WrongKind {
        /// The name.
        name: String,
        /// What was expected here.
        expected: &'static str,
        /// What the name is.
        found: &'static str,
        /// Where.
        #[label("expected a {expected}")]
        span: Span,
        /// Hint.
        #[help]
        help: Option<String>,
    },

    /// A stage starts from itself.
    #[error("stage `{name}` starts from itself")]
    #[diagnostic(
        code(rlp::E0301),
        help("start from an earlier stage, such as a `pretrain`")
    )]
    FromItself {
        /// The stage.
        name: String,
        /// The `from` name.
        #[label("this is the stage being defined")]
        span: Span,
    },

    /// Stages start from each other in a cycle.
    #[error("stages start from each other in a cycle: {cycle}")]
    #[diagnostic(
        code(rlp::E0302),
        help("every chain of `from` must end at a `pretrain` stage")
    )]
    StageCycle {
        /// The cycle, as `a -> b -> a`.
        cycle: String,
        /// One `from` in the cycle.
        #[label("part of the cycle")]
        span: Span,
    },

    /// A value of the wrong type: a name where a number belongs, and so on.
    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(rlp::E0401))]
    WrongValue {
        /// What the field takes.
        expected: String,
        /// What is there.
        found: String,
        /// Where.
        #[label("expected {expected}")]
        span: Span,
        /// An example.
        #[help]
        help: Option<String>,
    },

    /// A value is of the right type but outside what it may be.
    #[error("{what} must be {allowed}, but is {value}")]
    #[diagnostic(code(rlp::E0402))]
    ValueOutOfRange {
        /// What the value is.
        what: String,
        /// The allowed values.
        allowed: String,
        /// The value given.
        value: String,
        /// Where.
        #[label("out of range")]
        span: Span,
        /// Hint.
        #[help]
        help: Option<String>,
    },

    /// `a..b` (exclusive) where rlp wants `a..=b`.
    #[error("ranges in rlp are written with `..=`")]
    #[diagnostic(code(rlp::E0403), help("write `{suggestion}`: both ends are included"))]
    ExclusiveRange {
        /// The inclusive spelling.
        suggestion: String,
        /// Where.
        #[label("exclusive range")]
        span: Span,
    },

    /// A range whose start is after its end.
    #[error("the range {range} is empty")]
    #[diagnostic(
        code(rlp::E0404),
        help("write the smaller number first: `{suggestion}`")
    )]
    EmptyRange {
        /// The range.
        range: String,
        /// The reversed range.
        suggestion: String,
        /// Where.
        #[label("start is after end")]
        span: Span,
    },

    /// Mixture weights do not sum to 1.
    #[error("the weights of mixture `{name}` sum to {sum}, not 1")]
    #[diagnostic(
        code(rlp::E0405),
        help("fix the weights, or add a line `normalized` to rescale them to sum to 1")
    )]
    MixtureWeights {
        /// The mixture.
        name: String,
        /// The sum.
        sum: String,
        /// The mixture.
        #[label("weights sum to {sum}")]
        span: Span,
    },

    /// An op range reaches outside what the task can generate.
    #[error("task `{task}` cannot produce op {lo}..={hi}")]
    #[diagnostic(code(rlp::E0406))]
    OpRangeNotProducible {
        /// The task.
        task: String,
        /// Requested low end.
        lo: i64,
        /// Requested high end.
        hi: i64,
        /// Where.
        #[label("ops {allowed} only")]
        span: Span,
        /// The producible range, as text.
        allowed: String,
        /// Why.
        #[help]
        help: Option<String>,
    },

    /// An eval asks for pass@k with k above its number of samples.
    #[error("pass@{k} needs at least {k} samples per problem, but `samples` is {samples}")]
    #[diagnostic(
        code(rlp::E0407),
        help("raise `samples` to at least {k}, or drop k = {k}")
    )]
    PassAtExceedsSamples {
        /// The k.
        k: u64,
        /// The samples.
        samples: u64,
        /// Where.
        #[label("k = {k} > {samples}")]
        span: Span,
    },

    /// An extrapolative split shares ops with the training data of a model it evaluates.
    #[error(
        "split `{split}` is marked extrapolative but overlaps the training range of `{stage}` (ops {overlap})"
    )]
    #[diagnostic(
        code(rlp::E0408),
        help("start the split above op {max_trained}, or remove `extrapolative`")
    )]
    ExtrapolativeOverlap {
        /// The split.
        split: String,
        /// The training stage.
        stage: String,
        /// The overlapping ops.
        overlap: String,
        /// The highest trained op.
        max_trained: i64,
        /// The split.
        #[label("overlaps ops trained on")]
        span: Span,
    },

    /// A context held out for evaluation appears in the training data of a model it evaluates.
    #[error("context `{context}` is held out by split `{split}` but stage `{stage}` trains on it")]
    #[diagnostic(
        code(rlp::E0409),
        help(
            "restrict `{stage}`'s data with `context ...` so that `{context}` is not in it, or remove `held_out`"
        )
    )]
    HeldOutContextLeak {
        /// The context.
        context: String,
        /// The split.
        split: String,
        /// The training stage.
        stage: String,
        /// The split.
        #[label("held out here")]
        span: Span,
    },

    /// A reward expression can take values outside [0, 1], or none at all (a division by 0).
    #[error("reward `{name}` {what}")]
    #[diagnostic(code(rlp::E0410))]
    RewardOutOfRange {
        /// The reward.
        name: String,
        /// What is wrong: `can take values in [lo, hi], outside [0, 1]`, or undefined.
        what: String,
        /// The expression.
        #[label("{label}")]
        span: Span,
        /// The label's text.
        label: String,
        /// Hint.
        #[help]
        help: Option<String>,
    },

    /// Stages take more than all of a budget.
    #[error("stages take {percent}% of budget `{budget}`{cell}: {parts}")]
    #[diagnostic(
        code(rlp::E0411),
        help("the shares of one budget must add up to at most 100%")
    )]
    BudgetOverspent {
        /// The budget.
        budget: String,
        /// The total share.
        percent: String,
        /// Each stage's share: "`mid` 60% + `post` 60%".
        parts: String,
        /// The sweep cell, if any.
        cell: String,
        /// The budget.
        #[label("overspent")]
        span: Span,
    },

    /// `hidden` is not a multiple of `heads`.
    #[error("hidden size {hidden} is not divisible by {heads} heads")]
    #[diagnostic(
        code(rlp::E0412),
        help("each head gets hidden / heads dimensions; pick a divisor of {hidden}")
    )]
    HiddenNotDivisible {
        /// Hidden size.
        hidden: u64,
        /// Heads.
        heads: u64,
        /// Where.
        #[label("does not divide {hidden}")]
        span: Span,
    },

    /// `heads` is not a multiple of `kv_heads`.
    #[error("{heads} attention heads cannot be shared among {kv_heads} key/value heads")]
    #[diagnostic(
        code(rlp::E0413),
        help("grouped-query attention needs heads to be a multiple of kv_heads")
    )]
    KvHeadsNotDivisible {
        /// Heads.
        heads: u64,
        /// KV heads.
        kv_heads: u64,
        /// Where.
        #[label("does not divide {heads}")]
        span: Span,
    },

    /// A model's context is shorter than the problems it is trained or evaluated on.
    #[error(
        "model `{model}` has a context of {context} tokens, but {what} can reach about {needed} tokens"
    )]
    #[diagnostic(code(rlp::E0414))]
    ContextTooShort {
        /// The model.
        model: String,
        /// Its context.
        context: u64,
        /// What needs more.
        what: String,
        /// Tokens needed.
        needed: u64,
        /// Where the too-long use is.
        #[label("needs about {needed} tokens")]
        span: Span,
        /// Hint.
        #[help]
        help: Option<String>,
    },

    /// A sweep variable that nothing uses.
    #[error("sweep variable `{name}` is never used")]
    #[diagnostic(
        code(rlp::E0415),
        help(
            "use it as `${name}` in a stage or eval, or remove the sweep: unused, it multiplies the cells for nothing"
        )
    )]
    UnusedSweepVariable {
        /// The variable.
        name: String,
        /// The sweep.
        #[label("never used")]
        span: Span,
    },

    /// A stage takes a share of a budget in units it cannot be converted to.
    #[error(
        "budget `{budget}` is in {unit}, which a `{stage_kind}` stage cannot convert to {needed}"
    )]
    #[diagnostic(code(rlp::E0416))]
    BudgetUnitMismatch {
        /// The budget.
        budget: String,
        /// Its unit.
        unit: String,
        /// The stage kind.
        stage_kind: String,
        /// The stage's unit.
        needed: String,
        /// Where.
        #[label("cannot convert")]
        span: Span,
        /// How to fix.
        #[help]
        help: Option<String>,
    },

    /// A source restricts a task to a context the task does not use.
    #[error("task `{task}` does not use context `{context}`")]
    #[diagnostic(code(rlp::E0417))]
    ContextNotInTask {
        /// The task.
        task: String,
        /// The context.
        context: String,
        /// Where.
        #[label("not among the task's contexts")]
        span: Span,
        /// The task's contexts.
        #[help]
        help: Option<String>,
    },

    /// A list that needs at least one element is empty.
    #[error("{what} is empty")]
    #[diagnostic(code(rlp::E0418))]
    EmptyList {
        /// What.
        what: String,
        /// Where.
        #[label("needs at least one entry")]
        span: Span,
        /// Hint.
        #[help]
        help: Option<String>,
    },

    /// A template has an unclosed `{` or a stray `}`.
    #[error("template of `{slot}` has an unmatched `{brace}`")]
    #[diagnostic(
        code(rlp::E0419),
        help("placeholders are written `{{name}}`; write `{{{{` or `}}}}` for a literal brace")
    )]
    MalformedTemplate {
        /// The slot.
        slot: String,
        /// `{` or `}`.
        brace: char,
        /// Where.
        #[label("unmatched brace in this template")]
        span: Span,
    },

    /// Mode weights do not sum to 1.
    #[error("mode weights sum to {sum}, not 1")]
    #[diagnostic(code(rlp::E0420), help("write e.g. `modes forward 0.5, reverse 0.5`"))]
    ModeWeights {
        /// The sum.
        sum: String,
        /// Where.
        #[label("weights sum to {sum}")]
        span: Span,
    },

    /// A sweep with no values.
    #[error("sweep `{name}` has no values")]
    #[diagnostic(code(rlp::E0421), help("write `sweep {name} = [value, value, ...]`"))]
    EmptySweep {
        /// The sweep.
        name: String,
        /// Where.
        #[label("empty")]
        span: Span,
    },

    /// A line has more values than its field takes.
    #[error("`{field}` takes no more values here, but {found} follows")]
    #[diagnostic(code(rlp::E0422))]
    TrailingValue {
        /// The field.
        field: String,
        /// What was found.
        found: String,
        /// Where.
        #[label("not expected here")]
        span: Span,
        /// The field's syntax.
        #[help]
        help: Option<String>,
    },

    /// Training sequences are longer than the model's context.
    #[error("sequences of {seq} tokens do not fit model `{model}`'s context of {context}")]
    #[diagnostic(
        code(rlp::E0423),
        help(
            "use a sequence length of at most {context} in `batch`, or raise the model's `context`"
        )
    )]
    SequenceTooLong {
        /// The model.
        model: String,
        /// Sequence length.
        seq: u64,
        /// Model context.
        context: u64,
        /// Where.
        #[label("{seq} > {context}")]
        span: Span,
    },

    /// The sweep expands into too many cells.
    #[error("the sweeps expand into {cells} cells, more than the limit of {limit}")]
    #[diagnostic(
        code(rlp::E0424),
        help("split the experiment into several files, or sweep fewer values")
    )]
    TooManyCells {
        /// Cells.
        cells: u64,
        /// Limit.
        limit: u64,
        /// The first sweep.
        #[label("the sweeps start here")]
        span: Span,
    },

    /// A zipped sweep has a different number of values than the sweep it zips with.
    #[error("sweep `{name}` has {len} values but is zipped with `{other}`, which has {other_len}")]
    #[diagnostic(
        code(rlp::E0426),
        help("zipped sweeps take their values in step, so they need the same number of values")
    )]
    ZipLengthMismatch {
        /// The zipped sweep.
        name: String,
        /// Its length.
        len: u64,
        /// The sweep it zips with.
        other: String,
        /// That sweep's length.
        other_len: u64,
        /// The `zip` target.
        #[label("{other_len} values")]
        span: Span,
    },

    /// A phrasing whose solution steps the verifier could not parse back.
    #[error("the solution steps of phrasing `{phrasing}` cannot be verified")]
    #[diagnostic(
        code(rlp::E0427),
        help(
            "write `define` as `KEYWORD {{name}} CONNECTOR {{var}}; ` (like `Define {{name}} as {{var}}; `), or leave `{{name}}` out so that letters name the steps"
        )
    )]
    UnverifiableSteps {
        /// The phrasing.
        phrasing: String,
        /// The `define` line.
        #[label("the verifier cannot find steps written like this")]
        span: Span,
    },

    /// A context's pools are too small for the op range its task asks for.
    #[error("context `{context}` is too small for op {max_op}: it can hold at most op {capacity}")]
    #[diagnostic(
        code(rlp::E0425),
        help("add names to the context's entity and item pools, or lower the task's `max_op`")
    )]
    ContextTooSmall {
        /// The context.
        context: String,
        /// The task's max op.
        max_op: i64,
        /// The capacity.
        capacity: i64,
        /// Where the context is used.
        #[label("used here")]
        span: Span,
    },

    /// A model with an output head of its own: rlp's model ties it to the embedding.
    #[error(
        "model `{model}` sets `tied_embeddings off`, but rlp's model always ties its output head to the embedding"
    )]
    #[diagnostic(
        code(rlp::E0428),
        help(
            "remove the line (the reference's Qwen2 ties them); an untied head is not implemented"
        )
    )]
    UntiedEmbeddings {
        /// The model.
        model: String,
        /// The line.
        #[label("not supported")]
        span: Span,
    },

    /// A checkpoint directory a stage starts from that cannot be read or does not fit.
    #[error("cannot start from `{path}`: {reason}")]
    #[diagnostic(
        code(rlp::E0429),
        help(
            "a stage starts from a directory written by `rlp export` for the same model and tokenizer (the same contexts, phrasings and numbers); the path is relative to this file"
        )
    )]
    CheckpointUnusable {
        /// The path as written.
        path: String,
        /// What is wrong.
        reason: String,
        /// The path.
        #[label("this checkpoint")]
        span: Span,
    },
}
