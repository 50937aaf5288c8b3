//! Paired differences: every evaluated model minus the evaluated model it was trained from
//! (its nearest ancestor among the eval's models: `post` minus `widen`), problem by problem.
//! Both were sampled on the same problems in the same eval, so the difference per problem
//! removes the problems' own difficulty, and its interval is much narrower than the two
//! models' intervals side by side: the comparison RL-versus-base findings rest on.

use indexmap::IndexMap;
use serde::Serialize;

use super::{Cell, ComparisonRow, OpPool, SampleCounts, Selection};
use crate::eval::stats;
use crate::plan::{CellPlan, Plan};

/// One model minus its base on one selection of a split, for a cell or a group of replicas.
#[derive(Debug, Clone, Serialize)]
pub struct PairedRow {
    /// The evaluated stage the model was trained from, or the base asked for, as asked
    /// (`post[variant=outcome]`; `f2-context: widen` from another run). An asked row's `model`
    /// is the model as asked too (`post[base_seed=7]`).
    pub base: String,
    /// Whether the pair was asked for (`rlp report --pair`) rather than given by the lineage.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub asked: bool,
    /// The model's row with differences for estimates (its pass@k minus the base's, problem by
    /// problem); `replicas` counts distinct (model, base) pairs of stage directories.
    #[serde(flatten)]
    pub difference: ComparisonRow,
}

/// Which models a cell's paired rows subtract.
pub(super) enum Pairing<'a> {
    /// Each evaluated model minus its nearest evaluated ancestor, in the same cell.
    Lineage(&'a Plan),
    /// `model` minus `base`, as asked: per cell of the model's run (by index), the cell its base
    /// is read from (`None`: that cell has no partner); `shown` is (model, base) as the rows
    /// name them (`post[base_seed=7]`, `f2-context: widen`).
    Asked {
        model: &'a str,
        base: &'a str,
        shown: (&'a str, &'a str),
        partners: &'a [Option<&'a Cell>],
    },
}

/// A cell's model and its base: the stages read, their names as rows show them, and the cell
/// the base is read from.
struct Partner<'a> {
    model: String,
    base: String,
    shown: (String, String),
    cell: &'a Cell,
}

/// One pair of stage directories, with its records matched problem by problem.
struct Pair<'a> {
    dirs: (String, String),
    records: Vec<(&'a SampleCounts, &'a SampleCounts)>,
}

/// The evaluated ancestor of each evaluated model of `eval` in one cell: (model, base) names.
fn lineage(plan: &Plan, cell: &CellPlan, eval: &str) -> Vec<(String, String)> {
    let Some(spec) = cell.evals.iter().find(|e| e.name == eval) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &model in &spec.models {
        let mut at = plan.stages[model.0].parent;
        while let Some(id) = at {
            if spec.models.contains(&id) {
                out.push((
                    plan.stages[model.0].name.clone(),
                    plan.stages[id.0].name.clone(),
                ));
                break;
            }
            at = plan.stages[id.0].parent;
        }
    }
    out
}

/// The records of `model` on `split` in a cell's samples of `eval`, in the order written.
fn records<'a>(cell: &'a Cell, eval: &str, split: &str, model: &str) -> Vec<&'a SampleCounts> {
    cell.samples
        .iter()
        .filter(|(name, _)| name == eval)
        .flat_map(|(_, lines)| lines.iter())
        .filter(|r| r.split == split && r.model == model)
        .collect()
}

/// The partners of one cell.
fn partners<'a>(
    pairing: &Pairing<'a>,
    cells: &'a [Cell],
    i: usize,
    eval: &str,
) -> Vec<Partner<'a>> {
    let cell = &cells[i];
    match pairing {
        Pairing::Lineage(plan) => {
            let Some(cell_plan) = plan.cells.iter().find(|c| c.name == cell.manifest.cell) else {
                return Vec::new();
            };
            lineage(plan, cell_plan, eval)
                .into_iter()
                .map(|(model, base)| Partner {
                    shown: (model.clone(), base.clone()),
                    model,
                    base,
                    cell,
                })
                .collect()
        }
        Pairing::Asked {
            model,
            base,
            shown,
            partners,
        } => partners
            .get(i)
            .copied()
            .flatten()
            .map(|partner| Partner {
                model: (*model).to_owned(),
                base: (*base).to_owned(),
                shown: (shown.0.to_owned(), shown.1.to_owned()),
                cell: partner,
            })
            .into_iter()
            .collect(),
    }
}

/// The pairs of one unit, per (model, base) as shown: each distinct pair of stage directories
/// once, its records matched by position (an eval writes every model's problems in one order)
/// and kept only when every position has the same problem.
fn pairs_of<'a>(
    pairing: &Pairing<'a>,
    cells: &'a [Cell],
    members: &[usize],
    eval: &str,
    split: &str,
) -> IndexMap<(String, String), Vec<Pair<'a>>> {
    let mut out: IndexMap<(String, String), Vec<Pair<'a>>> = IndexMap::new();
    for &i in members {
        let cell = &cells[i];
        for Partner {
            model,
            base,
            shown,
            cell: partner,
        } in partners(pairing, cells, i, eval)
        {
            let dir = |cell: &Cell, name: &str| cell.dirs.get(name).cloned().unwrap_or_default();
            let dirs = (dir(cell, &model), dir(partner, &base));
            let (ours, theirs) = (
                records(cell, eval, split, &model),
                records(partner, eval, split, &base),
            );
            let same = ours.len() == theirs.len()
                && ours.iter().zip(&theirs).all(|(a, b)| a.same_problem(b));
            if ours.is_empty() || !same {
                continue;
            }
            let pairs = out.entry(shown).or_default();
            if pairs.iter().all(|p| p.dirs != dirs) {
                pairs.push(Pair {
                    dirs,
                    records: ours.into_iter().zip(theirs).collect(),
                });
            }
        }
    }
    out
}

/// A row being assembled.
struct PendingRow<'a> {
    key: (String, String),
    selection: Selection,
    dirs: Vec<(String, String)>,
    units: Vec<String>,
    /// Per pair, its matched records on the selection.
    records: Vec<Vec<(&'a SampleCounts, &'a SampleCounts)>>,
}

/// The paired rows of one split for `units` (cells, or groups of replica cells). A pair that
/// several units share (the same two stage directories) is one row standing for all of them.
pub(super) fn paired<'a>(
    pairing: &Pairing<'a>,
    cells: &'a [Cell],
    units: &[(String, Vec<usize>)],
    eval: &str,
    split: &str,
    ks: &[u32],
    pools: &[OpPool],
) -> Vec<PairedRow> {
    let mut rows: Vec<PendingRow<'_>> = Vec::new();
    for (label, members) in units {
        for (key, pairs) in pairs_of(pairing, cells, members, eval, split) {
            let dirs: Vec<(String, String)> = pairs.iter().map(|p| p.dirs.clone()).collect();
            let all = pairs.iter().flat_map(|p| p.records.iter().map(|r| r.0));
            for selection in Selection::of(all, pools) {
                let records: Vec<Vec<_>> = pairs
                    .iter()
                    .map(|p| {
                        p.records
                            .iter()
                            .copied()
                            .filter(|(r, _)| selection.holds(r))
                            .collect()
                    })
                    .collect();
                if records.iter().any(Vec::is_empty) {
                    continue;
                }
                match rows
                    .iter_mut()
                    .find(|r| r.key == key && r.selection == selection && r.dirs == dirs)
                {
                    Some(row) => row.units.push(label.clone()),
                    None => rows.push(PendingRow {
                        key: key.clone(),
                        selection,
                        dirs: dirs.clone(),
                        units: vec![label.clone()],
                        records,
                    }),
                }
            }
        }
    }
    rows.into_iter()
        .map(|row| {
            let shared = same_problems(&row.records);
            let differences = |counts: fn(&SampleCounts) -> (u64, u64)| {
                let values: Vec<Vec<Vec<f64>>> = row
                    .records
                    .iter()
                    .map(|pair| {
                        let (ours, theirs) =
                            pair.iter().map(|(m, b)| (counts(m), counts(b))).unzip();
                        let both = stats::per_problem(&[ours, theirs], ks);
                        both[0]
                            .iter()
                            .zip(&both[1])
                            .map(|(a, b)| a.iter().zip(b).map(|(a, b)| a - b).collect())
                            .collect()
                    })
                    .collect();
                stats::paired_estimates(&values, shared, ks)
            };
            PairedRow {
                base: row.key.1,
                asked: matches!(pairing, Pairing::Asked { .. }),
                difference: ComparisonRow {
                    replicas: row.records.len(),
                    problems: row.records.iter().map(Vec::len).sum::<usize>() / row.records.len(),
                    verified: differences(|r| (r.samples, r.verified_samples)),
                    answer: differences(|r| (r.samples, r.answer_samples)),
                    units: row.units,
                    model: row.key.0,
                    selection: row.selection,
                    dirs: row.dirs.into_iter().flat_map(|(a, b)| [a, b]).collect(),
                },
            }
        })
        .collect()
}

/// Whether every pair was sampled on the same problems, in the same order (replicas of one
/// file share the eval's seed, so they do unless the eval depends on the replica).
fn same_problems(records: &[Vec<(&SampleCounts, &SampleCounts)>]) -> bool {
    records.windows(2).all(|w| {
        w[0].len() == w[1].len()
            && w[0]
                .iter()
                .zip(&w[1])
                .all(|((a, _), (b, _))| a.same_problem(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::compile_bytes;

    /// base → mid → post, with `models` evaluated.
    fn plan(models: &str) -> Plan {
        let text = format!(
            "seed 3\nuse prelude\n\
             task arith {{\n contexts zoo\n phrasing compact\n max_value 10\n modes forward 1.0\n}}\n\
             pretrain base {{\n model tiny\n data arith[op 2..=3]\n tokens 10k\n batch 4 x 64\n lr 1e-3\n}}\n\
             midtrain mid from base {{\n data arith[op 2..=3]\n tokens 10k\n batch 4 x 64\n lr 1e-3\n}}\n\
             reward right = answer\n\
             rl post from mid {{\n prompts arith[op 2..=3]\n group 4\n prompts_per_step 2\n steps 2\n reward right\n lr 1e-4\n}}\n\
             eval {{\n models {models}\n split id arith[op 2..=3]\n problems 2 per op\n samples 2\n}}\n"
        );
        let compilation = compile_bytes("lineage.rlp", text.as_bytes());
        compilation
            .plan
            .unwrap_or_else(|| panic!("{:?}", compilation.diagnostics))
    }

    fn pairs(models: &str) -> Vec<(String, String)> {
        let plan = plan(models);
        lineage(&plan, &plan.cells[0], "eval")
    }

    #[test]
    fn each_model_is_paired_with_its_nearest_evaluated_ancestor() {
        let own = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert_eq!(
            pairs("base, post"),
            own(&[("post", "base")]),
            "mid is skipped"
        );
        assert_eq!(
            pairs("base, mid, post"),
            own(&[("mid", "base"), ("post", "mid")])
        );
        assert_eq!(pairs("post"), own(&[]), "nothing evaluated to pair with");
        assert_eq!(pairs("mid, base"), own(&[("mid", "base")]), "in any order");
    }
}
