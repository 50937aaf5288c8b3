//! Several run directories in one report (`rlp report A B ...`): models that different files
//! trained side by side (`f2-size.rlp`'s larger model beside `f2-context.rlp`'s), each with its
//! intervals. Each
//! run is read on its own, so its own plan finds its replicas and each model's base; its cells,
//! groups and rows are labelled `<run>: `. A stage that several runs hold (copied by its stage
//! key) is one stage, and a row of the same weights with the same estimates in several runs (the
//! same problems) is one row standing for each run's units. Each model's difference from its base
//! is within its run; a difference across runs is asked for with `--pair` ([`super::asked`]).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::{
    ComparisonRow, REPORT_SCHEMA, Report, ReportError, SplitComparison, areas, curves, run_label,
    select::keep_ks,
};

/// `label: text`.
fn within(label: &str, text: &str) -> String {
    format!("{label}: {text}")
}

/// Each run's label: its directory's name, or the path as given where two runs have the same
/// name.
pub(super) fn labels(runs: &[PathBuf]) -> Vec<String> {
    let names: Vec<String> = runs.iter().map(|r| run_label(r)).collect();
    runs.iter()
        .zip(&names)
        .map(|(run, name)| {
            if names.iter().filter(|n| *n == name).count() > 1 {
                run.display().to_string()
            } else {
                name.clone()
            }
        })
        .collect()
}

/// The report of several runs, from each run's report (without curves) and its label.
pub(super) fn merge(
    runs: &[PathBuf],
    labels: &[String],
    reports: Vec<Report>,
) -> Result<Report, ReportError> {
    let mut out = Report {
        schema: REPORT_SCHEMA,
        name: labels.join(" + "),
        runs: labels.to_vec(),
        replica_variables: Vec::new(),
        cells: Vec::new(),
        stages: Vec::new(),
        splits: Vec::new(),
        curves: Vec::new(),
    };
    // Per stage of `out.stages`, the run its metrics are read from.
    let mut homes: Vec<&Path> = Vec::new();
    let mut parts: IndexMap<(String, String), Vec<(&str, SplitComparison)>> = IndexMap::new();
    for ((run, label), report) in runs.iter().zip(labels).zip(reports) {
        for variable in report.replica_variables {
            if !out.replica_variables.contains(&variable) {
                out.replica_variables.push(variable);
            }
        }
        for mut cell in report.cells {
            cell.name = within(label, &cell.name);
            cell.group = within(label, &cell.group);
            out.cells.push(cell);
        }
        for mut stage in report.stages {
            let used_by = within(label, &stage.used_by);
            if let Some(known) = out.stages.iter_mut().find(|s| s.dir == stage.dir) {
                known.used_by = format!("{}; {used_by}", known.used_by);
            } else {
                stage.used_by = used_by;
                out.stages.push(stage);
                homes.push(run);
            }
        }
        for split in report.splits {
            parts
                .entry((split.eval.clone(), split.split.clone()))
                .or_default()
                .push((label, split));
        }
    }
    for ((eval, split), parts) in parts {
        out.splits.push(merge_split(eval, split, parts)?);
    }
    out.curves = curves(homes.into_iter().zip(&out.stages))?;
    Ok(out)
}

/// One split as several runs evaluated it: the rows of each, on the ks they share; every run's
/// groups (its cells where it has no replicas) when any run has replicas.
fn merge_split(
    eval: String,
    split: String,
    parts: Vec<(&str, SplitComparison)>,
) -> Result<SplitComparison, ReportError> {
    let ks: Vec<u32> = parts
        .first()
        .map(|(_, first)| {
            first
                .ks
                .iter()
                .copied()
                .filter(|k| parts.iter().all(|(_, p)| p.ks.contains(k)))
                .collect()
        })
        .unwrap_or_default();
    if ks.is_empty() {
        let each: Vec<String> = parts
            .iter()
            .map(|(label, p)| format!("{label} at k = {:?}", p.ks))
            .collect();
        return Err(ReportError::Mismatch {
            message: format!(
                "eval `{eval}`, split `{split}`: the runs estimate pass@k at no k in common ({})",
                each.join(", ")
            ),
        });
    }
    let grouped = parts.iter().any(|(_, p)| !p.groups.is_empty());
    let (mut cells, mut groups, mut paired) = (Vec::new(), Vec::new(), Vec::new());
    for (label, part) in parts {
        let main = part.main_rows().to_vec();
        for row in part.cells {
            add(&mut cells, relabel(row, label, &ks), |r| r);
        }
        if grouped {
            for row in main {
                add(&mut groups, relabel(row, label, &ks), |r| r);
            }
        }
        for mut row in part.paired {
            row.difference = relabel(row.difference, label, &ks);
            add(&mut paired, row, |r| &mut r.difference);
        }
    }
    let areas = areas(if grouped { &groups } else { &cells });
    Ok(SplitComparison {
        eval,
        split,
        ks,
        cells,
        groups,
        areas,
        paired,
    })
}

/// A run's row with its units labelled and its estimates those of `ks`.
fn relabel(mut row: ComparisonRow, label: &str, ks: &[u32]) -> ComparisonRow {
    row.units = row.units.iter().map(|u| within(label, u)).collect();
    row.verified = keep_ks(&row.verified, ks);
    row.answer = keep_ks(&row.answer, ks);
    row
}

/// Adds a row, or its units to the row of the same weights on the same problems: the same stage
/// directories and, to the last bit, the same estimates (an eval of the same name could have
/// drawn other problems).
fn add<T>(rows: &mut Vec<T>, mut row: T, of: fn(&mut T) -> &mut ComparisonRow) {
    let new = of(&mut row);
    let same = |known: &ComparisonRow| {
        (&known.model, &known.selection, &known.dirs, known.problems)
            == (&new.model, &new.selection, &new.dirs, new.problems)
            && (&known.verified, &known.answer) == (&new.verified, &new.answer)
    };
    match rows.iter_mut().position(|known| same(of(known))) {
        Some(i) => {
            let units = std::mem::take(&mut new.units);
            of(&mut rows[i]).units.extend(units);
        }
        None => rows.push(row),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::eval::stats::Estimate;
    use crate::report::Selection;

    /// A whole-split row of model `m` in stage directory `dir`, its pass@k `k / 1000`.
    pub(in crate::report) fn row(unit: &str, dir: &str, ks: &[u32]) -> ComparisonRow {
        let estimates: Vec<Estimate> = ks
            .iter()
            .map(|&k| Estimate {
                k,
                value: f64::from(k) / 1000.0,
                lo: 0.0,
                hi: 1.0,
                seed_min: None,
                seed_max: None,
            })
            .collect();
        ComparisonRow {
            units: vec![unit.to_owned()],
            model: "m".to_owned(),
            selection: Selection::All,
            replicas: 1,
            problems: 30,
            verified: estimates.clone(),
            answer: estimates,
            dirs: vec![dir.to_owned()],
        }
    }

    pub(in crate::report) fn split(rows: Vec<ComparisonRow>, ks: &[u32]) -> SplitComparison {
        SplitComparison {
            eval: "e".to_owned(),
            split: "s".to_owned(),
            ks: ks.to_vec(),
            cells: rows,
            groups: Vec::new(),
            areas: Vec::new(),
            paired: Vec::new(),
        }
    }

    fn merged(parts: Vec<(&str, SplitComparison)>) -> Result<SplitComparison, ReportError> {
        merge_split("e".to_owned(), "s".to_owned(), parts)
    }

    #[test]
    fn runs_are_compared_on_the_ks_they_share() {
        let (a, b) = ([1, 8, 64], [8, 64, 128]);
        let out = merged(vec![
            ("a", split(vec![row("x", "m-1", &a)], &a)),
            ("b", split(vec![row("y", "m-2", &b)], &b)),
        ])
        .unwrap();
        assert_eq!(out.ks, [8, 64]);
        let units: Vec<&[String]> = out.cells.iter().map(|r| &r.units[..]).collect();
        assert_eq!(units, [["a: x"], ["b: y"]]);
        for row in &out.cells {
            let ks: Vec<u32> = row
                .verified
                .iter()
                .chain(&row.answer)
                .map(|e| e.k)
                .collect();
            assert_eq!(ks, [8, 64, 8, 64]);
        }
        let error = merged(vec![
            ("a", split(vec![row("x", "m-1", &[1])], &[1])),
            ("b", split(vec![row("y", "m-2", &[64])], &[64])),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("no k in common"), "{error}");
    }

    #[test]
    fn the_same_weights_on_the_same_problems_are_one_row() {
        let ks = [1, 8];
        let out = merged(vec![
            ("a", split(vec![row("x", "m-1", &ks)], &ks)),
            (
                "b",
                split(vec![row("y", "m-1", &ks), row("z", "m-2", &ks)], &ks),
            ),
        ])
        .unwrap();
        let units: Vec<&[String]> = out.cells.iter().map(|r| &r.units[..]).collect();
        assert_eq!(
            units,
            [
                &["a: x".to_owned(), "b: y".to_owned()][..],
                &["b: z".to_owned()][..]
            ],
            "m-1 in both runs is one row; m-2, with the same estimates, is other weights"
        );
        // The same weights on other problems (other estimates) stay apart.
        let mut other = row("y", "m-1", &ks);
        other.verified[0].value = 0.5;
        let out = merged(vec![
            ("a", split(vec![row("x", "m-1", &ks)], &ks)),
            ("b", split(vec![other], &ks)),
        ])
        .unwrap();
        assert_eq!(out.cells.len(), 2);
    }
}
