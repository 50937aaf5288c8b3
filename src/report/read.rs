//! Reading a run directory for the report: each cell's manifest and eval samples, and the plan
//! that tells replicas apart. Never the weights.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReportError;
use crate::plan::Plan;
use crate::run::Manifest;

/// One line of an eval's samples file, as far as the report needs it.
#[derive(Debug, Deserialize)]
pub(super) struct SampleCounts {
    pub(super) model: String,
    pub(super) split: String,
    pub(super) op: u32,
    pub(super) context: String,
    pub(super) prompt: String,
    pub(super) samples: u64,
    pub(super) verified_samples: u64,
    pub(super) answer_samples: u64,
}

impl SampleCounts {
    /// Whether two records are of the same problem.
    pub(super) fn same_problem(&self, other: &Self) -> bool {
        (self.op, &self.context, &self.prompt) == (other.op, &other.context, &other.prompt)
    }
}

/// A cell as read from disk.
pub(super) struct Cell {
    pub(super) manifest: Manifest,
    /// Per eval name, its sample counts.
    pub(super) samples: Vec<(String, Vec<SampleCounts>)>,
    /// Stage name → its directory name under `stages/`.
    pub(super) dirs: HashMap<String, String>,
}

/// A run directory as read: its plan, its cells in the plan's order, and the units rows are
/// computed for (each cell; each group of replica cells when there are replica variables).
pub(super) struct RunData {
    pub(super) plan: Plan,
    pub(super) cells: Vec<Cell>,
    /// The sweep variables that only change seeds.
    pub(super) replica_variables: Vec<String>,
    /// (cell name, [its index]).
    pub(super) units_by_cell: Vec<(String, Vec<usize>)>,
    /// (group label, its cells' indices); empty without replica variables.
    pub(super) units_by_group: Vec<(String, Vec<usize>)>,
}

impl RunData {
    /// The units a paired row is computed for: groups when there are replicas, else cells.
    pub(super) fn paired_units(&self) -> &[(String, Vec<usize>)] {
        if self.units_by_group.is_empty() {
            &self.units_by_cell
        } else {
            &self.units_by_group
        }
    }

    /// A cell's group label.
    pub(super) fn group_of(&self, cell: &Cell) -> String {
        group_label(&cell.manifest.bindings, &self.replica_variables)
    }
}

pub(super) fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|e| ReportError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ReportError> {
    serde_json::from_str(text).map_err(|e| ReportError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The directory name under `stages/` of a manifest's stage path (`../stages/base-…`).
pub(super) fn dir_file_name(dir: &str) -> String {
    Path::new(dir)
        .file_name()
        .map_or_else(|| dir.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Reads the run directory `run`.
pub(super) fn read_run(run: &Path) -> Result<RunData, ReportError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(run)
        .map_err(|e| ReportError::Read {
            path: run.to_owned(),
            message: e.to_string(),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    entries.sort();
    let Some(first) = entries.first() else {
        return Err(ReportError::NoCells {
            path: run.to_owned(),
        });
    };
    let plan_path = first.join("plan.json");
    let plan: Plan = parse(&plan_path, &read(&plan_path)?)?;
    let mut cells = Vec::new();
    for dir in &entries {
        let path = dir.join("manifest.json");
        let manifest: Manifest = parse(&path, &read(&path)?)?;
        let mut samples = Vec::new();
        for eval in &manifest.evals {
            let path = dir
                .join("eval")
                .join(format!("{}-samples.jsonl", eval.name));
            if !path.is_file() {
                continue;
            }
            let lines = read(&path)?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| parse::<SampleCounts>(&path, l))
                .collect::<Result<Vec<_>, _>>()?;
            samples.push((eval.name.clone(), lines));
        }
        let dirs = manifest
            .stages
            .iter()
            .map(|s| (s.name.clone(), dir_file_name(&s.dir)))
            .collect();
        cells.push(Cell {
            manifest,
            samples,
            dirs,
        });
    }
    // The plan's order of cells (sweep order), with cells it does not know last.
    let position = |name: &str| {
        plan.cells
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    };
    cells.sort_by_key(|c| position(&c.manifest.cell));
    let replica_variables = replica_variables(&plan);
    let group_of = |cell: &Cell| group_label(&cell.manifest.bindings, &replica_variables);
    let units_by_cell: Vec<(String, Vec<usize>)> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (c.manifest.cell.clone(), vec![i]))
        .collect();
    let mut units_by_group: Vec<(String, Vec<usize>)> = Vec::new();
    if !replica_variables.is_empty() {
        for (i, cell) in cells.iter().enumerate() {
            let group = group_of(cell);
            match units_by_group.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members.push(i),
                None => units_by_group.push((group, vec![i])),
            }
        }
    }
    Ok(RunData {
        plan,
        cells,
        replica_variables,
        units_by_cell,
        units_by_group,
    })
}

/// The sweep variables whose values change only stage seeds: for every group of cells equal in
/// all other bindings, the cells' stages have the same specs, and some group has two cells.
fn replica_variables(plan: &Plan) -> Vec<String> {
    let Some(first) = plan.cells.first() else {
        return Vec::new();
    };
    let specs = |cell: &crate::plan::CellPlan| -> Vec<String> {
        cell.stages
            .iter()
            .map(|s| serde_json::to_string(&plan.stages[s.0].spec).unwrap_or_default())
            .collect()
    };
    first
        .bindings
        .iter()
        .map(|(variable, _)| variable.clone())
        .filter(|variable| {
            let mut groups: BTreeMap<Vec<(String, String)>, Vec<Vec<String>>> = BTreeMap::new();
            for cell in &plan.cells {
                let rest: Vec<(String, String)> = cell
                    .bindings
                    .iter()
                    .filter(|(v, _)| v != variable)
                    .cloned()
                    .collect();
                groups.entry(rest).or_default().push(specs(cell));
            }
            groups.values().any(|g| g.len() > 1)
                && groups.values().all(|g| g.iter().all(|s| *s == g[0]))
        })
        .collect()
}

/// `a=1, b=2` without the replica variables; `main` when nothing is left.
fn group_label(bindings: &[(String, String)], replicas: &[String]) -> String {
    let kept: Vec<String> = bindings
        .iter()
        .filter(|(v, _)| !replicas.contains(v))
        .map(|(v, value)| format!("{v}={value}"))
        .collect();
    if kept.is_empty() {
        "main".to_owned()
    } else {
        kept.join(", ")
    }
}
