//! `rlp report RUNDIR... [--out DIR] [--k 1,8,32] [--pair MODEL:BASE] [--ops 8..=10]
//! [--format html|md|json]`

use std::path::{Path, PathBuf};

use super::super::{Status, eprint_line};
use crate::report::render::{self, Element};
use crate::run::write_atomically;

/// What `rlp report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// `report.html`: one self-contained page.
    Html,
    /// `report.md` and `plots/*.svg`.
    Md,
    /// `report.json`.
    Json,
}

pub(crate) fn run(
    runs: &[PathBuf],
    out: Option<&Path>,
    ks: &[u32],
    pairs: &[crate::report::PairRequest],
    pools: &[crate::report::OpPool],
    formats: &[ReportFormat],
) -> Status {
    let out: PathBuf = match (out, runs) {
        (Some(out), _) => out.to_owned(),
        (None, [run]) => run.join("report"),
        (None, _) => {
            eprint_line(
                "error: a report of several runs needs --out DIR (it belongs to none of them)",
            );
            return Status::Error;
        }
    };
    let report = crate::report::load_runs(runs, pairs, pools).and_then(|mut report| {
        if !ks.is_empty() {
            crate::report::restrict_ks(&mut report, ks)?;
        }
        Ok(report)
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprint_line(&format!("error: {error}"));
            return Status::Error;
        }
    };
    let formats = if formats.is_empty() {
        &[ReportFormat::Html, ReportFormat::Md, ReportFormat::Json][..]
    } else {
        formats
    };
    let blocks: Vec<Element> = if formats.iter().any(|f| *f != ReportFormat::Json) {
        match render::document(&report) {
            Ok(blocks) => blocks,
            Err(error) => {
                eprint_line(&format!("error: drawing a chart: {error}"));
                return Status::Error;
            }
        }
    } else {
        Vec::new()
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for format in formats {
        match format {
            ReportFormat::Html => files.push((out.join("report.html"), render::html(&blocks))),
            ReportFormat::Md => {
                files.push((out.join("report.md"), render::markdown(&blocks)));
                for (stem, svg) in render::figures(&blocks) {
                    files.push((out.join("plots").join(format!("{stem}.svg")), svg));
                }
            }
            ReportFormat::Json => match serde_json::to_string_pretty(&report) {
                Ok(text) => files.push((out.join("report.json"), text + "\n")),
                Err(error) => {
                    eprint_line(&format!("error: report JSON: {error}"));
                    return Status::Error;
                }
            },
        }
    }
    for (path, text) in &files {
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomically(path, text.as_bytes()));
        if let Err(error) = written {
            eprint_line(&format!("error: cannot write {}: {error}", path.display()));
            return Status::Error;
        }
    }
    for (path, _) in files.iter().filter(|(p, _)| p.parent() == Some(&out)) {
        eprint_line(&format!("wrote {}", path.display()));
    }
    Status::Success
}
