//! Rendering a graph through a context and a phrasing: problem sentences, question, gold
//! solution, and the training text and prompt in the reference layout
//! `<question> … </question> <solution> … </solution> <answer> … </answer>`.

use rand::Rng;
use rand::seq::SliceRandom;

use super::generate::{Generated, Rejection};
use super::graph::{Combine, Graph, NodeKind, Rule};
use super::linear::Linear;
use std::fmt::Write as _;

use crate::plan::template::{Slot, Template, fill};
use crate::plan::{ContextSpec, Mode, PhrasingSpec, SentenceOrder};

/// A rendered problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The problem sentences, each ending with the phrasing's sentence end.
    pub problem: String,
    /// The question.
    pub question: String,
    /// The gold solution: the steps, then the answer line.
    pub solution: String,
    /// The steps alone, trimmed (the text between `<solution>` and `</solution>`).
    pub body: String,
    /// The answer as text.
    pub answer: String,
    /// Each node's name as the solution writes it, by node index.
    pub names: Vec<String>,
    /// Each node's variable letter, by node index (`?` for distractors without one).
    pub vars: Vec<char>,
}

impl Rendered {
    /// The prompt: the exact prefix of [`Rendered::text`] a model continues.
    #[must_use]
    pub fn prompt(&self) -> String {
        format!(
            "<question> {} {} </question> <solution>",
            self.problem.trim(),
            self.question
        )
    }

    /// The whole training text.
    #[must_use]
    pub fn text(&self) -> String {
        format!(
            "{} {} </solution> <answer> {} </answer>",
            self.prompt(),
            self.body,
            self.answer
        )
    }
}

/// Letters for variables, as the reference draws them: A–Z and a–z; `x` is kept for the
/// unknown of reverse mode.
fn letter_pool() -> Vec<char> {
    ('A'..='Z').chain('a'..='z').filter(|c| *c != 'x').collect()
}

struct Renderer<'a, R: Rng> {
    /// Draws the letters, one at a time (cheaper than shuffling all 51).
    rng: &'a mut R,
    compiled: &'a [Template],
    generated: &'a Generated<'a>,
    context: &'a ContextSpec,
    phrasing: &'a PhrasingSpec,
    letters: Vec<Option<char>>,
    pool: Vec<char>,
    forms: Option<&'a [Linear]>,
    /// Each node's name and in-sentence reference, made once letters are known.
    names: Vec<String>,
    refs: Vec<String>,
}

/// Renders a generated graph. Fails only if the problem needs more variable letters than
/// there are (then the attempt is retried).
pub fn render(
    generated: &Generated,
    context: &ContextSpec,
    phrasing: &PhrasingSpec,
    compiled: &[Template],
    mode: Mode,
    order: SentenceOrder,
    rng: &mut impl Rng,
) -> Result<Rendered, Rejection> {
    let graph = &generated.graph;
    let mut r = Renderer {
        rng,
        compiled,
        generated,
        context,
        phrasing,
        letters: vec![None; graph.nodes.len()],
        pool: letter_pool(),
        forms: generated.forms.as_deref(),
        names: Vec::new(),
        refs: Vec::new(),
    };
    // The unknown is called x where steps show names; where letters are the names, it keeps
    // a letter of its own and `x` stands for its value.
    let names_shown = phrasing.template(Slot::Define).contains("{name}");
    for &n in &graph.order {
        let letter = if Some(n) == graph.unknown && names_shown {
            'x'
        } else {
            r.fresh()?
        };
        r.letters[n] = Some(letter);
    }
    if phrasing.template(Slot::InstanceRef).contains("{var}") {
        for &n in &graph.distractors {
            r.letters[n] = Some(r.fresh()?);
        }
    }
    r.names = (0..graph.nodes.len()).map(|n| r.make_name(n)).collect();
    r.refs = (0..graph.nodes.len())
        .map(|n| r.make_reference(n))
        .collect();
    let totals_named = phrasing.template(Slot::TotalRef).contains("{name}");
    // Sentences in random order, written straight into one buffer; `None` is the extra
    // sentence of reverse mode stating the target's value.
    // A total needs no sentence where its name says what it is ("total number of ... in
    // E"); where quantities are letters, it is stated like any other quantity.
    let needs_sentence =
        |n: &&usize| matches!(graph.nodes[**n].kind, NodeKind::Instance { .. }) || !totals_named;
    let mut stated: Vec<Option<usize>> = graph
        .order
        .iter()
        .filter(needs_sentence)
        .map(|&n| Some(n))
        .collect();
    let mut extra: Vec<Option<usize>> = graph
        .distractors
        .iter()
        .filter(needs_sentence)
        .map(|&n| Some(n))
        .collect();
    if graph.unknown.is_some() {
        extra.push(None);
    }
    match order {
        SentenceOrder::Shuffled => {
            stated.append(&mut extra);
            stated.shuffle(r.rng);
        }
        SentenceOrder::Ordered => {
            for sentence in extra {
                let at = r.rng.random_range(0..=stated.len());
                stated.insert(at, sentence);
            }
        }
    }
    let target = graph.target();
    let asked = graph.unknown.unwrap_or(target);
    let mut problem = String::with_capacity(stated.len() * 96);
    let mut scratch = String::new();
    for sentence in stated {
        let start = problem.len();
        match sentence {
            Some(n) => r.sentence_into(&mut problem, &mut scratch, n),
            None => r.c(Slot::Known).fill_into(
                &mut problem,
                &[
                    ("quantity", r.reference(target)),
                    ("value", &graph.nodes[target].value.to_string()),
                ],
            ),
        }
        capitalize_at(&mut problem, start);
        problem.push_str(r.t(Slot::SentenceEnd));
    }
    let question = r.c(Slot::Question).fill(&[
        ("context_question", &r.context_question(asked)),
        ("quantity", r.reference(asked)),
        ("var", &r.var(asked)),
    ]);
    let mut steps = String::new();
    if mode == Mode::Reverse {
        steps.push_str(r.t(Slot::ReverseIntro));
    }
    for &n in &graph.order {
        r.step_into(&mut steps, n)?;
    }
    let value = graph.nodes[asked].value;
    if let (Some(forms), Some(_)) = (&r.forms, graph.unknown) {
        let lhs = forms[target];
        let known = graph.nodes[target].value;
        let moved = Linear {
            coefficient: lhs.coefficient,
            constant: lhs.constant - known,
        };
        steps.push_str(&r.c(Slot::ReverseSolve).fill(&[
            ("var", &r.var(target)),
            ("value", &known.to_string()),
            ("lhs", &lhs.render()),
            ("moved", &moved.render()),
            ("coef", &lhs.coefficient.to_string()),
            ("rhs", &(known - lhs.constant).to_string()),
            ("x", &value.to_string()),
        ]));
    }
    let answer = value.to_string();
    let solution = steps.clone() + &r.c(Slot::Answer).fill(&[("value", &answer)]);
    let names = if names_shown {
        std::mem::take(&mut r.names)
    } else {
        (0..graph.nodes.len()).map(|n| r.var(n)).collect()
    };
    let vars = r.letters.iter().map(|l| l.unwrap_or('?')).collect();
    Ok(Rendered {
        problem,
        question,
        solution,
        body: steps.trim().to_owned(),
        answer,
        names,
        vars,
    })
}

/// Capitalises the sentence starting at byte `start` of `text`, unless its first word is a
/// single letter (a variable).
fn capitalize_at(text: &mut String, start: usize) {
    let sentence = &text[start..];
    let first_word = sentence
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("");
    if first_word.chars().count() <= 1 {
        return;
    }
    let Some(first) = sentence.chars().next() else {
        return;
    };
    if first.is_ascii() {
        if let Some(byte) = text.get_mut(start..=start) {
            byte.make_ascii_uppercase();
        }
    } else {
        let upper: String = first.to_uppercase().collect();
        text.replace_range(start..start + first.len_utf8(), &upper);
    }
}

impl<R: Rng> Renderer<'_, R> {
    fn graph(&self) -> &Graph {
        &self.generated.graph
    }

    /// A slot's compiled template.
    fn c(&self, slot: Slot) -> &Template {
        &self.compiled[slot.index()]
    }

    /// A slot's template text; by position, as the hot path of rendering (the phrasing's
    /// templates are in slot order by construction).
    fn t(&self, slot: Slot) -> &str {
        self.phrasing
            .templates
            .get(slot.index())
            .map_or("", |(_, t)| t.as_str())
    }

    fn fresh(&mut self) -> Result<char, Rejection> {
        if self.pool.is_empty() {
            return Err(Rejection::Names);
        }
        let i = self.rng.random_range(0..self.pool.len());
        Ok(self.pool.swap_remove(i))
    }

    fn var(&self, n: usize) -> String {
        self.letters[n].map(String::from).unwrap_or_default()
    }

    /// The quantity's name: `adult owl in South Zoo`.
    fn name(&self, n: usize) -> &str {
        &self.names[n]
    }

    /// The quantity inside a sentence: `the number of adult owl in South Zoo`.
    fn reference(&self, n: usize) -> &str {
        &self.refs[n]
    }

    fn make_name(&self, n: usize) -> String {
        let g = self.generated;
        match g.graph.nodes[n].kind {
            NodeKind::Instance { entity, item } => self
                .c(Slot::InstanceName)
                .fill(&[("item", g.items[item]), ("entity", g.entities[entity])]),
            NodeKind::Total { entity } => self.c(Slot::TotalName).fill(&[
                ("total", &self.context.total),
                ("entity", g.entities[entity]),
            ]),
        }
    }

    /// The name a solution step gives the node: its name when `define` shows names, else
    /// its letter.
    fn solution_name(&self, n: usize) -> String {
        if self.t(Slot::Define).contains("{name}") {
            self.name(n).to_owned()
        } else {
            self.var(n)
        }
    }

    fn make_reference(&self, n: usize) -> String {
        let slot = match self.graph().nodes[n].kind {
            NodeKind::Instance { .. } => Slot::InstanceRef,
            NodeKind::Total { .. } => Slot::TotalRef,
        };
        self.c(slot)
            .fill(&[("name", self.name(n)), ("var", &self.var(n))])
    }

    fn context_question(&self, n: usize) -> String {
        let g = self.generated;
        match g.graph.nodes[n].kind {
            NodeKind::Instance { entity, item } => fill(
                &self.context.ask_item,
                &[("item", g.items[item]), ("entity", g.entities[entity])],
            ),
            NodeKind::Total { entity } => fill(
                &self.context.ask_total,
                &[
                    ("total", &self.context.total),
                    ("entity", g.entities[entity]),
                ],
            ),
        }
    }

    /// The parameters of a node combined, as a sentence fragment, appended to `out`.
    fn params_phrase_into(&self, out: &mut String, params: &[usize], combine: Combine) {
        let refs: Vec<&str> = params.iter().map(|&p| self.reference(p)).collect();
        match (combine, refs.as_slice()) {
            (Combine::Copy, [one]) => out.push_str(one),
            (Combine::Difference, [a, b]) => {
                self.c(Slot::Difference)
                    .fill_into(out, &[("a", a), ("b", b)]);
            }
            (_, [a, b]) => {
                let terms = [*a, self.t(Slot::PairSeparator), *b].concat();
                self.c(Slot::Sum).fill_into(out, &[("terms", &terms)]);
            }
            (_, [init @ .., last]) => {
                let terms = [
                    init.join(self.t(Slot::ListSeparator)).as_str(),
                    self.t(Slot::ListFinal),
                    last,
                ]
                .concat();
                self.c(Slot::Sum).fill_into(out, &[("terms", &terms)]);
            }
            (_, []) => {}
        }
    }

    /// The problem sentence of a node, appended to `out` (`scratch` is reused for the
    /// expression).
    fn sentence_into(&self, out: &mut String, scratch: &mut String, n: usize) {
        let node = &self.graph().nodes[n];
        let quantity = self.reference(n);
        if Some(n) == self.graph().unknown {
            self.c(Slot::Unknown)
                .fill_into(out, &[("quantity", quantity)]);
            return;
        }
        scratch.clear();
        match node.rule {
            Rule::Leaf(k) => {
                let _ = write!(scratch, "{k}");
            }
            Rule::Params(c) => self.params_phrase_into(scratch, &node.params, c),
            Rule::Plus(k, c) | Rule::Times(k, c) => {
                let mut inner = String::new();
                self.params_phrase_into(&mut inner, &node.params, c);
                let template = if matches!(node.rule, Rule::Plus(..)) {
                    self.c(Slot::Plus)
                } else {
                    self.c(Slot::Times)
                };
                template.fill_into(scratch, &[("k", &k.to_string()), ("expr", &inner)]);
            }
        }
        self.c(Slot::Fact)
            .fill_into(out, &[("quantity", quantity), ("expr", scratch)]);
    }

    /// A value as the solution shows it: a number, or in reverse mode an expression in x.
    fn shown(form: Linear, operand: bool) -> String {
        match (form.has_x(), operand) {
            (true, true) => form.render_operand(),
            _ => form.render(),
        }
    }

    fn form(&self, n: usize) -> Linear {
        let constant = Linear::constant(self.graph().nodes[n].value);
        self.forms
            .and_then(|f| f.get(n).copied())
            .unwrap_or(constant)
    }

    /// Writes `var = expr = values = value` (or the copy form) to `out`, followed by the
    /// assignment separator; `last` records where it starts (the final one gets a prefix).
    fn assignment_into(
        &self,
        out: &mut String,
        last: &mut usize,
        var: &str,
        operands: &[(&str, Linear)],
        symbol: &str,
        result: Linear,
    ) {
        *last = out.len();
        let value = Self::shown(result, false);
        if let [(name, _)] = operands {
            self.c(Slot::AssignCopy)
                .fill_into(out, &[("var", var), ("expr", name), ("value", &value)]);
        } else {
            let mut expr = String::with_capacity(16);
            let mut values = String::with_capacity(16);
            for (i, (name, form)) in operands.iter().enumerate() {
                if i > 0 {
                    for text in [&mut expr, &mut values] {
                        text.push(' ');
                        text.push_str(symbol);
                        text.push(' ');
                    }
                }
                expr.push_str(name);
                if form.has_x() {
                    values.push_str(&form.render_operand());
                } else {
                    let _ = write!(values, "{}", form.constant);
                }
            }
            self.c(Slot::Assign).fill_into(
                out,
                &[
                    ("var", var),
                    ("expr", &expr),
                    ("values", &values),
                    ("value", &value),
                ],
            );
        }
        out.push_str(self.t(Slot::AssignSeparator));
    }

    /// Assignments combining `params` into the variable `into`: one assignment for two
    /// terms, a chain through fresh letters for more (totals always use one assignment).
    fn combine_into(
        &mut self,
        out: &mut String,
        last: &mut usize,
        into: &str,
        params: &[usize],
        combine: Combine,
        chain: bool,
    ) -> Result<Linear, Rejection> {
        let symbol = if combine == Combine::Difference {
            "-"
        } else {
            "+"
        };
        let vars: Vec<String> = params.iter().map(|&p| self.var(p)).collect();
        let forms: Vec<Linear> = params.iter().map(|&p| self.form(p)).collect();
        let apply = |a: Linear, b: Linear| {
            if combine == Combine::Difference {
                Linear {
                    coefficient: a.coefficient - b.coefficient,
                    constant: a.constant - b.constant,
                }
            } else {
                Linear {
                    coefficient: a.coefficient + b.coefficient,
                    constant: a.constant + b.constant,
                }
            }
        };
        if !chain || params.len() <= 2 {
            let result = forms.iter().skip(1).fold(forms[0], |acc, f| apply(acc, *f));
            let operands: Vec<(&str, Linear)> = vars
                .iter()
                .map(String::as_str)
                .zip(forms.iter().copied())
                .collect();
            self.assignment_into(out, last, into, &operands, symbol, result);
            return Ok(result);
        }
        let mut acc = (vars[0].clone(), forms[0]);
        for i in 1..params.len() {
            let var = if i + 1 == params.len() {
                into.to_owned()
            } else {
                self.fresh()?.to_string()
            };
            let result = apply(acc.1, forms[i]);
            self.assignment_into(
                out,
                last,
                &var,
                &[(acc.0.as_str(), acc.1), (vars[i].as_str(), forms[i])],
                symbol,
                result,
            );
            acc = (var, result);
        }
        Ok(acc.1)
    }

    /// Appends one solution step to `out`.
    fn step_into(&mut self, out: &mut String, n: usize) -> Result<(), Rejection> {
        let var = self.var(n);
        if Some(n) == self.graph().unknown {
            let name = self.solution_name(n);
            self.c(Slot::ReverseUnknown)
                .fill_into(out, &[("name", &name), ("var", &var)]);
            return Ok(());
        }
        let node = self.graph().nodes[n].clone();
        let (params, rule) = (node.params, node.rule);
        let is_total = matches!(node.kind, NodeKind::Total { .. });
        if self.t(Slot::Define).contains("{name}") {
            let name = &self.names[n];
            self.c(Slot::Define)
                .fill_into(out, &[("name", name), ("var", &var)]);
        } else {
            self.c(Slot::Define)
                .fill_into(out, &[("name", &var), ("var", &var)]);
        }
        let mut last = out.len();
        match rule {
            Rule::Leaf(k) => {
                last = out.len();
                self.c(Slot::AssignLeaf)
                    .fill_into(out, &[("var", &var), ("value", &k.to_string())]);
                out.push_str(self.t(Slot::AssignSeparator));
            }
            Rule::Params(c) => {
                self.combine_into(out, &mut last, &var, &params, c, !is_total)?;
            }
            Rule::Plus(k, c) | Rule::Times(k, c) => {
                let part = self.fresh()?.to_string();
                let inner = self.combine_into(out, &mut last, &part, &params, c, true)?;
                let (symbol, result) = match rule {
                    Rule::Plus(..) => (
                        "+",
                        Linear {
                            coefficient: inner.coefficient,
                            constant: inner.constant + k,
                        },
                    ),
                    _ => (
                        "*",
                        Linear {
                            coefficient: inner.coefficient * k,
                            constant: inner.constant * k,
                        },
                    ),
                };
                let constant = k.to_string();
                self.assignment_into(
                    out,
                    &mut last,
                    &var,
                    &[
                        (constant.as_str(), Linear::constant(k)),
                        (part.as_str(), inner),
                    ],
                    symbol,
                    result,
                );
            }
        }
        // The last assignment is the step's own: no separator after it, the prefix before it.
        out.truncate(out.len() - self.t(Slot::AssignSeparator).len());
        out.insert_str(last, self.t(Slot::FinalPrefix));
        out.push_str(self.t(Slot::StepEnd));
        Ok(())
    }
}
