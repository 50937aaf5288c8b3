//! `rlp plan FILE`

use std::path::Path;

use super::super::{Status, eprint_raw, print_raw, read};

pub(crate) fn run(path: &Path, color: bool) -> Status {
    let bytes = match read(path) {
        Ok(bytes) => bytes,
        Err(status) => return status,
    };
    let compilation = crate::compile_bytes(&path.display().to_string(), &bytes);
    eprint_raw(&compilation.diagnostics.render_human(color));
    match compilation.plan {
        Some(plan) => match serde_json::to_string_pretty(&plan) {
            Ok(text) => {
                print_raw(&format!("{text}\n"));
                Status::Success
            }
            Err(_) => Status::Error,
        },
        None => Status::Problems,
    }
}
