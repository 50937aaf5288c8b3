//! Contexts and phrasings: the task grammar's vocabulary and templates, checked and lowered.
//! Also the two numbers the rest of analysis needs from them: how large an op(G) a context's
//! name pools can hold, and how many tokens a problem can take.

use super::fields::{Env, Fields, Reader};
use crate::diagnostics::{AnalysisError, Diagnostic};
use crate::plan::template::{Slot, fill, placeholders};
use crate::plan::{ContextSpec, NamePool, PhrasingSpec};
use crate::syntax::Span;
use crate::syntax::ast::Block;
use crate::tokenizer::count_tokens;

/// Placeholders of the context question templates.
const ASK_TOTAL: &[&str] = &["total", "entity"];
const ASK_ITEM: &[&str] = &["item", "entity"];

/// The reference draws at most this many names per layer for one problem.
const MAX_NAMES_PER_LAYER: usize = 5;

/// Lowers a `context` block.
pub(crate) fn lower_context(
    block: &Block,
    name: &str,
    sink: &mut Vec<Diagnostic>,
) -> Option<ContextSpec> {
    let fields = Fields::collect(
        block,
        &[
            "entity",
            "entities",
            "total",
            "items",
            "ask_total",
            "ask_item",
        ],
        &["entities", "items"],
        sink,
    );
    let errors_before = sink.len();
    let entity = fields
        .require("entity", "entity \"Location\"", sink)
        .and_then(|l| single_string(l, sink));
    let total = fields
        .require("total", "total \"total number of adult animals\"", sink)
        .and_then(|l| single_string(l, sink));
    let entities = pools(
        &fields,
        "entities",
        "entities wild \"Pine Ridge\", \"Maple Creek\"",
        sink,
    );
    let items = pools(
        &fields,
        "items",
        "items mammal \"adult bear\", \"adult wolf\"",
        sink,
    );
    let ask_total = fields
        .require(
            "ask_total",
            "ask_total \"What is the {total} in {entity}?\"",
            sink,
        )
        .and_then(|l| template(l, "ask_total", ASK_TOTAL, sink));
    let ask_item = fields
        .require(
            "ask_item",
            "ask_item \"How many {item} does {entity} have?\"",
            sink,
        )
        .and_then(|l| template(l, "ask_item", ASK_ITEM, sink));
    if sink.len() > errors_before {
        return None;
    }
    let (entities, items) = (entities?, items?);
    let capacity = capacity(&entities, &items);
    Some(ContextSpec {
        name: name.to_owned(),
        entity_category: entity?,
        entities,
        total: total?,
        items,
        ask_total: ask_total?,
        ask_item: ask_item?,
        capacity,
    })
}

/// The largest op(G) a problem over these pools can have. A problem uses one entity pool and
/// one item pool, at most five names each; every item quantity has at most three parents plus
/// a constant (4 ops), and every entity total sums at most one quantity per item.
fn capacity(entities: &[NamePool], items: &[NamePool]) -> u32 {
    let smallest = |pools: &[NamePool]| {
        pools
            .iter()
            .map(|p| p.names.len().min(MAX_NAMES_PER_LAYER))
            .min()
            .unwrap_or(0)
    };
    let (e, i) = (smallest(entities), smallest(items));
    (4 * e * i + e * i) as u32
}

fn single_string(line: &crate::syntax::ast::Line, sink: &mut Vec<Diagnostic>) -> Option<String> {
    let mut r = Reader::new(line, Env::Fixed, "field \"text\"", sink)?;
    let (value, _) = r.string("a string")?;
    r.finish();
    Some(value)
}

fn pools(
    fields: &Fields<'_>,
    field: &'static str,
    example: &str,
    sink: &mut Vec<Diagnostic>,
) -> Option<Vec<NamePool>> {
    let lines = fields.all(field);
    if lines.is_empty() {
        fields.require(field, example, sink);
        return None;
    }
    let mut pools = Vec::new();
    for line in lines {
        let syntax = if field == "items" {
            "items POOL \"name\", \"name\", ..."
        } else {
            "entities POOL \"name\", \"name\", ..."
        };
        let mut r = Reader::new(line, Env::Fixed, syntax, sink)?;
        let pool = r.name("a pool name")?;
        let mut names = Vec::new();
        let mut spans = Vec::new();
        if r.group_done() {
            r.sink.push(
                AnalysisError::EmptyList {
                    what: format!("pool `{}`", pool.text),
                    span: pool.span,
                    help: Some(format!("write `{example}`")),
                }
                .into(),
            );
            return None;
        }
        loop {
            let (value, span) = r.string("a name in quotes")?;
            if value.trim().is_empty() {
                r.out_of_range("a name", "non-empty", "\"\"".to_owned(), span);
                return None;
            }
            if let Some(i) = names.iter().position(|n| *n == value) {
                r.sink.push(
                    AnalysisError::DuplicateName {
                        kind: "pool entry",
                        name: value,
                        span,
                        first: spans[i],
                    }
                    .into(),
                );
                return None;
            }
            names.push(value);
            spans.push(span);
            if !r.group_done() || !r.next_group() {
                break;
            }
        }
        r.finish();
        pools.push(NamePool {
            name: pool.text,
            names,
        });
    }
    Some(pools)
}

/// Reads a template string and checks its placeholders against `allowed`.
fn template(
    line: &crate::syntax::ast::Line,
    slot: &str,
    allowed: &[&str],
    sink: &mut Vec<Diagnostic>,
) -> Option<String> {
    let mut r = Reader::new(
        line,
        Env::Fixed,
        "slot \"template with {placeholders}\"",
        sink,
    )?;
    let (text, span) = r.string("a template string")?;
    r.finish();
    check_template(&text, slot, allowed, span, sink).then_some(text)
}

fn check_template(
    text: &str,
    slot: &str,
    allowed: &[&str],
    span: Span,
    sink: &mut Vec<Diagnostic>,
) -> bool {
    match placeholders(text) {
        Err(brace) => {
            sink.push(
                AnalysisError::MalformedTemplate {
                    slot: slot.to_owned(),
                    brace,
                    span,
                }
                .into(),
            );
            false
        }
        Ok(found) => {
            let mut ok = true;
            for placeholder in found {
                if !allowed.contains(&placeholder) {
                    let list = allowed
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let help = super::suggest::closest(placeholder, allowed.iter().copied())
                        .map(|best| format!("did you mean `{{{best}}}`?"))
                        .or_else(|| {
                            Some(if allowed.is_empty() {
                                format!("`{slot}` takes no placeholders")
                            } else {
                                format!("`{slot}` provides {list}")
                            })
                        });
                    sink.push(
                        AnalysisError::UnknownPlaceholder {
                            slot: slot.to_owned(),
                            placeholder: placeholder.to_owned(),
                            span,
                            help,
                        }
                        .into(),
                    );
                    ok = false;
                }
            }
            ok
        }
    }
}

/// Lowers a `phrasing` block.
pub(crate) fn lower_phrasing(
    block: &Block,
    name: &str,
    sink: &mut Vec<Diagnostic>,
) -> Option<PhrasingSpec> {
    let names: Vec<&'static str> = Slot::ALL.iter().map(|slot| slot.name()).collect();
    let fields = Fields::collect(block, &names, &[], sink);
    let mut templates = Vec::with_capacity(Slot::ALL.len());
    let mut ok = true;
    for (slot, allowed, what) in Slot::ALL.map(Slot::describe) {
        let example = format!("{slot} \"...\"  # {what}");
        match fields.require(slot, &example, sink) {
            Some(line) => match template(line, slot, allowed, sink) {
                Some(text) => templates.push(((*slot).to_owned(), text)),
                None => ok = false,
            },
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    // Every slot has its template, in slot order.
    let template = |slot: Slot| templates[slot.index()].1.as_str();
    let shows_context = template(Slot::InstanceRef).contains("{name}")
        || template(Slot::TotalRef).contains("{name}");
    let (define, reverse_unknown) = (template(Slot::Define), template(Slot::ReverseUnknown));
    // The reverse-mode unknown is a step too: it must open the way every step does.
    let opening = define.split_once("{var};").map_or("", |(head, _)| head);
    if !verifiable_define(define)
        || (define.contains("{name}") && !reverse_unknown.starts_with(opening))
    {
        let slot = if verifiable_define(define) {
            Slot::ReverseUnknown
        } else {
            Slot::Define
        };
        let span = fields.get(slot.name()).map_or(block.span, |l| l.span);
        sink.push(
            AnalysisError::UnverifiableSteps {
                phrasing: name.to_owned(),
                span,
            }
            .into(),
        );
        return None;
    }
    Some(PhrasingSpec {
        name: name.to_owned(),
        templates,
        shows_context,
    })
}

/// Whether solutions written with this `define` template can be parsed back step by step:
/// either steps are named by letters (no `{name}`), or a step opens with
/// `KEYWORD {name} CONNECTOR {var};` (the reference's `Define {name} as {var}; `).
fn verifiable_define(define: &str) -> bool {
    if !define.contains("{name}") {
        return true;
    }
    let Some((keyword, rest)) = define.split_once(" {name} ") else {
        return false;
    };
    let Some((connector, rest)) = rest.split_once(" {var}") else {
        return false;
    };
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic());
    word(keyword) && word(connector) && rest.starts_with(';')
}

/// Worst-case lengths, in tokens, of a problem at some op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleTokens {
    /// The prompt a model is given: `[BOS]`, the question block and `<solution>`.
    pub prompt: u64,
    /// The whole training example: the prompt, the solution, the answer and `[EOS]`.
    pub total: u64,
}

/// A worst-case estimate of the tokens of one problem at op `op`: every sentence as long as
/// the longest names and the widest expression make it, as many distractors as the structure
/// can hold. Used to check that a model's context is long enough before any compute is spent.
#[must_use]
pub fn max_example_tokens(
    contexts: &[&ContextSpec],
    phrasing: &PhrasingSpec,
    op: u32,
    distractors: bool,
    max_value: i64,
) -> ExampleTokens {
    let t = |slot: Slot| phrasing.template(slot);
    let longest = |pools: &[NamePool]| {
        pools
            .iter()
            .flat_map(|p| &p.names)
            .max_by_key(|n| (count_tokens(n), n.len()))
            .cloned()
            .unwrap_or_default()
    };
    let value = max_value.to_string();
    let mut worst_sentence = 0;
    let mut worst_step = 0;
    let mut worst_question = 0;
    let mut structure = 0;
    for context in contexts {
        let entity = longest(&context.entities);
        let item = longest(&context.items);
        let instance = fill(
            t(Slot::InstanceName),
            &[("item", &item), ("entity", &entity)],
        );
        let total = fill(
            t(Slot::TotalName),
            &[("total", &context.total), ("entity", &entity)],
        );
        let name = if count_tokens(&instance) >= count_tokens(&total) {
            instance
        } else {
            total
        };
        let reference = fill(t(Slot::InstanceRef), &[("name", &name), ("var", "V")]);
        let sep = t(Slot::ListSeparator);
        let terms = format!(
            "{reference}{sep}{reference}{}{reference}",
            t(Slot::ListFinal)
        );
        let sum = fill(t(Slot::Sum), &[("terms", &terms)]);
        let expr = fill(t(Slot::Times), &[("k", "4"), ("expr", &sum)]);
        let sentence = fill(t(Slot::Fact), &[("quantity", &reference), ("expr", &expr)])
            + t(Slot::SentenceEnd);
        worst_sentence = worst_sentence.max(count_tokens(&sentence));
        let ask = fill(
            &context.ask_total,
            &[("total", &context.total), ("entity", &entity)],
        );
        let question = fill(
            t(Slot::Question),
            &[
                ("context_question", &ask),
                ("quantity", &reference),
                ("var", "V"),
            ],
        );
        worst_question = worst_question.max(count_tokens(&question));
        // A step of a 3-term sum with a constant: two chained partial sums, then the constant.
        let assign = fill(
            t(Slot::Assign),
            &[
                ("var", "V"),
                ("expr", "V + V"),
                ("values", &format!("{value} + {value}")),
                ("value", &value),
            ],
        );
        let step = fill(t(Slot::Define), &[("name", &name), ("var", "V")])
            + &[assign.as_str(); 3].join(t(Slot::AssignSeparator))
            + t(Slot::FinalPrefix)
            + t(Slot::StepEnd);
        worst_step = worst_step.max(count_tokens(&step));
        let per_layer = |pools: &[NamePool]| {
            pools
                .iter()
                .map(|p| p.names.len().min(MAX_NAMES_PER_LAYER))
                .max()
                .unwrap_or(0)
        };
        structure =
            structure.max((per_layer(&context.entities) * per_layer(&context.items)) as u64);
    }
    let op = u64::from(op);
    // Distractors fill the structure graph, which never has more item quantities than the
    // generator draws edges.
    let structure = structure.min(crate::tasks::generate::MAX_STRUCTURE as u64);
    let sentences = if distractors { structure.max(op) } else { op } + 1;
    let reverse = count_tokens(t(Slot::ReverseIntro))
        + count_tokens(t(Slot::ReverseUnknown))
        + count_tokens(&fill(
            t(Slot::ReverseSolve),
            &[
                ("var", "V"),
                ("value", &value),
                ("lhs", "4*x + 1000"),
                ("moved", "4*x - 1000"),
                ("coef", "4"),
                ("rhs", &value),
                ("x", &value),
            ],
        ));
    let answer = count_tokens(&fill(t(Slot::Answer), &[("value", &value)]));
    // BOS, `<question>`, `</question>`, `<solution>`; then `</solution>`, `<answer>`,
    // `</answer>`, EOS.
    let prompt = 4 + sentences * worst_sentence + worst_question;
    ExampleTokens {
        prompt,
        total: prompt + 4 + op * worst_step + reverse + answer,
    }
}
