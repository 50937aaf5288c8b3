//! Cell-independent definitions: models, tasks and budgets (contexts and phrasings are in
//! `templates.rs`, rewards in `reward.rs`).

use super::fields::{self, Env, Fields, Reader};
use super::symbols::{DefKind, Symbols};
use crate::diagnostics::{AnalysisError, Diagnostic};
use crate::plan::{
    BudgetSpec, BudgetUnit, MAX_OP, ModeWeights, ModelSpec, RlStepRate, SentenceOrder,
};
use crate::syntax::ast::{Atom, Block, BudgetItem, Line};

/// Model fields, in canonical order.
const MODEL_FIELDS: &[&str] = &[
    "preset",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "ffn",
    "context",
    "rope_theta",
    "tied_embeddings",
    "qkv_bias",
    "norm_eps",
    "init_std",
];

/// Lowers a `model` block; `preset` copies another model's fields first.
pub(crate) fn lower_model(
    block: &Block,
    name: &str,
    symbols: &Symbols<'_>,
    sink: &mut Vec<Diagnostic>,
) -> Option<ModelSpec> {
    let fields = Fields::collect(block, MODEL_FIELDS, &[], sink);
    let before = sink.len();
    let base = match fields.get("preset") {
        Some(line) => {
            let mut r = Reader::new(line, Env::Fixed, "preset MODEL", sink)?;
            let preset = r.name("a model name")?;
            r.finish();
            let def = symbols.lookup(&preset, &[DefKind::Model], sink)?;
            let preset_block = def.block()?;
            if preset_block
                .lines
                .iter()
                .any(|l| matches!(l.key(), Atom::Name(n) if n.text == "preset"))
            {
                sink.push(
                    AnalysisError::WrongValue {
                        expected: "a model with explicit fields".to_owned(),
                        found: format!("`{}`, which has a preset itself", preset.text),
                        span: preset.span,
                        help: Some("presets do not chain: copy the fields you need".to_owned()),
                    }
                    .into(),
                );
                return None;
            }
            // The preset's own problems are reported where it is defined.
            let mut scratch = Vec::new();
            Some(lower_model(preset_block, name, symbols, &mut scratch)?)
        }
        None => None,
    };
    let int = |field: &'static str, lo: i64, hi: i64, sink: &mut Vec<Diagnostic>| {
        fields::single(fields.get(field), Env::Fixed, sink, None, |r| {
            r.int(field, lo, hi).map(|v| Some(v as u32))
        })
    };
    let real = |field: &'static str, lo: f64, hi: f64, sink: &mut Vec<Diagnostic>| {
        fields::single(fields.get(field), Env::Fixed, sink, None, |r| {
            r.real(field, lo, hi).map(Some)
        })
    };
    let layers = int("layers", 1, 1024, sink);
    let hidden = int("hidden", 1, 1 << 16, sink);
    let heads = int("heads", 1, 1024, sink);
    let kv_heads = int("kv_heads", 1, 1024, sink);
    let ffn = int("ffn", 1, 1 << 18, sink);
    let context = int("context", 8, 1 << 20, sink);
    let rope_theta = real("rope_theta", 1.0, 1e12, sink);
    let norm_eps = real("norm_eps", 1e-12, 1.0, sink);
    let init_std = real("init_std", 1e-6, 1.0, sink);
    let tied = switch(fields.get("tied_embeddings"), sink);
    let qkv_bias = switch(fields.get("qkv_bias"), sink);
    if sink.len() > before {
        return None;
    }
    let required = |value: Option<u32>,
                    field: &'static str,
                    from_base: Option<u32>,
                    sink: &mut Vec<Diagnostic>| {
        let v = value.or(from_base);
        if v.is_none() {
            fields.require(field, &format!("{field} 4"), sink);
        }
        v
    };
    let layers = required(layers?, "layers", base.as_ref().map(|b| b.layers), sink);
    let hidden = required(hidden?, "hidden", base.as_ref().map(|b| b.hidden), sink);
    let heads = required(heads?, "heads", base.as_ref().map(|b| b.heads), sink);
    let context = required(context?, "context", base.as_ref().map(|b| b.context), sink);
    let (layers, hidden, heads, context) = (layers?, hidden?, heads?, context?);
    let kv_heads = kv_heads?
        .or(base.as_ref().map(|b| b.kv_heads))
        .unwrap_or(heads);
    let ffn = ffn?.or(base.as_ref().map(|b| b.ffn)).unwrap_or(4 * hidden);
    if hidden % heads != 0 {
        let span = fields
            .get("heads")
            .or(fields.get("hidden"))
            .map_or(fields.header_span(), |l| l.span);
        sink.push(
            AnalysisError::HiddenNotDivisible {
                hidden: hidden.into(),
                heads: heads.into(),
                span,
            }
            .into(),
        );
        return None;
    }
    if heads % kv_heads != 0 {
        let span = fields
            .get("kv_heads")
            .or(fields.get("heads"))
            .map_or(fields.header_span(), |l| l.span);
        sink.push(
            AnalysisError::KvHeadsNotDivisible {
                heads: heads.into(),
                kv_heads: kv_heads.into(),
                span,
            }
            .into(),
        );
        return None;
    }
    let qkv_bias = qkv_bias?
        .or(base.as_ref().map(|b| b.qkv_bias))
        .unwrap_or(true);
    let tied = tied?.or(base.as_ref().map(|b| b.tied_embeddings));
    if tied == Some(false) {
        let span = fields
            .get("tied_embeddings")
            .map_or(fields.header_span(), |l| l.span);
        sink.push(
            AnalysisError::UntiedEmbeddings {
                model: name.to_owned(),
                span,
            }
            .into(),
        );
        return None;
    }
    let mut spec = ModelSpec {
        name: name.to_owned(),
        layers,
        hidden,
        heads,
        kv_heads,
        ffn,
        context,
        rope_theta: rope_theta?
            .or(base.as_ref().map(|b| b.rope_theta))
            .unwrap_or(1e6),
        tied_embeddings: true,
        qkv_bias,
        norm_eps: norm_eps?
            .or(base.as_ref().map(|b| b.norm_eps))
            .unwrap_or(1e-6),
        init_std: init_std?
            .or(base.as_ref().map(|b| b.init_std))
            .unwrap_or(0.02),
        non_embedding_params: 0,
    };
    spec.non_embedding_params = non_embedding_params(&spec);
    Some(spec)
}

/// Parameters outside the embedding: attention (q, k, v with optional bias, o), `SwiGLU` MLP,
/// two `RMSNorms` per block and the final norm.
#[must_use]
pub fn non_embedding_params(m: &ModelSpec) -> u64 {
    let (h, ffn) = (u64::from(m.hidden), u64::from(m.ffn));
    let kv = u64::from(m.kv_heads) * (h / u64::from(m.heads));
    let bias = if m.qkv_bias { h + 2 * kv } else { 0 };
    let attention = h * h + 2 * h * kv + h * h + bias;
    let mlp = 3 * h * ffn;
    u64::from(m.layers) * (attention + mlp + 2 * h) + h
}

/// `on` / `off`. The outer `None` means "reported an error", the inner one "not given".
#[allow(clippy::option_option)]
pub(crate) fn switch(line: Option<&Line>, sink: &mut Vec<Diagnostic>) -> Option<Option<bool>> {
    let Some(line) = line else { return Some(None) };
    let mut r = Reader::new(line, Env::Fixed, "field on|off", sink)?;
    let v = r.word("`on` or `off`", &["on", "off"])? == "on";
    r.finish();
    Some(Some(v))
}

/// The task's settings other than contexts and phrasing (which need the symbol table).
pub(crate) struct TaskSettings {
    pub(crate) constants: (i64, i64),
    pub(crate) multipliers: (i64, i64),
    pub(crate) max_value: i64,
    pub(crate) modes: ModeWeights,
    pub(crate) distractors: bool,
    pub(crate) sentences: SentenceOrder,
    pub(crate) max_op: u32,
}

/// Task fields.
pub(crate) const TASK_FIELDS: &[&str] = &[
    "contexts",
    "phrasing",
    "constants",
    "multipliers",
    "max_value",
    "modes",
    "distractors",
    "sentences",
    "max_op",
];

/// Reads a task's numeric settings, with the reference's defaults.
pub(crate) fn task_settings(
    fields: &Fields<'_>,
    sink: &mut Vec<Diagnostic>,
) -> Option<TaskSettings> {
    let before = sink.len();
    let range = |field: &'static str,
                 default: (i64, i64),
                 sink: &mut Vec<Diagnostic>|
     -> Option<(i64, i64)> {
        let Some(line) = fields.get(field) else {
            return Some(default);
        };
        let mut r = Reader::new(line, Env::Fixed, "field LO..=HI", sink)?;
        let (lo, hi, span) = r.int_range(field)?;
        if lo < 1 {
            r.out_of_range(&format!("`{field}`"), "at least 1", lo.to_string(), span);
            return None;
        }
        r.finish();
        Some((lo, hi))
    };
    let constants = range("constants", (1, 4), sink);
    let multipliers = range("multipliers", (2, 4), sink);
    let max_value = match fields.get("max_value") {
        Some(line) => Reader::new(line, Env::Fixed, "max_value 1000", sink).and_then(|mut r| {
            let v = r.int("`max_value`", 10, 1_000_000_000)?;
            r.finish();
            Some(v)
        }),
        None => Some(1000),
    };
    let max_op = match fields.get("max_op") {
        Some(line) => Reader::new(line, Env::Fixed, "max_op 20", sink).and_then(|mut r| {
            let v = r.int("`max_op`", 1, i64::from(MAX_OP))?;
            r.finish();
            Some(v as u32)
        }),
        None => Some(20),
    };
    let modes = match fields.get("modes") {
        Some(line) => modes(line, sink),
        None => Some(ModeWeights {
            forward: 0.5,
            reverse: 0.5,
        }),
    };
    let distractors = switch(fields.get("distractors"), sink).map(|v| v.unwrap_or(true));
    let sentences = match fields.get("sentences") {
        Some(line) => {
            Reader::new(line, Env::Fixed, "sentences shuffled", sink).and_then(|mut r| {
                let order = match r.word("`shuffled` or `ordered`", &["shuffled", "ordered"])? {
                    "ordered" => SentenceOrder::Ordered,
                    _ => SentenceOrder::Shuffled,
                };
                r.finish();
                Some(order)
            })
        }
        None => Some(SentenceOrder::Shuffled),
    };
    if sink.len() > before {
        return None;
    }
    Some(TaskSettings {
        constants: constants?,
        multipliers: multipliers?,
        max_value: max_value?,
        modes: modes?,
        distractors: distractors?,
        sentences: sentences?,
        max_op: max_op?,
    })
}

fn modes(line: &Line, sink: &mut Vec<Diagnostic>) -> Option<ModeWeights> {
    let mut r = Reader::new(line, Env::Fixed, "modes forward 0.5, reverse 0.5", sink)?;
    let mut weights = ModeWeights {
        forward: 0.0,
        reverse: 0.0,
    };
    loop {
        let mode = r.word("`forward` or `reverse`", &["forward", "reverse"])?;
        let weight = if r.group_done() {
            1.0
        } else {
            r.share("a mode weight")?
        };
        if mode == "forward" {
            weights.forward += weight;
        } else {
            weights.reverse += weight;
        }
        if !r.group_done() || !r.next_group() {
            break;
        }
    }
    let sum = weights.forward + weights.reverse;
    if (sum - 1.0).abs() > 1e-6 {
        sink.push(
            AnalysisError::ModeWeights {
                sum: super::fields::format_number(sum),
                span: line.span,
            }
            .into(),
        );
        return None;
    }
    Some(weights)
}

/// Lowers a `budget` item.
pub(crate) fn lower_budget(item: &BudgetItem, sink: &mut Vec<Diagnostic>) -> Option<BudgetSpec> {
    let amount = match &item.amount {
        Atom::Number(n)
            if n.value() > 0.0 && n.suffix != Some(crate::syntax::ast::Suffix::Percent) =>
        {
            n.value()
        }
        other => {
            sink.push(
                AnalysisError::WrongValue {
                    expected: "a positive amount".to_owned(),
                    found: other.describe().to_owned(),
                    span: other.span(),
                    help: Some("write e.g. `budget compute = 100 rl_steps`".to_owned()),
                }
                .into(),
            );
            return None;
        }
    };
    let units = [
        ("tokens", BudgetUnit::Tokens),
        ("rl_steps", BudgetUnit::RlSteps),
        ("flops", BudgetUnit::Flops),
    ];
    let Some((_, unit)) = units.iter().find(|(n, _)| *n == item.unit.text) else {
        sink.push(
            AnalysisError::WrongValue {
                expected: "a budget unit".to_owned(),
                found: format!("`{}`", item.unit.text),
                span: item.unit.span,
                help: super::suggest::help(
                    &item.unit.text,
                    units.iter().map(|(n, _)| *n),
                    "the units are",
                ),
            }
            .into(),
        );
        return None;
    };
    let mut rl_step = None;
    if let Some(rate) = &item.rate {
        let syntax = "write `where rl_step = 200k tokens` or `where rl_step = 2e11 flops`";
        if rate.unit.text != "rl_step" {
            sink.push(
                AnalysisError::WrongValue {
                    expected: "`rl_step`".to_owned(),
                    found: format!("`{}`", rate.unit.text),
                    span: rate.unit.span,
                    help: Some(syntax.to_owned()),
                }
                .into(),
            );
            return None;
        }
        let rate_unit = match rate.other.text.as_str() {
            "tokens" => BudgetUnit::Tokens,
            "flops" => BudgetUnit::Flops,
            other => {
                sink.push(
                    AnalysisError::WrongValue {
                        expected: "`tokens` or `flops`".to_owned(),
                        found: format!("`{other}`"),
                        span: rate.other.span,
                        help: Some(syntax.to_owned()),
                    }
                    .into(),
                );
                return None;
            }
        };
        match &rate.amount {
            Atom::Number(n) if n.value() > 0.0 && n.value().is_finite() => {
                rl_step = Some(RlStepRate {
                    amount: n.value(),
                    unit: rate_unit,
                });
            }
            other => {
                sink.push(
                    AnalysisError::WrongValue {
                        expected: "a positive amount".to_owned(),
                        found: other.describe().to_owned(),
                        span: other.span(),
                        help: Some(syntax.to_owned()),
                    }
                    .into(),
                );
                return None;
            }
        }
    }
    Some(BudgetSpec {
        name: item.name.text.clone(),
        amount,
        unit: *unit,
        rl_step,
    })
}
