//! `rlp check FILE...`

use std::path::PathBuf;

use serde_json::json;

use super::super::{OutputFormat, Status, eprint_line, eprint_raw, print_raw, read};
use crate::diagnostics::JSON_SCHEMA;

pub(crate) fn run(files: &[PathBuf], format: OutputFormat, color: bool) -> Status {
    let mut status = Status::Success;
    let mut records = Vec::new();
    let (mut errors, mut warnings, mut unreadable) = (0, 0, 0);
    for path in files {
        let bytes = match read(path) {
            Ok(bytes) => bytes,
            Err(failure) => {
                status = failure;
                unreadable += 1;
                continue;
            }
        };
        let compilation = crate::compile_bytes(&path.display().to_string(), &bytes);
        let diagnostics = &compilation.diagnostics;
        errors += diagnostics.error_count();
        warnings += diagnostics.problems.len() - diagnostics.error_count();
        if diagnostics.has_errors() && status == Status::Success {
            status = Status::Problems;
        }
        match format {
            OutputFormat::Human => eprint_raw(&diagnostics.render_human(color)),
            OutputFormat::Json => records.extend(diagnostics.to_json()),
        }
    }
    match format {
        OutputFormat::Json => {
            let document = json!({
                "schema": JSON_SCHEMA,
                "diagnostics": records,
                "summary": {
                    "files": files.len(),
                    "unreadable": unreadable,
                    "errors": errors,
                    "warnings": warnings,
                },
            });
            print_raw(&format!(
                "{}\n",
                serde_json::to_string_pretty(&document).unwrap_or_default()
            ));
        }
        OutputFormat::Human => {
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            let checked = if unreadable == 0 {
                plural(files.len(), "file")
            } else {
                format!(
                    "{} of {} ({} could not be read)",
                    files.len() - unreadable,
                    plural(files.len(), "file"),
                    unreadable
                )
            };
            eprint_line(&format!(
                "checked {checked}: {}, {}",
                plural(errors, "error"),
                plural(warnings, "warning")
            ));
        }
    }
    status
}
