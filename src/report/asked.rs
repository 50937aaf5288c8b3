//! Paired differences a reader asks for (`rlp report --pair MODEL:BASE`): any two evaluated
//! models on the same problems, beside each model's difference from the model it was trained
//! from. A model minus an older ancestor (`post:base` where `mid` is evaluated too), two
//! siblings of one run (`post[variant=strict]:post[variant=outcome]`), or models of two runs
//! (`f2-size/widen:f2-context/widen`).
//!
//! Each cell of the model is paired with the base's cell that has the base's bindings and agrees
//! with it on every other sweep variable both have: its own cell within a run, the same seed of
//! a sibling, the same exposure and seed in another run; a variable the base's bindings decide
//! (one zipped with a named one) need not agree. The model's bindings only pick its cells
//! (`post[base_seed=7]:widen` is each of those cells' `post` minus its own `widen`). The two
//! must have evaluated the same problems (an eval and split of the same names, problem by
//! problem), else that cell pairs nothing.

use std::fmt;
use std::str::FromStr;

use super::paired::{self, PairedRow, Pairing};
use super::read::{Cell, RunData};
use super::{OpPool, Report, ReportError};

/// One side of a requested pair: an evaluated model, its run, and the sweep bindings its cells
/// must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// The run's label (its directory's name); `None`: the other side's run, or each run.
    pub run: Option<String>,
    /// The evaluated stage.
    pub stage: String,
    /// `variable=value` its cells must have, spelled as the report's groups spell them.
    pub bindings: Vec<(String, String)>,
}

/// `MODEL:BASE`, each side `[RUN/]STAGE[VAR=VALUE,...]`: the model's pass@k minus the base's,
/// problem by problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    /// The side subtracted from.
    pub model: Side,
    /// The side subtracted.
    pub base: Side,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(run) = &self.run {
            write!(f, "{run}/")?;
        }
        write!(f, "{}{}", self.stage, bindings_text(&self.bindings))
    }
}

impl fmt::Display for PairRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.model, self.base)
    }
}

/// A side as rows name it: `stage[a=1]`, after `run: ` when it is another run's.
fn shown(side: &Side, run: Option<&str>) -> String {
    let run = run.map_or_else(String::new, |r| format!("{r}: "));
    format!("{run}{}{}", side.stage, bindings_text(&side.bindings))
}

/// `[a=1, b=2]`, or nothing without bindings.
fn bindings_text(bindings: &[(String, String)]) -> String {
    if bindings.is_empty() {
        return String::new();
    }
    let each: Vec<String> = bindings.iter().map(|(v, x)| format!("{v}={x}")).collect();
    format!("[{}]", each.join(", "))
}

impl FromStr for Side {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (head, bindings) = match text.find('[') {
            Some(open) => {
                let Some(inner) = text[open + 1..].strip_suffix(']') else {
                    return Err(format!(
                        "`{text}`: bindings are `[VAR=VALUE, ...]` at the end"
                    ));
                };
                let bindings = inner
                    .split(',')
                    .map(|b| match b.split_once('=') {
                        Some((v, x)) if !v.trim().is_empty() && !x.trim().is_empty() => {
                            Ok((v.trim().to_owned(), x.trim().to_owned()))
                        }
                        _ => Err(format!("`{text}`: `{}` is not VAR=VALUE", b.trim())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (&text[..open], bindings)
            }
            None => (text, Vec::new()),
        };
        let (run, stage) = match head.rsplit_once('/') {
            Some((run, stage)) => (Some(run.to_owned()), stage),
            None => (None, head),
        };
        let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !is_name(stage) {
            return Err(format!("`{text}`: `{stage}` is not a stage name"));
        }
        if run.as_deref() == Some("") {
            return Err(format!("`{text}`: the run before `/` is empty"));
        }
        Ok(Side {
            run,
            stage: stage.to_owned(),
            bindings,
        })
    }
}

impl FromStr for PairRequest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // The `:` between the sides, not one inside a side's bindings.
        let mut depth = 0i32;
        let colon = text.char_indices().find_map(|(i, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ':' if depth == 0 => return Some(i),
                _ => {}
            }
            None
        });
        let Some(colon) = colon else {
            return Err(format!(
                "`{text}` is not MODEL:BASE (e.g. `post:base`, `post[variant=strict]:post[variant=outcome]`, `f2-size/widen:f2-context/widen`)"
            ));
        };
        Ok(PairRequest {
            model: text[..colon].parse()?,
            base: text[colon + 1..].parse()?,
        })
    }
}

fn mismatch(request: &PairRequest, message: &str) -> ReportError {
    ReportError::Mismatch {
        message: format!("--pair {request}: {message}"),
    }
}

/// The names of the models a run evaluates.
fn evaluated(data: &RunData) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for spec in data.plan.cells.iter().flat_map(|c| &c.evals) {
        for model in &spec.models {
            let name = &data.plan.stages[model.0].name;
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// Whether a cell has every one of `bindings`.
fn has(cell: &Cell, bindings: &[(String, String)]) -> bool {
    bindings.iter().all(|b| cell.manifest.bindings.contains(b))
}

/// The cell's value of sweep variable `v`, if it has one.
fn value<'c>(cell: &'c Cell, v: &str) -> Option<&'c str> {
    let found = cell.manifest.bindings.iter().find(|(n, _)| n == v);
    found.map(|(_, x)| x.as_str())
}

/// Checks a side against its run: an evaluated model, sweep variables the run has, and some
/// cell with the bindings.
fn check(
    request: &PairRequest,
    side: &Side,
    data: &RunData,
    label: &str,
) -> Result<(), ReportError> {
    let models = evaluated(data);
    if !models.contains(&side.stage) {
        return Err(mismatch(
            request,
            &format!(
                "run `{label}` evaluates no model `{}` (it evaluates {})",
                side.stage,
                models.join(", ")
            ),
        ));
    }
    let variables: Vec<&str> = data
        .cells
        .first()
        .map(|c| {
            c.manifest
                .bindings
                .iter()
                .map(|(v, _)| v.as_str())
                .collect()
        })
        .unwrap_or_default();
    if let Some((variable, _)) = side
        .bindings
        .iter()
        .find(|(v, _)| !variables.contains(&v.as_str()))
    {
        return Err(mismatch(
            request,
            &format!(
                "`{variable}` is not a sweep variable of run `{label}` (its variables: {})",
                variables.join(", ")
            ),
        ));
    }
    if !data.cells.iter().any(|c| has(c, &side.bindings)) {
        return Err(mismatch(
            request,
            &format!(
                "no cell of run `{label}` has {}",
                bindings_text(&side.bindings)
            ),
        ));
    }
    Ok(())
}

/// The (model run, base run) index pairs a request applies to.
fn runs_of(
    request: &PairRequest,
    data: &[RunData],
    labels: &[String],
) -> Result<Vec<(usize, usize)>, ReportError> {
    let index = |run: &str| {
        labels.iter().position(|l| l == run).ok_or_else(|| {
            mismatch(
                request,
                &format!(
                    "no run `{run}` is reported (the runs: {})",
                    labels.join(", ")
                ),
            )
        })
    };
    let (model, base) = (&request.model, &request.base);
    let pairs = match (&model.run, &base.run) {
        (Some(m), Some(b)) => vec![(index(m)?, index(b)?)],
        (Some(run), None) | (None, Some(run)) => {
            let i = index(run)?;
            vec![(i, i)]
        }
        // Each run that evaluates both; one run is checked as it is.
        (None, None) if data.len() > 1 => {
            let both: Vec<(usize, usize)> = (0..data.len())
                .filter(|&i| {
                    let models = evaluated(&data[i]);
                    models.contains(&model.stage) && models.contains(&base.stage)
                })
                .map(|i| (i, i))
                .collect();
            if both.is_empty() {
                return Err(mismatch(
                    request,
                    "no run evaluates both models (name the runs: `RUN/MODEL:RUN/MODEL`)",
                ));
            }
            both
        }
        (None, None) => vec![(0, 0)],
    };
    for &(m, b) in &pairs {
        check(request, model, &data[m], &labels[m])?;
        check(request, base, &data[b], &labels[b])?;
    }
    Ok(pairs)
}

/// The variables of the base's run that its bindings decide: each varies in the run and takes
/// one value wherever the named variables take the same values (a sweep zipped with a named
/// one, as `updates` with `per_step`), so it follows them instead of having to agree.
fn decided(base: &RunData, bindings: &[(String, String)]) -> Vec<String> {
    if bindings.is_empty() {
        return Vec::new();
    }
    let follows = |v: &str| {
        let mut seen: Vec<(Vec<Option<&str>>, Option<&str>)> = Vec::new();
        for cell in &base.cells {
            let key: Vec<Option<&str>> = bindings.iter().map(|(n, _)| value(cell, n)).collect();
            let x = value(cell, v);
            match seen.iter().find(|(k, _)| *k == key) {
                Some((_, y)) if *y != x => return false,
                Some(_) => {}
                None => seen.push((key, x)),
            }
        }
        seen.iter().any(|(_, x)| *x != seen[0].1)
    };
    let mut variables: Vec<&String> = base
        .cells
        .iter()
        .flat_map(|c| c.manifest.bindings.iter().map(|(v, _)| v))
        .filter(|v| bindings.iter().all(|(n, _)| n != *v))
        .collect();
    variables.sort();
    variables.dedup();
    variables
        .into_iter()
        .filter(|v| follows(v))
        .cloned()
        .collect()
}

/// Per cell of the model's run, the base's cell: the one with the base's bindings that agrees
/// with the model's cell on every other variable both have (but those the bindings decide),
/// never the model's own cell when both sides are one stage of one run.
fn partners<'a>(
    request: &PairRequest,
    model: &RunData,
    base: &'a RunData,
    labels: (&str, &str),
) -> Result<Vec<Option<&'a Cell>>, ReportError> {
    let decided = decided(base, &request.base.bindings);
    let chosen = |v: &str| {
        request.base.bindings.iter().any(|(n, _)| n == v) || decided.iter().any(|d| d == v)
    };
    let one_stage = std::ptr::eq(model, base) && request.model.stage == request.base.stage;
    let mut out = Vec::new();
    for cell in &model.cells {
        if !has(cell, &request.model.bindings) {
            out.push(None);
            continue;
        }
        let agrees = |other: &Cell| {
            cell.manifest
                .bindings
                .iter()
                .all(|(v, x)| chosen(v) || value(other, v).is_none_or(|y| y == x))
        };
        let found: Vec<&Cell> = base
            .cells
            .iter()
            .filter(|c| has(c, &request.base.bindings) && agrees(c))
            .filter(|c| !(one_stage && std::ptr::eq(*c, cell)))
            .collect();
        if let [first, _, ..] = &found[..] {
            let differ: Vec<&(String, String)> = first
                .manifest
                .bindings
                .iter()
                .filter(|b| found.iter().any(|c| !c.manifest.bindings.contains(b)))
                .collect();
            let names: Vec<&str> = differ.iter().map(|(v, _)| v.as_str()).collect();
            let mut example = Side {
                run: Some(labels.1.to_owned()),
                ..request.base.clone()
            };
            example
                .bindings
                .extend(differ.first().map(|b| (*b).clone()));
            return Err(mismatch(
                request,
                &format!(
                    "cell `{}` of run `{}` matches {} cells of run `{}`, which differ in {}: name the base's, e.g. `{example}`",
                    cell.manifest.cell,
                    labels.0,
                    found.len(),
                    labels.1,
                    names.join(", "),
                ),
            ));
        }
        out.push(found.first().copied());
    }
    if one_stage && out.iter().all(Option::is_none) {
        return Err(mismatch(
            request,
            "a model minus itself in every cell: name the base's cells, e.g. `post[variant=outcome]`",
        ));
    }
    Ok(out)
}

/// Adds the rows each request asks for to the reports of the runs its models are in; a row the
/// lineage already gives is not added twice.
///
/// # Errors
/// A request that names an unknown run, model or binding, matches several base cells for one
/// model cell, or pairs no two models on the same problems.
pub(super) fn add(
    reports: &mut [Report],
    data: &[RunData],
    labels: &[String],
    requests: &[PairRequest],
    pools: &[OpPool],
) -> Result<(), ReportError> {
    for request in requests {
        let mut found = 0;
        for (m, b) in runs_of(request, data, labels)? {
            let partners = partners(request, &data[m], &data[b], (&labels[m], &labels[b]))?;
            // The model's run is the rows' (their units say it); another run's base names it.
            let shown = (
                shown(&request.model, None),
                shown(&request.base, (m != b).then(|| labels[b].as_str())),
            );
            let pairing = Pairing::Asked {
                model: &request.model.stage,
                base: &request.base.stage,
                shown: (&shown.0, &shown.1),
                partners: &partners,
            };
            for split in &mut reports[m].splits {
                let rows = paired::paired(
                    &pairing,
                    &data[m].cells,
                    data[m].paired_units(),
                    &split.eval,
                    &split.split,
                    &split.ks,
                    pools,
                );
                found += rows.len();
                for row in rows {
                    if !split.paired.iter().any(|known| same_row(known, &row)) {
                        split.paired.push(row);
                    }
                }
            }
        }
        if found == 0 {
            return Err(mismatch(
                request,
                "no cell holds both models on the same problems (the same eval and split, problem by problem)",
            ));
        }
    }
    Ok(())
}

/// Whether two paired rows are one: the same units, models, selection and stage directories.
fn same_row(a: &PairedRow, b: &PairedRow) -> bool {
    let (x, y) = (&a.difference, &b.difference);
    (&a.base, &x.model, &x.selection, &x.units, &x.dirs)
        == (&b.base, &y.model, &y.selection, &y.units, &y.dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(run: Option<&str>, stage: &str, bindings: &[(&str, &str)]) -> Side {
        Side {
            run: run.map(str::to_owned),
            stage: stage.to_owned(),
            bindings: bindings
                .iter()
                .map(|(v, x)| ((*v).to_owned(), (*x).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn requests_are_read_as_written() {
        let request: PairRequest = "runs/f2-size/widen[exposure=1%, replica=2]:post"
            .parse()
            .unwrap();
        assert_eq!(
            request,
            PairRequest {
                model: side(
                    Some("runs/f2-size"),
                    "widen",
                    &[("exposure", "1%"), ("replica", "2")]
                ),
                base: side(None, "post", &[]),
            }
        );
        assert_eq!(
            request.to_string(),
            "runs/f2-size/widen[exposure=1%, replica=2]:post"
        );
        let sibling: PairRequest = "post[range=3..=3]:post[range=2..=2]".parse().unwrap();
        assert_eq!(sibling.base, side(None, "post", &[("range", "2..=2")]));
        for bad in [
            "post",
            "post:",
            ":base",
            "po st:base",
            "post[range]:base",
            "post[range=3:base",
            "post[range=3]x:base",
            "/post:base",
        ] {
            assert!(bad.parse::<PairRequest>().is_err(), "{bad}");
        }
    }
}
