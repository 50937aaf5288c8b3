//! Reward expressions: resolve primitives and check, by interval arithmetic, that a reward
//! stays within [0, 1] whatever the primitives' values.

use super::suggest;
use crate::diagnostics::{AnalysisError, AnalysisWarning, Problem};
use crate::plan::{Primitive, RewardExpr, RewardOp, RewardSpec};
use crate::syntax::ast::{Expr, RewardItem};

/// The primitives and their names.
pub const PRIMITIVES: &[(&str, Primitive)] = &[
    ("answer", Primitive::Answer),
    ("process", Primitive::Process),
    ("format", Primitive::Format),
    ("length", Primitive::Length),
];

/// A closed interval of possible values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    lo: f64,
    hi: f64,
}

impl Interval {
    fn point(v: f64) -> Self {
        Self { lo: v, hi: v }
    }

    fn unit() -> Self {
        Self { lo: 0.0, hi: 1.0 }
    }

    fn hull(values: impl IntoIterator<Item = f64>) -> Self {
        let mut out = Self {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
        };
        for v in values {
            // 0 * inf is NaN: an unbounded factor times zero is still zero.
            let v = if v.is_nan() { 0.0 } else { v };
            out.lo = out.lo.min(v);
            out.hi = out.hi.max(v);
        }
        out
    }

    fn apply(op: RewardOp, a: Self, b: Self) -> Self {
        match op {
            RewardOp::Add => Self {
                lo: a.lo + b.lo,
                hi: a.hi + b.hi,
            },
            RewardOp::Sub => Self {
                lo: a.lo - b.hi,
                hi: a.hi - b.lo,
            },
            RewardOp::Mul => Self::hull([a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]),
            RewardOp::Div => {
                if b.lo <= 0.0 && b.hi >= 0.0 {
                    Self {
                        lo: f64::NEG_INFINITY,
                        hi: f64::INFINITY,
                    }
                } else {
                    Self::hull([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])
                }
            }
            _ => Self::unit(),
        }
    }
}

/// Lowers a `reward` item; reports unknown names and values outside [0, 1].
pub(crate) fn lower_reward(
    item: &RewardItem,
    source_text: &str,
    sink: &mut Vec<Problem>,
) -> Option<RewardSpec> {
    let before = sink.len();
    let expr = lower(&item.expr, sink);
    if sink.len() > before {
        return None;
    }
    let expr = expr?;
    let range = interval(&expr);
    if range.lo < 0.0 || range.hi > 1.0 || range.lo.is_nan() || range.hi.is_nan() {
        let show = |v: f64| {
            if v.is_infinite() {
                if v > 0.0 {
                    "∞".to_owned()
                } else {
                    "-∞".to_owned()
                }
            } else {
                super::fields::format_number(v)
            }
        };
        let help = if range.lo.is_infinite() || range.hi.is_infinite() {
            "a divisor that can be 0 makes the reward unbounded; wrap it with `min(1, max(0, ...))` or divide by a positive constant"
        } else {
            "primitives range over [0, 1]; scale the terms so that weights add up to at most 1, or clamp with `min(1, max(0, ...))`"
        };
        sink.push(
            AnalysisError::RewardOutOfRange {
                name: item.name.text.clone(),
                lo: show(range.lo),
                hi: show(range.hi),
                span: item.expr.span(),
                help: Some(help.to_owned()),
            }
            .into(),
        );
        return None;
    }
    let mut primitives = Vec::new();
    collect_primitives(&expr, &mut primitives);
    primitives.sort_by_key(|p| PRIMITIVES.iter().position(|(_, q)| q == p));
    primitives.dedup();
    if primitives.is_empty() {
        sink.push(
            AnalysisWarning::ConstantReward {
                name: item.name.text.clone(),
                span: item.expr.span(),
            }
            .into(),
        );
    }
    let span = item.expr.span();
    Some(RewardSpec {
        name: item.name.text.clone(),
        source: source_text
            .get(span.start..span.end)
            .unwrap_or_default()
            .to_owned(),
        expr,
        primitives,
    })
}

fn lower(expr: &Expr, sink: &mut Vec<Problem>) -> Option<RewardExpr> {
    Some(match expr {
        Expr::Number { value, span } => {
            if !value.is_finite() {
                sink.push(
                    crate::diagnostics::SyntaxError::InvalidNumber {
                        text: format!("{value}"),
                        span: *span,
                    }
                    .into(),
                );
                return None;
            }
            RewardExpr::Const(*value)
        }
        Expr::Name(name) => {
            if let Some((_, p)) = PRIMITIVES.iter().find(|(n, _)| *n == name.text) {
                RewardExpr::Primitive(*p)
            } else {
                sink.push(
                    AnalysisError::UnknownPrimitive {
                        name: name.text.clone(),
                        span: name.span,
                        help: suggest::help(
                            &name.text,
                            PRIMITIVES.iter().map(|(n, _)| *n),
                            "the primitives are",
                        ),
                    }
                    .into(),
                );
                return None;
            }
        }
        Expr::Var(var) => {
            sink.push(
                AnalysisError::WrongValue {
                    expected: "a fixed value".to_owned(),
                    found: format!("`${}`", var.text),
                    span: var.span,
                    help: Some("sweep variables can be used in stages, mixtures and evals only; sweep the reward's name in an `rl` stage instead".to_owned()),
                }
                .into(),
            );
            return None;
        }
        Expr::Neg { operand, .. } => RewardExpr::Neg(Box::new(lower(operand, sink)?)),
        Expr::Binary { op, lhs, rhs, .. } => {
            let (a, b) = (lower(lhs, sink), lower(rhs, sink));
            RewardExpr::Binary(*op, Box::new(a?), Box::new(b?))
        }
        Expr::Call {
            function,
            args,
            span,
        } => {
            let lowered: Vec<Option<RewardExpr>> = args.iter().map(|a| lower(a, sink)).collect();
            let is_known = matches!(function.text.as_str(), "min" | "max");
            if !is_known || args.len() < 2 {
                sink.push(
                    AnalysisError::UnknownFunction {
                        name: function.text.clone(),
                        span: *span,
                    }
                    .into(),
                );
                return None;
            }
            let lowered: Vec<RewardExpr> = lowered.into_iter().collect::<Option<_>>()?;
            if function.text == "min" {
                RewardExpr::Min(lowered)
            } else {
                RewardExpr::Max(lowered)
            }
        }
        Expr::If {
            condition,
            then,
            otherwise,
            ..
        } => {
            let (c, a, b) = (
                lower(condition, sink),
                lower(then, sink),
                lower(otherwise, sink),
            );
            RewardExpr::If(Box::new(c?), Box::new(a?), Box::new(b?))
        }
    })
}

/// The values an expression can take when every primitive ranges over [0, 1].
pub(crate) fn interval(expr: &RewardExpr) -> Interval {
    match expr {
        RewardExpr::Const(c) => Interval::point(*c),
        RewardExpr::Primitive(_) => Interval::unit(),
        RewardExpr::Neg(e) => {
            let i = interval(e);
            Interval {
                lo: -i.hi,
                hi: -i.lo,
            }
        }
        RewardExpr::Binary(op, a, b) => Interval::apply(*op, interval(a), interval(b)),
        RewardExpr::Min(args) => {
            let all: Vec<Interval> = args.iter().map(interval).collect();
            Interval {
                lo: all.iter().map(|i| i.lo).fold(f64::INFINITY, f64::min),
                hi: all.iter().map(|i| i.hi).fold(f64::INFINITY, f64::min),
            }
        }
        RewardExpr::Max(args) => {
            let all: Vec<Interval> = args.iter().map(interval).collect();
            Interval {
                lo: all.iter().map(|i| i.lo).fold(f64::NEG_INFINITY, f64::max),
                hi: all.iter().map(|i| i.hi).fold(f64::NEG_INFINITY, f64::max),
            }
        }
        RewardExpr::If(_, a, b) => {
            let (a, b) = (interval(a), interval(b));
            Interval {
                lo: a.lo.min(b.lo),
                hi: a.hi.max(b.hi),
            }
        }
    }
}

fn collect_primitives(expr: &RewardExpr, out: &mut Vec<Primitive>) {
    match expr {
        RewardExpr::Const(_) => {}
        RewardExpr::Primitive(p) => out.push(*p),
        RewardExpr::Neg(e) => collect_primitives(e, out),
        RewardExpr::Binary(_, a, b) => {
            collect_primitives(a, out);
            collect_primitives(b, out);
        }
        RewardExpr::Min(args) | RewardExpr::Max(args) => {
            for a in args {
                collect_primitives(a, out);
            }
        }
        RewardExpr::If(c, a, b) => {
            collect_primitives(c, out);
            collect_primitives(a, out);
            collect_primitives(b, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unnecessary_box_returns)]
    fn prim(p: Primitive) -> Box<RewardExpr> {
        Box::new(RewardExpr::Primitive(p))
    }

    #[test]
    fn gated_blend_stays_in_unit_interval() {
        // answer * (0.2 + 0.8 * process): the reference's blended reward.
        let blend = RewardExpr::Binary(
            RewardOp::Add,
            Box::new(RewardExpr::Const(0.2)),
            Box::new(RewardExpr::Binary(
                RewardOp::Mul,
                Box::new(RewardExpr::Const(0.8)),
                prim(Primitive::Process),
            )),
        );
        let e = RewardExpr::Binary(RewardOp::Mul, prim(Primitive::Answer), Box::new(blend));
        assert_eq!(interval(&e), Interval { lo: 0.0, hi: 1.0 });
        let value = e.eval(&|p| if p == Primitive::Answer { 1.0 } else { 0.5 });
        assert!((value - 0.6).abs() < 1e-12);
    }

    #[test]
    fn sum_of_two_primitives_can_reach_two() {
        let e = RewardExpr::Binary(
            RewardOp::Add,
            prim(Primitive::Answer),
            prim(Primitive::Process),
        );
        assert_eq!(interval(&e), Interval { lo: 0.0, hi: 2.0 });
    }

    #[test]
    fn division_by_a_primitive_is_unbounded() {
        let e = RewardExpr::Binary(
            RewardOp::Div,
            prim(Primitive::Answer),
            prim(Primitive::Process),
        );
        assert!(interval(&e).hi.is_infinite());
    }
}
