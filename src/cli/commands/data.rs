//! `rlp data FILE --stage NAME [--cell CELL] --out FILE.jsonl [-n N] [--format rlp|verl|trl]`

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::super::{Status, compile_file, eprint_line, write_atomically};
use crate::tasks::Record;
use crate::tasks::stream::{DatasetHash, example};

/// The layout of each JSONL record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    /// The reference's record: problem, question, solution, answer, op, id, template, mode,
    /// and the training text.
    Rlp,
    /// verl's RL dataset row: `data_source`, `prompt` (chat messages), `ability`,
    /// `reward_model` (`style`, `ground_truth`) and `extra_info` (the gold solution and the
    /// problem's facts, for a process reward).
    Verl,
    /// TRL's GRPO dataset row: `prompt` (chat messages) and the columns its reward functions
    /// receive: `solution`, `answer`, `op`, `context`, `mode`, `id`.
    Trl,
}

/// The prompt as chat messages: one user turn with the prompt text, which the exported
/// tokenizer's chat template renders as `[BOS]` and the text, rlp's own prompt.
fn messages(record: &Record) -> Value {
    let prompt = record
        .text
        .split_once("<solution>")
        .map_or(record.text.clone(), |(head, _)| format!("{head}<solution>"));
    json!([{ "role": "user", "content": prompt }])
}

/// One record in `format`.
fn formatted(record: &Record, format: DataFormat, source: &str) -> Value {
    match format {
        DataFormat::Rlp => serde_json::to_value(record).unwrap_or_default(),
        DataFormat::Verl => json!({
            "data_source": source,
            "prompt": messages(record),
            "ability": "arithmetic",
            "reward_model": { "style": "rule", "ground_truth": record.answer },
            "extra_info": {
                "split": "train",
                "index": record.id,
                "solution": record.solution,
                "op": record.op,
                "context": record.template,
                "mode": record.mode,
            },
        }),
        DataFormat::Trl => json!({
            "prompt": messages(record),
            "solution": record.solution,
            "answer": record.answer,
            "op": record.op,
            "context": record.template,
            "mode": record.mode,
            "id": record.id,
        }),
    }
}

pub(crate) fn run(
    file: &Path,
    stage: &str,
    cell: Option<&str>,
    out: &Path,
    count: u64,
    format: DataFormat,
    color: bool,
) -> Status {
    let plan = match compile_file(file, color) {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let stage = match plan.stage_instance(stage, cell) {
        Ok(stage) => stage,
        Err(message) => {
            eprint_line(&format!("error: {message}"));
            return Status::Error;
        }
    };
    let data = stage.spec.data();
    let generator = crate::tasks::Generator::new(&plan);
    let mut text = String::new();
    let mut hash = DatasetHash::default();
    let mut attempts: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for i in 0..count {
        let problem = match example(&generator, data, stage.seed, i) {
            Ok(problem) => problem,
            Err(error) => {
                eprint_line(&format!("error: example {i}: {error}"));
                return Status::Error;
            }
        };
        let entry = attempts.entry(problem.op).or_default();
        entry.0 += 1;
        entry.1 += u64::from(problem.attempts);
        let record = problem.record(&plan, i);
        hash.add(&record.text);
        let source = format!("rlp/{}/{}", plan.name, stage.name);
        text.push_str(&formatted(&record, format, &source).to_string());
        text.push('\n');
    }
    if let Err(error) = write_atomically(out, text.as_bytes()) {
        eprint_line(&format!("error: cannot write {}: {error}", out.display()));
        return Status::Error;
    }
    let acceptance: Vec<String> = attempts
        .iter()
        .map(|(op, (n, tries))| format!("op {op}: {:.0}%", 100.0 * *n as f64 / *tries as f64))
        .collect();
    eprint_line(&format!(
        "wrote {count} examples of stage `{}` (seed {}) to {}\ndataset hash {}\naccepted attempts per op: {}",
        stage.name,
        stage.seed,
        out.display(),
        hash.hex(),
        acceptance.join(", ")
    ));
    Status::Success
}
