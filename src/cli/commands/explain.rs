//! `rlp explain [CODE]`, `rlp explain --markdown`

use std::fmt::Write as _;

use super::super::{Status, eprint_line, print_raw};
use crate::diagnostics::explain::{EXPLANATIONS, find, markdown};

pub(crate) fn run(code: Option<&str>, as_markdown: bool) -> Status {
    if as_markdown {
        print_raw(&markdown());
        return Status::Success;
    }
    let Some(code) = code else {
        let mut out = String::new();
        for e in EXPLANATIONS {
            let _ = writeln!(out, "rlp::{}  {}", e.code, e.title);
        }
        print_raw(&out);
        return Status::Success;
    };
    if let Some(e) = find(code) {
        print_raw(&e.render());
        Status::Success
    } else {
        eprint_line(&format!(
            "error: no diagnostic has the code `{code}`; `rlp explain` lists them all"
        ));
        Status::Error
    }
}
