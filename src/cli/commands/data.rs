//! `rlp data FILE --stage NAME [--cell CELL] --out FILE.jsonl [-n N]`

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{Status, compile_file, eprint_line, write_atomically};
use crate::plan::{Plan, StagePlan};
use crate::tasks::stream::{DatasetHash, example};

/// The plan's cell names, for messages.
fn cell_names(plan: &Plan) -> String {
    plan.cells
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stage instance to write: by cell if given, else the only instance of that name.
fn find_stage<'a>(
    plan: &'a Plan,
    stage: &str,
    cell: Option<&str>,
) -> Result<&'a StagePlan, String> {
    let instances: Vec<&StagePlan> = plan.stages.iter().filter(|s| s.name == stage).collect();
    if instances.is_empty() {
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("no stage `{stage}` (stages: {})", names.join(", ")));
    }
    match cell {
        Some(cell) => {
            let index = plan
                .cells
                .iter()
                .find(|c| c.name == cell)
                .map(|c| c.index)
                .ok_or_else(|| format!("no cell `{cell}` (cells: {})", cell_names(plan)))?;
            instances
                .into_iter()
                .find(|s| s.cells.contains(&index))
                .ok_or_else(|| format!("stage `{stage}` is not in cell `{cell}`"))
        }
        None if instances.len() == 1 => Ok(instances[0]),
        None => Err(format!(
            "stage `{stage}` differs between cells; pick one with --cell ({})",
            cell_names(plan)
        )),
    }
}

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
    let stage = match find_stage(&plan, stage, cell) {
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
