//! `rlp explain [CODE]`

use super::super::{Status, eprint_line, print_raw};
use crate::diagnostics::explain::{EXPLANATIONS, find};

pub(crate) fn run(code: Option<&str>) -> Status {
    let Some(code) = code else {
        let mut out = String::new();
        for e in EXPLANATIONS {
            out.push_str(&format!("rlp::{}  {}\n", e.code, e.title));
        }
        print_raw(&out);
        return Status::Success;
    };
    match find(code) {
        Some(e) => {
            print_raw(&e.render());
            Status::Success
        }
        None => {
            eprint_line(&format!(
                "error: no diagnostic has the code `{code}`; `rlp explain` lists them all"
            ));
            Status::Error
        }
    }
}
