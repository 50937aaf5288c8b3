//! Diagnostic codes: unique, explained, and each one fired by a fixture.

use std::collections::BTreeSet;

use crate::common::root;

/// Every `code(rlp::...)` written in the diagnostic types' source.
fn declared_codes() -> Vec<String> {
    let mut codes = Vec::new();
    for file in [
        "src/syntax/error.rs",
        "src/diagnostics/analysis_error.rs",
        "src/diagnostics/analysis_warning.rs",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for part in text.split("code(rlp::").skip(1) {
            codes.push(part.split(')').next().unwrap().to_owned());
        }
    }
    codes
}

#[test]
fn codes_are_unique() {
    let codes = declared_codes();
    let unique: BTreeSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len(), "a code is used twice: {codes:?}");
    assert!(
        codes.len() >= 50,
        "expected the full set of codes, found {}",
        codes.len()
    );
}

#[test]
fn every_code_has_an_explanation_and_every_explanation_a_code() {
    let declared: BTreeSet<String> = declared_codes().into_iter().collect();
    let explained: BTreeSet<String> = rlp::diagnostics::explain::EXPLANATIONS
        .iter()
        .map(|e| e.code.to_owned())
        .collect();
    assert_eq!(declared, explained);
    for e in rlp::diagnostics::explain::EXPLANATIONS {
        assert!(e.text.len() > 60, "{} needs a real explanation", e.code);
    }
}

#[test]
fn every_code_has_an_err_fixture() {
    let mut fixtures = BTreeSet::new();
    for phase in ["syntax", "analysis"] {
        for entry in
            std::fs::read_dir(root().join("tests/fixtures").join(phase).join("err")).unwrap()
        {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            fixtures.insert(name.split('-').next().unwrap().to_owned());
        }
    }
    let missing: Vec<_> = declared_codes()
        .into_iter()
        .filter(|c| !fixtures.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without an err fixture: {missing:?}"
    );
}

#[test]
fn every_snapshot_belongs_to_a_fixture_or_pipeline() {
    // insta names glob snapshots `<name>@<path with / as __>.snap`; an orphan means a fixture
    // was renamed or removed without its snapshot.
    for entry in std::fs::read_dir(root().join("snapshots")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".snap") else {
            continue;
        };
        let (_, input) = stem
            .split_once('@')
            .expect("glob snapshots are named <name>@<input>");
        let path = input.replace("__", "/");
        let candidates = [
            root().join("tests/fixtures").join(&path),
            root().join("pipelines").join(&path),
        ];
        assert!(
            candidates.iter().any(|p| p.exists()),
            "orphaned snapshot {name}"
        );
    }
}
