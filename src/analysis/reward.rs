//! Reward expressions: resolve primitives and check, by interval arithmetic, that a reward
//! stays within [0, 1] whatever the primitives' values.

use super::suggest;
use crate::diagnostics::{AnalysisError, AnalysisWarning, Diagnostic};
use crate::plan::{Primitive, RewardExpr, RewardOp, RewardSpec};
use crate::syntax::ast::{Expr, RewardItem};

/// The primitives and their names.
pub const PRIMITIVES: &[(&str, Primitive)] = &[
    ("answer", Primitive::Answer),
    ("process", Primitive::Process),
    ("format", Primitive::Format),
    ("length", Primitive::Length),
];

/// A closed interval of possible values, and whether the value can be undefined (a division
/// whose divisor can be 0, wherever it sits: `0 * (a / b)` is still undefined when b is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    lo: f64,
    hi: f64,
    undefined: bool,
}

impl Interval {
    fn new(lo: f64, hi: f64) -> Self {
        Self {
            lo,
            hi,
            undefined: false,
        }
    }

    fn point(v: f64) -> Self {
        Self::new(v, v)
    }

    fn unit() -> Self {
        Self::new(0.0, 1.0)
    }

    fn hull(values: impl IntoIterator<Item = f64>) -> Self {
        let mut out = Self::new(f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            // 0 * inf is NaN: an unbounded factor times zero is still zero.
            let v = if v.is_nan() { 0.0 } else { v };
            out.lo = out.lo.min(v);
            out.hi = out.hi.max(v);
        }
        out
    }

    /// `self` with `other`'s undefinedness added.
    fn tainted(mut self, other: Self) -> Self {
        self.undefined |= other.undefined;
        self
    }

    fn apply(op: RewardOp, a: Self, b: Self) -> Self {
        let out = match op {
            RewardOp::Add => Self::new(a.lo + b.lo, a.hi + b.hi),
            RewardOp::Sub => Self::new(a.lo - b.hi, a.hi - b.lo),
            RewardOp::Mul => Self::hull([a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]),
            RewardOp::Div => {
                if b.lo <= 0.0 && b.hi >= 0.0 {
                    Self {
                        lo: f64::NEG_INFINITY,
                        hi: f64::INFINITY,
                        undefined: true,
                    }
                } else {
                    Self::hull([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])
                }
            }
            _ => Self::unit(),
        };
        out.tainted(a).tainted(b)
    }

    /// The part of `self` where `self OP k` holds (`negated`: where it does not).
    #[allow(clippy::float_cmp)] // `!=` narrows only at an exact end point
    fn narrowed(self, op: RewardOp, k: f64, negated: bool) -> Self {
        let op = if negated {
            match op {
                RewardOp::Lt => RewardOp::Ge,
                RewardOp::Le => RewardOp::Gt,
                RewardOp::Gt => RewardOp::Le,
                RewardOp::Ge => RewardOp::Lt,
                RewardOp::Eq => RewardOp::Ne,
                RewardOp::Ne => RewardOp::Eq,
                other => other,
            }
        } else {
            op
        };
        let (lo, hi) = match op {
            RewardOp::Lt => (self.lo, self.hi.min(next_down(k))),
            RewardOp::Le => (self.lo, self.hi.min(k)),
            RewardOp::Gt => (self.lo.max(next_up(k)), self.hi),
            RewardOp::Ge => (self.lo.max(k), self.hi),
            RewardOp::Eq => (self.lo.max(k), self.hi.min(k)),
            // `!=` removes one point: only an end point narrows the interval.
            RewardOp::Ne if self.lo == k => (next_up(k), self.hi),
            RewardOp::Ne if self.hi == k => (self.lo, next_down(k)),
            _ => (self.lo, self.hi),
        };
        Self { lo, hi, ..self }
    }
}

/// The next float above `k` (`f64::next_up`, which the MSRV lacks).
fn next_up(k: f64) -> f64 {
    if k.is_nan() || k == f64::INFINITY {
        k
    } else if k == 0.0 {
        f64::from_bits(1)
    } else if k > 0.0 {
        f64::from_bits(k.to_bits() + 1)
    } else {
        f64::from_bits(k.to_bits() - 1)
    }
}

/// The next float below `k`.
fn next_down(k: f64) -> f64 {
    -next_up(-k)
}

/// What each primitive can be at a point of an expression (narrowed inside `if` branches).
#[derive(Debug, Clone, Copy)]
struct Ranges([Interval; PRIMITIVES.len()]);

impl Ranges {
    fn all() -> Self {
        Self([Interval::unit(); PRIMITIVES.len()])
    }

    fn index(p: Primitive) -> usize {
        PRIMITIVES.iter().position(|(_, q)| *q == p).unwrap_or(0)
    }

    /// The ranges where `condition` is true (`negated`: false), when the condition compares a
    /// primitive with a constant; otherwise unchanged.
    fn assuming(mut self, condition: &RewardExpr, negated: bool) -> Self {
        if let RewardExpr::Binary(op, a, b) = condition {
            let flipped = |op: RewardOp| match op {
                RewardOp::Lt => RewardOp::Gt,
                RewardOp::Le => RewardOp::Ge,
                RewardOp::Gt => RewardOp::Lt,
                RewardOp::Ge => RewardOp::Le,
                other => other,
            };
            let found = match (&**a, &**b) {
                (RewardExpr::Primitive(p), RewardExpr::Const(k)) => Some((*p, *op, *k)),
                (RewardExpr::Const(k), RewardExpr::Primitive(p)) => Some((*p, flipped(*op), *k)),
                _ => None,
            };
            if let Some((p, op, k)) = found {
                let i = Self::index(p);
                self.0[i] = self.0[i].narrowed(op, k, negated);
            }
        }
        self
    }
}

/// Lowers a `reward` item; reports unknown names and values outside [0, 1].
pub(crate) fn lower_reward(
    item: &RewardItem,
    source_text: &str,
    sink: &mut Vec<Diagnostic>,
) -> Option<RewardSpec> {
    let before = sink.len();
    let expr = lower(&item.expr, sink);
    if sink.len() > before {
        return None;
    }
    let expr = expr?;
    let range = interval(&expr);
    if range.undefined {
        sink.push(
            AnalysisError::RewardOutOfRange {
                name: item.name.text.clone(),
                what: "is undefined where a divisor is 0".to_owned(),
                span: item.expr.span(),
                label: "a divisor here can be 0".to_owned(),
                help: Some(
                    "guard the division with `if DIVISOR > 0 { ... } else { ... }`, or divide by a positive constant; multiplying by 0 does not help (0 * ∞ is undefined too)".to_owned(),
                ),
            }
            .into(),
        );
        return None;
    }
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
                what: format!(
                    "can take values in [{}, {}], outside [0, 1]",
                    show(range.lo),
                    show(range.hi)
                ),
                span: item.expr.span(),
                label: format!("ranges over [{}, {}]", show(range.lo), show(range.hi)),
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

fn lower(expr: &Expr, sink: &mut Vec<Diagnostic>) -> Option<RewardExpr> {
    Some(match expr {
        Expr::Number { value, span } => {
            if !value.is_finite() {
                sink.push(
                    crate::diagnostics::SyntaxError::InvalidNumber {
                        text: format!("{value}"),
                        size: "large",
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
    interval_in(expr, Ranges::all())
}

fn interval_in(expr: &RewardExpr, ranges: Ranges) -> Interval {
    let fold = |args: &[RewardExpr], pick: fn(f64, f64) -> f64, start: f64| {
        let all: Vec<Interval> = args.iter().map(|a| interval_in(a, ranges)).collect();
        Interval {
            lo: all.iter().map(|i| i.lo).fold(start, pick),
            hi: all.iter().map(|i| i.hi).fold(start, pick),
            undefined: all.iter().any(|i| i.undefined),
        }
    };
    match expr {
        RewardExpr::Const(c) => Interval::point(*c),
        RewardExpr::Primitive(p) => ranges.0[Ranges::index(*p)],
        RewardExpr::Neg(e) => {
            let i = interval_in(e, ranges);
            Interval {
                lo: -i.hi,
                hi: -i.lo,
                ..i
            }
        }
        RewardExpr::Binary(op, a, b) => {
            Interval::apply(*op, interval_in(a, ranges), interval_in(b, ranges))
        }
        RewardExpr::Min(args) => fold(args, f64::min, f64::INFINITY),
        RewardExpr::Max(args) => fold(args, f64::max, f64::NEG_INFINITY),
        RewardExpr::If(c, a, b) => {
            let condition = interval_in(c, ranges);
            let then = ranges.assuming(c, false);
            let otherwise = ranges.assuming(c, true);
            // A branch no primitive value can reach does not count.
            let reachable = |r: &Ranges| r.0.iter().all(|i| i.lo <= i.hi);
            let parts: Vec<Interval> = [(then, &**a), (otherwise, &**b)]
                .into_iter()
                .filter(|(r, _)| reachable(r))
                .map(|(r, e)| interval_in(e, r))
                .collect();
            Interval {
                lo: parts.iter().map(|i| i.lo).fold(f64::INFINITY, f64::min),
                hi: parts.iter().map(|i| i.hi).fold(f64::NEG_INFINITY, f64::max),
                undefined: parts.iter().any(|i| i.undefined),
            }
            .tainted(condition)
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
        assert_eq!(interval(&e), Interval::new(0.0, 1.0));
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
        assert_eq!(interval(&e), Interval::new(0.0, 2.0));
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

    #[test]
    fn a_zero_factor_does_not_hide_an_undefined_division() {
        let quotient = RewardExpr::Binary(
            RewardOp::Div,
            prim(Primitive::Answer),
            prim(Primitive::Process),
        );
        let e = RewardExpr::Binary(
            RewardOp::Mul,
            Box::new(RewardExpr::Const(0.0)),
            Box::new(quotient),
        );
        assert!(interval(&e).undefined);
    }

    #[test]
    fn an_if_on_the_divisor_narrows_it_in_each_branch() {
        let quotient = || {
            Box::new(RewardExpr::Binary(
                RewardOp::Div,
                prim(Primitive::Answer),
                prim(Primitive::Process),
            ))
        };
        let guard = |op, k| {
            Box::new(RewardExpr::Binary(
                op,
                prim(Primitive::Process),
                Box::new(RewardExpr::Const(k)),
            ))
        };
        let clamp = |e| RewardExpr::Min(vec![RewardExpr::Const(1.0), e]);
        // if process > 0 { min(1, answer / process) } else { 0 }
        let guarded = RewardExpr::If(
            guard(RewardOp::Gt, 0.0),
            Box::new(clamp(*quotient())),
            Box::new(RewardExpr::Const(0.0)),
        );
        assert_eq!(interval(&guarded), Interval::new(0.0, 1.0));
        // The division in the else branch, where process <= 0: undefined.
        let wrong_branch = RewardExpr::If(
            guard(RewardOp::Gt, 0.0),
            Box::new(RewardExpr::Const(0.0)),
            Box::new(clamp(*quotient())),
        );
        assert!(interval(&wrong_branch).undefined);
        // if process >= 0.5 { answer / process / 2 }: process in [0.5, 1], value in [0, 1].
        let half = RewardExpr::If(
            guard(RewardOp::Ge, 0.5),
            Box::new(RewardExpr::Binary(
                RewardOp::Div,
                quotient(),
                Box::new(RewardExpr::Const(2.0)),
            )),
            Box::new(RewardExpr::Const(0.0)),
        );
        assert_eq!(interval(&half), Interval::new(0.0, 1.0));
        // No primitive can reach a branch: it does not count (process > 1 never holds).
        let dead = RewardExpr::If(
            guard(RewardOp::Gt, 1.0),
            Box::new(RewardExpr::Const(5.0)),
            prim(Primitive::Answer),
        );
        assert_eq!(interval(&dead), Interval::new(0.0, 1.0));
    }
}
