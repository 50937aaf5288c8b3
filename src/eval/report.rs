//! Eval tables as CSV, a pass@k-against-op plot per split (SVG), and the plain-text summary
//! `rlp run` prints at the end.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::runner::{PassAt, Row};
use crate::plan::{EvalSpec, Metric};

/// The CSV of an eval's rows: one line per row, one column per estimator and k.
#[must_use]
pub fn csv(eval: &EvalSpec, rows: &[Row]) -> String {
    let mut out = String::from("model,split,op,context,problems,samples");
    for family in ["verified", "answer", "guess_sampled"] {
        for k in &eval.pass_at {
            let _ = write!(out, ",{family}_pass@{k}");
        }
    }
    out.push_str(",guess_commonest,process_acc,well_formed");
    for family in ["verified", "answer"] {
        for k in &eval.pass_at {
            let _ = write!(out, ",{family}_pass@{k}_lo,{family}_pass@{k}_hi");
        }
    }
    out.push('\n');
    for row in rows {
        let _ = write!(
            out,
            "{},{},{},{},{},{}",
            row.model,
            row.split,
            row.op.map_or_else(|| "all".to_owned(), |op| op.to_string()),
            row.context.as_deref().unwrap_or("all"),
            row.problems,
            row.samples
        );
        for family in [&row.verified, &row.answer, &row.guess_sampled] {
            for pass in family {
                let _ = write!(out, ",{:.4}", pass.value);
            }
        }
        let _ = write!(
            out,
            ",{:.4},{:.4},{:.4}",
            row.guess_commonest, row.process_acc, row.well_formed
        );
        for pass in row.verified.iter().chain(&row.answer) {
            match pass.interval {
                Some((lo, hi)) => {
                    let _ = write!(out, ",{lo:.4},{hi:.4}");
                }
                None => out.push_str(",,"),
            }
        }
        out.push('\n');
    }
    out
}

/// The headline numbers of a row: the eval's metric.
fn headline(eval: &EvalSpec, row: &Row) -> Vec<PassAt> {
    match eval.metric {
        Metric::Verified => row.verified.clone(),
        Metric::Answer => row.answer.clone(),
    }
}

/// An SVG plot of the headline pass@k against op for one split: one line per model and k.
pub fn plot_split(eval: &EvalSpec, rows: &[Row], split: &str) -> Result<String, String> {
    let per_op: Vec<&Row> = rows
        .iter()
        .filter(|r| r.split == split && r.op.is_some() && r.context.is_none())
        .collect();
    let ops: Vec<u32> = per_op.iter().filter_map(|r| r.op).collect();
    let (lo, hi) = (
        ops.iter().copied().min().unwrap_or(0),
        ops.iter().copied().max().unwrap_or(1),
    );
    let metric = match eval.metric {
        Metric::Verified => "verified pass@k (first-k)",
        Metric::Answer => "answer pass@k (unbiased)",
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{} / {split}: {metric}", eval.name),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(
                f64::from(lo) - 0.25..f64::from(hi.max(lo + 1)) + 0.25,
                0.0..1.0,
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("op(G)")
            .y_desc(metric)
            .x_labels((hi - lo + 1).min(20) as usize)
            .draw()
            .map_err(|e| e.to_string())?;
        let mut models: Vec<&str> = per_op.iter().map(|r| r.model.as_str()).collect();
        models.dedup();
        let mut series = 0;
        for model in models {
            for (i, k) in eval.pass_at.iter().enumerate() {
                let points: Vec<(f64, f64)> = per_op
                    .iter()
                    .filter(|r| r.model == model)
                    .filter_map(|r| Some((f64::from(r.op?), headline(eval, r).get(i)?.value)))
                    .collect();
                let color = Palette99::pick(series).to_rgba();
                series += 1;
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(format!("{model} pass@{k}"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The end-of-run table of one eval: per model, split and op, the headline pass@k, the
/// answer-only pass@k next to the guessing baseline, and `ProcessAcc`.
#[must_use]
pub fn summary(eval: &EvalSpec, rows: &[Row]) -> String {
    let mut out = String::new();
    let ks: Vec<String> = eval.pass_at.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "eval `{}`: {} problems per op, {} samples, temperature {}",
        eval.name, eval.problems_per_op, eval.samples, eval.temperature
    );
    let first = eval.pass_at.first().copied().unwrap_or(1);
    let metric = match eval.metric {
        Metric::Verified => "verified",
        Metric::Answer => "answer",
    };
    let _ = writeln!(
        out,
        "{:<12} {:<10} {:>4}  {:<22}  {:<22}  {:<22}  {:>7}  95% CI of {metric} pass@{first}",
        "model",
        "split",
        "op",
        format!("verified pass@{}", ks.join("/")),
        format!("answer pass@{}", ks.join("/")),
        format!("guessing pass@{}", ks.join("/")),
        "procacc",
    );
    let join = |values: &[PassAt]| {
        values
            .iter()
            .map(|p| format!("{:.2}", p.value))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for row in rows.iter().filter(|r| r.context.is_none()) {
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:>4}  {:<22}  {:<22}  {:<22}  {:>7.2}  {}",
            row.model,
            row.split,
            row.op.map_or_else(|| "all".to_owned(), |op| op.to_string()),
            join(&row.verified),
            join(&row.answer),
            join(&row.guess_sampled),
            row.process_acc,
            headline(eval, row)
                .first()
                .and_then(|p| p.interval)
                .map_or_else(|| "-".to_owned(), |(lo, hi)| format!("[{lo:.2}, {hi:.2}]"))
        );
    }
    out
}
