//! `rlp fmt` over every fixture and pipeline: idempotent, and meaning-preserving
//! (`parse(fmt(x)) == parse(x)`, compared on the span-free syntax tree).

use crate::common::root;

fn rlp_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("tests/fixtures"), root().join("pipelines")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rlp") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn tree(src: &str) -> serde_json::Value {
    serde_json::to_value(rlp::syntax::parse(src).unwrap()).unwrap()
}

#[test]
fn fmt_is_idempotent_and_preserves_meaning() {
    let mut formatted_count = 0;
    for path in rlp_files() {
        let Ok(src) = std::fs::read_to_string(&path) else {
            continue;
        };
        if rlp::syntax::parse(&src).is_err() {
            continue;
        }
        let once = rlp::format::format_source(&src).unwrap();
        formatted_count += 1;
        let twice = rlp::format::format_source(&once).unwrap();
        assert_eq!(once, twice, "fmt is not idempotent on {}", path.display());
        assert_eq!(
            tree(&src),
            tree(&once),
            "fmt changed the meaning of {}",
            path.display()
        );
        let comments = |s: &str| {
            s.lines()
                .filter_map(|l| l.find('#').map(|i| l[i..].trim_end().to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            comments(&src),
            comments(&once),
            "fmt lost or moved a comment in {}",
            path.display()
        );
    }
    assert!(formatted_count > 50);
}
