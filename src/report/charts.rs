//! Line charts as SVG text, for the report page: pass@k against k (log scale), pass@1 against
//! op, and training curves.

use plotters::coord::Shift;
use plotters::prelude::*;

/// How the x axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum XScale {
    /// Linear.
    Linear,
    /// Base-2 logarithmic (ks are powers of two).
    Log2,
}

/// One chart: a title, axis names, and labelled series of (x, y) points.
pub(super) struct Chart<'a> {
    /// Above the plot.
    pub(super) title: &'a str,
    /// Under the x axis.
    pub(super) x_label: &'a str,
    /// Beside the y axis.
    pub(super) y_label: &'a str,
    /// The x axis.
    pub(super) x_scale: XScale,
    /// The x values are whole numbers (ops, steps): ticks without fractions, at most 20.
    pub(super) integer_x: bool,
    /// The y axis spans [0, 1] (rates) rather than the data's range.
    pub(super) unit_y: bool,
    /// (label, points) per line.
    pub(super) series: &'a [(String, Vec<(f64, f64)>)],
}

/// Legend entries at most; the lines beyond are drawn and counted in an "and N more" entry.
const LEGEND_MAX: usize = 16;

/// The chart as a standalone `<svg>` element.
///
/// # Errors
/// A drawing error from plotters, as text.
pub(super) fn svg(chart: &Chart<'_>) -> Result<String, String> {
    let mut out = String::new();
    let legend_rows = chart.series.len().min(LEGEND_MAX);
    let height = 360 + 18 * legend_rows.saturating_sub(8) as u32;
    {
        let root = SVGBackend::with_string(&mut out, (760, height)).into_drawing_area();
        draw(&root, chart).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn bounds(chart: &Chart<'_>) -> ((f64, f64), (f64, f64)) {
    let points = chart.series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (1.0, 2.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if chart.unit_y {
        (y0, y1) = (0.0, 1.0);
    } else if y1 <= y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    } else {
        let pad = 0.05 * (y1 - y0);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    ((x0, x1), (y0, y1))
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let ((x0, x1), (y0, y1)) = bounds(chart);
    let (plot, legend) = root.split_horizontally(500);
    let mut builder = ChartBuilder::on(&plot);
    builder
        .caption(chart.title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(52);
    let series = |index: usize| Palette99::pick(index).to_rgba();
    match chart.x_scale {
        XScale::Log2 => {
            let mut c = builder.build_cartesian_2d((x0..x1).log_scale().base(2.0), y0..y1)?;
            c.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()?;
            for (i, (_, points)) in chart.series.iter().enumerate() {
                c.draw_series(LineSeries::new(
                    points.iter().copied(),
                    series(i).stroke_width(2),
                ))?;
                c.draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, 2, series(i).filled())),
                )?;
            }
        }
        XScale::Linear => {
            let mut c = builder.build_cartesian_2d(x0..x1, y0..y1)?;
            let mut mesh = c.configure_mesh();
            mesh.x_desc(chart.x_label).y_desc(chart.y_label);
            let whole = |x: &f64| format!("{x:.0}");
            if chart.integer_x {
                mesh.x_labels(((x1 - x0) as usize + 1).min(20))
                    .x_label_formatter(&whole);
            }
            mesh.draw()?;
            for (i, (_, points)) in chart.series.iter().enumerate() {
                c.draw_series(LineSeries::new(
                    points.iter().copied(),
                    series(i).stroke_width(2),
                ))?;
                // Points marked where there are few (ops), not along training curves.
                if points.len() <= 40 {
                    c.draw_series(
                        points
                            .iter()
                            .map(|&p| Circle::new(p, 2, series(i).filled())),
                    )?;
                }
            }
        }
    }
    let rows = (40..).step_by(18);
    for ((i, (label, _)), y) in chart
        .series
        .iter()
        .take(LEGEND_MAX)
        .enumerate()
        .zip(rows.clone())
    {
        legend.draw(&PathElement::new(
            vec![(4, y), (24, y)],
            series(i).stroke_width(3),
        ))?;
        legend.draw(&Text::new(
            label.clone(),
            (30, y - 7),
            ("sans-serif", 12).into_font(),
        ))?;
    }
    if let Some(y) = rows
        .clone()
        .nth(LEGEND_MAX)
        .filter(|_| chart.series.len() > LEGEND_MAX)
    {
        legend.draw(&Text::new(
            format!("and {} more", chart.series.len() - LEGEND_MAX),
            (30, y - 7),
            ("sans-serif", 12).into_font(),
        ))?;
    }
    Ok(())
}
