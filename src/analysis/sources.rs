//! Lowering data: a stage's `data`/`prompts` line, mixtures and sources, and the check that
//! the longest problem a stage will see fits its model's context.

use super::fields::{self, Env, Reader, format_number};
use super::symbols::DefKind;
use super::templates::{ExampleTokens, max_example_tokens};
use super::{Analyzer, suggest};
use crate::diagnostics::{AnalysisError, AnalysisWarning, Diagnostic};
use crate::plan::{Component, DataSpec, Mode, ModelId, Plan, SourceSpec, TaskId};
use crate::syntax::Span;
use crate::syntax::ast::{Atom, Block, Line, Name, Source};
impl Analyzer<'_> {
    /// `data MIXTURE` or `data SOURCE`: the components and the span of each one's source.
    pub(super) fn data_line(
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
    pub(super) fn mixture(
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
    pub(super) fn source(&mut self, source: &Source, env: Env<'_>) -> Option<SourceSpec> {
        let task = self.resolve_task(&source.task)?;
        let (symbols, used, contexts) = (&self.symbols, &mut self.used, &self.contexts);
        let mut known_context = |name: &Name, sink: &mut Vec<Diagnostic>| {
            symbols.lookup(name, &[DefKind::Context], sink).is_some() && {
                used.insert(name.text.clone());
                // A context with errors of its own is already reported.
                matches!(contexts.get(name.text.as_str()), Some(Some(_)))
            }
        };
        lower_source(
            source,
            &self.plan,
            task,
            env,
            &mut self.sink,
            &mut known_context,
        )
    }

    pub(super) fn source_tokens(&self, source: &SourceSpec) -> ExampleTokens {
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

    /// Checks that a stage's problems fit its model's context. A model must be given a whole
    /// prompt (`sampled`: rollouts and evals), otherwise E0414; a longer whole example is a
    /// warning: training packs examples across sequences, as the reference does, and
    /// sampling cuts a completion at the context, as the reference's `max_model_len`.
    pub(super) fn check_lengths(
        &mut self,
        model: ModelId,
        data: &DataSpec,
        spans: &[Span],
        sampled: bool,
    ) -> Option<()> {
        for (component, span) in data.components.iter().zip(spans) {
            let what = {
                let task = &self.plan.tasks[component.source.task.0];
                format!("`{}` problems at op {}", task.name, component.source.op_max)
            };
            self.check_length(model, &component.source, what, *span, sampled)?;
        }
        Some(())
    }

    /// [`Self::check_lengths`] for one source.
    pub(super) fn check_length(
        &mut self,
        model: ModelId,
        source: &SourceSpec,
        what: String,
        span: Span,
        sampled: bool,
    ) -> Option<()> {
        let spec = &self.plan.models[model.0];
        let (name, context) = (spec.name.clone(), u64::from(spec.context));
        let tokens = self.source_tokens(source);
        if sampled && tokens.prompt >= context {
            self.sink.push(
                AnalysisError::ContextTooShort {
                    model: name,
                    context,
                    what: format!("the prompts of {what}"),
                    needed: tokens.prompt,
                    span,
                    help: Some(self.shorter_problems_help(source.task, tokens.prompt)),
                }
                .into(),
            );
            return None;
        }
        if tokens.total > context {
            self.sink.push(
                AnalysisWarning::LongExamples {
                    model: name,
                    context,
                    what,
                    needed: tokens.total,
                    effect: if sampled {
                        "completions that reach the context are cut there, as the reference's `max_model_len` cuts them"
                    } else {
                        "training packs them across sequences, as the reference does"
                    },
                    span,
                }
                .into(),
            );
        }
        Some(())
    }

    /// What can make a task's problems fit a context: only the levers the task still has.
    pub(super) fn shorter_problems_help(&self, task: TaskId, needed: u64) -> String {
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
}

/// Lowers `TASK[op .., context .., mode ..]` of a task already in `plan`: the one lowering of
/// sources, for files and for `rlp sample --source`. `known_context` reports names that are
/// not contexts at all (false: already reported); a context the task does not use is
/// reported here.
pub(super) fn lower_source(
    source: &Source,
    plan: &Plan,
    task_id: TaskId,
    env: Env<'_>,
    sink: &mut Vec<Diagnostic>,
    known_context: &mut dyn FnMut(&Name, &mut Vec<Diagnostic>) -> bool,
) -> Option<SourceSpec> {
    let task = &plan.tasks[task_id.0];
    let mut ops = None;
    let mut contexts = None;
    let mut mode = None;
    let mut seen: Vec<(&str, Span)> = Vec::new();
    let mut ok = true;
    for arg in &source.args {
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == arg.key.text) {
            sink.push(
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
        let Some(values) = fields::resolve(&arg.values, env, sink) else {
            ok = false;
            continue;
        };
        match arg.key.text.as_str() {
            "op" => {
                if values.len() != 1 {
                    sink.push(
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
                match fields::int_range(&values[0], "an op range", sink) {
                    Some((lo, hi, span)) => {
                        if lo < 1 || hi > i64::from(task.max_op) {
                            sink.push(
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
                for value in values.iter() {
                    let Atom::Name(name) = value else {
                        sink.push(
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
                    if !known_context(name, sink) {
                        ok = false;
                        continue;
                    }
                    if let Some(&id) = task
                        .contexts
                        .iter()
                        .find(|c| plan.contexts[c.0].name == name.text)
                    {
                        ids.push(id);
                        continue;
                    }
                    let names: Vec<String> = task
                        .contexts
                        .iter()
                        .map(|c| format!("`{}`", plan.contexts[c.0].name))
                        .collect();
                    sink.push(
                        AnalysisError::ContextNotInTask {
                            task: task.name.clone(),
                            context: name.text.clone(),
                            span: name.span,
                            help: Some(format!(
                                "task `{}` uses {}; add the context to its `contexts` line",
                                task.name,
                                names.join(", ")
                            )),
                        }
                        .into(),
                    );
                    ok = false;
                }
                contexts = Some(ids);
            }
            "mode" => match &values[..] {
                [Atom::Name(n)] if n.text == "forward" => mode = Some(Mode::Forward),
                [Atom::Name(n)] if n.text == "reverse" => mode = Some(Mode::Reverse),
                _ => {
                    sink.push(
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
                sink.push(
                    AnalysisError::UnknownField {
                        block: "source".to_owned(),
                        field: other.to_owned(),
                        span: arg.key.span,
                        help: suggest::help(other, ["op", "context", "mode"], "a source takes"),
                    }
                    .into(),
                );
                ok = false;
            }
        }
    }
    if ops.is_none() && ok {
        sink.push(
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
        contexts: contexts.unwrap_or_else(|| task.contexts.clone()),
        mode,
    })
}
