//! The reward primitives of the language, evaluated on a (problem, completion) pair, and
//! `reward` declarations computed from them.

use serde::Serialize;

use super::trace::{ParsedSolution, TraceFormat, parse};
use super::verify::{Score, outcome, score, well_formed};
use crate::plan::{Primitive, RewardSpec};
use crate::tokenizer::count_tokens;

/// The four primitives for one completion, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Primitives {
    /// 1 if the answer string matches the gold answer (`R_out`).
    pub answer: f64,
    /// The process-verified score `R_pv`.
    pub process: f64,
    /// 1 if the completion is well-formed.
    pub format: f64,
    /// Completion length as a share of `max_new_tokens` (word-level tokens), capped at 1.
    pub length: f64,
}

impl Primitives {
    /// Computes the primitives of `completion` against the gold solution and answer.
    #[must_use]
    pub fn of(
        gold_solution: &str,
        gold_answer: &str,
        completion: &str,
        format: &TraceFormat,
        max_new_tokens: u32,
    ) -> Self {
        let gold = parse(gold_solution, format);
        Self::scored(&gold, gold_answer, completion, format, max_new_tokens).0
    }

    /// The primitives and the step-by-step score of `completion` against an already parsed
    /// gold solution (parse it once for a group of completions of one problem).
    #[must_use]
    pub fn scored(
        gold: &ParsedSolution,
        gold_answer: &str,
        completion: &str,
        format: &TraceFormat,
        max_new_tokens: u32,
    ) -> (Self, Score) {
        let s = score(gold, &parse(completion, format));
        let primitives = Self {
            answer: f64::from(u8::from(outcome(
                completion,
                gold_answer,
                &format.answer_marker,
            ))),
            process: s.r_pv,
            format: f64::from(u8::from(well_formed(completion))),
            length: (count_tokens(completion) as f64 / f64::from(max_new_tokens.max(1))).min(1.0),
        };
        (primitives, s)
    }

    /// One primitive's value.
    #[must_use]
    pub fn get(&self, primitive: Primitive) -> f64 {
        match primitive {
            Primitive::Answer => self.answer,
            Primitive::Process => self.process,
            Primitive::Format => self.format,
            Primitive::Length => self.length,
        }
    }

    /// A declared reward's value.
    #[must_use]
    pub fn reward(&self, spec: &RewardSpec) -> f64 {
        spec.expr.eval(&|p| self.get(p))
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact 0 and 1 are the point
mod tests {
    use super::*;
    use crate::plan::{RewardExpr, RewardOp};

    const GOLD: &str = "Define adult blue jay in Oakridge Riverside as n; so n = 1. Define adult crow in Oakridge Riverside as X; H = n = 1; so X = 1 + H = 1 + 1 = 2. Define total number of adult animals in Oakridge Riverside as I; so I = X + n = 2 + 1 = 3. Answer: 3.";

    fn blended() -> RewardSpec {
        // answer * (0.2 + 0.8 * process)
        let process = Box::new(RewardExpr::Binary(
            RewardOp::Mul,
            Box::new(RewardExpr::Const(0.8)),
            Box::new(RewardExpr::Primitive(Primitive::Process)),
        ));
        let inner = Box::new(RewardExpr::Binary(
            RewardOp::Add,
            Box::new(RewardExpr::Const(0.2)),
            process,
        ));
        RewardSpec {
            name: "blended".into(),
            source: "answer * (0.2 + 0.8 * process)".into(),
            expr: RewardExpr::Binary(
                RewardOp::Mul,
                Box::new(RewardExpr::Primitive(Primitive::Answer)),
                inner,
            ),
            primitives: vec![Primitive::Answer, Primitive::Process],
        }
    }

    #[test]
    fn right_answer_with_a_wrong_process_is_only_partly_rewarded() {
        let format = TraceFormat::reference();
        // Right answer, but I's value is wrong: one value mismatch of three steps.
        let hacked = " Define adult blue jay in Oakridge Riverside as n; so n = 1. Define adult crow in Oakridge Riverside as X; H = n = 1; so X = 1 + H = 1 + 1 = 2. Define total number of adult animals in Oakridge Riverside as I; so I = X + n = 2 + 1 = 5. </solution> <answer> 3 </answer>";
        let p = Primitives::of(GOLD, "3", hacked, &format, 100);
        assert_eq!((p.answer, p.format), (1.0, 1.0));
        assert!((p.process - 2.0 / 3.0).abs() < 1e-12);
        assert!((p.reward(&blended()) - (0.2 + 0.8 * 2.0 / 3.0)).abs() < 1e-12);
        let wrong = hacked.replace("<answer> 3 </answer>", "<answer> 4 </answer>");
        let p = Primitives::of(GOLD, "3", &wrong, &format, 100);
        assert_eq!(
            p.reward(&blended()),
            0.0,
            "the blend is gated by the answer"
        );
        let garbage = Primitives::of(GOLD, "3", "banana", &format, 100);
        assert_eq!(
            (garbage.answer, garbage.process, garbage.format),
            (0.0, 0.0, 0.0)
        );
        assert!((garbage.length - 0.01).abs() < 1e-12);
    }
}
