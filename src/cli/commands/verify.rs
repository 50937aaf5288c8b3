//! `rlp verify IN.jsonl [--out OUT.jsonl] [--phrasing NAME]`: scores completions written by
//! any model with the same verifier training and evaluation use.

use std::io::Read as _;
use std::path::Path;

use serde_json::{Value, json};

use super::super::{Status, eprint_line, print_raw, write_atomically};
use crate::tasks::trace::{TraceFormat, parse};
use crate::tasks::verify::{normalize, outcome, score};

/// Scores one input line, or says what is wrong with it.
fn score_line(line: &str, format: &TraceFormat) -> Result<Value, String> {
    let record: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| record.get(name).and_then(Value::as_str);
    let solution = field("solution").ok_or("no string field `solution` (the gold solution)")?;
    let completion =
        field("completion").ok_or("no string field `completion` (the model's output)")?;
    let gold = parse(solution, format);
    let gold_answer = match field("answer") {
        Some(answer) => normalize(answer).to_owned(),
        None => gold
            .answer
            .map(|a| a.to_string())
            .ok_or("no `answer` field and no answer in the gold solution")?,
    };
    if gold.nodes.is_empty() {
        return Err(
            "the gold solution has no steps in this phrasing (is --phrasing right?)".to_owned(),
        );
    }
    let s = score(&gold, &parse(completion, format));
    Ok(json!({
        "process_acc": s.process_acc,
        "verified_correct": s.verified_correct,
        "r_pv": s.r_pv,
        "answer_correct": outcome(completion, &gold_answer, &format.answer_marker),
        "missing": s.mismatches.missing,
        "extra": s.mismatches.extra,
        "value_mismatches": s.mismatches.value,
        "dependency_mismatches": s.mismatches.dependency,
        "answer_mismatch": s.mismatches.answer,
    }))
}

pub(crate) fn run(input: &Path, out: Option<&Path>, phrasing: &str) -> Status {
    let Some(spec) = crate::analysis::prelude_phrasing(phrasing) else {
        eprint_line(&format!(
            "error: no prelude phrasing `{phrasing}` (use `english` or `compact`)"
        ));
        return Status::Error;
    };
    let format = TraceFormat::of(&spec);
    let mut text = String::new();
    let read = if input.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(input).map(|t| text = t)
    };
    if let Err(error) = read {
        eprint_line(&format!("error: cannot read {}: {error}", input.display()));
        return Status::Error;
    }
    let mut output = String::new();
    let (mut n, mut bad) = (0u64, 0u64);
    let (mut acc, mut verified, mut r_pv, mut answers) = (0.0, 0u64, 0.0, 0u64);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match score_line(line, &format) {
            Ok(mut record) => {
                n += 1;
                acc += record["process_acc"].as_f64().unwrap_or(0.0);
                r_pv += record["r_pv"].as_f64().unwrap_or(0.0);
                verified += u64::from(record["verified_correct"].as_bool().unwrap_or(false));
                answers += u64::from(record["answer_correct"].as_bool().unwrap_or(false));
                record["line"] = json!(i + 1);
                output.push_str(&record.to_string());
                output.push('\n');
            }
            Err(message) => {
                bad += 1;
                eprint_line(&format!("{}:{}: {message}", input.display(), i + 1));
            }
        }
    }
    let written = if let Some(path) = out {
        write_atomically(path, output.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    } else {
        print_raw(&output);
        Ok(())
    };
    if let Err(message) = written {
        eprint_line(&format!("error: {message}"));
        return Status::Error;
    }
    let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
    eprint_line(&format!(
        "scored {n} completions ({bad} malformed): ProcessAcc {:.3}, VerifiedCorrect {:.3}, R_pv {:.3}, answer correct {:.3}",
        mean(acc),
        mean(verified as f64),
        mean(r_pv),
        mean(answers as f64)
    ));
    if bad > 0 {
        Status::Problems
    } else {
        Status::Success
    }
}
