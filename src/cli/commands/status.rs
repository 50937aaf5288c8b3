//! `rlp status RUNDIR [--json]`

use std::path::Path;

use super::super::{Status, eprint_line, print_raw};

pub(crate) fn run(run_dir: &Path, json: bool) -> Status {
    match crate::run::run_status(run_dir) {
        Ok((_, lines)) => {
            if json {
                let text: String = lines
                    .iter()
                    .filter_map(|l| serde_json::to_string(l).ok())
                    .map(|l| l + "\n")
                    .collect();
                print_raw(&text);
            } else {
                print_raw(&crate::run::status::render(&lines));
            }
            Status::Success
        }
        Err(message) => {
            eprint_line(&format!("error: {message}"));
            Status::Error
        }
    }
}
