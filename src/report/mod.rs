//! `rlp report`: every cell of a run directory side by side. Reads each cell's manifest, plan
//! and eval samples and each stage's metrics (never the weights), and builds one [`Report`]:
//! pass@k per cell and per group of replicas with 95% intervals ([`crate::eval::stats`]), each
//! model's difference from the model it was trained from over the same problems ([`paired`]),
//! and any other two models' a reader asks for ([`asked`]), rows over ops pooled on request
//! ([`select`]), the area under pass@1 against op, the training curves, and the timings and key
//! numbers of every stage. [`read`] reads a run directory; [`render`] writes the report as
//! Markdown, a self-contained HTML page, or JSON; [`merge`] puts several run directories in one
//! report.
//!
//! A sweep variable is a *replica* variable when cells that differ only in it have the same
//! stages but for their seeds (`seed $replica`): such cells are aggregated, with the spread over
//! replicas.

mod asked;
mod charts;
mod merge;
mod paired;
mod read;
pub mod render;
mod select;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::eval::stats::{self, Estimate};
use crate::run::StageDone;
pub use asked::{PairRequest, Side};
pub use paired::PairedRow;
use paired::Pairing;
use read::{Cell, RunData, SampleCounts, dir_file_name, parse, read, read_run};
pub use select::{OpPool, restrict_ks};

/// The version of the report JSON.
pub const REPORT_SCHEMA: u32 = 3;

/// At most this many points of a training curve are kept (bucket means).
const CURVE_POINTS: usize = 200;

/// What went wrong reading a run directory.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The directory has no cell with a manifest.
    #[error("{} holds no cell directory with a manifest.json (is it a run directory, `runs/<name>`?)", path.display())]
    NoCells {
        /// The directory.
        path: PathBuf,
    },
    /// Runs that cannot be compared in one report, or pass@k that no eval estimates.
    #[error("{message}")]
    Mismatch {
        /// What does not match.
        message: String,
    },
}

/// A run directory, compared across its cells.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Version of this structure.
    pub schema: u32,
    /// The experiment's name (the runs' names joined by ` + ` for several runs).
    pub name: String,
    /// The run directories' names; with several runs every cell, group and unit is labelled
    /// `<run>: ` with its run's.
    pub runs: Vec<String>,
    /// The sweep variables that only change seeds.
    pub replica_variables: Vec<String>,
    /// The cells, in the plan's order.
    pub cells: Vec<CellSummary>,
    /// Every distinct stage instance, in the order cells first use them.
    pub stages: Vec<StageSummary>,
    /// Per eval and split, the comparison tables.
    pub splits: Vec<SplitComparison>,
    /// Training curves per stage name and metric.
    pub curves: Vec<Curve>,
}

/// One cell as its manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    /// The cell's directory name.
    pub name: String,
    /// Its sweep bindings.
    pub bindings: Vec<(String, String)>,
    /// Its group: the bindings without the replica variables.
    pub group: String,
    /// How its last run ended.
    pub status: String,
    /// Wall seconds of its last run.
    pub seconds: f64,
}

/// One stage instance.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// The stage's name.
    pub name: String,
    /// `pretrain`, `midtrain` or `rl`.
    pub kind: String,
    /// Its directory under `stages/`.
    pub dir: String,
    /// The bindings every cell that uses it shares ("every cell" when it is common to all).
    pub used_by: String,
    /// Its seed.
    pub seed: u64,
    /// Its content hash.
    pub hash: String,
    /// What it left, once finished.
    pub done: Option<StageDone>,
}

/// Which problems a row counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// One op.
    Op(u32),
    /// Several ops pooled (`rlp report --ops`), ascending.
    Ops(OpPool),
    /// The whole split.
    All,
    /// One context, every op.
    Context(String),
}

/// One model on one selection of a split, for a cell or a group of replicas.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    /// The cells or groups this row stands for (one model evaluated in several of them, the
    /// same weights on the same problems, is one row).
    pub units: Vec<String>,
    /// The evaluated stage.
    pub model: String,
    /// The problems counted.
    pub selection: Selection,
    /// Distinct models (stage directories) averaged.
    pub replicas: usize,
    /// Problems per replica.
    pub problems: usize,
    /// Process-verified pass@k.
    pub verified: Vec<Estimate>,
    /// Answer-only pass@k.
    pub answer: Vec<Estimate>,
    /// The stage directories behind the estimates (a paired row's: model and base of each
    /// pair), which tell the same weights in several runs.
    #[serde(skip)]
    dirs: Vec<String>,
}

/// The area under verified pass@k against op of one row's model, over the split's ops, for the
/// eval's first k (1 unless the file declares otherwise).
#[derive(Debug, Clone, Serialize)]
pub struct Area {
    /// As [`ComparisonRow::units`].
    pub units: Vec<String>,
    /// The model.
    pub model: String,
    /// The ops spanned.
    pub ops: (u32, u32),
    /// The trapezoid area (ops × pass@1).
    pub value: f64,
}

/// One split of one eval, compared.
#[derive(Debug, Clone, Serialize)]
pub struct SplitComparison {
    /// The eval's name.
    pub eval: String,
    /// The split's name.
    pub split: String,
    /// The ks.
    pub ks: Vec<u32>,
    /// Per cell.
    pub cells: Vec<ComparisonRow>,
    /// Per group of replicas (empty without replica variables).
    pub groups: Vec<ComparisonRow>,
    /// Areas, per group when there are groups, else per cell.
    pub areas: Vec<Area>,
    /// Each model minus the model it was trained from, per group when there are groups, else
    /// per cell.
    pub paired: Vec<PairedRow>,
}

impl SplitComparison {
    /// The rows a reader compares: per group of replicas when there are groups, else per cell
    /// (the main table, the areas and the charts).
    #[must_use]
    pub fn main_rows(&self) -> &[ComparisonRow] {
        if self.groups.is_empty() {
            &self.cells
        } else {
            &self.groups
        }
    }
}

/// One metric of one stage name over steps, one series per instance.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// The stage's name.
    pub stage: String,
    /// The metric key, as in `metrics.jsonl`.
    pub metric: String,
    /// (label, [(step, value)]) per instance.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// The metrics drawn for training stages and for `rl` stages.
const TRAIN_METRICS: [&str; 2] = ["loss", "heldout_loss"];
const RL_METRICS: [&str; 7] = [
    "reward/mean",
    "rollout/verified_acc",
    "rollout/answer_right_process_wrong",
    "actor/kl_loss",
    "actor/entropy",
    "filter/pass_rate",
    "val/verified",
];

impl Selection {
    /// Whether the selection counts a record.
    fn holds(&self, record: &SampleCounts) -> bool {
        match self {
            Selection::Op(op) => record.op == *op,
            Selection::Ops(pool) => pool.ops().contains(&record.op),
            Selection::All => true,
            Selection::Context(c) => record.context == *c,
        }
    }

    /// The selections of some records: each op, each of `pools` whose ops they all have, the
    /// whole split, and each context when there are several.
    fn of<'a>(
        records: impl Iterator<Item = &'a SampleCounts> + Clone,
        pools: &[OpPool],
    ) -> Vec<Selection> {
        let ops: std::collections::BTreeSet<u32> = records.clone().map(|s| s.op).collect();
        let contexts: std::collections::BTreeSet<&str> =
            records.map(|s| s.context.as_str()).collect();
        let mut out: Vec<Selection> = ops.iter().copied().map(Selection::Op).collect();
        out.extend(
            pools
                .iter()
                .filter(|p| p.ops().iter().all(|op| ops.contains(op)))
                .map(|p| Selection::Ops(p.clone())),
        );
        out.push(Selection::All);
        if contexts.len() > 1 {
            out.extend(
                contexts
                    .into_iter()
                    .map(|c| Selection::Context(c.to_owned())),
            );
        }
        out
    }
}

/// Reads the run directory `run` into a report.
///
/// # Errors
/// A manifest, plan, samples or metrics file that cannot be read or parsed, or no cells.
pub fn load(run: &Path) -> Result<Report, ReportError> {
    load_runs(&[run.to_owned()], &[], &[])
}

/// Reads one or several run directories into one report, with the paired differences
/// `requests` asks for beside each model's difference from its base ([`asked`]), and a row over
/// each of `pools` beside those of each op ([`OpPool`]). Several runs are side by side, each
/// run's cells, groups and rows labelled with its name ([`merge`]).
///
/// # Errors
/// A manifest, plan, samples or metrics file that cannot be read or parsed, or a run without
/// cells; no runs, a run given twice, or runs whose evals share a split but no k; a request
/// that names an unknown run, model or binding, or pairs nothing; a pool no split has every op
/// of.
pub fn load_runs(
    runs: &[PathBuf],
    requests: &[PairRequest],
    pools: &[OpPool],
) -> Result<Report, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::Mismatch {
            message: "no run directory to report on".to_owned(),
        });
    }
    // `runs/a` and `runs/a/` are one directory: compared as the file system resolves them.
    let resolved: Vec<PathBuf> = runs
        .iter()
        .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
        .collect();
    if let Some(twice) = (0..runs.len()).find(|&i| resolved[..i].contains(&resolved[i])) {
        return Err(ReportError::Mismatch {
            message: format!("the run directory {} is given twice", runs[twice].display()),
        });
    }
    let labels = merge::labels(runs);
    let data: Vec<RunData> = runs.iter().map(|r| read_run(r)).collect::<Result<_, _>>()?;
    let mut reports: Vec<Report> = data
        .iter()
        .zip(&labels)
        .map(|(d, label)| tables(label, d, pools))
        .collect();
    select::check_pools(&reports, pools)?;
    asked::add(&mut reports, &data, &labels, requests, pools)?;
    if let [run] = runs {
        let mut report = reports.remove(0);
        report.curves = curves(report.stages.iter().map(|s| (run.as_path(), s)))?;
        return Ok(report);
    }
    merge::merge(runs, &labels, reports)
}

/// The name a run is labelled with: its directory's.
fn run_label(run: &Path) -> String {
    run.file_name().map_or_else(
        || run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A run read into a report without its training curves.
fn tables(label: &str, data: &RunData, pools: &[OpPool]) -> Report {
    let RunData {
        plan,
        cells,
        replica_variables,
        units_by_cell,
        units_by_group,
    } = data;
    let summaries: Vec<CellSummary> = cells
        .iter()
        .map(|c| CellSummary {
            name: c.manifest.cell.clone(),
            bindings: c.manifest.bindings.clone(),
            group: data.group_of(c),
            status: format!("{:?}", c.manifest.status).to_lowercase(),
            seconds: c.manifest.seconds,
        })
        .collect();
    let stages = stage_summaries(cells);
    let mut splits = Vec::new();
    for eval in plan.cells.first().map_or(&[][..], |c| &c.evals[..]) {
        for split in &eval.splits {
            let rows_of =
                |units| comparison(cells, units, &eval.name, &split.name, &eval.pass_at, pools);
            let per_cell = rows_of(units_by_cell);
            let groups = rows_of(units_by_group);
            let paired = paired::paired(
                &Pairing::Lineage(plan),
                cells,
                data.paired_units(),
                &eval.name,
                &split.name,
                &eval.pass_at,
                pools,
            );
            let mut compared = SplitComparison {
                eval: eval.name.clone(),
                split: split.name.clone(),
                ks: eval.pass_at.clone(),
                cells: per_cell,
                groups,
                areas: Vec::new(),
                paired,
            };
            compared.areas = areas(compared.main_rows());
            splits.push(compared);
        }
    }
    Report {
        schema: REPORT_SCHEMA,
        name: plan.name.clone(),
        runs: vec![label.to_owned()],
        replica_variables: replica_variables.clone(),
        cells: summaries,
        stages,
        splits,
        curves: Vec::new(),
    }
}

/// The bindings all of `cells` share, as a label ("every cell" when they are all the cells).
fn common_bindings(cells: &[&Cell], total: usize) -> String {
    if cells.len() == total {
        return "every cell".to_owned();
    }
    let Some(first) = cells.first() else {
        return String::new();
    };
    first
        .manifest
        .bindings
        .iter()
        .filter(|b| cells.iter().all(|c| c.manifest.bindings.contains(b)))
        .map(|(v, value)| format!("{v}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage_summaries(cells: &[Cell]) -> Vec<StageSummary> {
    let mut out: Vec<StageSummary> = Vec::new();
    for cell in cells {
        for stage in &cell.manifest.stages {
            let dir = dir_file_name(&stage.dir);
            if out.iter().any(|s| s.dir == dir) {
                continue;
            }
            let users: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.dirs.get(&stage.name) == Some(&dir))
                .collect();
            out.push(StageSummary {
                name: stage.name.clone(),
                kind: stage.kind.clone(),
                dir,
                used_by: common_bindings(&users, cells.len()),
                seed: stage.seed,
                hash: stage.hash.clone(),
                done: stage.done.clone(),
            });
        }
    }
    out
}

/// Per problem: samples, verified samples, right answers.
type Counts = (u64, u64, u64);

/// One model's replicas within a unit: per stage directory, the records read for it.
struct ModelReplicas<'a> {
    model: String,
    replicas: Vec<(String, Vec<&'a SampleCounts>)>,
}

/// A row being assembled: the units it stands for, and the counts of each replica.
struct PendingRow {
    model: String,
    selection: Selection,
    dirs: Vec<String>,
    units: Vec<String>,
    counts: Vec<Vec<Counts>>,
}

/// The records of one split, per model and stage directory, in `members` (a unit's cells):
/// each directory's records come from the first member cell that runs the model from it (the
/// same weights on the same problems elsewhere are not counted twice).
fn models_of<'a>(
    cells: &'a [Cell],
    members: &[usize],
    eval: &str,
    split: &str,
) -> Vec<ModelReplicas<'a>> {
    let mut models: Vec<ModelReplicas<'a>> = Vec::new();
    let mut owner: HashMap<(&str, &str), usize> = HashMap::new();
    for &i in members {
        let cell = &cells[i];
        let Some((_, records)) = cell.samples.iter().find(|(name, _)| name == eval) else {
            continue;
        };
        for record in records.iter().filter(|r| r.split == split) {
            let dir = cell.dirs.get(&record.model).map_or("", String::as_str);
            if *owner.entry((record.model.as_str(), dir)).or_insert(i) != i {
                continue;
            }
            let slot = if let Some(p) = models.iter().position(|m| m.model == record.model) {
                p
            } else {
                models.push(ModelReplicas {
                    model: record.model.clone(),
                    replicas: Vec::new(),
                });
                models.len() - 1
            };
            let replicas = &mut models[slot].replicas;
            match replicas.iter_mut().find(|(d, _)| d == dir) {
                Some((_, list)) => list.push(record),
                None => replicas.push((dir.to_owned(), vec![record])),
            }
        }
    }
    models
}

/// The rows of one split for `units` (cells, or groups of replica cells).
fn comparison(
    cells: &[Cell],
    units: &[(String, Vec<usize>)],
    eval: &str,
    split: &str,
    ks: &[u32],
    pools: &[OpPool],
) -> Vec<ComparisonRow> {
    let mut rows: Vec<PendingRow> = Vec::new();
    for (label, members) in units {
        for model in models_of(cells, members, eval, split) {
            let dirs: Vec<String> = model.replicas.iter().map(|(d, _)| d.clone()).collect();
            for selection in Selection::of(
                model.replicas.iter().flat_map(|(_, r)| r.iter().copied()),
                pools,
            ) {
                let counts: Vec<Vec<Counts>> = model
                    .replicas
                    .iter()
                    .map(|(_, records)| {
                        records
                            .iter()
                            .filter(|r| selection.holds(r))
                            .map(|r| (r.samples, r.verified_samples, r.answer_samples))
                            .collect()
                    })
                    .filter(|c: &Vec<_>| !c.is_empty())
                    .collect();
                if counts.is_empty() {
                    continue;
                }
                match rows
                    .iter_mut()
                    .find(|r| r.model == model.model && r.selection == selection && r.dirs == dirs)
                {
                    Some(row) => row.units.push(label.clone()),
                    None => rows.push(PendingRow {
                        model: model.model.clone(),
                        selection,
                        dirs: dirs.clone(),
                        units: vec![label.clone()],
                        counts,
                    }),
                }
            }
        }
    }
    rows.into_iter()
        .map(|row| {
            let pick = |f: fn(&Counts) -> (u64, u64)| -> Vec<Vec<(u64, u64)>> {
                row.counts
                    .iter()
                    .map(|r| r.iter().map(f).collect())
                    .collect()
            };
            let verified = pick(|&(n, v, _)| (n, v));
            let answer = pick(|&(n, _, a)| (n, a));
            ComparisonRow {
                replicas: row.counts.len(),
                problems: row.counts.iter().map(Vec::len).sum::<usize>() / row.counts.len(),
                verified: stats::estimates(&stats::per_problem(&verified, ks), ks),
                answer: stats::estimates(&stats::per_problem(&answer, ks), ks),
                units: row.units,
                model: row.model,
                selection: row.selection,
                dirs: row.dirs,
            }
        })
        .collect()
}

/// Per row key (units, model), the area under verified pass@k against op for the first k.
fn areas(rows: &[ComparisonRow]) -> Vec<Area> {
    let mut out: Vec<Area> = Vec::new();
    for row in rows {
        let (Selection::Op(op), Some(pass1)) = (&row.selection, row.verified.first()) else {
            continue;
        };
        let point = (*op, pass1.value);
        match out
            .iter_mut()
            .find(|a| a.units == row.units && a.model == row.model)
        {
            Some(area) => {
                area.ops = (area.ops.0.min(point.0), area.ops.1.max(point.0));
            }
            None => out.push(Area {
                units: row.units.clone(),
                model: row.model.clone(),
                ops: (point.0, point.0),
                value: 0.0,
            }),
        }
    }
    for area in &mut out {
        let mut points: Vec<(u32, f64)> = rows
            .iter()
            .filter(|r| r.units == area.units && r.model == area.model)
            .filter_map(|r| match (&r.selection, r.verified.first()) {
                (Selection::Op(op), Some(e)) => Some((*op, e.value)),
                _ => None,
            })
            .collect();
        points.sort_by_key(|p| p.0);
        area.value = stats::area(&points);
    }
    out
}

/// The training curves of every stage instance (with the run directory it is in), grouped by
/// stage name and metric.
fn curves<'a>(
    stages: impl Iterator<Item = (&'a Path, &'a StageSummary)>,
) -> Result<Vec<Curve>, ReportError> {
    let mut out: Vec<Curve> = Vec::new();
    for (run, stage) in stages {
        let path = run.join("stages").join(&stage.dir).join("metrics.jsonl");
        if !path.is_file() {
            continue;
        }
        let rows: Vec<serde_json::Value> = read(&path)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse(&path, l))
            .collect::<Result<_, _>>()?;
        let metrics: &[&str] = if stage.kind == "rl" {
            &RL_METRICS
        } else {
            &TRAIN_METRICS
        };
        for metric in metrics {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((r["step"].as_f64()?, r[*metric].as_f64()?)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            if points.is_empty() {
                continue;
            }
            let series = (stage.used_by.clone(), downsample(&points));
            match out
                .iter_mut()
                .find(|c| c.stage == stage.name && c.metric == *metric)
            {
                Some(curve) => curve.series.push(series),
                None => out.push(Curve {
                    stage: stage.name.clone(),
                    metric: (*metric).to_owned(),
                    series: vec![series],
                }),
            }
        }
    }
    Ok(out)
}

/// At most [`CURVE_POINTS`] points: the means of equal runs of consecutive points.
fn downsample(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= CURVE_POINTS {
        return points.to_vec();
    }
    let size = points.len().div_ceil(CURVE_POINTS);
    points
        .chunks(size)
        .map(|chunk| {
            let n = chunk.len() as f64;
            (
                chunk.iter().map(|p| p.0).sum::<f64>() / n,
                chunk.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}
