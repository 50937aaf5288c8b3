//! Comparing a parsed solution with the gold one (reference §B.2–B.3) and the rewards built
//! on the comparison (§C).

use serde::Serialize;

use super::trace::ParsedSolution;

pub use super::arith::TOLERANCE;

/// Mismatch counts of a prediction against gold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Mismatches {
    /// Gold quantities the prediction lacks.
    pub missing: usize,
    /// Predicted quantities gold lacks.
    pub extra: usize,
    /// Shared quantities with different values (or a value on one side only), or whose step
    /// writes an equation that does not hold.
    pub value: usize,
    /// Shared quantities with different parent sets.
    pub dependency: usize,
    /// Whether the final answers differ (or one is absent).
    pub answer: bool,
}

/// The scores of one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Share of gold steps present with the right parents and value.
    pub process_acc: f64,
    /// Every gold step right and the answer right (extra steps allowed): the strict criterion.
    pub verified_correct: bool,
    /// The process reward `R_pv` = max(0, 1 − penalty / max(|gold|, 1)).
    pub r_pv: f64,
    /// The counts behind them.
    pub mismatches: Mismatches,
}

fn differs(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() > TOLERANCE,
        (None, None) => false,
        _ => true,
    }
}

/// Scores `pred` against `gold`.
#[must_use]
pub fn score(gold: &ParsedSolution, pred: &ParsedSolution) -> Score {
    let mut m = Mismatches::default();
    let mut correct_steps = 0;
    for (name, g) in &gold.nodes {
        let Some(p) = pred.nodes.get(name) else {
            m.missing += 1;
            continue;
        };
        let value_ok = !differs(g.value, p.value) && p.consistent;
        let deps_ok = g.deps == p.deps;
        m.value += usize::from(!value_ok);
        m.dependency += usize::from(!deps_ok);
        correct_steps += usize::from(value_ok && deps_ok);
    }
    m.extra = pred
        .nodes
        .keys()
        .filter(|n| !gold.nodes.contains_key(*n))
        .count();
    m.answer = differs(gold.answer, pred.answer);
    let total = gold.nodes.len().max(1);
    let process_acc = if gold.nodes.is_empty() {
        1.0
    } else {
        correct_steps as f64 / gold.nodes.len() as f64
    };
    let penalty = m.value + m.dependency + m.missing + m.extra.min(total) + usize::from(m.answer);
    let r_pv = (1.0 - penalty as f64 / total as f64).max(0.0);
    Score {
        process_acc,
        verified_correct: correct_steps == gold.nodes.len() && !m.answer,
        r_pv,
        mismatches: m,
    }
}

/// The answer text of a completion, as the reference's reward extracts it: inside
/// `<answer>…</answer>`, else after the last `<answer>` up to `<` or a newline, else after
/// the answer marker.
#[must_use]
pub fn extract_answer<'a>(completion: &'a str, marker: &str) -> Option<&'a str> {
    if let Some(open) = completion.find("<answer>") {
        let after = &completion[open + "<answer>".len()..];
        if let Some(close) = after.find("</answer>") {
            return Some(after[..close].trim());
        }
    }
    if let Some(open) = completion.rfind("<answer>") {
        let after = &completion[open + "<answer>".len()..];
        let end = after.find(['<', '\n']).unwrap_or(after.len());
        return Some(after[..end].trim());
    }
    completion.rfind(marker).map(|i| {
        let after = &completion[i + marker.len()..];
        after[..after.find('\n').unwrap_or(after.len())].trim()
    })
}

/// The reference's answer normalisation: trimmed, one trailing `.` removed.
#[must_use]
pub fn normalize(answer: &str) -> &str {
    let t = answer.trim();
    t.strip_suffix('.').unwrap_or(t).trim()
}

/// The outcome reward `R_out`: an exact string match of normalised answers.
#[must_use]
pub fn outcome(completion: &str, gold_answer: &str, marker: &str) -> bool {
    extract_answer(completion, marker).is_some_and(|a| normalize(a) == normalize(gold_answer))
}

/// Whether a completion is well-formed: `… </solution> <answer> N </answer>` with exactly one
/// solution end and one answer, the answer a number.
#[must_use]
pub fn well_formed(completion: &str) -> bool {
    let Some(end) = completion.find("</solution>") else {
        return false;
    };
    if completion.matches("</solution>").count() != 1 || completion.matches("<answer>").count() != 1
    {
        return false;
    }
    let rest = completion[end + "</solution>".len()..].trim();
    let Some(inner) = rest
        .strip_prefix("<answer>")
        .and_then(|r| r.trim_end().strip_suffix("</answer>"))
    else {
        return false;
    };
    inner.trim().parse::<f64>().is_ok()
}
