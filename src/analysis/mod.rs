//! Stage 2 of the front end: [`Ast`] → [`Plan`].
//!
//! Analysis resolves names, types every value, fills every default, derives seeds, expands
//! sweeps into cells and hashes each stage instance. It runs every check it can and returns
//! all problems, sorted by position; a plan is produced only when there are no errors.
//!
//! The passes: collect definitions ([`symbols`]) → lower cell-independent definitions
//! (contexts, phrasings, models, tasks, rewards, budgets) → check the stage graph → lower
//! stages and evals once per sweep cell ([`cells`]) → report what was never used → check the
//! checkpoint directories stages start from against the finished plan ([`checkpoints`]).

mod cells;
mod checkpoints;
mod definitions;
mod evals;
mod fields;
mod reward;
mod sources;
mod stage_keys;
mod stages;
mod suggest;
mod symbols;
pub mod templates;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub use definitions::non_embedding_params;
pub use reward::PRIMITIVES;
use sha2::{Digest, Sha256};

use self::fields::{Env, Fields, Reader};
use self::symbols::{Def, DefKind, Origin, Symbols};
use crate::diagnostics::{AnalysisError, AnalysisWarning, Diagnostic, Diagnostics, SyntaxError};
use crate::plan::{
    BudgetSpec, ContextId, ContextSpec, ModelId, ModelSpec, PhrasingId, PhrasingSpec, Plan,
    RewardId, RewardSpec, TaskId, TaskSpec,
};
use crate::syntax::ast::{Ast, Atom, Item, Name};
use crate::syntax::{self, SourceFile, Span};

/// The standard prelude, shipped inside the binary.
pub const PRELUDE: &str = include_str!("../prelude.rlp");

/// The result of compiling one file: a plan when there are no errors, and every diagnostic.
#[derive(Debug)]
pub struct Compilation {
    /// The plan, if the file has no errors.
    pub plan: Option<Plan>,
    /// Errors and warnings.
    pub diagnostics: Diagnostics,
}

/// Compiles `.rlp` source text.
#[must_use]
pub fn compile(source: &SourceFile) -> Compilation {
    let mut problems = Vec::new();
    let plan = match syntax::parse(&source.text) {
        Ok(ast) => Some(analyze(
            &ast,
            &source.text,
            &plan_name(&source.name),
            std::path::Path::new(&source.name)
                .parent()
                .unwrap_or(std::path::Path::new("")),
            &mut problems,
        )),
        Err(error) => {
            problems.push(error.into());
            None
        }
    };
    let diagnostics = Diagnostics::new(source.clone(), problems);
    let plan = if diagnostics.has_errors() { None } else { plan };
    Compilation { plan, diagnostics }
}

/// Compiles raw bytes, reporting invalid UTF-8 as a diagnostic.
#[must_use]
pub fn compile_bytes(name: &str, bytes: &[u8]) -> Compilation {
    match std::str::from_utf8(bytes) {
        Ok(text) => compile(&SourceFile::new(name, text)),
        Err(error) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let start = error.valid_up_to();
            let source = SourceFile::new(name, text);
            let span = Span::new(start, (start + 1).min(source.text.len()));
            let problems = vec![SyntaxError::InvalidUtf8 { span }.into()];
            Compilation {
                plan: None,
                diagnostics: Diagnostics::new(source, problems),
            }
        }
    }
}

/// The experiment's name: the file stem.
fn plan_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("experiment")
        .to_owned()
}

fn prelude_ast() -> &'static Ast {
    static PRELUDE_AST: OnceLock<Ast> = OnceLock::new();
    PRELUDE_AST.get_or_init(|| syntax::parse(PRELUDE).expect("the prelude parses (tested)"))
}

/// A prelude phrasing (`english`, `compact`), lowered.
#[must_use]
pub fn prelude_phrasing(name: &str) -> Option<PhrasingSpec> {
    prelude_ast().items.iter().find_map(|item| match item {
        Item::Block(block)
            if block.kind.text == "phrasing"
                && block.name.as_ref().is_some_and(|n| n.text == name) =>
        {
            templates::lower_phrasing(block, name, &mut Vec::new())
        }
        _ => None,
    })
}

/// Resolves a source written on the command line (`arith[op 5, context zoo]`) against a
/// compiled plan, with the same lowering and diagnostics as a source in a file; the
/// diagnostics point into `text`, shown under the name `--source`.
pub fn source_in_plan(plan: &Plan, text: &str) -> Result<crate::plan::SourceSpec, Diagnostics> {
    let text = text.trim();
    let failed =
        |problems: Vec<Diagnostic>| Diagnostics::new(SourceFile::new("--source", text), problems);
    let source = match syntax::parser::parse_source(text) {
        Ok(Atom::Source(source)) => source,
        Ok(other) => {
            return Err(failed(vec![
                SyntaxError::Unexpected {
                    expected: "a source such as `arith[op 2..=5, context zoo]`".to_owned(),
                    found: other.describe().to_owned(),
                    span: other.span(),
                    help: None,
                }
                .into(),
            ]));
        }
        Err(error) => return Err(failed(vec![error.into()])),
    };
    let mut sink = Vec::new();
    let Some(task) = plan.tasks.iter().position(|t| t.name == source.task.text) else {
        let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
        sink.push(
            AnalysisError::UnknownName {
                kind: "task",
                name: source.task.text.clone(),
                span: source.task.span,
                help: suggest::help(&source.task.text, names, "the file's tasks are"),
            }
            .into(),
        );
        return Err(failed(sink));
    };
    sources::lower_source(
        &source,
        plan,
        TaskId(task),
        Env::Fixed,
        &mut sink,
        &mut |_, _| true,
    )
    .ok_or_else(|| failed(sink))
}

/// A task checked on its own, before it is interned into a plan.
#[derive(Debug, Clone)]
struct CheckedTask {
    contexts: Vec<String>,
    phrasing: String,
    settings: TaskSpec,
}

/// Analysis state for one file.
struct Analyzer<'a> {
    text: &'a str,
    symbols: Symbols<'a>,
    sink: Vec<Diagnostic>,
    /// Names referenced anywhere, for "never used" warnings.
    used: BTreeSet<String>,
    contexts: BTreeMap<&'a str, Option<ContextSpec>>,
    phrasings: BTreeMap<&'a str, Option<PhrasingSpec>>,
    models: BTreeMap<&'a str, Option<ModelSpec>>,
    tasks: BTreeMap<&'a str, Option<CheckedTask>>,
    rewards: BTreeMap<&'a str, Option<RewardSpec>>,
    budgets: BTreeMap<&'a str, Option<BudgetSpec>>,
    /// Mixtures read while lowering the current cell's stages.
    mixtures_read: BTreeSet<String>,
    /// The longest example of a task's contexts at an op, in tokens: rendering it is the
    /// costly part of checking that a stage's data fits its model, and stages repeat sources.
    example_tokens: std::cell::RefCell<TokenEstimates>,
    /// Stage instances and their content hashes.
    keys: stage_keys::StageKeys,
    /// The directory of the file, which checkpoint paths (`from "DIR"`) are relative to.
    base_dir: std::path::PathBuf,
    /// SHA-256 of checkpoint weights files, or why one cannot be read, by path.
    checkpoint_hashes: std::collections::HashMap<std::path::PathBuf, Result<String, String>>,
    plan: Plan,
}

/// Longest-example estimates by task, contexts and op.
type TokenEstimates = std::collections::HashMap<
    (crate::plan::TaskId, Vec<crate::plan::ContextId>, u32),
    templates::ExampleTokens,
>;

fn analyze(
    ast: &Ast,
    text: &str,
    name: &str,
    base_dir: &std::path::Path,
    sink: &mut Vec<Diagnostic>,
) -> Plan {
    let mut imported: Option<Span> = None;
    if ast.items.is_empty() {
        sink.push(
            AnalysisWarning::EmptyFile {
                span: Span::new(0, 0),
            }
            .into(),
        );
    }
    for item in &ast.items {
        if let Item::Use(import) = item {
            if import.text == "prelude" {
                if let Some(first) = imported {
                    sink.push(
                        AnalysisWarning::RepeatedImport {
                            span: import.span,
                            first,
                        }
                        .into(),
                    );
                }
                imported.get_or_insert(import.span);
            } else {
                sink.push(
                    AnalysisError::UnknownImport {
                        name: import.text.clone(),
                        span: import.span,
                    }
                    .into(),
                );
            }
        }
    }
    let symbols = Symbols::collect(ast, prelude_ast(), imported.is_some(), sink);
    let seed = root_seed(ast, sink);
    let mut analyzer = Analyzer {
        text,
        symbols,
        sink: std::mem::take(sink),
        used: BTreeSet::new(),
        contexts: BTreeMap::new(),
        phrasings: BTreeMap::new(),
        models: BTreeMap::new(),
        tasks: BTreeMap::new(),
        rewards: BTreeMap::new(),
        budgets: BTreeMap::new(),
        mixtures_read: BTreeSet::new(),
        example_tokens: std::cell::RefCell::default(),
        keys: stage_keys::StageKeys::default(),
        base_dir: base_dir.to_owned(),
        checkpoint_hashes: std::collections::HashMap::new(),
        plan: Plan {
            schema: crate::plan::PLAN_SCHEMA,
            name: name.to_owned(),
            seed,
            contexts: Vec::new(),
            phrasings: Vec::new(),
            tasks: Vec::new(),
            models: Vec::new(),
            rewards: Vec::new(),
            budgets: Vec::new(),
            stages: Vec::new(),
            cells: Vec::new(),
        },
    };
    analyzer.lower_definitions(ast);
    let order = analyzer.stage_order(ast);
    analyzer.lower_cells(ast, &order);
    // Every valid task is in the plan, used or not, so `rlp sample` can draw from any of them.
    for (name, _) in analyzer.symbols.user_defs(DefKind::Task) {
        analyzer.intern_task(name);
    }
    analyzer.report_unused(ast);
    analyzer.check_checkpoints(ast);
    let mut problems = analyzer.sink;
    // With errors present, "unused" and "underspent" warnings are mostly their echoes (a stage
    // that failed to lower uses nothing): keep the report about the causes.
    if problems.iter().any(Diagnostic::is_error) {
        problems.retain(|p| {
            !matches!(
                p,
                Diagnostic::Warning(
                    AnalysisWarning::UnusedDefinition { .. }
                        | AnalysisWarning::BudgetUnderspent { .. }
                )
            )
        });
    }
    *sink = problems;
    analyzer.plan
}

/// The `seed` item's value (0, with a warning, if there is none).
fn root_seed(ast: &Ast, sink: &mut Vec<Diagnostic>) -> u64 {
    let mut seed = None;
    for item in &ast.items {
        let Item::Seed(item) = item else { continue };
        if let Some((_, first)) = seed {
            sink.push(
                AnalysisError::DuplicateField {
                    field: "seed".to_owned(),
                    span: item.span,
                    first,
                }
                .into(),
            );
            continue;
        }
        match &item.value {
            Atom::Number(n)
                if n.suffix.is_none()
                    && n.is_integer_literal()
                    && n.value() >= 0.0
                    && n.value() < 1.8e19 =>
            {
                seed = Some((n.text.parse::<u64>().unwrap_or(0), item.span));
            }
            other => {
                sink.push(
                    AnalysisError::WrongValue {
                        expected: "a whole number from 0 to 2^64 - 1".to_owned(),
                        found: other.describe().to_owned(),
                        span: other.span(),
                        help: Some("write e.g. `seed 1234`".to_owned()),
                    }
                    .into(),
                );
                seed = Some((0, item.span));
            }
        }
    }
    let has_stages = ast.items.iter().any(|i| {
        matches!(i, Item::Block(b) if matches!(b.kind.text.as_str(), "pretrain" | "midtrain" | "rl"))
    });
    if seed.is_none() && has_stages {
        sink.push(
            AnalysisWarning::NoSeed {
                span: Span::new(0, 0),
            }
            .into(),
        );
    }
    seed.map_or(0, |(s, _)| s)
}

/// A seed derived from the root seed and a label, stable across machines and versions.
fn derive_seed(root: u64, label: &str) -> u64 {
    let digest = Sha256::digest(format!("rlp-seed/{root}/{label}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

impl<'a> Analyzer<'a> {
    /// Lowers every context, phrasing, model, task, reward and budget, so that every one is
    /// checked even if nothing uses it.
    fn lower_definitions(&mut self, ast: &'a Ast) {
        let defs: Vec<(&'a str, Def<'a>)> =
            self.symbols.defs.iter().map(|(n, d)| (*n, *d)).collect();
        for (name, def) in defs {
            // Prelude definitions are tested clean; their spans point into the prelude.
            let mut scratch = Vec::new();
            let sink = if def.origin == Origin::User {
                &mut self.sink
            } else {
                &mut scratch
            };
            match (def.kind, def.item) {
                (DefKind::Context, Item::Block(b)) => {
                    self.contexts
                        .insert(name, templates::lower_context(b, name, sink));
                }
                (DefKind::Phrasing, Item::Block(b)) => {
                    self.phrasings
                        .insert(name, templates::lower_phrasing(b, name, sink));
                }
                (DefKind::Model, Item::Block(b)) => {
                    let model = definitions::lower_model(b, name, &self.symbols, sink);
                    self.models.insert(name, model);
                }
                (DefKind::Reward, Item::Reward(r)) => {
                    self.rewards
                        .insert(name, reward::lower_reward(r, self.text, sink));
                }
                (DefKind::Budget, Item::Budget(b)) => {
                    self.budgets
                        .insert(name, definitions::lower_budget(b, sink));
                }
                _ => {}
            }
        }
        for item in &ast.items {
            if let Item::Block(block) = item
                && block.kind.text != "pretrain"
                && block.kind.text != "midtrain"
                && block.kind.text != "rl"
                && let Some(parent) = &block.parent
                && DefKind::BLOCKS.iter().any(|(kw, _)| *kw == block.kind.text)
            {
                self.sink.push(
                    AnalysisError::FromNotAllowed {
                        block: block.kind.text.clone(),
                        span: parent.span,
                        help: Some(
                            "only `midtrain` and `rl` stages start from another stage".to_owned(),
                        ),
                    }
                    .into(),
                );
            }
        }
        for (name, def) in self.symbols.user_defs(DefKind::Task) {
            if let Some(block) = def.block() {
                let task = self.lower_task(block, name);
                self.tasks.insert(name, task);
            }
        }
    }

    fn lower_task(&mut self, block: &crate::syntax::ast::Block, name: &str) -> Option<CheckedTask> {
        let fields = Fields::collect(block, definitions::TASK_FIELDS, &[], &mut self.sink);
        let settings = definitions::task_settings(&fields, &mut self.sink);
        let mut contexts = Vec::new();
        let mut ok = true;
        if let Some(line) =
            fields.require("contexts", "contexts zoo, teacher, movie", &mut self.sink)
        {
            let names = Reader::new(line, Env::Fixed, "contexts NAME, NAME, ...", &mut self.sink)
                .and_then(|r| name_list(r, "a context name"));
            match names {
                Some(names) => {
                    for context in names {
                        let capacity = self.resolve_context(&context).map(|c| c.capacity);
                        match capacity {
                            Some(capacity) => {
                                if let Some(s) = &settings
                                    && s.max_op > capacity
                                {
                                    self.sink.push(
                                        AnalysisError::ContextTooSmall {
                                            context: context.text.clone(),
                                            max_op: i64::from(s.max_op),
                                            capacity: i64::from(capacity),
                                            span: context.span,
                                        }
                                        .into(),
                                    );
                                    ok = false;
                                }
                                if contexts.contains(&context.text) {
                                    ok = false;
                                    self.sink.push(
                                        AnalysisError::DuplicateName {
                                            kind: "context",
                                            name: context.text.clone(),
                                            span: context.span,
                                            first: line.span,
                                        }
                                        .into(),
                                    );
                                }
                                contexts.push(context.text);
                            }
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        } else {
            ok = false;
        }
        let phrasing = fields
            .require("phrasing", "phrasing english", &mut self.sink)
            .and_then(|line| {
                let mut r = Reader::new(line, Env::Fixed, "phrasing NAME", &mut self.sink)?;
                let phrasing = r.name("a phrasing name")?;
                r.finish();
                self.resolve_phrasing(&phrasing)?;
                Some(phrasing.text)
            });
        let (settings, phrasing) = (settings?, phrasing?);
        if !ok {
            return None;
        }
        Some(CheckedTask {
            contexts,
            phrasing,
            settings: TaskSpec {
                name: name.to_owned(),
                contexts: Vec::new(),
                phrasing: PhrasingId(0),
                constants: settings.constants,
                multipliers: settings.multipliers,
                max_value: settings.max_value,
                modes: settings.modes,
                distractors: settings.distractors,
                sentences: settings.sentences,
                max_op: settings.max_op,
            },
        })
    }

    /// Looks up a context and marks it used.
    fn resolve_context(&mut self, name: &Name) -> Option<&ContextSpec> {
        self.symbols
            .lookup(name, &[DefKind::Context], &mut self.sink)?;
        self.used.insert(name.text.clone());
        self.contexts.get(name.text.as_str())?.as_ref()
    }

    fn resolve_phrasing(&mut self, name: &Name) -> Option<&PhrasingSpec> {
        self.symbols
            .lookup(name, &[DefKind::Phrasing], &mut self.sink)?;
        self.used.insert(name.text.clone());
        self.phrasings.get(name.text.as_str())?.as_ref()
    }

    /// Interns a context into the plan.
    fn intern_context(&mut self, name: &str) -> Option<ContextId> {
        intern(&mut self.plan.contexts, &self.contexts, name, |c| &c.name).map(ContextId)
    }

    fn intern_phrasing(&mut self, name: &str) -> Option<PhrasingId> {
        intern(&mut self.plan.phrasings, &self.phrasings, name, |p| &p.name).map(PhrasingId)
    }

    /// Looks up a task, marks it used and interns it (with its contexts and phrasing).
    fn resolve_task(&mut self, name: &Name) -> Option<TaskId> {
        self.symbols
            .lookup(name, &[DefKind::Task], &mut self.sink)?;
        self.used.insert(name.text.clone());
        self.intern_task(&name.text)
    }

    /// Interns a checked task (with its contexts and phrasing) into the plan.
    fn intern_task(&mut self, name: &str) -> Option<TaskId> {
        if let Some(i) = self.plan.tasks.iter().position(|t| t.name == name) {
            return Some(TaskId(i));
        }
        let checked = self.tasks.get(name)?.clone()?;
        let mut spec = checked.settings;
        spec.contexts = checked
            .contexts
            .iter()
            .map(|c| self.intern_context(c))
            .collect::<Option<_>>()?;
        spec.phrasing = self.intern_phrasing(&checked.phrasing)?;
        self.plan.tasks.push(spec);
        Some(TaskId(self.plan.tasks.len() - 1))
    }

    /// Looks up a model, marks it used and interns it.
    fn resolve_model(&mut self, name: &Name) -> Option<ModelId> {
        self.symbols
            .lookup(name, &[DefKind::Model], &mut self.sink)?;
        self.used.insert(name.text.clone());
        intern(&mut self.plan.models, &self.models, &name.text, |m| &m.name).map(ModelId)
    }

    fn resolve_reward(&mut self, name: &Name) -> Option<RewardId> {
        self.symbols
            .lookup(name, &[DefKind::Reward], &mut self.sink)?;
        self.used.insert(name.text.clone());
        intern(&mut self.plan.rewards, &self.rewards, &name.text, |r| {
            &r.name
        })
        .map(RewardId)
    }

    fn resolve_budget(&mut self, name: &Name) -> Option<BudgetSpec> {
        self.symbols
            .lookup(name, &[DefKind::Budget], &mut self.sink)?;
        self.used.insert(name.text.clone());
        let spec = self.budgets.get(name.text.as_str())?.clone()?;
        if !self.plan.budgets.iter().any(|b| b.name == spec.name) {
            self.plan.budgets.push(spec.clone());
        }
        Some(spec)
    }

    /// Warns about user definitions nothing refers to, and errors on unused sweep variables.
    fn report_unused(&mut self, ast: &Ast) {
        for kind in [
            DefKind::Context,
            DefKind::Phrasing,
            DefKind::Task,
            DefKind::Model,
            DefKind::Mixture,
            DefKind::Reward,
            DefKind::Budget,
        ] {
            for (name, def) in self.symbols.user_defs(kind) {
                if !self.used.contains(name) {
                    self.sink.push(
                        AnalysisWarning::UnusedDefinition {
                            kind: kind.noun(),
                            name: name.to_owned(),
                            span: def.span,
                        }
                        .into(),
                    );
                }
            }
        }
        let mut uses = BTreeSet::new();
        collect_var_uses(ast, &mut uses);
        for item in &ast.items {
            if let Item::Sweep(sweep) = item
                && !uses.contains(sweep.name.text.as_str())
            {
                self.sink.push(
                    AnalysisError::UnusedSweepVariable {
                        name: sweep.name.text.clone(),
                        span: sweep.name.span,
                    }
                    .into(),
                );
            }
        }
    }
}

/// The position of `name` in a plan table, adding its lowered definition first if needed
/// (`None` if the definition itself has problems, which are reported where it is).
fn intern<T: Clone>(
    table: &mut Vec<T>,
    lowered: &BTreeMap<&str, Option<T>>,
    name: &str,
    name_of: impl Fn(&T) -> &str,
) -> Option<usize> {
    if let Some(i) = table.iter().position(|t| name_of(t) == name) {
        return Some(i);
    }
    table.push(lowered.get(name)?.clone()?);
    Some(table.len() - 1)
}

/// Reads `NAME, NAME, ...` to the end of the line.
fn name_list(mut r: Reader<'_>, what: &str) -> Option<Vec<Name>> {
    let mut names = Vec::new();
    loop {
        names.push(r.name(what)?);
        if !r.group_done() || !r.next_group() {
            break;
        }
    }
    r.finish();
    Some(names)
}

/// Every `$name` used anywhere.
fn collect_var_uses<'a>(ast: &'a Ast, out: &mut BTreeSet<&'a str>) {
    fn atom<'a>(a: &'a Atom, out: &mut BTreeSet<&'a str>) {
        match a {
            Atom::Var(v) => {
                out.insert(&v.text);
            }
            Atom::Source(s) => s
                .args
                .iter()
                .flat_map(|arg| &arg.values)
                .for_each(|v| atom(v, out)),
            _ => {}
        }
    }
    fn expr<'a>(e: &'a crate::syntax::ast::Expr, out: &mut BTreeSet<&'a str>) {
        use crate::syntax::ast::Expr;
        match e {
            Expr::Var(v) => {
                out.insert(&v.text);
            }
            Expr::Neg { operand, .. } => expr(operand, out),
            Expr::Binary { lhs, rhs, .. } => {
                expr(lhs, out);
                expr(rhs, out);
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| expr(a, out)),
            Expr::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                expr(condition, out);
                expr(then, out);
                expr(otherwise, out);
            }
            Expr::Number { .. } | Expr::Name(_) => {}
        }
    }
    for item in &ast.items {
        match item {
            Item::Block(b) => b
                .lines
                .iter()
                .flat_map(|l| l.groups.iter().flatten())
                .for_each(|a| atom(a, out)),
            Item::Reward(r) => expr(&r.expr, out),
            Item::Sweep(s) => s.values.iter().for_each(|a| atom(a, out)),
            Item::Seed(s) => atom(&s.value, out),
            Item::Budget(b) => atom(&b.amount, out),
            Item::Use(_) => {}
        }
    }
}
