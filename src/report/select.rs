//! What a reader asks a report to show beyond its defaults: only some pass@k (`rlp report --k
//! 1,8,32`: the tables' columns, the JSON's estimates and the areas, which are under the first k
//! kept), and ops pooled into one selection (`--ops 8..=10`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{Report, ReportError, Selection, SplitComparison, areas};
use crate::eval::stats::Estimate;
use crate::plan::MAX_OP;

/// Ops counted together (`rlp report --ops 8..=10` or `--ops 8,10`): in every split that has all
/// of them, each row gets a sibling over their problems pooled, beside the rows of each op and of
/// the whole split. Sorted, without repeats, at least two.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct OpPool(Vec<u32>);

impl OpPool {
    /// The ops, ascending.
    #[must_use]
    pub fn ops(&self) -> &[u32] {
        &self.0
    }
}

impl FromStr for OpPool {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |t: &str| match t.trim().parse::<u32>() {
            Ok(op) if op <= MAX_OP => Ok(op),
            Ok(_) => Err(format!(
                "`{t}` is above op {MAX_OP}, the largest a task generates"
            )),
            Err(_) => Err(format!(
                "`{t}` is not an op: pool ops as `8..=10` or `8,10`"
            )),
        };
        let mut ops: Vec<u32> = if let Some((lo, hi)) = text.split_once("..=") {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(format!("`{text}` is empty: {lo} is above {hi}"));
            }
            (lo..=hi).collect()
        } else {
            text.split(',').map(number).collect::<Result<_, _>>()?
        };
        ops.sort_unstable();
        ops.dedup();
        if ops.len() < 2 {
            return Err(format!(
                "`{text}` is one op, whose rows the report has already; pool two or more, \
                 e.g. `8..=10` or `8,10`"
            ));
        }
        Ok(OpPool(ops))
    }
}

impl fmt::Display for OpPool {
    /// `8-10` for a run of consecutive ops, else `8,10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = (self.0[0], self.0[self.0.len() - 1]);
        if last - first + 1 == self.0.len() as u32 {
            write!(f, "{first}-{last}")
        } else {
            let ops: Vec<String> = self.0.iter().map(u32::to_string).collect();
            write!(f, "{}", ops.join(","))
        }
    }
}

/// Refuses a pool that no split of `reports` has every op of (it would add no row).
///
/// # Errors
/// The first such pool, with each split's ops.
pub(super) fn check_pools(reports: &[Report], pools: &[OpPool]) -> Result<(), ReportError> {
    let splits = || reports.iter().flat_map(|r| &r.splits);
    let ops_of = |split: &SplitComparison| -> BTreeSet<u32> {
        split
            .cells
            .iter()
            .filter_map(|r| match r.selection {
                Selection::Op(op) => Some(op),
                _ => None,
            })
            .collect()
    };
    for pool in pools {
        let holds = |s: &SplitComparison| {
            let ops = ops_of(s);
            pool.ops().iter().all(|op| ops.contains(op))
        };
        if splits().any(holds) {
            continue;
        }
        let known: Vec<String> = splits()
            .map(|s| {
                let ops: Vec<String> = ops_of(s).iter().map(u32::to_string).collect();
                format!("`{}/{}` {}", s.eval, s.split, ops.join(","))
            })
            .collect();
        return Err(ReportError::Mismatch {
            message: format!(
                "--ops {pool}: no split has all of these ops (the splits' ops: {})",
                known.join("; ")
            ),
        });
    }
    Ok(())
}

/// Keeps the estimates of `ks` (in that order) of every row, and only those splits' ks: what
/// `rlp report --k` shows. Areas are those of the first k kept.
///
/// # Errors
/// A k that no split estimates, or a split that estimates none of `ks`.
pub fn restrict_ks(report: &mut Report, ks: &[u32]) -> Result<(), ReportError> {
    let mut wanted: Vec<u32> = Vec::new();
    for &k in ks {
        if !wanted.contains(&k) {
            wanted.push(k);
        }
    }
    let ks = &wanted[..];
    if let Some(k) = ks
        .iter()
        .find(|k| report.splits.iter().all(|s| !s.ks.contains(k)))
    {
        return Err(ReportError::Mismatch {
            message: format!("no eval estimates pass@{k}"),
        });
    }
    for split in &mut report.splits {
        let kept: Vec<u32> = ks
            .iter()
            .copied()
            .filter(|k| split.ks.contains(k))
            .collect();
        if kept.is_empty() {
            return Err(ReportError::Mismatch {
                message: format!(
                    "eval `{}`, split `{}` estimates none of pass@{ks:?} (its ks: {:?})",
                    split.eval, split.split, split.ks
                ),
            });
        }
        let rows = split
            .cells
            .iter_mut()
            .chain(&mut split.groups)
            .chain(split.paired.iter_mut().map(|p| &mut p.difference));
        for row in rows {
            row.verified = keep_ks(&row.verified, &kept);
            row.answer = keep_ks(&row.answer, &kept);
        }
        split.areas = areas(split.main_rows());
        split.ks = kept;
    }
    Ok(())
}

/// The estimates of `ks`, in that order.
pub(super) fn keep_ks(estimates: &[Estimate], ks: &[u32]) -> Vec<Estimate> {
    ks.iter()
        .filter_map(|k| estimates.iter().find(|e| e.k == *k).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_ranges_or_lists_of_two_ops_or_more() {
        let pool = |t: &str| {
            t.parse::<OpPool>()
                .map(|p| (p.ops().to_vec(), p.to_string()))
        };
        assert_eq!(pool("8..=10"), Ok((vec![8, 9, 10], "8-10".to_owned())));
        assert_eq!(pool("10, 8,8"), Ok((vec![8, 10], "8,10".to_owned())));
        assert_eq!(pool("3,2"), Ok((vec![2, 3], "2-3".to_owned())));
        for (bad, says) in [
            ("9", "one op"),
            ("9..=9", "one op"),
            ("9,9", "one op"),
            ("10..=8", "10 is above 8"),
            ("8..10", "`8..10` is not an op"),
            ("8,x", "`x` is not an op"),
            ("1..=4294967295", "above op 200"),
            ("", "is not an op"),
        ] {
            let error = pool(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
    use crate::report::merge::tests::{row, split};

    #[test]
    fn areas_are_recomputed_under_the_first_k_kept() {
        // One model on ops 2 and 3, its pass@k k / 1000: the area over one op is the mean of
        // the two ops' values, 1/1000 under pass@1 and 8/1000 under pass@8.
        let rows = [2, 3]
            .iter()
            .map(|&op| {
                let mut r = row("x", "m-1", &[1, 8]);
                r.selection = Selection::Op(op);
                r
            })
            .collect();
        let mut whole = split(rows, &[1, 8]);
        whole.areas = areas(&whole.cells);
        let mut report = Report {
            schema: 0,
            name: String::new(),
            runs: Vec::new(),
            replica_variables: Vec::new(),
            cells: Vec::new(),
            stages: Vec::new(),
            splits: vec![whole],
            curves: Vec::new(),
        };
        assert!((report.splits[0].areas[0].value - 0.001).abs() < 1e-12);
        restrict_ks(&mut report, &[8]).unwrap();
        let narrowed = &report.splits[0];
        assert_eq!(narrowed.ks, [8]);
        assert!(
            (narrowed.areas[0].value - 0.008).abs() < 1e-12,
            "{:?}",
            narrowed.areas
        );
        assert!(
            narrowed
                .cells
                .iter()
                .all(|r| r.verified.len() == 1 && r.answer.len() == 1)
        );
        let error = restrict_ks(&mut report, &[1]).unwrap_err();
        assert!(error.to_string().contains("pass@1"), "{error}");
    }
}
