//! A [`Report`] as a document of headings, paragraphs, tables and figures, written out as
//! Markdown (figures as files beside it), as one self-contained HTML page (figures inline, no
//! script, no request to the network), or as JSON.

use std::fmt::Write as _;

use super::charts::{Chart, XScale, svg};
use super::{ComparisonRow, PairedRow, Report, Selection, SplitComparison};
use crate::eval::stats::{Estimate, ROUNDS};

/// One block of the document.
#[derive(Debug, Clone)]
pub enum Element {
    /// A heading of level 1-3.
    Heading(u8, String),
    /// A paragraph of plain text (backticks mark code).
    Paragraph(String),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A chart: its file stem, its title and the SVG.
    Figure(String, String, String),
    /// Blocks folded away in the HTML page (shown in full in Markdown).
    Details(String, Vec<Element>),
}

/// The document's blocks.
///
/// # Errors
/// A chart that plotters could not draw, as text.
pub fn document(report: &Report) -> Result<Vec<Element>, String> {
    let mut blocks = vec![
        Element::Heading(1, format!("Report: {}", report.name)),
        Element::Paragraph(format!(
            "{} cells{}. pass@k is the unbiased estimator from each problem's sample counts; \
             [lo, hi] is a 95% bootstrap interval over problems ({ROUNDS} resamples){}.",
            report.cells.len(),
            if report.replica_variables.is_empty() {
                String::new()
            } else {
                format!(
                    "; cells that differ only in `{}` are replicas and are averaged",
                    report.replica_variables.join("`, `")
                )
            },
            if report.replica_variables.is_empty() {
                ""
            } else {
                ", resampling problems within each replica; (min-max) is the spread of the \
                 per-replica values"
            }
        )),
        Element::Heading(2, "Cells".to_owned()),
        Element::Table(
            vec![
                "cell".into(),
                "group".into(),
                "status".into(),
                "seconds".into(),
            ],
            report
                .cells
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.group.clone(),
                        c.status.clone(),
                        format!("{:.0}", c.seconds),
                    ]
                })
                .collect(),
        ),
        Element::Heading(2, "Stages".to_owned()),
        stage_table(report),
    ];
    for split in &report.splits {
        blocks.extend(split_blocks(split)?);
    }
    if !report.curves.is_empty() {
        blocks.push(Element::Heading(2, "Training curves".to_owned()));
        for curve in &report.curves {
            let title = format!("{}: {}", curve.stage, curve.metric);
            let chart = Chart {
                title: &title,
                x_label: "step",
                y_label: &curve.metric,
                x_scale: XScale::Linear,
                integer_x: true,
                unit_y: false,
                series: &curve.series,
            };
            blocks.push(Element::Figure(
                format!("curve-{}-{}", curve.stage, curve.metric.replace('/', "-")),
                title.clone(),
                svg(&chart)?,
            ));
        }
    }
    Ok(blocks)
}

fn stage_table(report: &Report) -> Element {
    let header = [
        "stage", "kind", "used by", "steps", "tokens", "FLOPs", "loss", "held-out", "reward",
        "seconds", "seed", "hash",
    ];
    let rows = report
        .stages
        .iter()
        .map(|s| {
            let done = s.done.as_ref();
            let number = |v: Option<f64>, digits: usize| {
                v.filter(|v| v.is_finite())
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
            };
            vec![
                s.name.clone(),
                s.kind.clone(),
                s.used_by.clone(),
                done.map_or_else(|| "-".to_owned(), |d| d.steps.to_string()),
                done.map_or_else(|| "-".to_owned(), |d| d.tokens.to_string()),
                done.and_then(|d| d.flops)
                    .map_or_else(|| "-".to_owned(), |f| format!("{f:.2e}")),
                number(done.filter(|d| d.reward.is_none()).map(|d| d.final_loss), 3),
                number(done.and_then(|d| d.heldout_loss), 3),
                number(done.and_then(|d| d.reward), 3),
                number(done.map(|d| d.seconds), 0),
                s.seed.to_string(),
                s.hash.clone(),
            ]
        })
        .collect();
    Element::Table(header.iter().map(|h| (*h).to_owned()).collect(), rows)
}

/// The ks a table shows: all of up to five, else the first, the last, and two between.
fn shown_ks(ks: &[u32]) -> Vec<u32> {
    if ks.len() <= 5 {
        return ks.to_vec();
    }
    let mut out: Vec<u32> = [
        0,
        ks.len() / 3,
        2 * ks.len() / 3,
        ks.len().saturating_sub(1),
    ]
    .iter()
    .filter_map(|&i| ks.get(i).copied())
    .collect();
    out.dedup();
    out
}

fn estimate(e: &Estimate) -> String {
    let spread = match (e.seed_min, e.seed_max) {
        (Some(lo), Some(hi)) => format!(" ({lo:.2}-{hi:.2})"),
        _ => String::new(),
    };
    format!("{:.2} [{:.2}, {:.2}]{spread}", e.value, e.lo, e.hi)
}

/// A difference, signed, to three places: `+.039 [+.011, +.075] (+.020 to +.061)`.
fn difference(e: &Estimate) -> String {
    let signed = |v: f64| {
        // `+ 0.0` turns an exact -0.0 into 0.0, which prints as +.000.
        let text = format!("{:+.3}", v + 0.0);
        text.replacen("0.", ".", 1)
    };
    let spread = match (e.seed_min, e.seed_max) {
        (Some(lo), Some(hi)) => format!(" ({} to {})", signed(lo), signed(hi)),
        _ => String::new(),
    };
    format!(
        "{} [{}, {}]{spread}",
        signed(e.value),
        signed(e.lo),
        signed(e.hi)
    )
}

fn selection(s: &Selection) -> String {
    match s {
        Selection::Op(op) => op.to_string(),
        Selection::Ops(pool) => pool.to_string(),
        Selection::All => "all".to_owned(),
        Selection::Context(c) => format!("all, {c}"),
    }
}

/// A row's cells or groups, "every cell" when it stands for all of the table's (> 1).
fn units(units: &[String], all: &[&String]) -> String {
    if units.len() > 1 && units.len() == all.len() {
        "every cell".to_owned()
    } else {
        units.join("; ")
    }
}

/// The distinct units of a table's rows, in order.
fn all_units<'a>(rows: impl Iterator<Item = &'a Vec<String>>) -> Vec<&'a String> {
    let mut out: Vec<&String> = Vec::new();
    for unit in rows.flatten() {
        if !out.contains(&unit) {
            out.push(unit);
        }
    }
    out
}

/// A table of pass@k rows, each with the label of its model column: `columns` names the model
/// and count columns, `format` writes an estimate.
fn pass_table(
    rows: &[(&ComparisonRow, String)],
    columns: [&str; 2],
    ks: &[u32],
    format: fn(&Estimate) -> String,
) -> Element {
    let shown = shown_ks(ks);
    let all = all_units(rows.iter().map(|(r, _)| &r.units));
    let mut header = vec![
        "cells".to_owned(),
        columns[0].to_owned(),
        "op".to_owned(),
        columns[1].to_owned(),
        "problems".to_owned(),
    ];
    header.extend(shown.iter().map(|k| format!("verified pass@{k}")));
    if let Some(k) = shown.last() {
        header.push(format!("answer pass@{k}"));
    }
    let body = rows
        .iter()
        .map(|(r, model)| {
            let mut line = vec![
                units(&r.units, &all),
                model.clone(),
                selection(&r.selection),
                r.replicas.to_string(),
                r.problems.to_string(),
            ];
            let pick = |list: &[Estimate], k: u32| {
                list.iter()
                    .find(|e| e.k == k)
                    .map_or_else(|| "-".to_owned(), format)
            };
            line.extend(shown.iter().map(|&k| pick(&r.verified, k)));
            if let Some(&k) = shown.last() {
                line.push(pick(&r.answer, k));
            }
            line
        })
        .collect();
    Element::Table(header, body)
}

fn comparison_table(rows: &[ComparisonRow], ks: &[u32]) -> Element {
    let rows: Vec<_> = rows.iter().map(|r| (r, r.model.clone())).collect();
    pass_table(&rows, ["model", "replicas"], ks, estimate)
}

fn paired_table(rows: &[PairedRow], ks: &[u32]) -> Element {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                &r.difference,
                format!("{} - {}", r.difference.model, r.base),
            )
        })
        .collect();
    pass_table(&rows, ["model - base", "pairs"], ks, difference)
}

fn split_blocks(split: &SplitComparison) -> Result<Vec<Element>, String> {
    let name = format!("{} / {}", split.eval, split.split);
    let mut blocks = vec![Element::Heading(2, format!("Eval {name}"))];
    let main = split.main_rows();
    blocks.push(comparison_table(main, &split.ks));
    if !split.groups.is_empty() {
        blocks.push(Element::Details(
            "Per cell".to_owned(),
            vec![comparison_table(&split.cells, &split.ks)],
        ));
    }
    if !split.paired.is_empty() {
        blocks.push(Element::Paragraph(format!(
            "Paired: each model minus the model it was trained from, problem by problem over \
             the same problems; [lo, hi] is a 95% bootstrap interval over problems{}.",
            if split.groups.is_empty() {
                ""
            } else {
                " (resampled once for all pairs when they share the problems); (a to b) is the \
                 spread of the per-pair differences"
            }
        )));
        if split.paired.iter().any(|r| r.asked) {
            blocks.push(Element::Paragraph(
                "The table also holds the pairs asked for with `--pair`: in each cell of the \
                 model, the model minus the base in the cell that agrees with it on every sweep \
                 variable the base does not name (the same cell when it names none; a sweep \
                 zipped with a named one follows it)."
                    .to_owned(),
            ));
        }
        blocks.push(paired_table(&split.paired, &split.ks));
    }
    if !split.areas.is_empty() {
        let all = all_units(split.areas.iter().map(|a| &a.units));
        blocks.push(Element::Paragraph(format!(
            "Area under verified pass@{} against op (trapezoids, in ops):",
            split.ks.first().copied().unwrap_or(1)
        )));
        blocks.push(Element::Table(
            vec!["cells".into(), "model".into(), "ops".into(), "area".into()],
            split
                .areas
                .iter()
                .map(|a| {
                    vec![
                        units(&a.units, &all),
                        a.model.clone(),
                        format!("{}-{}", a.ops.0, a.ops.1),
                        format!("{:.2}", a.value),
                    ]
                })
                .collect(),
        ));
    }
    let all = all_units(main.iter().map(|r| &r.units));
    let label = |r: &ComparisonRow| format!("{} · {}", units(&r.units, &all), r.model);
    let over_k = |selection: &Selection| -> Vec<(String, Vec<(f64, f64)>)> {
        main.iter()
            .filter(|r| r.selection == *selection)
            .map(|r| {
                let points = r
                    .verified
                    .iter()
                    .map(|e| (f64::from(e.k), e.value))
                    .collect();
                (label(r), points)
            })
            .collect()
    };
    let mut over_op: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in main {
        let Selection::Op(op) = r.selection else {
            continue;
        };
        let Some(pass1) = r.verified.first() else {
            continue;
        };
        let key = label(r);
        match over_op.iter_mut().find(|(l, _)| *l == key) {
            Some((_, points)) => points.push((f64::from(op), pass1.value)),
            None => over_op.push((key, vec![(f64::from(op), pass1.value)])),
        }
    }
    let stem = format!("{}-{}", split.eval, split.split);
    // The whole split's curves, then those of each pool asked for (`--ops`).
    let mut charted = vec![Selection::All];
    for r in main {
        if matches!(r.selection, Selection::Ops(_)) && !charted.contains(&r.selection) {
            charted.push(r.selection.clone());
        }
    }
    for selection in &charted {
        let (named, file) = match selection {
            Selection::Ops(pool) => (
                format!(", op {pool}"),
                format!("-op{}", pool.to_string().replace(',', "_")),
            ),
            _ => (String::new(), String::new()),
        };
        let title = format!("{name}{named}: verified pass@k against k");
        blocks.push(Element::Figure(
            format!("{stem}{file}-pass-at-k"),
            title.clone(),
            svg(&Chart {
                title: &title,
                x_label: "k",
                y_label: "verified pass@k",
                x_scale: XScale::Log2,
                integer_x: false,
                unit_y: true,
                series: &over_k(selection),
            })?,
        ));
    }
    if over_op.iter().any(|(_, p)| p.len() > 1) {
        let k = split.ks.first().copied().unwrap_or(1);
        let title = format!("{name}: verified pass@{k} against op");
        blocks.push(Element::Figure(
            format!("{stem}-pass-at-{k}-by-op"),
            title.clone(),
            svg(&Chart {
                title: &title,
                x_label: "op(G)",
                y_label: &format!("verified pass@{k}"),
                x_scale: XScale::Linear,
                integer_x: true,
                unit_y: true,
                series: &over_op,
            })?,
        ));
    }
    Ok(blocks)
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The document as Markdown; figures are linked as `plots/<stem>.svg`, which the caller writes
/// from [`figures`].
#[must_use]
pub fn markdown(blocks: &[Element]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Element::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Element::Paragraph(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Element::Table(header, rows) => {
                let _ = writeln!(out, "| {} |", header.join(" | "));
                let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
                for row in rows {
                    let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push('\n');
            }
            Element::Figure(stem, title, _) => {
                let _ = writeln!(out, "![{title}](plots/{stem}.svg)\n");
            }
            Element::Details(summary, inner) => {
                let _ = writeln!(out, "**{summary}**\n");
                out.push_str(&markdown(inner));
            }
        }
    }
    out
}

/// Every figure of the document (nested ones included): (file stem, SVG).
#[must_use]
pub fn figures(blocks: &[Element]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in blocks {
        match block {
            Element::Figure(stem, _, svg) => out.push((stem.clone(), svg.clone())),
            Element::Details(_, inner) => out.extend(figures(inner)),
            _ => {}
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Backticked spans as `<code>`, the rest escaped.
fn inline(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:13px}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}\
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}\
figure{margin:1em 0}figcaption{font-size:13px;color:#555}\
details{margin:1em 0}summary{cursor:pointer;font-weight:bold}\
.scroll{overflow-x:auto}";

/// The document as one HTML page: inline SVG, inline CSS, no script.
#[must_use]
pub fn html(blocks: &[Element]) -> String {
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Element::Heading(1, t) => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "rlp report".to_owned());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
        escape(&title),
        html_blocks(blocks)
    )
}

fn html_blocks(blocks: &[Element]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Element::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Element::Paragraph(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline(text));
            }
            Element::Table(header, rows) => {
                out.push_str("<div class=\"scroll\"><table>\n<tr>");
                for h in header {
                    let _ = write!(out, "<th>{}</th>", escape(h));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        let _ = write!(out, "<td>{}</td>", escape(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table></div>\n");
            }
            Element::Figure(_, title, svg) => {
                let _ = writeln!(
                    out,
                    "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    svg.trim(),
                    escape(title)
                );
            }
            Element::Details(summary, inner) => {
                let _ = writeln!(
                    out,
                    "<details>\n<summary>{}</summary>\n{}</details>",
                    escape(summary),
                    html_blocks(inner)
                );
            }
        }
    }
    out
}
