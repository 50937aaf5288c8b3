//! Rendering a graph through a context and a phrasing: problem sentences, question, gold
//! solution, and the training text and prompt in the reference layout
//! `<question> … </question> <solution> … </solution> <answer> … </answer>`.

use rand::Rng;
use rand::seq::SliceRandom;

use super::generate::{Generated, Rejection};
use super::graph::{Combine, Graph, NodeKind, Rule};
use super::linear::{self, Linear};
use crate::analysis::templates::fill;
use crate::plan::{ContextSpec, Mode, PhrasingSpec};

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
fn letter_pool(rng: &mut impl Rng) -> Vec<char> {
    let mut letters: Vec<char> = ('A'..='Z').chain('a'..='z').filter(|c| *c != 'x').collect();
    letters.shuffle(rng);
    letters
}

struct Renderer<'a> {
    generated: &'a Generated,
    context: &'a ContextSpec,
    phrasing: &'a PhrasingSpec,
    letters: Vec<Option<char>>,
    pool: Vec<char>,
    forms: Option<Vec<Linear>>,
}

/// Renders a generated graph. Fails only if the problem needs more variable letters than
/// there are (then the attempt is retried).
pub fn render(
    generated: &Generated,
    context: &ContextSpec,
    phrasing: &PhrasingSpec,
    mode: Mode,
    rng: &mut impl Rng,
) -> Result<Rendered, Rejection> {
    let graph = &generated.graph;
    let mut r = Renderer {
        generated,
        context,
        phrasing,
        letters: vec![None; graph.nodes.len()],
        pool: letter_pool(rng),
        forms: graph.unknown.map(|u| linear::forms(graph, u)),
    };
    // The unknown is called x where steps show names; where letters are the names, it keeps
    // a letter of its own and `x` stands for its value.
    let names_shown = phrasing
        .template("define")
        .is_some_and(|t| t.contains("{name}"));
    for &n in &graph.order {
        let letter = if Some(n) == graph.unknown && names_shown {
            'x'
        } else {
            r.fresh()?
        };
        r.letters[n] = Some(letter);
    }
    if phrasing
        .template("instance_ref")
        .is_some_and(|t| t.contains("{var}"))
    {
        for &n in &graph.distractors {
            r.letters[n] = Some(r.fresh()?);
        }
    }
    let totals_named = phrasing
        .template("total_ref")
        .is_some_and(|t| t.contains("{name}"));
    let mut sentences: Vec<String> = graph
        .order
        .iter()
        .chain(&graph.distractors)
        // A total needs no sentence where its name says what it is ("total number of ... in
        // E"); where quantities are letters, it is stated like any other quantity.
        .filter(|&&n| matches!(graph.nodes[n].kind, NodeKind::Instance { .. }) || !totals_named)
        .map(|&n| r.sentence(n))
        .collect();
    let target = graph.target();
    let asked = graph.unknown.unwrap_or(target);
    if graph.unknown.is_some() {
        let known = fill(
            r.t("known"),
            &[
                ("quantity", &r.reference(target)),
                ("value", &graph.nodes[target].value.to_string()),
            ],
        );
        sentences.push(capitalize(&known) + r.t("sentence_end"));
    }
    sentences.shuffle(rng);
    let problem: String = sentences.concat();
    let question = fill(
        r.t("question"),
        &[
            ("context_question", &r.context_question(asked)),
            ("quantity", &r.reference(asked)),
            ("var", &r.var(asked)),
        ],
    );
    let mut steps = String::new();
    if mode == Mode::Reverse {
        steps.push_str(r.t("reverse_intro"));
    }
    for &n in &graph.order {
        steps.push_str(&r.step(n)?);
    }
    let value = graph.nodes[asked].value;
    if let (Some(forms), Some(_)) = (&r.forms, graph.unknown) {
        let lhs = forms[target];
        let known = graph.nodes[target].value;
        let moved = Linear {
            coefficient: lhs.coefficient,
            constant: lhs.constant - known,
        };
        steps.push_str(&fill(
            r.t("reverse_solve"),
            &[
                ("var", &r.var(target)),
                ("value", &known.to_string()),
                ("lhs", &lhs.render()),
                ("moved", &moved.render()),
                ("coef", &lhs.coefficient.to_string()),
                ("rhs", &(known - lhs.constant).to_string()),
                ("x", &value.to_string()),
            ],
        ));
    }
    let answer = value.to_string();
    let solution = steps.clone() + &fill(r.t("answer"), &[("value", &answer)]);
    let names = (0..graph.nodes.len()).map(|n| r.solution_name(n)).collect();
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

/// Capitalises a sentence's first word, unless it is a single letter (a variable).
fn capitalize(text: &str) -> String {
    if text
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .is_some_and(|w| w.chars().count() <= 1)
    {
        return text.to_owned();
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Renderer<'_> {
    fn graph(&self) -> &Graph {
        &self.generated.graph
    }

    fn t(&self, slot: &str) -> &str {
        self.phrasing.template(slot).unwrap_or("")
    }

    fn fresh(&mut self) -> Result<char, Rejection> {
        self.pool.pop().ok_or(Rejection::Names)
    }

    fn var(&self, n: usize) -> String {
        self.letters[n].map(String::from).unwrap_or_default()
    }

    /// The quantity's name: `adult owl in South Zoo`.
    fn name(&self, n: usize) -> String {
        let g = self.generated;
        match g.graph.nodes[n].kind {
            NodeKind::Instance { entity, item } => fill(
                self.t("instance_name"),
                &[("item", &g.items[item]), ("entity", &g.entities[entity])],
            ),
            NodeKind::Total { entity } => fill(
                self.t("total_name"),
                &[
                    ("total", &self.context.total),
                    ("entity", &g.entities[entity]),
                ],
            ),
        }
    }

    /// The name a solution step gives the node: its name when `define` shows names, else
    /// its letter.
    fn solution_name(&self, n: usize) -> String {
        if self.t("define").contains("{name}") {
            self.name(n)
        } else {
            self.var(n)
        }
    }

    /// The quantity inside a sentence: `the number of adult owl in South Zoo`.
    fn reference(&self, n: usize) -> String {
        let slot = match self.graph().nodes[n].kind {
            NodeKind::Instance { .. } => "instance_ref",
            NodeKind::Total { .. } => "total_ref",
        };
        fill(
            self.t(slot),
            &[("name", &self.name(n)), ("var", &self.var(n))],
        )
    }

    fn context_question(&self, n: usize) -> String {
        let g = self.generated;
        match g.graph.nodes[n].kind {
            NodeKind::Instance { entity, item } => fill(
                &self.context.ask_item,
                &[("item", &g.items[item]), ("entity", &g.entities[entity])],
            ),
            NodeKind::Total { entity } => fill(
                &self.context.ask_total,
                &[
                    ("total", &self.context.total),
                    ("entity", &g.entities[entity]),
                ],
            ),
        }
    }

    /// The parameters of a node combined, as a sentence fragment.
    fn params_phrase(&self, params: &[usize], combine: Combine) -> String {
        let refs: Vec<String> = params.iter().map(|&p| self.reference(p)).collect();
        match (combine, refs.as_slice()) {
            (Combine::Copy, [one]) => one.clone(),
            (Combine::Difference, [a, b]) => fill(self.t("difference"), &[("a", a), ("b", b)]),
            (_, [a, b]) => fill(
                self.t("sum"),
                &[("terms", &format!("{a}{}{b}", self.t("pair_separator")))],
            ),
            (_, [init @ .., last]) => {
                let terms = format!(
                    "{}{}{last}",
                    init.join(self.t("list_separator")),
                    self.t("list_final")
                );
                fill(self.t("sum"), &[("terms", &terms)])
            }
            (_, []) => String::new(),
        }
    }

    /// The problem sentence of an instance node.
    fn sentence(&self, n: usize) -> String {
        let node = &self.graph().nodes[n];
        let quantity = self.reference(n);
        if Some(n) == self.graph().unknown {
            return capitalize(&fill(self.t("unknown"), &[("quantity", &quantity)]))
                + self.t("sentence_end");
        }
        let expr = match node.rule {
            Rule::Leaf(k) => k.to_string(),
            Rule::Params(c) => self.params_phrase(&node.params, c),
            Rule::Plus(k, c) => fill(
                self.t("plus"),
                &[
                    ("k", &k.to_string()),
                    ("expr", &self.params_phrase(&node.params, c)),
                ],
            ),
            Rule::Times(k, c) => fill(
                self.t("times"),
                &[
                    ("k", &k.to_string()),
                    ("expr", &self.params_phrase(&node.params, c)),
                ],
            ),
        };
        capitalize(&fill(
            self.t("fact"),
            &[("quantity", &quantity), ("expr", &expr)],
        )) + self.t("sentence_end")
    }

    /// A value as the solution shows it: a number, or in reverse mode an expression in x.
    fn shown(form: Linear, operand: bool) -> String {
        match (form.has_x(), operand) {
            (true, true) => form.render_operand(),
            _ => form.render(),
        }
    }

    fn form(&self, n: usize) -> Linear {
        self.forms
            .as_ref()
            .map_or(Linear::constant(self.graph().nodes[n].value), |f| f[n])
    }

    /// `var = expr = values = value`, or the copy/leaf forms.
    fn assignment(
        &self,
        var: &str,
        operands: &[(String, Linear)],
        symbol: &str,
        result: Linear,
    ) -> String {
        if operands.len() == 1 {
            let (name, _) = &operands[0];
            return fill(
                self.t("assign_copy"),
                &[
                    ("var", var),
                    ("expr", name),
                    ("value", &Self::shown(result, false)),
                ],
            );
        }
        let expr: Vec<&str> = operands.iter().map(|(name, _)| name.as_str()).collect();
        let values: Vec<String> = operands
            .iter()
            .map(|(_, form)| Self::shown(*form, true))
            .collect();
        fill(
            self.t("assign"),
            &[
                ("var", var),
                ("expr", &expr.join(&format!(" {symbol} "))),
                ("values", &values.join(&format!(" {symbol} "))),
                ("value", &Self::shown(result, false)),
            ],
        )
    }

    /// Assignments combining `params` into the variable `into`: one assignment for two
    /// terms, a chain through fresh letters for more (totals always use one assignment).
    fn combine_into(
        &mut self,
        into: &str,
        params: &[usize],
        combine: Combine,
        chain: bool,
        out: &mut Vec<String>,
    ) -> Result<Linear, Rejection> {
        let symbol = if combine == Combine::Difference {
            "-"
        } else {
            "+"
        };
        let operands: Vec<(String, Linear)> = params
            .iter()
            .map(|&p| (self.var(p), self.form(p)))
            .collect();
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
        if !chain || operands.len() <= 2 {
            let result = operands
                .iter()
                .skip(1)
                .fold(operands[0].1, |acc, (_, f)| apply(acc, *f));
            out.push(self.assignment(into, &operands, symbol, result));
            return Ok(result);
        }
        let mut acc = (operands[0].0.clone(), operands[0].1);
        for (i, operand) in operands.iter().enumerate().skip(1) {
            let var = if i + 1 == operands.len() {
                into.to_owned()
            } else {
                self.fresh()?.to_string()
            };
            let result = apply(acc.1, operand.1);
            out.push(self.assignment(&var, &[acc.clone(), operand.clone()], symbol, result));
            acc = (var, result);
        }
        Ok(acc.1)
    }

    /// One solution step.
    fn step(&mut self, n: usize) -> Result<String, Rejection> {
        let name = self.solution_name(n);
        let var = self.var(n);
        if Some(n) == self.graph().unknown {
            return Ok(fill(
                self.t("reverse_unknown"),
                &[("name", &name), ("var", &var)],
            ));
        }
        let node = self.graph().nodes[n].clone();
        let is_total = matches!(node.kind, NodeKind::Total { .. });
        let mut parts = Vec::new();
        match node.rule {
            Rule::Leaf(k) => parts.push(fill(
                self.t("assign_leaf"),
                &[("var", &var), ("value", &k.to_string())],
            )),
            Rule::Params(c) => {
                self.combine_into(&var, &node.params, c, !is_total, &mut parts)?;
            }
            Rule::Plus(k, c) | Rule::Times(k, c) => {
                let part = self.fresh()?.to_string();
                let inner = self.combine_into(&part, &node.params, c, true, &mut parts)?;
                let (symbol, result) = match node.rule {
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
                let operands = [(k.to_string(), Linear::constant(k)), (part, inner)];
                parts.push(self.assignment(&var, &operands, symbol, result));
            }
        }
        let last = parts.pop().unwrap_or_default();
        let mut step = fill(self.t("define"), &[("name", &name), ("var", &var)]);
        for part in parts {
            step.push_str(&part);
            step.push_str(self.t("assign_separator"));
        }
        step.push_str(self.t("final_prefix"));
        step.push_str(&last);
        step.push_str(self.t("step_end"));
        Ok(step)
    }
}
