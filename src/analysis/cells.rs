//! Per-cell lowering: the stage graph, sweep expansion, stages, data and evals.
//!
//! Sweep variables may appear in stages, mixtures and evals, so these are lowered once per
//! cell with the cell's bindings. Identical stage instances (same spec, parent and seed) get the
//! same content hash and are stored once in the plan, shared by the cells that use them.

use std::collections::BTreeMap;

use super::fields::{Bindings, Env, format_number};
use super::symbols::{Def, DefKind};
use super::{Analyzer, derive_seed};
use crate::diagnostics::{AnalysisError, AnalysisWarning};
use crate::plan::{CellPlan, StageId};
use crate::syntax::Span;
use crate::syntax::ast::{Ast, Block, Item, SweepItem};

/// More cells than this is almost certainly a mistake (and would take forever to run).
const MAX_CELLS: u64 = 256;

/// Per budget, the stages of one cell that take a share of it, and their shares.
pub(super) type BudgetShares = BTreeMap<String, Vec<(String, f64)>>;

/// A block's name as written (empty for an unnamed one).
pub(super) fn block_name(block: &Block) -> String {
    block
        .name
        .as_ref()
        .map_or_else(String::new, |n| n.text.clone())
}

/// A stage in the graph, with its parent's name.
#[derive(Clone, Copy)]
pub(super) struct GraphStage<'a> {
    name: &'a str,
    def: Def<'a>,
    block: &'a Block,
    parent: Option<&'a str>,
}

/// What a stage instance looked like while lowering one cell (for eval checks).
pub(super) struct Lowered {
    pub(super) id: StageId,
    pub(super) parent: Option<String>,
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
                    (None, DefKind::Pretrain) if block.checkpoint.is_some() => {
                        let span = block.checkpoint.as_ref().map_or(def.span, |c| c.span);
                        self.sink.push(
                            AnalysisError::FromNotAllowed {
                                block: "pretrain".to_owned(),
                                span,
                                help: Some(
                                    "`pretrain` trains from scratch; to continue training a checkpoint, use `midtrain NAME from \"DIR\"` with a `model` line"
                                        .to_owned(),
                                ),
                            }
                            .into(),
                        );
                        broken.push(name);
                        None
                    }
                    // Starts from a checkpoint directory: a root of the stage graph.
                    (None, _) if block.checkpoint.is_some() => None,
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
            let parent_info = parent.map(|p| (p.id, self.plan.stages[p.id.0].spec.model()));
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
            let id = self
                .keys
                .intern(&mut self.plan, stage.name, parent_id, seed, spec, index);
            cell_stages.push(id);
            lowered.insert(
                stage.name,
                Lowered {
                    id,
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

    pub(super) fn check_budgets(&mut self, shares: &BudgetShares, cell: &str, ast: &Ast) {
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
