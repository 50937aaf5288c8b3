//! Lowering: pest's pairs → [`Ast`] nodes. The grammar guarantees the shape of the tree
//! (`presume`), so nothing here reports to users.

use pest::iterators::{Pair, Pairs};

use super::ast::{
    Atom, BinaryOp, Block, BudgetItem, BudgetRate, Expr, Item, Line, Name, Number, Range,
    RewardItem, SeedItem, Source, SourceArg, Str, Suffix, SweepItem,
};
use super::parser::{Rule, presume};
use super::span::Span;

/// Lowers the pairs of one parse whose input started `base` bytes into the file: a file is
/// parsed item by item, and every span is a byte range of the whole file.
pub(super) struct Lower {
    pub(super) base: usize,
}

impl Lower {
    pub(super) fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        Span::new(self.base + span.start(), self.base + span.end())
    }

    fn name(&self, pair: &Pair<'_, Rule>) -> Name {
        Name {
            text: pair.as_str().to_owned(),
            span: self.span(pair),
        }
    }

    pub(super) fn item(&self, pair: Pair<'_, Rule>) -> Option<Item> {
        let span: Span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = significant(pair.into_inner());
        let item = match rule {
            Rule::use_item => Item::Use(self.name(&presume(inner.next(), "use name"))),
            Rule::seed_item => Item::Seed(SeedItem {
                value: self.atom(presume(inner.next(), "seed value")),
                span,
            }),
            Rule::reward_item => {
                let reward_name = self.name(&presume(inner.next(), "reward name"));
                let expr = self.expr(presume(inner.next(), "reward expr"));
                Item::Reward(RewardItem {
                    name: reward_name,
                    expr,
                    span,
                })
            }
            Rule::sweep_item => {
                let sweep_name = self.name(&presume(inner.next(), "sweep name"));
                let mut values = Vec::new();
                let mut zip = None;
                for part in inner {
                    match part.as_rule() {
                        Rule::comma => {}
                        Rule::sweep_zip => {
                            zip =
                                Some(self.name(&presume(
                                    significant(part.into_inner()).next(),
                                    "zip name",
                                )));
                        }
                        _ => values.push(self.atom(part)),
                    }
                }
                Item::Sweep(SweepItem {
                    name: sweep_name,
                    values,
                    zip,
                    span,
                })
            }
            Rule::budget_item => {
                let budget_name = self.name(&presume(inner.next(), "budget name"));
                let amount = self.atom(presume(inner.next(), "budget amount"));
                let unit = self.name(&presume(inner.next(), "budget unit"));
                let rate = inner.next().map(|rate| {
                    let mut parts = significant(rate.into_inner());
                    BudgetRate {
                        unit: self.name(&presume(parts.next(), "rate unit")),
                        amount: self.atom(presume(parts.next(), "rate amount")),
                        other: self.name(&presume(parts.next(), "rate other unit")),
                    }
                });
                Item::Budget(Box::new(BudgetItem {
                    name: budget_name,
                    amount,
                    unit,
                    rate,
                    span,
                }))
            }
            Rule::block_item => Item::Block(self.block(inner, span)),
            _ => return None, // EOI
        };
        Some(item)
    }

    fn block<'i>(&self, inner: impl Iterator<Item = Pair<'i, Rule>>, span: Span) -> Block {
        let mut kind = None;
        let mut block_name = None;
        let mut parent = None;
        let mut checkpoint = None;
        let mut lines = Vec::new();
        for part in inner {
            match part.as_rule() {
                Rule::block_kind => kind = Some(self.name(&part)),
                Rule::name => block_name = Some(self.name(&part)),
                Rule::from_clause => {
                    let target = presume(significant(part.into_inner()).next(), "from target");
                    if target.as_rule() == Rule::string {
                        if let Atom::Str(path) = self.atom(target) {
                            checkpoint = Some(path);
                        }
                    } else {
                        parent = Some(self.name(&target));
                    }
                }
                Rule::block => {
                    lines = significant(part.into_inner())
                        .map(|l| self.line(l))
                        .collect();
                    lines.shrink_to_fit();
                }
                _ => {}
            }
        }
        Block {
            kind: presume(kind, "block kind"),
            name: block_name,
            parent,
            checkpoint,
            lines,
            span,
        }
    }

    fn line(&self, pair: Pair<'_, Rule>) -> Line {
        let span = self.span(&pair);
        let mut groups = vec![Vec::new()];
        for part in significant(pair.into_inner()) {
            if part.as_rule() == Rule::comma {
                groups.push(Vec::new());
            } else if let Some(group) = groups.last_mut() {
                group.push(self.atom(part));
            }
        }
        // A trailing comma leaves an empty last group: it carries no meaning.
        if groups.len() > 1 && groups.last().is_some_and(Vec::is_empty) {
            groups.pop();
        }
        // Exact sizes: a large file keeps hundreds of thousands of lines in memory at once.
        for group in &mut groups {
            group.shrink_to_fit();
        }
        groups.shrink_to_fit();
        Line { groups, span }
    }

    fn number(&self, pair: &Pair<'_, Rule>) -> Number {
        let span: Span = self.span(pair);
        let mut text = pair.as_str().to_owned();
        let mut suffix = None;
        if pair.as_rule() == Rule::quantity {
            let mut parts = pair.clone().into_inner();
            let digits = presume(parts.next(), "quantity digits");
            digits.as_str().clone_into(&mut text);
            suffix = parts.next().map(|s| match s.as_str() {
                "%" => Suffix::Percent,
                "k" | "K" => Suffix::Thousand,
                "M" => Suffix::Million,
                _ => Suffix::Billion,
            });
        }
        Number { text, suffix, span }
    }

    pub(super) fn atom(&self, pair: Pair<'_, Rule>) -> Atom {
        let span: Span = self.span(&pair);
        match pair.as_rule() {
            Rule::name | Rule::word => Atom::Name(self.name(&pair)),
            Rule::quantity | Rule::number => Atom::Number(self.number(&pair)),
            Rule::range => {
                let mut parts = pair.into_inner();
                let lo = self.number(&presume(parts.next(), "range lo"));
                let op = presume(parts.next(), "range op");
                let hi = self.number(&presume(parts.next(), "range hi"));
                Atom::Range(Box::new(Range {
                    lo,
                    hi,
                    inclusive: op.as_str() == "..=",
                    span,
                }))
            }
            Rule::string => {
                let inner = presume(pair.into_inner().next(), "string inner").as_str();
                Atom::Str(Str {
                    value: unescape(inner),
                    span,
                })
            }
            Rule::var => {
                let ident = presume(pair.into_inner().next(), "var ident");
                Atom::Var(Name {
                    text: ident.as_str().to_owned(),
                    span,
                })
            }
            Rule::arrow => Atom::Arrow(span),
            Rule::source => {
                let mut parts =
                    significant(pair.into_inner()).filter(|p| p.as_rule() != Rule::comma);
                let task = self.name(&presume(parts.next(), "source task"));
                let args = parts
                    .map(|arg| {
                        let arg_span = self.span(&arg);
                        let mut arg_parts = significant(arg.into_inner());
                        let key = self.name(&presume(arg_parts.next(), "source arg key"));
                        SourceArg {
                            key,
                            values: arg_parts.map(|a| self.atom(a)).collect(),
                            span: arg_span,
                        }
                    })
                    .collect();
                Atom::Source(Box::new(Source { task, args, span }))
            }
            other => unreachable!("grammar: {other:?} is not an atom"),
        }
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> Expr {
        let span: Span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr => self.expr(presume(significant(pair.into_inner()).next(), "expr body")),
            Rule::if_expr => {
                let mut parts = significant(pair.into_inner());
                let condition = Box::new(self.expr(presume(parts.next(), "if condition")));
                let then = Box::new(self.expr(presume(parts.next(), "if then")));
                let otherwise = Box::new(self.expr(presume(parts.next(), "if else")));
                Expr::If {
                    condition,
                    then,
                    otherwise,
                    span,
                }
            }
            Rule::compare | Rule::sum | Rule::product => {
                let mut parts = significant(pair.into_inner());
                let mut lhs = self.expr(presume(parts.next(), "operand"));
                while let (Some(op), Some(rhs)) = (parts.next(), parts.next()) {
                    let rhs = self.expr(rhs);
                    let span = lhs.span().to(rhs.span());
                    let op = binary_op(op.as_str());
                    lhs = Expr::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        span,
                    };
                }
                lhs
            }
            Rule::unary => {
                let parts: Vec<_> = significant(pair.into_inner()).collect();
                let (negs, operand) = parts.split_at(parts.len() - 1);
                let mut expr = self.expr(operand[0].clone());
                for neg in negs.iter().rev() {
                    let span = self.span(neg).to(expr.span());
                    expr = Expr::Neg {
                        operand: Box::new(expr),
                        span,
                    };
                }
                expr
            }
            Rule::call => {
                let mut parts = significant(pair.into_inner());
                let function = self.name(&presume(parts.next(), "call name"));
                Expr::Call {
                    function,
                    args: parts.map(|e| self.expr(e)).collect(),
                    span,
                }
            }
            Rule::expr_number => Expr::Number {
                value: pair.as_str().parse().unwrap_or(f64::NAN),
                span,
            },
            Rule::var => {
                let ident = presume(pair.into_inner().next(), "var ident");
                Expr::Var(Name {
                    text: ident.as_str().to_owned(),
                    span,
                })
            }
            Rule::expr_name => Expr::Name(self.name(&pair)),
            other => unreachable!("grammar: {other:?} is not an expression"),
        }
    }
}

pub(super) fn significant(pairs: Pairs<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pairs.filter(|p| !is_noise(p.as_rule()))
}

/// Comments and keywords: tokens that carry no content of their own.
pub(crate) fn is_noise(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::COMMENT
            | Rule::kw_use
            | Rule::kw_seed
            | Rule::kw_reward
            | Rule::kw_sweep
            | Rule::kw_budget
            | Rule::kw_from
            | Rule::kw_where
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_zip
    )
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn binary_op(text: &str) -> BinaryOp {
    BinaryOp::from_symbol(text).unwrap_or_else(|| unreachable!("grammar: `{text}` is an operator"))
}
