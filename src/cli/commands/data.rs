//! `rlp data FILE --stage NAME [--cell CELL] --out FILE.jsonl [-n N]`

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{Status, compile_file, eprint_line, write_atomically};
use crate::tasks::stream::{DatasetHash, example};

pub(crate) fn run(
    file: &Path,
    stage: &str,
    cell: Option<&str>,
    out: &Path,
    count: u64,
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
        text.push_str(&serde_json::to_string(&record).unwrap_or_default());
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
