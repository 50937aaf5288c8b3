//! Typed specifications of everything a plan contains.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub usize);
    };
}

id_type!(
    /// Index into [`super::Plan::contexts`].
    ContextId
);
id_type!(
    /// Index into [`super::Plan::phrasings`].
    PhrasingId
);
id_type!(
    /// Index into [`super::Plan::tasks`].
    TaskId
);
id_type!(
    /// Index into [`super::Plan::models`].
    ModelId
);
id_type!(
    /// Index into [`super::Plan::rewards`].
    RewardId
);
id_type!(
    /// Index into [`super::Plan::stages`].
    StageId
);

/// A named pool of names; one pool per layer is chosen per problem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamePool {
    /// The pool's name (`wild`, `mammal`, ...).
    pub name: String,
    /// The names.
    pub names: Vec<String>,
}

/// The surface vocabulary of problems.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContextSpec {
    /// The context's name.
    pub name: String,
    /// The entity (layer-0) category, e.g. `Location`.
    pub entity_category: String,
    /// Entity name pools.
    pub entities: Vec<NamePool>,
    /// The name of an entity's total, e.g. `total number of adult animals`.
    pub total: String,
    /// Item (layer-1) name pools.
    pub items: Vec<NamePool>,
    /// Question about a total: placeholders `{total}`, `{entity}`.
    pub ask_total: String,
    /// Question about an item: placeholders `{item}`, `{entity}`.
    pub ask_item: String,
    /// The largest op(G) the pools can hold.
    pub capacity: u32,
}

/// Sentence and solution templates, slot name → template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhrasingSpec {
    /// The phrasing's name.
    pub name: String,
    /// Every slot's name and template, in the order of [`crate::plan::template::Slot::ALL`].
    pub templates: Vec<(String, String)>,
    /// Whether problems in this phrasing show context names (entities, items).
    pub shows_context: bool,
}

impl PhrasingSpec {
    /// The template of a slot (every phrasing has one for every slot).
    #[must_use]
    pub fn template(&self, slot: crate::plan::template::Slot) -> &str {
        match self.templates.get(slot.index()) {
            Some((name, text)) if name == slot.name() => text,
            _ => "",
        }
    }
}

/// Weights of forward and reverse (solve-for-x) problems.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ModeWeights {
    /// Share of forward problems.
    pub forward: f64,
    /// Share of reverse problems.
    pub reverse: f64,
}

/// A generator family over dependency graphs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskSpec {
    /// The task's name.
    pub name: String,
    /// Contexts problems are drawn from.
    pub contexts: Vec<ContextId>,
    /// The phrasing.
    pub phrasing: PhrasingId,
    /// Leaf and "plus" constants, inclusive.
    pub constants: (i64, i64),
    /// "times" constants, inclusive.
    pub multipliers: (i64, i64),
    /// Largest allowed intermediate value.
    pub max_value: i64,
    /// Forward / reverse mix.
    pub modes: ModeWeights,
    /// Whether problems carry distractor sentences.
    pub distractors: bool,
    /// The order of the problem sentences.
    #[serde(default)]
    pub sentences: SentenceOrder,
    /// Largest op(G) the task generates (at most [`MAX_OP`]).
    pub max_op: u32,
}

/// The largest `max_op` a task may declare, so the largest op anything is asked about.
pub const MAX_OP: u32 = 200;

/// The order of a problem's sentences.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SentenceOrder {
    /// In random order, as the reference renders them: finding what the question needs is
    /// part of the problem.
    #[default]
    Shuffled,
    /// The necessary sentences in the order the solution computes them, with distractors
    /// (and reverse mode's stated total) at random places between them: an easier form for
    /// models too small to search the problem first.
    Ordered,
}

/// Forward or reverse problems.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Compute the target from the givens.
    Forward,
    /// Solve for an unknown leaf from a stated total.
    Reverse,
}

/// A task restricted to ops, contexts and optionally a mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceSpec {
    /// The task.
    pub task: TaskId,
    /// Lowest op, inclusive.
    pub op_min: u32,
    /// Highest op, inclusive.
    pub op_max: u32,
    /// Contexts drawn from (defaults to all of the task's).
    pub contexts: Vec<ContextId>,
    /// A fixed mode, or `None` for the task's mix.
    pub mode: Option<Mode>,
}

/// A weighted source of a mixture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Component {
    /// Weight, normalised so that a mixture's weights sum to 1.
    pub weight: f64,
    /// The source.
    pub source: SourceSpec,
}

/// A stage's data: a named mixture or a single source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataSpec {
    /// The mixture's name, if the data came from one.
    pub mixture: Option<String>,
    /// The components; weights sum to 1.
    pub components: Vec<Component>,
}

/// A decoder's architecture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    /// The model's name.
    pub name: String,
    /// Transformer blocks.
    pub layers: u32,
    /// Residual width.
    pub hidden: u32,
    /// Attention heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// `SwiGLU` inner width.
    pub ffn: u32,
    /// Longest sequence, in tokens.
    pub context: u32,
    /// `RoPE` base.
    pub rope_theta: f64,
    /// Whether the output head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Whether q/k/v projections have biases (Qwen2 does).
    pub qkv_bias: bool,
    /// `RMSNorm` epsilon.
    pub norm_eps: f64,
    /// Standard deviation of the initial weights.
    pub init_std: f64,
    /// Parameters outside the embedding (which depends on the vocabulary).
    pub non_embedding_params: u64,
}

/// Learning-rate schedule shape after warmup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Half-cosine from peak to floor.
    Cosine,
    /// Straight line from peak to floor.
    Linear,
    /// Stay at the peak.
    Constant,
}

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LrSchedule {
    /// Rate after warmup.
    pub peak: f64,
    /// Rate at the end.
    pub floor: f64,
    /// Shape of the decay.
    pub decay: Decay,
    /// Share of steps spent warming up linearly from 0.
    pub warmup: f64,
}

/// Which tokens the next-token loss is taken over.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LossTarget {
    /// Every token of problem and solution (the reference).
    Full,
    /// The solution and answer tokens only.
    Solution,
}

/// A `pretrain` or `midtrain` stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSpec {
    /// The model.
    pub model: ModelId,
    /// The data.
    pub data: DataSpec,
    /// Tokens to train on.
    pub tokens: u64,
    /// Sequences per optimizer step.
    pub batch: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    /// Learning-rate schedule.
    pub lr: LrSchedule,
    /// `AdamW` weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip.
    pub grad_clip: f64,
    /// Loss target.
    pub loss: LossTarget,
    /// Held-out loss every this many steps.
    pub eval_every: u32,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u32,
    /// The checkpoint directory a `midtrain` starts from instead of a parent stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Checkpoint>,
    /// Tokens after which training stops, the learning-rate schedule still spanning `tokens`:
    /// an intermediate checkpoint of one longer schedule, as the reference takes its
    /// mid-training budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<u64>,
}

impl TrainSpec {
    /// Optimizer steps the learning-rate schedule spans: `tokens` in whole batches.
    #[must_use]
    pub fn schedule_steps(&self) -> u64 {
        self.tokens
            .div_ceil(u64::from(self.batch) * u64::from(self.seq_len))
    }

    /// Optimizer steps the stage takes: the schedule's, or as many as `stop` tokens fill.
    #[must_use]
    pub fn steps(&self) -> u64 {
        let batch = u64::from(self.batch) * u64::from(self.seq_len);
        match self.stop {
            Some(stop) => stop.div_ceil(batch).min(self.schedule_steps()),
            None => self.schedule_steps(),
        }
    }
}

fn one() -> u32 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_one(value: &u32) -> bool {
    *value == 1
}

/// A checkpoint directory written by `rlp export` that a stage starts from (`from "DIR"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// The directory, resolved against the file's directory when the file was checked; not
    /// part of the stage's content (the weights are), so moving it changes nothing.
    #[serde(skip)]
    pub dir: std::path::PathBuf,
    /// SHA-256 (hex) of its `model.safetensors`.
    pub weights_sha256: String,
}

/// The edge-of-competence prompt filter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct FilterSpec {
    /// Lowest pass rate kept.
    pub min_pass_rate: f64,
    /// Highest pass rate kept.
    pub max_pass_rate: f64,
    /// Samples per prompt used to estimate the pass rate.
    pub samples: u32,
}

/// Validation during RL: the policy's greedy completions of a fixed set of problems, scored
/// every `every` steps, as the reference validates every 20 steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidateSpec {
    /// Where the problems come from.
    pub source: SourceSpec,
    /// Problems per op.
    pub problems_per_op: u32,
    /// Steps between validations (also before the first step and after the last).
    pub every: u32,
    /// The problems' seed (the plan's, derived for validation: the same for every stage).
    pub seed: u64,
}

impl ValidateSpec {
    /// Whether a stage of `steps` steps validates after `step` (0: before the first).
    #[must_use]
    pub fn due(&self, step: u64, steps: u64) -> bool {
        step % u64::from(self.every) == 0 || step == steps
    }

    /// How many times a stage of `steps` steps validates.
    #[must_use]
    pub fn count(&self, steps: u64) -> u64 {
        1 + steps.div_ceil(u64::from(self.every))
    }
}

/// An `rl` stage (GRPO).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RlSpec {
    /// The model (inherited from the parent stage).
    pub model: ModelId,
    /// Prompts.
    pub prompts: DataSpec,
    /// Rollouts per prompt.
    pub group: u32,
    /// Prompts per step.
    pub prompts_per_step: u32,
    /// Policy-update steps.
    pub steps: u32,
    /// The reward.
    pub reward: RewardId,
    /// KL penalty coefficient (k3 estimator, as a loss term).
    pub kl: f64,
    /// PPO clip ε below 1.
    pub clip_low: f64,
    /// PPO clip ε above 1.
    pub clip_high: f64,
    /// Learning rate (constant, as the reference).
    pub lr: f64,
    /// `AdamW` weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip.
    pub grad_clip: f64,
    /// Rollout temperature.
    pub temperature: f64,
    /// Rollout nucleus threshold.
    pub top_p: f64,
    /// Longest rollout.
    pub max_new_tokens: u32,
    /// Optimisation epochs per batch of rollouts.
    pub epochs: u32,
    /// Optimizer updates per epoch: the step's prompts (with their rollouts) split into this
    /// many mini-batches, as verl's `ppo_mini_batch_size` does (1024 prompts in mini-batches
    /// of 256: 4).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub minibatches: u32,
    /// Prompts longer than this many tokens are skipped, as verl's `max_prompt_length` filters
    /// them (the reference: 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<u32>,
    /// Optional competence filter.
    pub filter: Option<FilterSpec>,
    /// Optional validation during training (absent from the stage's key when not declared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateSpec>,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u32,
    /// The checkpoint directory the stage starts from instead of a parent stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Checkpoint>,
}

/// What a stage does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageSpec {
    /// Next-token training from random initialisation.
    Pretrain(TrainSpec),
    /// Next-token training continued from a parent.
    Midtrain(TrainSpec),
    /// GRPO from a parent.
    Rl(RlSpec),
}

impl StageSpec {
    /// Optimizer steps the stage takes: its tokens in whole batches (none for a 0% share of a
    /// budget), or its GRPO steps.
    #[must_use]
    pub fn steps(&self) -> u64 {
        match self {
            StageSpec::Pretrain(t) | StageSpec::Midtrain(t) => t.steps(),
            StageSpec::Rl(r) => u64::from(r.steps),
        }
    }

    /// The stage's model.
    #[must_use]
    pub fn model(&self) -> ModelId {
        match self {
            StageSpec::Pretrain(t) | StageSpec::Midtrain(t) => t.model,
            StageSpec::Rl(r) => r.model,
        }
    }

    /// The data the stage trains on.
    #[must_use]
    pub fn data(&self) -> &DataSpec {
        match self {
            StageSpec::Pretrain(t) | StageSpec::Midtrain(t) => &t.data,
            StageSpec::Rl(r) => &r.prompts,
        }
    }

    /// The checkpoint directory the stage starts from, if it starts from one.
    #[must_use]
    pub fn start(&self) -> Option<&Checkpoint> {
        match self {
            StageSpec::Pretrain(t) | StageSpec::Midtrain(t) => t.start.as_ref(),
            StageSpec::Rl(r) => r.start.as_ref(),
        }
    }

    /// The keyword of the stage kind.
    #[must_use]
    pub fn keyword(&self) -> &'static str {
        match self {
            StageSpec::Pretrain(_) => "pretrain",
            StageSpec::Midtrain(_) => "midtrain",
            StageSpec::Rl(_) => "rl",
        }
    }
}

/// A reward primitive, evaluated by the task engine on (problem, completion).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Primitive {
    /// 1 if the final answer is right, else 0.
    Answer,
    /// Process-verified score in [0, 1] (`R_pv`).
    Process,
    /// 1 if the completion is well-formed, else 0.
    Format,
    /// Completion length as a share of the stage's `max_new_tokens`, in [0, 1].
    Length,
}

/// A binary operator of a reward expression.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RewardOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl RewardOp {
    /// The operator as written.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            RewardOp::Add => "+",
            RewardOp::Sub => "-",
            RewardOp::Mul => "*",
            RewardOp::Div => "/",
            RewardOp::Lt => "<",
            RewardOp::Le => "<=",
            RewardOp::Gt => ">",
            RewardOp::Ge => ">=",
            RewardOp::Eq => "==",
            RewardOp::Ne => "!=",
        }
    }

    /// The operator written `text`, if any.
    #[must_use]
    pub fn from_symbol(text: &str) -> Option<Self> {
        [
            RewardOp::Add,
            RewardOp::Sub,
            RewardOp::Mul,
            RewardOp::Div,
            RewardOp::Lt,
            RewardOp::Le,
            RewardOp::Gt,
            RewardOp::Ge,
            RewardOp::Eq,
            RewardOp::Ne,
        ]
        .into_iter()
        .find(|op| op.symbol() == text)
    }
}

/// A resolved reward expression.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RewardExpr {
    /// A constant.
    Const(f64),
    /// A primitive.
    Primitive(Primitive),
    /// `-e`.
    Neg(Box<RewardExpr>),
    /// `a op b`; comparisons give 0 or 1.
    Binary(RewardOp, Box<RewardExpr>, Box<RewardExpr>),
    /// `min(...)`.
    Min(Vec<RewardExpr>),
    /// `max(...)`.
    Max(Vec<RewardExpr>),
    /// `if c { a } else { b }`: a when c is non-zero.
    If(Box<RewardExpr>, Box<RewardExpr>, Box<RewardExpr>),
}

impl RewardExpr {
    /// Evaluates the expression given the primitives' values.
    #[must_use]
    pub fn eval(&self, primitive: &impl Fn(Primitive) -> f64) -> f64 {
        let bool01 = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            RewardExpr::Const(c) => *c,
            RewardExpr::Primitive(p) => primitive(*p),
            RewardExpr::Neg(e) => -e.eval(primitive),
            RewardExpr::Binary(op, a, b) => {
                let (a, b) = (a.eval(primitive), b.eval(primitive));
                match op {
                    RewardOp::Add => a + b,
                    RewardOp::Sub => a - b,
                    RewardOp::Mul => a * b,
                    // `rlp check` rejects a divisor that can be 0 outside a guard; should one
                    // reach evaluation anyway, the reward is 0, never NaN or infinite.
                    RewardOp::Div if b == 0.0 => 0.0,
                    RewardOp::Div => a / b,
                    RewardOp::Lt => bool01(a < b),
                    RewardOp::Le => bool01(a <= b),
                    RewardOp::Gt => bool01(a > b),
                    RewardOp::Ge => bool01(a >= b),
                    RewardOp::Eq => bool01((a - b).abs() < 1e-12),
                    RewardOp::Ne => bool01((a - b).abs() >= 1e-12),
                }
            }
            RewardExpr::Min(args) => args
                .iter()
                .map(|e| e.eval(primitive))
                .fold(f64::INFINITY, f64::min),
            RewardExpr::Max(args) => args
                .iter()
                .map(|e| e.eval(primitive))
                .fold(f64::NEG_INFINITY, f64::max),
            RewardExpr::If(c, a, b) => {
                if c.eval(primitive) == 0.0 {
                    b.eval(primitive)
                } else {
                    a.eval(primitive)
                }
            }
        }
    }
}

/// A named reward.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RewardSpec {
    /// The reward's name.
    pub name: String,
    /// The expression as written.
    pub source: String,
    /// The resolved expression.
    pub expr: RewardExpr,
    /// Primitives it depends on.
    pub primitives: Vec<Primitive>,
}

/// The unit a budget counts in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    /// Training tokens.
    Tokens,
    /// GRPO steps.
    RlSteps,
    /// Floating-point operations (6·N per trained token).
    Flops,
}

/// A declared compute budget.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetSpec {
    /// The budget's name.
    pub name: String,
    /// The amount.
    pub amount: f64,
    /// Its unit.
    pub unit: BudgetUnit,
    /// What one RL step counts as, if declared (`where rl_step = 200k tokens`, or `= 2e11
    /// flops`).
    pub rl_step: Option<RlStepRate>,
}

/// The declared cost of one RL step in another unit of a budget.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RlStepRate {
    /// The amount.
    pub amount: f64,
    /// Its unit: [`BudgetUnit::Tokens`] or [`BudgetUnit::Flops`].
    pub unit: BudgetUnit,
}

impl BudgetSpec {
    /// The budget in training tokens of a model with `params` parameters outside the
    /// embedding; none for RL steps without a declared rate.
    #[must_use]
    pub fn in_tokens(&self, params: u64) -> Option<f64> {
        let flops_per_token = super::cost::TRAIN * params as f64;
        match self.unit {
            BudgetUnit::Tokens => Some(self.amount),
            BudgetUnit::Flops => Some(self.amount / flops_per_token),
            BudgetUnit::RlSteps => self.rl_step.map(|rate| match rate.unit {
                BudgetUnit::Flops => self.amount * rate.amount / flops_per_token,
                BudgetUnit::Tokens | BudgetUnit::RlSteps => self.amount * rate.amount,
            }),
        }
    }

    /// The budget in RL steps of a model with `params` parameters outside the embedding; none
    /// for tokens or FLOPs without a declared rate.
    #[must_use]
    pub fn in_rl_steps(&self, params: u64) -> Option<f64> {
        if self.unit == BudgetUnit::RlSteps {
            return Some(self.amount);
        }
        let rate = self.rl_step?;
        let flops_per_token = super::cost::TRAIN * params as f64;
        let tokens = |amount: f64, unit: BudgetUnit| match unit {
            BudgetUnit::Flops => amount / flops_per_token,
            BudgetUnit::Tokens | BudgetUnit::RlSteps => amount,
        };
        Some(tokens(self.amount, self.unit) / tokens(rate.amount, rate.unit))
    }
}

/// Which metric an eval reports first.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Every step and the answer checked (the paper's strict criterion).
    Verified,
    /// The final answer only.
    Answer,
}

/// A named evaluation split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SplitSpec {
    /// The split's name.
    pub name: String,
    /// Its problems.
    pub source: SourceSpec,
    /// Declared to lie beyond every training range of the evaluated models.
    pub extrapolative: bool,
    /// Declared to use contexts no evaluated model trained on.
    pub held_out: bool,
}

/// An `eval` block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalSpec {
    /// The block's name (`eval` if unnamed).
    pub name: String,
    /// Stages whose final models are evaluated.
    pub models: Vec<StageId>,
    /// The splits.
    pub splits: Vec<SplitSpec>,
    /// Problems per op per split.
    pub problems_per_op: u32,
    /// Samples per problem.
    pub samples: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus threshold.
    pub top_p: f64,
    /// The ks of pass@k.
    pub pass_at: Vec<u32>,
    /// The headline metric.
    pub metric: Metric,
    /// Longest completion.
    pub max_new_tokens: u32,
    /// The eval's seed.
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_count_is_the_number_of_steps_due() {
        for every in [1, 3, 20] {
            let spec = ValidateSpec {
                source: SourceSpec {
                    task: TaskId(0),
                    op_min: 2,
                    op_max: 3,
                    contexts: Vec::new(),
                    mode: None,
                },
                problems_per_op: 1,
                every,
                seed: 0,
            };
            for steps in [0, 1, 19, 20, 21, 195] {
                let due = (0..=steps).filter(|&s| spec.due(s, steps)).count() as u64;
                assert_eq!(spec.count(steps), due, "every {every}, {steps} steps");
            }
        }
    }
}
