//! Lowering `eval` blocks in a cell: models, splits and their checks (extrapolative,
//! held-out), sampling and pass@k.

use std::collections::BTreeMap;

use super::cells::Lowered;
use super::fields::{Env, Fields, Reader};
use super::symbols::DefKind;
use super::{Analyzer, derive_seed, name_list, suggest};
use crate::diagnostics::{AnalysisError, AnalysisWarning};
use crate::plan::{EvalSpec, Metric, SplitSpec};
use crate::syntax::Span;
use crate::syntax::ast::{Atom, Block, Line};
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

impl Analyzer<'_> {
    /// `pass_at 1, 8, 64`: sorted, deduplicated, each at most `samples` (when that is known).
    pub(super) fn pass_at(
        &mut self,
        line: &Line,
        env: Env<'_>,
        samples: Option<u32>,
    ) -> Option<Vec<u32>> {
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
    pub(super) fn lower_eval(
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
    pub(super) fn check_split(
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
                let components = self.plan.stages[stage.id.0].spec.data().components.clone();
                for component in &components {
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
            let model_id = self.plan.stages[stages[model].id.0].spec.model();
            let spec = &self.plan.models[model_id.0];
            let (model_name, context) = (spec.name.clone(), spec.context);
            let what = format!("split `{}` at op {}", split.name, split.source.op_max);
            let prompt_fits = self
                .check_length(model_id, &split.source, what, source_span, true)
                .is_some();
            if prompt_fits && max_new_tokens >= context {
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
