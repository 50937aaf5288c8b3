//! `rlp fmt [--check] FILE...`

use std::path::PathBuf;

use super::super::{Status, eprint_line, eprint_raw, print_raw, read, write_atomically};
use crate::diagnostics::Diagnostics;
use crate::syntax::SourceFile;

pub(crate) fn run(files: &[PathBuf], check: bool, color: bool) -> Status {
    let mut status = Status::Success;
    let mut worse = |s: Status| {
        if s == Status::Error || status == Status::Success {
            status = s;
        }
    };
    for path in files {
        let bytes = match read(path) {
            Ok(bytes) => bytes,
            Err(s) => {
                worse(s);
                continue;
            }
        };
        let name = path.display().to_string();
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            eprint_raw(
                &crate::compile_bytes(&name, &bytes)
                    .diagnostics
                    .render_human(color),
            );
            worse(Status::Problems);
            continue;
        };
        let formatted = match crate::format::format_source(&text) {
            Ok(formatted) => formatted,
            Err(error) => {
                let diagnostics = Diagnostics::new(SourceFile::new(name, text), vec![error.into()]);
                eprint_raw(&diagnostics.render_human(color));
                worse(Status::Problems);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check {
            print_raw(&diff(&name, &text, &formatted));
            worse(Status::Problems);
        } else if let Err(error) = write_atomically(path, formatted.as_bytes()) {
            eprint_line(&format!("error: cannot write {name}: {error}"));
            worse(Status::Error);
        }
    }
    status
}

fn diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(name, &format!("{name} (formatted)"))
        .to_string()
}
