//! Lowering one stage block (`pretrain`, `midtrain`, `rl`) in a cell: its fields, amounts
//! given directly or as budget shares, batch, learning-rate schedule and competence filter.

use super::Analyzer;
use super::cells::{BudgetShares, block_name};
use super::fields::{self, Env, Fields, Reader, format_number};
use crate::diagnostics::{AnalysisError, AnalysisWarning};
use crate::plan::{
    BudgetUnit, Decay, FilterSpec, LossTarget, LrSchedule, ModelId, RlSpec, StageSpec, TrainSpec,
    ValidateSpec,
};
use crate::syntax::Span;
use crate::syntax::ast::{Atom, Block, Line};
/// The largest `tokens` (or fixed `steps`) a stage may declare: a thousand times the paper's
/// largest schedule, and well inside the integers a float holds exactly.
const MAX_AMOUNT: f64 = 1e15;

/// A stage's fields with `model` added, for a stage that starts from a checkpoint directory.
fn with_model(fields: &[&'static str]) -> Vec<&'static str> {
    std::iter::once("model")
        .chain(fields.iter().copied())
        .collect()
}

const PRETRAIN_FIELDS: &[&str] = &[
    "model",
    "data",
    "tokens",
    "stop",
    "batch",
    "lr",
    "weight_decay",
    "grad_clip",
    "loss",
    "eval_every",
    "checkpoint_every",
    "seed",
];
const MIDTRAIN_FIELDS: &[&str] = &[
    "data",
    "tokens",
    "stop",
    "batch",
    "lr",
    "weight_decay",
    "grad_clip",
    "loss",
    "eval_every",
    "checkpoint_every",
    "seed",
];
const RL_FIELDS: &[&str] = &[
    "prompts",
    "group",
    "prompts_per_step",
    "steps",
    "reward",
    "kl",
    "clip",
    "lr",
    "weight_decay",
    "grad_clip",
    "temperature",
    "top_p",
    "max_new_tokens",
    "epochs",
    "minibatches",
    "max_prompt_tokens",
    "filter",
    "validate",
    "checkpoint_every",
    "seed",
];

/// An amount given directly or as a share of a budget.
enum Amount {
    Fixed(f64),
    Share {
        share: f64,
        budget: String,
        span: Span,
    },
}

impl Analyzer<'_> {
    /// Lowers a `pretrain` (no parent model) or `midtrain` (parent's model) stage.
    pub(super) fn lower_train(
        &mut self,
        block: &Block,
        env: Env<'_>,
        parent_model: Option<ModelId>,
        pretrain: bool,
        shares: &mut BudgetShares,
    ) -> Option<(StageSpec, u64)> {
        // A stage from a checkpoint directory names its model: nothing else says what it is.
        let from_checkpoint = !pretrain && block.checkpoint.is_some();
        let allowed = if pretrain {
            PRETRAIN_FIELDS.to_vec()
        } else if from_checkpoint {
            with_model(MIDTRAIN_FIELDS)
        } else {
            MIDTRAIN_FIELDS.to_vec()
        };
        let fields = Fields::collect(block, &allowed, &[], &mut self.sink);
        let before = self.sink.len();
        let model = if pretrain || from_checkpoint {
            self.model_line(&fields, env)
        } else {
            parent_model
        };
        let start = self.start(block, from_checkpoint);
        let data = fields
            .require("data", "data arith[op 2..=5]", &mut self.sink)
            .and_then(|line| self.data_line(line, env, "data MIXTURE or data TASK[op LO..=HI]"));
        let tokens = fields
            .require("tokens", "tokens 20M", &mut self.sink)
            .and_then(|line| self.amount(line, env, "tokens 20M  or  tokens 50% of BUDGET"));
        // Every field is read (and its problems reported) before anything missing stops us.
        let context = model.map(|m| {
            let spec = &self.plan.models[m.0];
            (spec.name.clone(), spec.context)
        });
        let batch = match (fields.get("batch"), context) {
            (Some(line), Some((model, context))) => self.batch(line, env, &model, context),
            (Some(_), None) => None,
            (None, context) => context.map(|(_, c)| (8, c.min(512))),
        };
        let warmup_default = if pretrain { 0.05 } else { 0.15 };
        let lr = match fields.get("lr") {
            Some(line) => self.lr_schedule(line, env, warmup_default),
            None => Some(LrSchedule {
                peak: 1e-3,
                floor: 1e-4,
                decay: Decay::Cosine,
                warmup: warmup_default,
            }),
        };
        let weight_decay = self.real_field(&fields, "weight_decay", env, 0.0, 10.0, 0.1);
        let grad_clip = self.real_field(&fields, "grad_clip", env, 0.0, 1e6, 1.0);
        let loss = match fields.get("loss") {
            Some(line) => {
                Reader::new(line, env, "loss full|solution", &mut self.sink).and_then(|mut r| {
                    let target = r.word("`full` or `solution`", &["full", "solution"])?;
                    r.finish();
                    Some(if target == "full" {
                        LossTarget::Full
                    } else {
                        LossTarget::Solution
                    })
                })
            }
            None => Some(LossTarget::Full),
        };
        let eval_every = self.int_field(&fields, "eval_every", env, 1, 1 << 30, 200);
        let checkpoint_every = self.int_field(&fields, "checkpoint_every", env, 1, 1 << 30, 500);
        let replica = self.int_field(&fields, "seed", env, 0, 1 << 30, 0);
        let model = model?;
        let (batch, seq_len) = batch?;
        let (lr, weight_decay, grad_clip, loss) = (lr?, weight_decay?, grad_clip?, loss?);
        let (eval_every, checkpoint_every) = (eval_every? as u32, checkpoint_every? as u32);
        let (data, data_spans) = data?;
        let amount = tokens?;
        let stop = match fields.get("stop") {
            Some(line) => self
                .amount(line, env, "stop 4B  or  stop 20% of BUDGET")
                .map(|a| Some((a, line.span))),
            None => Some(None),
        };
        let stop = stop?;
        if self.sink.len() > before {
            return None;
        }
        let tokens = match amount {
            Amount::Fixed(t) => t,
            Amount::Share {
                share,
                budget,
                span,
            } => self.budget_share(share, budget, span, model, block, shares, Unit::Tokens)?,
        };
        let stop = match stop {
            None => None,
            Some((amount, line_span)) => {
                let stop = match amount {
                    Amount::Fixed(t) => t,
                    Amount::Share {
                        share,
                        budget,
                        span,
                    } => {
                        self.budget_share(share, budget, span, model, block, shares, Unit::Tokens)?
                    }
                };
                if stop > tokens {
                    self.sink.push(
                        AnalysisError::ValueOutOfRange {
                            what: "`stop`".to_owned(),
                            allowed: format!(
                                "at most the schedule's `tokens` ({})",
                                format_number(tokens)
                            ),
                            value: format_number(stop),
                            span: line_span,
                            help: Some(
                                "`stop` ends the stage part-way through the schedule that `tokens` spans"
                                    .to_owned(),
                            ),
                        }
                        .into(),
                    );
                    return None;
                }
                Some(stop.round() as u64)
            }
        };
        self.check_lengths(model, &data, &data_spans, false)?;
        let spec = TrainSpec {
            model,
            data,
            tokens: tokens.round() as u64,
            batch,
            seq_len,
            lr,
            weight_decay,
            grad_clip,
            loss,
            eval_every,
            checkpoint_every,
            start: start.ok()?,
            stop,
        };
        let spec = if pretrain {
            StageSpec::Pretrain(spec)
        } else {
            StageSpec::Midtrain(spec)
        };
        Some((spec, replica? as u64))
    }

    /// Lowers an `rl` stage.
    pub(super) fn lower_rl(
        &mut self,
        block: &Block,
        env: Env<'_>,
        parent_model: Option<ModelId>,
        shares: &mut BudgetShares,
    ) -> Option<(StageSpec, u64)> {
        let from_checkpoint = block.checkpoint.is_some();
        let allowed = if from_checkpoint {
            with_model(RL_FIELDS)
        } else {
            RL_FIELDS.to_vec()
        };
        let fields = Fields::collect(block, &allowed, &[], &mut self.sink);
        let before = self.sink.len();
        let model = if from_checkpoint {
            self.model_line(&fields, env)
        } else {
            parent_model
        };
        let start = self.start(block, from_checkpoint);
        let prompts = fields
            .require("prompts", "prompts arith[op 5..=7]", &mut self.sink)
            .and_then(|line| {
                self.data_line(line, env, "prompts MIXTURE or prompts TASK[op LO..=HI]")
            });
        let steps = fields
            .require("steps", "steps 200", &mut self.sink)
            .and_then(|line| self.amount(line, env, "steps 200  or  steps 50% of BUDGET"));
        let reward = fields
            .require("reward", "reward blended", &mut self.sink)
            .and_then(|line| {
                let mut r = Reader::new(line, env, "reward NAME", &mut self.sink)?;
                let name = r.name("a reward name")?;
                r.finish();
                self.resolve_reward(&name)
            });
        // Every field is read (and its problems reported) before anything missing stops us.
        let group = self.int_field(&fields, "group", env, 2, 4096, 8);
        let prompts_per_step = self.int_field(&fields, "prompts_per_step", env, 1, 1 << 20, 16);
        let kl = self.real_field(&fields, "kl", env, 0.0, 100.0, 0.001);
        let clip = match fields.get("clip") {
            Some(line) => Reader::new(line, env, "clip 0.2  or  clip 0.2, 0.28", &mut self.sink)
                .and_then(|mut r| {
                    let low = r.real("the clip ε", 0.0, 1.0)?;
                    let high = if r.next_group() {
                        r.real("the upper clip ε", 0.0, 10.0)?
                    } else {
                        low
                    };
                    r.finish();
                    Some((low, high))
                }),
            None => Some((0.2, 0.2)),
        };
        let lr = self.real_field(&fields, "lr", env, 0.0, 1.0, 1e-5);
        let weight_decay = self.real_field(&fields, "weight_decay", env, 0.0, 10.0, 0.01);
        let grad_clip = self.real_field(&fields, "grad_clip", env, 0.0, 1e6, 1.0);
        let temperature = self.real_field(&fields, "temperature", env, 0.0, 10.0, 1.0);
        self.warn_greedy(&fields, block, temperature, group.map(i64::unsigned_abs));
        let top_p = self.real_field(&fields, "top_p", env, 0.0, 1.0, 1.0);
        let max_new_tokens = self.int_field(&fields, "max_new_tokens", env, 1, 1 << 20, 256);
        let epochs = self.int_field(&fields, "epochs", env, 1, 100, 1);
        let minibatches = self.int_field(&fields, "minibatches", env, 1, 1 << 20, 1);
        let max_prompt_tokens = match fields.get("max_prompt_tokens") {
            Some(_) => self
                .int_field(&fields, "max_prompt_tokens", env, 1, 1 << 30, 1)
                .map(|n| Some(n as u32)),
            None => Some(None),
        };
        let checkpoint_every = self.int_field(&fields, "checkpoint_every", env, 1, 1 << 30, 20);
        let replica = self.int_field(&fields, "seed", env, 0, 1 << 30, 0);
        let filter = match fields.get("filter") {
            Some(line) => self.filter(line, env).map(Some),
            None => Some(None),
        };
        let validate = match fields.get("validate") {
            Some(line) => self.validate(line, env).map(Some),
            None => Some(None),
        };
        let (group, prompts_per_step, kl, (clip_low, clip_high)) =
            (group? as u32, prompts_per_step? as u32, kl?, clip?);
        let (lr, weight_decay, grad_clip, temperature, top_p) =
            (lr?, weight_decay?, grad_clip?, temperature?, top_p?);
        let (max_new_tokens, epochs, minibatches, checkpoint_every, filter) = (
            max_new_tokens? as u32,
            epochs? as u32,
            minibatches? as u32,
            checkpoint_every? as u32,
            filter?,
        );
        let (max_prompt_tokens, validate) = (max_prompt_tokens?, validate?);
        if prompts_per_step % minibatches != 0 {
            let span = fields.get("minibatches").map_or(block.span, |l| l.span);
            self.sink.push(
                AnalysisError::ValueOutOfRange {
                    what: "`minibatches`".to_owned(),
                    allowed: format!("a divisor of `prompts_per_step` ({prompts_per_step})"),
                    value: minibatches.to_string(),
                    span,
                    help: Some(
                        "each mini-batch takes the same number of prompts with all their rollouts"
                            .to_owned(),
                    ),
                }
                .into(),
            );
            return None;
        }
        let (prompts, spans) = prompts?;
        let (amount, reward) = (steps?, reward?);
        let (model, start) = (model?, start.ok()?);
        if self.sink.len() > before {
            return None;
        }
        let steps = match amount {
            Amount::Fixed(s) => s,
            Amount::Share {
                share,
                budget,
                span,
            } => self
                .budget_share(share, budget, span, model, block, shares, Unit::RlSteps)?
                .round(),
        };
        // `amount` guarantees at least 1 for a fixed count; a share may be 0 (a no-op stage).
        if steps > f64::from(u32::MAX) {
            let span = fields.get("steps").map_or(block.span, |l| l.span);
            self.sink.push(
                AnalysisError::ValueOutOfRange {
                    what: "`steps`".to_owned(),
                    allowed: format!("at most {}", u32::MAX),
                    value: format_number(steps),
                    span,
                    help: None,
                }
                .into(),
            );
            return None;
        }
        let context = self.plan.models[model.0].context;
        if max_new_tokens >= context {
            let span = fields.get("max_new_tokens").map_or(block.span, |l| l.span);
            self.sink.push(
                AnalysisError::ValueOutOfRange {
                    what: "`max_new_tokens`".to_owned(),
                    allowed: format!("less than the model's context ({context})"),
                    value: max_new_tokens.to_string(),
                    span,
                    help: None,
                }
                .into(),
            );
            return None;
        }
        if let Some(limit) = max_prompt_tokens
            && limit >= context
        {
            let span = fields
                .get("max_prompt_tokens")
                .map_or(block.span, |l| l.span);
            self.sink.push(
                AnalysisError::ValueOutOfRange {
                    what: "`max_prompt_tokens`".to_owned(),
                    allowed: format!("less than the model's context ({context})"),
                    value: limit.to_string(),
                    span,
                    help: None,
                }
                .into(),
            );
            return None;
        }
        // Longer prompts are skipped, so only the limit has to fit.
        if max_prompt_tokens.is_none() {
            self.check_lengths(model, &prompts, &spans, true)?;
        }
        if let Some((validation, span)) = &validate {
            let what = format!("`validate` at op {}", validation.source.op_max);
            self.check_length(model, &validation.source, what, *span, true)?;
        }
        let validate = validate.map(|(v, _)| v);
        let spec = RlSpec {
            model,
            prompts,
            group,
            prompts_per_step,
            steps: steps as u32,
            reward,
            kl,
            clip_low,
            clip_high,
            lr,
            weight_decay,
            grad_clip,
            temperature,
            top_p,
            max_new_tokens,
            epochs,
            minibatches,
            max_prompt_tokens,
            filter,
            validate,
            checkpoint_every,
            start,
        };
        Some((StageSpec::Rl(spec), replica? as u64))
    }

    /// `model NAME`, required.
    fn model_line(&mut self, fields: &Fields<'_>, env: Env<'_>) -> Option<ModelId> {
        fields
            .require("model", "model tiny", &mut self.sink)
            .and_then(|line| {
                let mut r = Reader::new(line, env, "model NAME", &mut self.sink)?;
                let name = r.name("a model name")?;
                r.finish();
                self.resolve_model(&name)
            })
    }

    pub(super) fn filter(&mut self, line: &Line, env: Env<'_>) -> Option<FilterSpec> {
        let syntax = "filter pass_rate 0.1..=0.9 samples 8";
        let mut r = Reader::new(line, env, syntax, &mut self.sink)?;
        r.expect("pass_rate")?;
        let atom = r.atom("a pass-rate band such as `0.1..=0.9`")?;
        let Atom::Range(range) = &atom else {
            r.wrong("a pass-rate band such as `0.1..=0.9`", &atom);
            return None;
        };
        if !range.inclusive {
            r.sink.push(
                AnalysisError::ExclusiveRange {
                    suggestion: format!("{}..={}", range.lo.text, range.hi.text),
                    span: range.span,
                }
                .into(),
            );
            return None;
        }
        let (lo, hi) = (range.lo.value(), range.hi.value());
        if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) {
            r.out_of_range(
                "a pass rate",
                "between 0 and 1",
                format!("{lo}..={hi}"),
                range.span,
            );
            return None;
        }
        if lo > hi {
            r.sink.push(
                AnalysisError::EmptyRange {
                    range: format!("{}..={}", range.lo.text, range.hi.text),
                    suggestion: format!("{}..={}", range.hi.text, range.lo.text),
                    span: range.span,
                }
                .into(),
            );
            return None;
        }
        let samples = if r.eat("samples") {
            r.int("the filter's samples", 1, 4096)? as u32
        } else {
            8
        };
        r.finish();
        Some(FilterSpec {
            min_pass_rate: lo,
            max_pass_rate: hi,
            samples,
        })
    }

    /// `validate TASK[op LO..=HI] [problems N] [every S]`, with the problem source's span.
    fn validate(&mut self, line: &Line, env: Env<'_>) -> Option<(ValidateSpec, Span)> {
        let syntax = "validate arith[op 7..=9] problems 30 every 20";
        let mut r = Reader::new(line, env, syntax, &mut self.sink)?;
        let atom = r.atom("a source such as `arith[op 7..=9]`")?;
        let Atom::Source(source) = atom else {
            r.wrong("a source such as `arith[op 7..=9]`", &atom);
            return None;
        };
        let problems_per_op = if r.eat("problems") {
            r.int("the validation's problems per op", 1, 100_000)? as u32
        } else {
            30
        };
        let every = if r.eat("every") {
            r.int("the steps between validations", 1, 1 << 30)? as u32
        } else {
            20
        };
        r.finish();
        let span = source.span;
        let source = self.source(&source, env)?;
        Some((
            ValidateSpec {
                source,
                problems_per_op,
                every,
                seed: super::derive_seed(self.plan.seed, "validate"),
            },
            span,
        ))
    }

    pub(super) fn real_field(
        &mut self,
        fields: &Fields<'_>,
        field: &str,
        env: Env<'_>,
        lo: f64,
        hi: f64,
        default: f64,
    ) -> Option<f64> {
        fields::single(fields.get(field), env, &mut self.sink, default, |r| {
            r.real(&format!("`{field}`"), lo, hi)
        })
    }

    pub(super) fn int_field(
        &mut self,
        fields: &Fields<'_>,
        field: &str,
        env: Env<'_>,
        lo: i64,
        hi: i64,
        default: i64,
    ) -> Option<i64> {
        fields::single(fields.get(field), env, &mut self.sink, default, |r| {
            r.int(&format!("`{field}`"), lo, hi)
        })
    }

    /// `tokens 20M` / `steps 200`, or `... 50% of BUDGET`.
    fn amount(&mut self, line: &Line, env: Env<'_>, syntax: &'static str) -> Option<Amount> {
        let mut r = Reader::new(line, env, syntax, &mut self.sink)?;
        let field = r.field().to_owned();
        let (value, number) = r.number(&format!("the number of {field}"))?;
        if r.eat("of") {
            let budget = r.name("a budget name")?;
            r.finish();
            if !(0.0..=1.0).contains(&value) {
                self.sink.push(
                    AnalysisError::ValueOutOfRange {
                        what: "a budget share".to_owned(),
                        allowed: "between 0% and 100%".to_owned(),
                        value: format!(
                            "{}{}",
                            number.text,
                            if number.suffix.is_some() { "%" } else { "" }
                        ),
                        span: number.span,
                        help: None,
                    }
                    .into(),
                );
                return None;
            }
            return Some(Amount::Share {
                share: value,
                budget: budget.text,
                span: budget.span,
            });
        }
        r.finish();
        if number.suffix == Some(crate::syntax::ast::Suffix::Percent) {
            self.sink.push(
                AnalysisError::WrongValue {
                    expected: format!("a number of {field}"),
                    found: "a percentage".to_owned(),
                    span: number.span,
                    help: Some(format!(
                        "a share needs its budget: `{field} {}% of BUDGET`",
                        number.text
                    )),
                }
                .into(),
            );
            return None;
        }
        if !(1.0..=MAX_AMOUNT).contains(&value) || value.fract() != 0.0 {
            self.sink.push(
                AnalysisError::ValueOutOfRange {
                    what: format!("`{field}`"),
                    allowed: "a whole number from 1 to 1e15".to_owned(),
                    value: if value > MAX_AMOUNT {
                        format!("{value:e}")
                    } else {
                        format_number(value)
                    },
                    span: number.span,
                    help: None,
                }
                .into(),
            );
            return None;
        }
        Some(Amount::Fixed(value))
    }

    /// `batch 32 x 512` or `batch 32` (sequence length = the model's context, up to 512).
    pub(super) fn batch(
        &mut self,
        line: &Line,
        env: Env<'_>,
        model: &str,
        context: u32,
    ) -> Option<(u32, u32)> {
        let mut r = Reader::new(line, env, "batch SEQUENCES x TOKENS", &mut self.sink)?;
        let batch = r.int("the batch size", 1, 1 << 20)? as u32;
        let mut seq = context.min(512);
        let mut seq_span = None;
        if r.eat("x") {
            let atom = r.peek().cloned();
            seq = r.int("the sequence length", 2, 1 << 24)? as u32;
            seq_span = atom.map(|a| a.span());
        }
        r.finish();
        if seq > context {
            self.sink.push(
                AnalysisError::SequenceTooLong {
                    model: model.to_owned(),
                    seq: seq.into(),
                    context: context.into(),
                    span: seq_span.unwrap_or(line.span),
                }
                .into(),
            );
            return None;
        }
        Some((batch, seq))
    }

    /// `lr PEAK [-> FLOOR] [cosine|linear|constant] [warmup SHARE]`.
    pub(super) fn lr_schedule(
        &mut self,
        line: &Line,
        env: Env<'_>,
        warmup_default: f64,
    ) -> Option<LrSchedule> {
        let mut r = Reader::new(
            line,
            env,
            "lr 1e-3 -> 1e-4 cosine warmup 5%",
            &mut self.sink,
        )?;
        let peak = r.real("the learning rate", 0.0, 10.0)?;
        let mut floor = peak;
        let mut decay = Decay::Constant;
        let mut span = line.span;
        if matches!(r.peek(), Some(Atom::Arrow(_))) {
            r.atom("`->`");
            let end_atom = r.peek().cloned();
            floor = r.real("the final learning rate", 0.0, 10.0)?;
            span = end_atom.map_or(span, |a| a.span());
            decay = Decay::Cosine;
        }
        if let Some(Atom::Name(n)) = r.peek()
            && n.text != "warmup"
        {
            decay = match r.word("a schedule shape", &["cosine", "linear", "constant"])? {
                "cosine" => Decay::Cosine,
                "linear" => Decay::Linear,
                _ => Decay::Constant,
            };
        }
        let mut warmup = warmup_default;
        if r.eat("warmup") {
            let atom = r.peek().cloned();
            warmup = r.share("the warmup share")?;
            if warmup > 0.5 {
                let span = atom.map_or(line.span, |a| a.span());
                r.sink.push(
                    AnalysisWarning::LongWarmup {
                        percent: format_number(warmup * 100.0),
                        span,
                    }
                    .into(),
                );
            }
        }
        r.finish();
        if floor > peak {
            self.sink.push(
                AnalysisWarning::LrRises {
                    start: format_number(peak),
                    end: format_number(floor),
                    span,
                }
                .into(),
            );
        }
        Some(LrSchedule {
            peak,
            floor,
            decay,
            warmup,
        })
    }

    /// W0103 when several samples (an eval's, or an RL group's rollouts) are drawn at
    /// temperature 0: they are all the same.
    pub(super) fn warn_greedy(
        &mut self,
        fields: &Fields<'_>,
        block: &Block,
        temperature: Option<f64>,
        samples: Option<u64>,
    ) {
        if let (Some(0.0), Some(samples)) = (temperature, samples)
            && samples > 1
        {
            let span = fields.get("temperature").map_or(block.span, |l| l.span);
            self.sink
                .push(AnalysisWarning::GreedySamples { samples, span }.into());
        }
    }
}

/// What a stage takes a budget's share in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Training tokens (`pretrain`, `midtrain`).
    Tokens,
    /// GRPO steps (`rl`).
    RlSteps,
}

impl Analyzer<'_> {
    /// `share` of the budget named `budget`, in the stage's unit for its model (converted
    /// through the budget's declared rate where needed), recorded for the overspending check.
    #[allow(clippy::too_many_arguments)] // one share of one budget, as the stage declared it
    fn budget_share(
        &mut self,
        share: f64,
        budget: String,
        span: Span,
        model: ModelId,
        block: &Block,
        shares: &mut BudgetShares,
        unit: Unit,
    ) -> Option<f64> {
        let spec = self.resolve_budget(&crate::syntax::ast::Name {
            text: budget.clone(),
            span,
        })?;
        let params = self.plan.models[model.0].non_embedding_params;
        let total = match unit {
            Unit::Tokens => spec.in_tokens(params),
            Unit::RlSteps => spec.in_rl_steps(params),
        };
        let Some(total) = total else {
            let (has, needed) = match (unit, spec.unit) {
                (Unit::Tokens, _) => ("rl_steps", "tokens"),
                (Unit::RlSteps, BudgetUnit::Tokens) => ("tokens", "rl_steps"),
                (Unit::RlSteps, _) => ("flops", "rl_steps"),
            };
            self.sink.push(
                AnalysisError::BudgetUnitMismatch {
                    budget,
                    unit: has.to_owned(),
                    stage_kind: block.kind.text.clone(),
                    needed: needed.to_owned(),
                    span,
                    help: Some(
                        "declare the exchange rate: `budget NAME = ... where rl_step = 200k tokens` (or `= 2e11 flops`)"
                            .to_owned(),
                    ),
                }
                .into(),
            );
            return None;
        };
        shares
            .entry(spec.name)
            .or_default()
            .push((block_name(block), share));
        Some(share * total)
    }
}
