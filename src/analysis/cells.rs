//! Per-cell lowering: the stage graph, sweep expansion, stages, data and evals.
//!
//! Sweep variables may appear in stages, mixtures and evals, so these are lowered once per
//! cell with the cell's bindings. Identical stage instances (same spec, parent and seed) get the
//! same content hash and are stored once in the plan, shared by the cells that use them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::fields::{self, Bindings, Env, Fields, Reader, format_number};
use super::symbols::{Def, DefKind};
use super::templates::max_example_tokens;
use super::{Analyzer, derive_seed, name_list, suggest};
use crate::diagnostics::{AnalysisError, AnalysisWarning};
use crate::plan::{
    BudgetUnit, CellPlan, Component, DataSpec, Decay, EvalSpec, FilterSpec, LossTarget, LrSchedule,
    Metric, Mode, ModelId, RlSpec, SourceSpec, SplitSpec, StageId, StagePlan, StageSpec, TaskId,
    TrainSpec,
};
use crate::syntax::Span;
use crate::syntax::ast::{Ast, Atom, Block, Item, Line, Source, SweepItem};

/// More cells than this is almost certainly a mistake (and would take forever to run).
const MAX_CELLS: u64 = 256;

/// Per budget, the stages of one cell that take a share of it, and their shares.
type BudgetShares = BTreeMap<String, Vec<(String, f64)>>;

/// A block's name as written (empty for an unnamed one).
fn block_name(block: &Block) -> String {
    block
        .name
        .as_ref()
        .map_or_else(String::new, |n| n.text.clone())
}

/// The largest `tokens` (or fixed `steps`) a stage may declare: a thousand times the paper's
/// largest schedule, and well inside the integers a float holds exactly.
const MAX_AMOUNT: f64 = 1e15;

const PRETRAIN_FIELDS: &[&str] = &[
    "model",
    "data",
    "tokens",
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
    "filter",
    "checkpoint_every",
    "seed",
];
const EVAL_FIELDS: &[&str] = &[
    "models",
    "split",
    "problems",
    "samples",
    "temperature",
    "top_p",
    "pass_at",
    "metric",
    "max_new_tokens",
];

/// A stage in the graph, with its parent's name.
#[derive(Clone, Copy)]
pub(super) struct GraphStage<'a> {
    name: &'a str,
    def: Def<'a>,
    block: &'a Block,
    parent: Option<&'a str>,
}

/// An amount given directly or as a share of a budget.
enum Amount {
    Fixed(f64),
    Share {
        share: f64,
        budget: String,
        span: Span,
    },
}

/// What a stage instance looked like while lowering one cell (for eval checks).
struct Lowered {
    id: StageId,
    spec: StageSpec,
    parent: Option<String>,
}

impl<'a> Analyzer<'a> {
    /// Checks `from` links and returns the stages parents-first; stages in a cycle or with a
    /// bad parent are left out.
    pub(super) fn stage_order(&mut self, ast: &'a Ast) -> Vec<GraphStage<'a>> {
        let mut stages: BTreeMap<&'a str, GraphStage<'a>> = BTreeMap::new();
        let mut broken: Vec<&'a str> = Vec::new();
        for kind in [DefKind::Pretrain, DefKind::Midtrain, DefKind::Rl] {
            for (name, def) in self.symbols.user_defs(kind) {
                let Some(block) = def.block() else { continue };
                let parent = match (&block.parent, kind) {
                    (Some(parent), DefKind::Pretrain) => {
                        self.sink.push(
                            AnalysisError::FromNotAllowed {
                                block: "pretrain".to_owned(),
                                span: parent.span,
                                help: Some(
                                    "`pretrain` trains from scratch; to continue training a stage, use `midtrain NAME from PARENT`"
                                        .to_owned(),
                                ),
                            }
                            .into(),
                        );
                        broken.push(name);
                        None
                    }
                    (None, DefKind::Pretrain) => None,
                    (None, _) => {
                        self.sink.push(
                            AnalysisError::MissingFrom {
                                block: block.kind.text.clone(),
                                span: def.span,
                            }
                            .into(),
                        );
                        broken.push(name);
                        None
                    }
                    (Some(parent), _) if parent.text == name => {
                        self.sink.push(
                            AnalysisError::FromItself {
                                name: name.to_owned(),
                                span: parent.span,
                            }
                            .into(),
                        );
                        broken.push(name);
                        None
                    }
                    (Some(parent), _) => {
                        let stage_kinds = [DefKind::Pretrain, DefKind::Midtrain, DefKind::Rl];
                        if self
                            .symbols
                            .lookup(parent, &stage_kinds, &mut self.sink)
                            .is_some()
                        {
                            self.used.insert(parent.text.clone());
                            Some(parent.text.as_str())
                        } else {
                            broken.push(name);
                            None
                        }
                    }
                };
                stages.insert(
                    name,
                    GraphStage {
                        name,
                        def,
                        block,
                        parent,
                    },
                );
            }
        }
        // Cycles: follow parents from each stage; a revisit within one walk is a cycle.
        let mut in_cycle: Vec<&'a str> = Vec::new();
        for start in stages.keys().copied() {
            let mut path = vec![start];
            let mut current = start;
            while let Some(parent) = stages.get(current).and_then(|s| s.parent) {
                if let Some(pos) = path.iter().position(|p| *p == parent) {
                    let cycle: Vec<&str> = path[pos..].to_vec();
                    let first = *cycle
                        .iter()
                        .min_by_key(|n| stages[**n].def.span.start)
                        .unwrap_or(&start);
                    if start == first && !in_cycle.contains(&first) {
                        let mut names = vec![first];
                        let mut n = first;
                        while let Some(p) = stages[n].parent {
                            names.push(p);
                            if p == first {
                                break;
                            }
                            n = p;
                        }
                        let span = stages[first]
                            .block
                            .parent
                            .as_ref()
                            .map_or(stages[first].def.span, |p| p.span);
                        self.sink.push(
                            AnalysisError::StageCycle {
                                cycle: names.join(" -> "),
                                span,
                            }
                            .into(),
                        );
                    }
                    in_cycle.extend(cycle);
                    break;
                }
                path.push(parent);
                current = parent;
            }
        }
        // Parents first: by depth, then by position in the file.
        let depth = |name: &str| -> Option<usize> {
            let mut d = 0;
            let mut n = name;
            loop {
                if broken.contains(&n) || in_cycle.contains(&n) {
                    return None;
                }
                match stages.get(n)?.parent {
                    Some(p) => {
                        n = p;
                        d += 1;
                    }
                    None => return Some(d),
                }
            }
        };
        let mut order: Vec<(usize, usize, GraphStage<'a>)> = stages
            .values()
            .filter_map(|s| depth(s.name).map(|d| (d, s.def.span.start, *s)))
            .collect();
        order.sort_by_key(|(d, start, _)| (*d, *start));
        let _ = ast;
        order.into_iter().map(|(_, _, s)| s).collect()
    }

    /// Expands the sweeps and lowers every cell.
    pub(super) fn lower_cells(&mut self, ast: &'a Ast, order: &[GraphStage<'a>]) {
        let mut sweeps: Vec<&SweepItem> = Vec::new();
        let mut poisoned = std::collections::BTreeSet::new();
        for item in &ast.items {
            let Item::Sweep(sweep) = item else { continue };
            if let Some(first) = sweeps.iter().find(|s| s.name.text == sweep.name.text) {
                self.sink.push(
                    AnalysisError::DuplicateName {
                        kind: "sweep variable",
                        name: sweep.name.text.clone(),
                        span: sweep.name.span,
                        first: first.name.span,
                    }
                    .into(),
                );
                continue;
            }
            if sweep.values.is_empty() {
                self.sink.push(
                    AnalysisError::EmptySweep {
                        name: sweep.name.text.clone(),
                        span: sweep.span,
                    }
                    .into(),
                );
                poisoned.insert(sweep.name.text.clone());
                continue;
            }
            sweeps.push(sweep);
        }
        // Axes multiply; a zipped sweep rides along its axis (following chains of `zip`).
        let mut axes: Vec<Vec<&SweepItem>> = Vec::new();
        for sweep in &sweeps {
            if sweep.zip.is_none() {
                axes.push(vec![sweep]);
            }
        }
        for sweep in &sweeps {
            let Some(target) = &sweep.zip else { continue };
            let mut root = target;
            let mut hops = 0;
            while let Some(next) = sweeps
                .iter()
                .find(|s| s.name.text == root.text)
                .and_then(|s| s.zip.as_ref())
            {
                root = next;
                hops += 1;
                if hops > sweeps.len() {
                    break;
                }
            }
            match axes.iter_mut().find(|axis| axis[0].name.text == root.text) {
                Some(axis) if axis[0].values.len() == sweep.values.len() => axis.push(sweep),
                Some(axis) => {
                    poisoned.insert(sweep.name.text.clone());
                    self.sink.push(
                        AnalysisError::ZipLengthMismatch {
                            name: sweep.name.text.clone(),
                            len: sweep.values.len() as u64,
                            other: axis[0].name.text.clone(),
                            other_len: axis[0].values.len() as u64,
                            span: target.span,
                        }
                        .into(),
                    );
                }
                None => self.sink.push(
                    AnalysisError::UnknownSweepVariable {
                        name: target.text.clone(),
                        span: target.span,
                        help: super::suggest::help(
                            &target.text,
                            sweeps
                                .iter()
                                .filter(|s| s.zip.is_none())
                                .map(|s| s.name.text.as_str()),
                            "sweeps that can be zipped with are",
                        ),
                    }
                    .into(),
                ),
            }
        }
        let cells = axes
            .iter()
            .try_fold(1u64, |acc, a| acc.checked_mul(a[0].values.len() as u64))
            .unwrap_or(u64::MAX);
        if cells > MAX_CELLS {
            let span = sweeps.first().map_or(Span::default(), |s| s.span);
            self.sink.push(
                AnalysisError::TooManyCells {
                    cells,
                    limit: MAX_CELLS,
                    span,
                }
                .into(),
            );
            return;
        }
        for index in 0..cells as usize {
            let mut bindings = Bindings {
                values: BTreeMap::new(),
                poisoned: poisoned.clone(),
            };
            let mut shown = Vec::new();
            let mut rest = index;
            for axis in axes.iter().rev() {
                let position = rest % axis[0].values.len();
                rest /= axis[0].values.len();
                for sweep in axis.iter().rev() {
                    let value = &sweep.values[position];
                    let text = self
                        .text
                        .get(value.span().start..value.span().end)
                        .unwrap_or_default()
                        .to_owned();
                    bindings
                        .values
                        .insert(sweep.name.text.clone(), value.clone());
                    shown.push((sweep.name.text.clone(), text));
                }
            }
            shown.reverse();
            self.lower_cell(index, &bindings, shown, ast, order);
        }
    }

    fn lower_cell(
        &mut self,
        index: usize,
        bindings: &Bindings,
        shown: Vec<(String, String)>,
        ast: &'a Ast,
        order: &[GraphStage<'a>],
    ) {
        let env = Env::Cell(bindings);
        let cell_label = if shown.is_empty() {
            String::new()
        } else {
            format!(
                " in cell {}",
                shown
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut lowered: BTreeMap<&str, Lowered> = BTreeMap::new();
        let mut shares: BudgetShares = BTreeMap::new();
        let mut cell_stages = Vec::new();
        for stage in order {
            let parent = match stage.parent {
                Some(p) => match lowered.get(p) {
                    Some(l) => Some(l),
                    None => continue, // the parent failed in this cell; its problems are reported
                },
                None => None,
            };
            let parent_info = parent.map(|p| (p.id, p.spec.model()));
            let result = match stage.def.kind {
                DefKind::Pretrain => self.lower_train(stage.block, env, None, true, &mut shares),
                DefKind::Midtrain => self.lower_train(
                    stage.block,
                    env,
                    parent_info.map(|p| p.1),
                    false,
                    &mut shares,
                ),
                _ => self.lower_rl(stage.block, env, parent_info.map(|p| p.1), &mut shares),
            };
            let Some((spec, replica)) = result else {
                continue;
            };
            // `seed N` makes a replica: same spec, its own stream of data and samples.
            let seed = match replica {
                0 => derive_seed(self.plan.seed, stage.name),
                n => derive_seed(self.plan.seed, &format!("{}/seed {n}", stage.name)),
            };
            let parent_id = parent_info.map(|p| p.0);
            let id = self.intern_stage(stage.name, parent_id, seed, spec.clone(), index);
            cell_stages.push(id);
            lowered.insert(
                stage.name,
                Lowered {
                    id,
                    spec,
                    parent: stage.parent.map(str::to_owned),
                },
            );
        }
        self.check_budgets(&shares, &cell_label, ast);
        self.check_unlowered(env, &lowered);
        let mut evals = Vec::new();
        let mut eval_names: BTreeMap<String, Span> = BTreeMap::new();
        for item in &ast.items {
            let Item::Block(block) = item else { continue };
            if block.kind.text != "eval" {
                continue;
            }
            let name = block
                .name
                .as_ref()
                .map_or("eval".to_owned(), |n| n.text.clone());
            let span = block.name.as_ref().map_or(block.kind.span, |n| n.span);
            if let Some(first) = eval_names.get(&name) {
                self.sink.push(
                    AnalysisError::DuplicateName {
                        kind: "eval",
                        name: name.clone(),
                        span,
                        first: *first,
                    }
                    .into(),
                );
                continue;
            }
            eval_names.insert(name.clone(), span);
            if let Some(eval) = self.lower_eval(block, &name, env, &lowered) {
                evals.push(eval);
            }
        }
        if evals.is_empty()
            && !order.is_empty()
            && !ast
                .items
                .iter()
                .any(|i| matches!(i, Item::Block(b) if b.kind.text == "eval"))
        {
            self.sink.push(
                AnalysisWarning::NoEval {
                    span: order[0].def.span,
                }
                .into(),
            );
        }
        let name = if shown.is_empty() {
            "main".to_owned()
        } else {
            shown
                .iter()
                .map(|(k, v)| format!("{k}={}", path_safe(v)))
                .collect::<Vec<_>>()
                .join(",")
        };
        self.plan.cells.push(CellPlan {
            index,
            name,
            bindings: shown,
            stages: cell_stages,
            evals,
        });
    }

    /// Reads, for their diagnostics only, the stages this cell could not lower (a broken
    /// parent, a cycle) and the mixtures no lowered stage used, so that their own problems
    /// are reported too.
    fn check_unlowered(&mut self, env: Env<'_>, lowered: &BTreeMap<&str, Lowered>) {
        let mut scratch = BTreeMap::new();
        for kind in [DefKind::Pretrain, DefKind::Midtrain, DefKind::Rl] {
            for (name, def) in self.symbols.user_defs(kind) {
                let Some(block) = def.block() else { continue };
                if lowered.contains_key(name) {
                    continue;
                }
                match kind {
                    DefKind::Pretrain => {
                        drop(self.lower_train(block, env, None, true, &mut scratch));
                    }
                    DefKind::Midtrain => {
                        drop(self.lower_train(block, env, None, false, &mut scratch));
                    }
                    _ => drop(self.lower_rl(block, env, None, &mut scratch)),
                }
            }
        }
        for (name, def) in self.symbols.user_defs(DefKind::Mixture) {
            if let Some(block) = def.block()
                && !self.mixtures_read.contains(name)
            {
                drop(self.mixture(block, name, env));
            }
        }
        self.mixtures_read.clear();
    }

    /// Stores a stage instance, or finds the identical one another cell already stored.
    fn intern_stage(
        &mut self,
        name: &str,
        parent: Option<StageId>,
        seed: u64,
        spec: StageSpec,
        cell: usize,
    ) -> StageId {
        let parent_hash = parent.map_or(String::new(), |p| self.plan.stages[p.0].hash.clone());
        let content = json!({
            "kind": spec.keyword(),
            "spec": self.resolved_json(&spec),
            "parent": parent_hash,
            "seed": seed,
        });
        let hash = self.spliced_hash(&content.to_string());
        if let Some(&id) = self.stage_ids.get(&hash) {
            let existing = &mut self.plan.stages[id.0];
            if !existing.cells.contains(&cell) {
                existing.cells.push(cell);
            }
            return id;
        }
        let id = StageId(self.plan.stages.len());
        self.stage_ids.insert(hash.clone(), id);
        self.plan.stages.push(StagePlan {
            id,
            name: name.to_owned(),
            parent,
            seed,
            hash,
            cells: vec![cell],
            spec,
        });
        id
    }

    /// A stage spec as JSON with every id replaced by what it refers to, so the hash depends
    /// on content only (not on the order things were interned). The model, task, contexts and
    /// reward stand in it as placeholders for their JSON text, serialized once per file and
    /// put back by [`Self::spliced_hash`]: the bytes hashed are those of the whole tree, at a
    /// fraction of the cost for files with thousands of stages.
    fn resolved_json(&self, spec: &StageSpec) -> Value {
        let mut value = serde_json::to_value(spec).unwrap_or(Value::Null);
        let model_id = spec.model().0;
        value["model"] = self.placeholder(&format!("model:{model_id}"), || {
            serde_json::to_value(&self.plan.models[model_id]).unwrap_or(Value::Null)
        });
        let data_key = if matches!(spec, StageSpec::Rl(_)) {
            "prompts"
        } else {
            "data"
        };
        if let Some(components) = value[data_key]["components"].as_array_mut() {
            for (component, original) in components.iter_mut().zip(&spec.data().components) {
                let task_id = original.source.task.0;
                let contexts: Vec<Value> = original
                    .source
                    .contexts
                    .iter()
                    .map(|c| {
                        self.placeholder(&format!("context:{}", c.0), || {
                            serde_json::to_value(&self.plan.contexts[c.0]).unwrap_or(Value::Null)
                        })
                    })
                    .collect();
                component["source"]["task"] = self.placeholder(&format!("task:{task_id}"), || {
                    let task = &self.plan.tasks[task_id];
                    json!({
                        "task": task,
                        "phrasing": self.plan.phrasings[task.phrasing.0],
                    })
                });
                component["source"]["contexts"] = Value::Array(contexts);
            }
        }
        if let StageSpec::Rl(rl) = spec {
            value["reward"] = self.placeholder(&format!("reward:{}", rl.reward.0), || {
                serde_json::to_value(&self.plan.rewards[rl.reward.0]).unwrap_or(Value::Null)
            });
        }
        value
    }

    /// A JSON string standing for `value()`'s text, which is serialized once and kept.
    fn placeholder(&self, key: &str, value: impl FnOnce() -> Value) -> Value {
        self.json_parts
            .borrow_mut()
            .entry(key.to_owned())
            .or_insert_with(|| value().to_string());
        // Control characters cannot occur in a checked file (E0107): the markers are unique.
        Value::String(format!("\u{1}{key}\u{1}"))
    }

    /// The hash of `text` with every serialized placeholder replaced by the JSON text it stands
    /// for (16 hex digits of SHA-256), fed to the hasher piece by piece.
    fn spliced_hash(&self, text: &str) -> String {
        const OPEN: &str = "\"\\u0001";
        const CLOSE: &str = "\\u0001\"";
        let parts = self.json_parts.borrow();
        let mut hasher = Sha256::new();
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find(CLOSE) else { break };
            hasher.update(&rest[..start]);
            match parts.get(&after[..end]) {
                Some(json) => hasher.update(json),
                None => hasher.update(&rest[start..start + OPEN.len() + end + CLOSE.len()]),
            }
            rest = &after[end + CLOSE.len()..];
        }
        hasher.update(rest);
        hasher.finalize()[..8]
            .iter()
            .fold(String::new(), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }

    fn check_budgets(&mut self, shares: &BudgetShares, cell: &str, ast: &Ast) {
        for (budget, parts) in shares {
            let share: f64 = parts.iter().map(|(_, s)| s).sum();
            let span = ast
                .items
                .iter()
                .find_map(|i| match i {
                    Item::Budget(b) if b.name.text == *budget => Some(b.span),
                    _ => None,
                })
                .unwrap_or_default();
            let percent = format_number((share * 1e4).round() / 100.0);
            if share > 1.0 + 1e-9 {
                self.sink.push(
                    AnalysisError::BudgetOverspent {
                        budget: budget.clone(),
                        percent,
                        parts: parts
                            .iter()
                            .map(|(stage, share)| {
                                format!(
                                    "`{stage}` {}%",
                                    format_number((share * 1e4).round() / 100.0)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" + "),
                        cell: cell.to_owned(),
                        span,
                    }
                    .into(),
                );
            } else if share < 1.0 - 1e-9 {
                self.sink.push(
                    AnalysisWarning::BudgetUnderspent {
                        budget: budget.clone(),
                        percent,
                        cell: cell.to_owned(),
                        span,
                    }
                    .into(),
                );
            }
        }
    }

    /// Lowers a `pretrain` (no parent model) or `midtrain` (parent's model) stage.
    fn lower_train(
        &mut self,
        block: &Block,
        env: Env<'_>,
        parent_model: Option<ModelId>,
        pretrain: bool,
        shares: &mut BudgetShares,
    ) -> Option<(StageSpec, u64)> {
        let allowed = if pretrain {
            PRETRAIN_FIELDS
        } else {
            MIDTRAIN_FIELDS
        };
        let fields = Fields::collect(block, allowed, &[], &mut self.sink);
        let before = self.sink.len();
        let model = if pretrain {
            fields
                .require("model", "model tiny", &mut self.sink)
                .and_then(|line| {
                    let mut r = Reader::new(line, env, "model NAME", &mut self.sink)?;
                    let name = r.name("a model name")?;
                    r.finish();
                    self.resolve_model(&name)
                })
        } else {
            parent_model
        };
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
        if self.sink.len() > before {
            return None;
        }
        let params = self.plan.models[model.0].non_embedding_params as f64;
        let tokens = match amount {
            Amount::Fixed(t) => t,
            Amount::Share {
                share,
                budget,
                span,
            } => {
                let spec = self.resolve_budget(&crate::syntax::ast::Name {
                    text: budget.clone(),
                    span,
                })?;
                let total = match (spec.unit, spec.tokens_per_rl_step) {
                    (BudgetUnit::Tokens, _) => spec.amount,
                    (BudgetUnit::Flops, _) => spec.amount / (6.0 * params),
                    (BudgetUnit::RlSteps, Some(rate)) => spec.amount * rate,
                    (BudgetUnit::RlSteps, None) => {
                        self.sink.push(
                            AnalysisError::BudgetUnitMismatch {
                                budget,
                                unit: "rl_steps".to_owned(),
                                stage_kind: block.kind.text.clone(),
                                needed: "tokens".to_owned(),
                                span,
                                help: Some("declare the exchange rate: `budget NAME = 100 rl_steps where rl_step = 200k tokens`".to_owned()),
                            }
                            .into(),
                        );
                        return None;
                    }
                };
                shares
                    .entry(spec.name)
                    .or_default()
                    .push((block_name(block), share));
                share * total
            }
        };
        self.check_lengths(model, &data, &data_spans)?;
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
        };
        let spec = if pretrain {
            StageSpec::Pretrain(spec)
        } else {
            StageSpec::Midtrain(spec)
        };
        Some((spec, replica? as u64))
    }

    /// Lowers an `rl` stage.
    fn lower_rl(
        &mut self,
        block: &Block,
        env: Env<'_>,
        parent_model: Option<ModelId>,
        shares: &mut BudgetShares,
    ) -> Option<(StageSpec, u64)> {
        let fields = Fields::collect(block, RL_FIELDS, &[], &mut self.sink);
        let before = self.sink.len();
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
        let checkpoint_every = self.int_field(&fields, "checkpoint_every", env, 1, 1 << 30, 20);
        let replica = self.int_field(&fields, "seed", env, 0, 1 << 30, 0);
        let filter = match fields.get("filter") {
            Some(line) => self.filter(line, env).map(Some),
            None => Some(None),
        };
        let (group, prompts_per_step, kl, (clip_low, clip_high)) =
            (group? as u32, prompts_per_step? as u32, kl?, clip?);
        let (lr, weight_decay, grad_clip, temperature, top_p) =
            (lr?, weight_decay?, grad_clip?, temperature?, top_p?);
        let (max_new_tokens, epochs, checkpoint_every, filter) = (
            max_new_tokens? as u32,
            epochs? as u32,
            checkpoint_every? as u32,
            filter?,
        );
        let (prompts, spans) = prompts?;
        let (amount, reward) = (steps?, reward?);
        let model = parent_model?;
        if self.sink.len() > before {
            return None;
        }
        let steps = match amount {
            Amount::Fixed(s) => s,
            Amount::Share {
                share,
                budget,
                span,
            } => {
                let spec = self.resolve_budget(&crate::syntax::ast::Name {
                    text: budget.clone(),
                    span,
                })?;
                let params = self.plan.models[model.0].non_embedding_params as f64;
                let total = match (spec.unit, spec.tokens_per_rl_step) {
                    (BudgetUnit::RlSteps, _) => spec.amount,
                    (BudgetUnit::Tokens, Some(rate)) => spec.amount / rate,
                    (BudgetUnit::Flops, Some(rate)) => spec.amount / (6.0 * params) / rate,
                    (unit, None) => {
                        let unit = if unit == BudgetUnit::Tokens {
                            "tokens"
                        } else {
                            "flops"
                        };
                        self.sink.push(
                            AnalysisError::BudgetUnitMismatch {
                                budget,
                                unit: unit.to_owned(),
                                stage_kind: "rl".to_owned(),
                                needed: "rl_steps".to_owned(),
                                span,
                                help: Some("declare the exchange rate: `budget NAME = ... where rl_step = 200k tokens`".to_owned()),
                            }
                            .into(),
                        );
                        return None;
                    }
                };
                shares
                    .entry(spec.name)
                    .or_default()
                    .push((block_name(block), share));
                (share * total).round()
            }
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
        self.check_lengths(model, &prompts, &spans)?;
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
            filter,
            checkpoint_every,
        };
        Some((StageSpec::Rl(spec), replica? as u64))
    }

    fn filter(&mut self, line: &Line, env: Env<'_>) -> Option<FilterSpec> {
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

    fn real_field(
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

    fn int_field(
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
    fn batch(
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
    fn lr_schedule(
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

    /// `data MIXTURE` or `data SOURCE`: the components and the span of each one's source.
    fn data_line(
        &mut self,
        line: &Line,
        env: Env<'_>,
        syntax: &'static str,
    ) -> Option<(DataSpec, Vec<Span>)> {
        let mut r = Reader::new(line, env, syntax, &mut self.sink)?;
        let atom = r.atom("a mixture or a source")?;
        r.finish();
        match atom {
            Atom::Source(source) => {
                let spec = self.source(&source, env)?;
                Some((
                    DataSpec {
                        mixture: None,
                        components: vec![Component {
                            weight: 1.0,
                            source: spec,
                        }],
                    },
                    vec![source.span],
                ))
            }
            Atom::Name(name) => {
                let def = self
                    .symbols
                    .lookup(&name, &[DefKind::Mixture], &mut self.sink)?;
                self.used.insert(name.text.clone());
                let block = def.block()?;
                self.mixtures_read.insert(name.text.clone());
                self.mixture(block, &name.text, env)
            }
            other => {
                self.sink.push(
                    AnalysisError::WrongValue {
                        expected: "a mixture name or a source such as `arith[op 2..=5]`".to_owned(),
                        found: other.describe().to_owned(),
                        span: other.span(),
                        help: Some(format!("write `{syntax}`")),
                    }
                    .into(),
                );
                None
            }
        }
    }

    /// Lowers a `mixture` block in this cell.
    fn mixture(
        &mut self,
        block: &Block,
        name: &str,
        env: Env<'_>,
    ) -> Option<(DataSpec, Vec<Span>)> {
        let mut components = Vec::new();
        let mut spans = Vec::new();
        let mut normalized = false;
        let mut ok = true;
        for line in &block.lines {
            if let Atom::Name(n) = line.key()
                && n.text != "normalized"
                && line.groups[0].len() == 1
                && line.groups.len() == 1
                && suggest::closest(&n.text, ["normalized"]).is_some()
            {
                self.sink.push(
                    AnalysisError::WrongValue {
                        expected: "a weighted source or `normalized`".to_owned(),
                        found: format!("`{}`", n.text),
                        span: n.span,
                        help: Some("did you mean `normalized`?".to_owned()),
                    }
                    .into(),
                );
                ok = false;
                continue;
            }
            if matches!(line.key(), Atom::Name(n) if n.text == "normalized")
                && line.groups[0].len() == 1
                && line.groups.len() == 1
            {
                normalized = true;
                continue;
            }
            let Some(mut r) = Reader::keyless(line, env, "WEIGHT TASK[op LO..=HI]", &mut self.sink)
            else {
                ok = false;
                continue;
            };
            let from_sweep = matches!(
                line.groups.first().and_then(|g| g.first()),
                Some(Atom::Var(_))
            );
            let weight = r.number("a weight");
            let source = r.atom("a source such as `arith[op 2..=5]`");
            let (Some((weight, number)), Some(source)) = (weight, source) else {
                ok = false;
                continue;
            };
            let Atom::Source(source) = source else {
                r.wrong("a source such as `arith[op 2..=5]`", &source);
                ok = false;
                continue;
            };
            r.finish();
            // A sweep's 0% leaves the source out of that cell (the reference's 0% arm); a
            // literal 0 is a mistake.
            let dropped = from_sweep && weight == 0.0;
            if weight <= 0.0 && !dropped {
                self.sink.push(
                    AnalysisError::ValueOutOfRange {
                        what: "a mixture weight".to_owned(),
                        allowed: "above 0".to_owned(),
                        value: number.text.clone(),
                        span: number.span,
                        help: Some("remove the line to leave a source out".to_owned()),
                    }
                    .into(),
                );
                ok = false;
                continue;
            }
            match self.source(&source, env) {
                Some(_) if dropped => {}
                Some(spec) => {
                    components.push(Component {
                        weight,
                        source: spec,
                    });
                    spans.push(source.span);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        if components.is_empty() {
            self.sink.push(
                AnalysisError::EmptyList {
                    what: format!("mixture `{name}`"),
                    span: fields::header_span(block),
                    help: Some("add lines such as `0.5 arith[op 2..=4]`".to_owned()),
                }
                .into(),
            );
            return None;
        }
        let sum: f64 = components.iter().map(|c| c.weight).sum();
        if !normalized && (sum - 1.0).abs() > 1e-6 {
            self.sink.push(
                AnalysisError::MixtureWeights {
                    name: name.to_owned(),
                    sum: format_number(sum),
                    span: fields::header_span(block),
                }
                .into(),
            );
            return None;
        }
        for c in &mut components {
            c.weight /= sum;
        }
        Some((
            DataSpec {
                mixture: Some(name.to_owned()),
                components,
            },
            spans,
        ))
    }

    /// Lowers `task[op A..=B, context C | D, mode M]`.
    fn source(&mut self, source: &Source, env: Env<'_>) -> Option<SourceSpec> {
        let task_id = self.resolve_task(&source.task)?;
        let task = self.plan.tasks[task_id.0].clone();
        let mut ops = None;
        let mut contexts = None;
        let mut mode = None;
        let mut seen: Vec<(&str, Span)> = Vec::new();
        let mut ok = true;
        for arg in &source.args {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == arg.key.text) {
                self.sink.push(
                    AnalysisError::DuplicateField {
                        field: arg.key.text.clone(),
                        span: arg.key.span,
                        first: *first,
                    }
                    .into(),
                );
                ok = false;
                continue;
            }
            seen.push((&arg.key.text, arg.key.span));
            let Some(values) = fields::resolve(&arg.values, env, &mut self.sink) else {
                ok = false;
                continue;
            };
            match arg.key.text.as_str() {
                "op" => {
                    if values.len() != 1 {
                        self.sink.push(
                            AnalysisError::WrongValue {
                                expected: "one op range".to_owned(),
                                found: "alternatives".to_owned(),
                                span: arg.span,
                                help: Some("write `op 2..=5`".to_owned()),
                            }
                            .into(),
                        );
                        ok = false;
                        continue;
                    }
                    match fields::int_range(&values[0], "an op range", &mut self.sink) {
                        Some((lo, hi, span)) => {
                            if lo < 1 || hi > i64::from(task.max_op) {
                                self.sink.push(
                                    AnalysisError::OpRangeNotProducible {
                                        task: task.name.clone(),
                                        lo,
                                        hi,
                                        span,
                                        allowed: format!("1..={}", task.max_op),
                                        help: Some(if lo < 1 {
                                            "op(G) counts the operations of the solution graph: every problem has at least 1".to_owned()
                                        } else {
                                            format!("task `{}` generates up to op {} (its `max_op`); raise `max_op` to go further", task.name, task.max_op)
                                        }),
                                    }
                                    .into(),
                                );
                                ok = false;
                            } else {
                                ops = Some((lo as u32, hi as u32));
                            }
                        }
                        None => ok = false,
                    }
                }
                "context" => {
                    let mut ids = Vec::new();
                    for value in &values {
                        let Atom::Name(name) = value else {
                            self.sink.push(
                                AnalysisError::WrongValue {
                                    expected: "a context name".to_owned(),
                                    found: value.describe().to_owned(),
                                    span: value.span(),
                                    help: Some(
                                        "write `context zoo` or `context zoo | teacher`".to_owned(),
                                    ),
                                }
                                .into(),
                            );
                            ok = false;
                            continue;
                        };
                        if self.resolve_context(name).is_none() {
                            ok = false;
                            continue;
                        }
                        let id = self.intern_context(&name.text);
                        match id {
                            Some(id) if task.contexts.contains(&id) => ids.push(id),
                            _ => {
                                let names: Vec<String> = task
                                    .contexts
                                    .iter()
                                    .map(|c| format!("`{}`", self.plan.contexts[c.0].name))
                                    .collect();
                                self.sink.push(
                                    AnalysisError::ContextNotInTask {
                                        task: task.name.clone(),
                                        context: name.text.clone(),
                                        span: name.span,
                                        help: Some(format!("task `{}` uses {}; add the context to its `contexts` line", task.name, names.join(", "))),
                                    }
                                    .into(),
                                );
                                ok = false;
                            }
                        }
                    }
                    contexts = Some(ids);
                }
                "mode" => match values.as_slice() {
                    [Atom::Name(n)] if n.text == "forward" => mode = Some(Mode::Forward),
                    [Atom::Name(n)] if n.text == "reverse" => mode = Some(Mode::Reverse),
                    _ => {
                        self.sink.push(
                            AnalysisError::WrongValue {
                                expected: "`forward` or `reverse`".to_owned(),
                                found: values.first().map_or("nothing", Atom::describe).to_owned(),
                                span: arg.span,
                                help: Some("write `mode forward` or `mode reverse`".to_owned()),
                            }
                            .into(),
                        );
                        ok = false;
                    }
                },
                other => {
                    self.sink.push(
                        AnalysisError::UnknownField {
                            block: "source".to_owned(),
                            field: other.to_owned(),
                            span: arg.key.span,
                            help: super::suggest::help(
                                other,
                                ["op", "context", "mode"],
                                "a source takes",
                            ),
                        }
                        .into(),
                    );
                    ok = false;
                }
            }
        }
        if ops.is_none() && ok {
            self.sink.push(
                AnalysisError::MissingField {
                    block: "source".to_owned(),
                    field: "op",
                    span: source.span,
                    help: Some(format!("write `{}[op 2..=5]`", source.task.text)),
                }
                .into(),
            );
            return None;
        }
        if !ok {
            return None;
        }
        let (op_min, op_max) = ops?;
        Some(SourceSpec {
            task: task_id,
            op_min,
            op_max,
            contexts: contexts.unwrap_or(task.contexts.clone()),
            mode,
        })
    }

    /// Worst-case example length of a source, in tokens.
    fn source_tokens(&self, source: &SourceSpec) -> u64 {
        let key = (source.task, source.contexts.clone(), source.op_max);
        if let Some(&known) = self.example_tokens.borrow().get(&key) {
            return known;
        }
        let task = &self.plan.tasks[source.task.0];
        let contexts: Vec<_> = source
            .contexts
            .iter()
            .map(|c| &self.plan.contexts[c.0])
            .collect();
        let phrasing = &self.plan.phrasings[task.phrasing.0];
        let tokens = max_example_tokens(
            &contexts,
            phrasing,
            source.op_max,
            task.distractors,
            task.max_value,
        );
        self.example_tokens.borrow_mut().insert(key, tokens);
        tokens
    }

    /// Reports sources whose longest example does not fit the model's context.
    fn check_lengths(&mut self, model: ModelId, data: &DataSpec, spans: &[Span]) -> Option<()> {
        let spec = &self.plan.models[model.0];
        let (name, context) = (spec.name.clone(), spec.context);
        for (component, span) in data.components.iter().zip(spans) {
            let needed = self.source_tokens(&component.source);
            if needed > u64::from(context) {
                let task = &self.plan.tasks[component.source.task.0];
                self.sink.push(
                    AnalysisError::ContextTooShort {
                        model: name.clone(),
                        context: context.into(),
                        what: format!("`{}` problems at op {}", task.name, component.source.op_max),
                        needed,
                        span: *span,
                        help: Some(self.shorter_problems_help(component.source.task, needed)),
                    }
                    .into(),
                );
                return None;
            }
        }
        Some(())
    }

    /// W0103 when several samples (an eval's, or an RL group's rollouts) are drawn at
    /// temperature 0: they are all the same.
    fn warn_greedy(
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

    /// What can make a task's problems fit a context: only the levers the task still has.
    fn shorter_problems_help(&self, task: TaskId, needed: u64) -> String {
        let task = &self.plan.tasks[task.0];
        let mut levers = vec![
            format!("raise the model's `context` to at least {needed}"),
            "lower the op range".to_owned(),
        ];
        if task.distractors {
            levers.push("turn `distractors off`".to_owned());
        }
        if self.plan.phrasings[task.phrasing.0].name != "compact" {
            levers.push("use a shorter phrasing such as `compact`".to_owned());
        }
        let last = levers.pop().unwrap_or_default();
        format!("{}, or {last}", levers.join(", "))
    }

    /// `pass_at 1, 8, 64`: sorted, deduplicated, each at most `samples` (when that is known).
    fn pass_at(&mut self, line: &Line, env: Env<'_>, samples: Option<u32>) -> Option<Vec<u32>> {
        let mut r = Reader::new(line, env, "pass_at 1, 8, 64", &mut self.sink)?;
        let mut ks: Vec<(u32, Span)> = Vec::new();
        loop {
            let atom = r.peek().cloned();
            let k = r.int("a k for pass@k", 1, 1 << 16)? as u32;
            ks.push((k, atom.map_or(line.span, |a| a.span())));
            if !r.group_done() || !r.next_group() {
                break;
            }
        }
        r.finish();
        let samples = samples?;
        for (k, span) in &ks {
            if *k > samples {
                self.sink.push(
                    AnalysisError::PassAtExceedsSamples {
                        k: (*k).into(),
                        samples: samples.into(),
                        span: *span,
                    }
                    .into(),
                );
            }
        }
        let mut ks: Vec<u32> = ks.into_iter().map(|(k, _)| k).collect();
        ks.sort_unstable();
        ks.dedup();
        Some(ks)
    }

    /// Lowers an `eval` block in this cell.
    fn lower_eval(
        &mut self,
        block: &Block,
        name: &str,
        env: Env<'_>,
        stages: &BTreeMap<&str, Lowered>,
    ) -> Option<EvalSpec> {
        let fields = Fields::collect(block, EVAL_FIELDS, &["split"], &mut self.sink);
        let before = self.sink.len();
        let models = fields
            .require("models", "models base, post", &mut self.sink)
            .and_then(|line| {
                let r = Reader::new(line, env, "models STAGE, STAGE, ...", &mut self.sink)?;
                name_list(r, "a stage name")
            });
        // Every field is read (and its problems reported) before anything missing stops us.
        let samples = self
            .int_field(&fields, "samples", env, 1, 1 << 16, 16)
            .map(|s| s as u32);
        let temperature = self.real_field(&fields, "temperature", env, 0.0, 10.0, 0.7);
        let top_p = self.real_field(&fields, "top_p", env, 0.0, 1.0, 1.0);
        let max_new_tokens = self.int_field(&fields, "max_new_tokens", env, 1, 1 << 20, 512);
        let problems_per_op = match fields.get("problems") {
            Some(line) => {
                Reader::new(line, env, "problems 50 per op", &mut self.sink).and_then(|mut r| {
                    let n = r.int("problems per op", 1, 1 << 20)? as u32;
                    r.expect("per")?;
                    r.expect("op")?;
                    r.finish();
                    Some(n)
                })
            }
            None => Some(20),
        };
        let pass_at = match fields.get("pass_at") {
            Some(line) => self.pass_at(line, env, samples),
            None => samples.map(|samples| {
                std::iter::successors(Some(1u32), |k| k.checked_mul(2))
                    .take_while(|k| *k <= samples)
                    .collect()
            }),
        };
        let metric = match fields.get("metric") {
            Some(line) => Reader::new(line, env, "metric verified|answer", &mut self.sink)
                .and_then(|mut r| {
                    let m = r.word("`verified` or `answer`", &["verified", "answer"])?;
                    if m == "answer" {
                        r.sink
                            .push(AnalysisWarning::AnswerMetric { span: line.span }.into());
                    }
                    r.finish();
                    if m == "answer" {
                        Some(Metric::Answer)
                    } else {
                        Some(Metric::Verified)
                    }
                }),
            None => Some(Metric::Verified),
        };
        self.warn_greedy(&fields, block, temperature, samples.map(u64::from));
        let mut model_ids = Vec::new();
        let mut evaluated: Vec<&str> = Vec::new();
        for model in models.unwrap_or_default() {
            let stage_kinds = [DefKind::Pretrain, DefKind::Midtrain, DefKind::Rl];
            if self
                .symbols
                .lookup(&model, &stage_kinds, &mut self.sink)
                .is_none()
            {
                continue;
            }
            self.used.insert(model.text.clone());
            if let Some((key, lowered)) = stages.get_key_value(model.text.as_str()) {
                model_ids.push((lowered.id, model.span));
                evaluated.push(key);
            }
        }
        let mut splits = Vec::new();
        let mut split_spans: Vec<(String, Span)> = Vec::new();
        for line in fields.all("split") {
            let Some(mut r) = Reader::new(
                line,
                env,
                "split NAME TASK[op LO..=HI] [extrapolative] [held_out]",
                &mut self.sink,
            ) else {
                continue;
            };
            let Some(split_name) = r.name("a split name") else {
                continue;
            };
            let Some(atom) = r.atom("a source such as `arith[op 2..=5]`") else {
                continue;
            };
            let Atom::Source(source) = atom else {
                r.wrong("a source such as `arith[op 2..=5]`", &atom);
                continue;
            };
            let mut extrapolative = false;
            let mut held_out = false;
            while let Some(Atom::Name(flag)) = r.peek().cloned() {
                match flag.text.as_str() {
                    "extrapolative" => extrapolative = true,
                    "held_out" => held_out = true,
                    other => {
                        // A misspelt flag gets a did-you-mean, not "takes no more values".
                        let flags = ["extrapolative", "held_out"];
                        if suggest::closest(other, flags).is_some() {
                            r.sink.push(
                                AnalysisError::WrongValue {
                                    expected: "`extrapolative` or `held_out`".to_owned(),
                                    found: format!("`{other}`"),
                                    span: flag.span,
                                    help: suggest::help(other, flags, "choose one of"),
                                }
                                .into(),
                            );
                            r.atom("a flag");
                            continue;
                        }
                        break;
                    }
                }
                r.atom("a flag");
            }
            r.finish();
            if let Some((_, first)) = split_spans.iter().find(|(n, _)| *n == split_name.text) {
                self.sink.push(
                    AnalysisError::DuplicateName {
                        kind: "split",
                        name: split_name.text.clone(),
                        span: split_name.span,
                        first: *first,
                    }
                    .into(),
                );
                continue;
            }
            split_spans.push((split_name.text.clone(), split_name.span));
            let Some(spec) = self.source(&source, env) else {
                continue;
            };
            splits.push((
                SplitSpec {
                    name: split_name.text,
                    source: spec,
                    extrapolative,
                    held_out,
                },
                line.span,
                source.span,
            ));
        }
        if fields.all("split").is_empty() {
            fields.require("split", "split id arith[op 2..=5]", &mut self.sink);
        }
        let (samples, temperature, top_p, max_new_tokens) =
            (samples?, temperature?, top_p?, max_new_tokens? as u32);
        let (problems_per_op, pass_at, metric) = (problems_per_op?, pass_at?, metric?);
        if self.sink.len() > before {
            return None;
        }
        // Where a too-large `max_new_tokens` is reported: its line, or the eval block when the
        // default applies.
        let tokens_at = match fields.get("max_new_tokens") {
            Some(line) => (max_new_tokens, line.span, false),
            None => (
                max_new_tokens,
                block.name.as_ref().unwrap_or(&block.kind).span,
                true,
            ),
        };
        for (split, line_span, source_span) in &splits {
            self.check_split(
                split,
                *line_span,
                *source_span,
                &evaluated,
                stages,
                tokens_at,
            );
        }
        Some(EvalSpec {
            name: name.to_owned(),
            models: model_ids.into_iter().map(|(id, _)| id).collect(),
            splits: splits.into_iter().map(|(s, _, _)| s).collect(),
            problems_per_op,
            samples,
            temperature,
            top_p,
            pass_at,
            metric,
            max_new_tokens,
            seed: derive_seed(self.plan.seed, &format!("eval/{name}")),
        })
    }

    /// Checks one split against the lineage of every evaluated model.
    fn check_split(
        &mut self,
        split: &SplitSpec,
        line_span: Span,
        source_span: Span,
        evaluated: &[&str],
        stages: &BTreeMap<&str, Lowered>,
        (max_new_tokens, tokens_span, default): (u32, Span, bool),
    ) {
        let task = self.plan.tasks[split.source.task.0].clone();
        let phrasing = self.plan.phrasings[task.phrasing.0].clone();
        if split.held_out && !phrasing.shows_context {
            self.sink.push(
                AnalysisWarning::ContextInvisible {
                    split: split.name.clone(),
                    phrasing: phrasing.name.clone(),
                    span: line_span,
                }
                .into(),
            );
        }
        let mut reported_extrapolation = false;
        let mut reported_leak = false;
        for model in evaluated {
            let mut current = Some(*model);
            while let Some(name) = current {
                let Some(stage) = stages.get(name) else { break };
                for component in &stage.spec.data().components {
                    let source = &component.source;
                    if source.task != split.source.task {
                        continue;
                    }
                    let (lo, hi) = (
                        source.op_min.max(split.source.op_min),
                        source.op_max.min(split.source.op_max),
                    );
                    if split.extrapolative && lo <= hi && !reported_extrapolation {
                        self.sink.push(
                            AnalysisError::ExtrapolativeOverlap {
                                split: split.name.clone(),
                                stage: name.to_owned(),
                                overlap: if lo == hi {
                                    lo.to_string()
                                } else {
                                    format!("{lo}..={hi}")
                                },
                                max_trained: i64::from(source.op_max),
                                span: source_span,
                            }
                            .into(),
                        );
                        reported_extrapolation = true;
                    }
                    if split.held_out && !reported_leak {
                        if let Some(context) = split
                            .source
                            .contexts
                            .iter()
                            .find(|c| source.contexts.contains(c))
                        {
                            self.sink.push(
                                AnalysisError::HeldOutContextLeak {
                                    context: self.plan.contexts[context.0].name.clone(),
                                    split: split.name.clone(),
                                    stage: name.to_owned(),
                                    span: source_span,
                                }
                                .into(),
                            );
                            reported_leak = true;
                        }
                    }
                }
                current = stage
                    .parent
                    .as_deref()
                    .and_then(|p| stages.get_key_value(p).map(|(k, _)| *k));
            }
            let model_id = stages[model].spec.model();
            let spec = &self.plan.models[model_id.0];
            let needed = self.source_tokens(&split.source);
            let (model_name, context) = (spec.name.clone(), spec.context);
            if needed > u64::from(context) {
                self.sink.push(
                    AnalysisError::ContextTooShort {
                        model: model_name,
                        context: context.into(),
                        what: format!("split `{}` at op {}", split.name, split.source.op_max),
                        needed,
                        span: source_span,
                        help: Some("lower the split's op range, or evaluate a model with a longer `context`".to_owned()),
                    }
                    .into(),
                );
            } else if max_new_tokens >= context {
                self.sink.push(
                    AnalysisError::ValueOutOfRange {
                        what: "`max_new_tokens`".to_owned(),
                        allowed: format!("less than model `{model_name}`'s context ({context})"),
                        value: if default {
                            format!("{max_new_tokens} (the default)")
                        } else {
                            max_new_tokens.to_string()
                        },
                        span: tokens_span,
                        help: Some(format!(
                            "{} `max_new_tokens` below {context}, or evaluate a model with a longer `context`",
                            if default { "set" } else { "lower" }
                        )),
                    }
                    .into(),
                );
            }
        }
    }
}

/// A value made safe for a directory name.
fn path_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '%' => "pct".to_owned(),
            c if c.is_ascii_alphanumeric() || "._=-".contains(c) => c.to_string(),
            _ => "_".to_owned(),
        })
        .collect()
}
