//! Narrowing a report to the pass@k a reader asks for (`rlp report --k 1,8,32`): the tables'
//! columns, the JSON's estimates and the areas, which are under the first k kept.

use super::{Report, ReportError, areas};
use crate::eval::stats::Estimate;

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
    use crate::report::Selection;
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
