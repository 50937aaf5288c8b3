//! Fixture tests (ruff's pattern): every `tests/fixtures/*/ok/*.rlp` compiles with no
//! diagnostic at all and its plan is snapshotted; every `*/err/*.rlp` produces at least one
//! diagnostic, including the code its file name starts with, and the diagnostics are
//! snapshotted as code frames without colour at width 80.

use std::path::Path;

use crate::common::{plan_for_snapshot, with_snapshot_settings};

fn compile(path: &Path) -> rlp::Compilation {
    let bytes = std::fs::read(path).unwrap();
    let name = path
        .strip_prefix(crate::common::root())
        .unwrap_or(path)
        .display()
        .to_string();
    rlp::compile_bytes(&name, &bytes)
}

#[test]
fn ok_fixtures_compile_cleanly() {
    insta::glob!("fixtures/*/ok/*.rlp", |path| {
        let compilation = compile(path);
        assert!(
            compilation.diagnostics.problems.is_empty(),
            "{} should have no diagnostics:\n{}",
            path.display(),
            compilation.diagnostics.render_plain(80)
        );
        let plan = compilation.plan.expect("a clean file has a plan");
        with_snapshot_settings(path, || {
            insta::assert_json_snapshot!("plan", plan_for_snapshot(&plan));
        });
    });
}

#[test]
fn err_fixtures_report_their_code() {
    insta::glob!("fixtures/*/err/*.rlp", |path| {
        let compilation = compile(path);
        let problems = &compilation.diagnostics.problems;
        assert!(
            !problems.is_empty(),
            "{} should produce a diagnostic",
            path.display()
        );
        let stem = path.file_stem().unwrap().to_string_lossy();
        let code = format!("rlp::{}", stem.split('-').next().unwrap());
        assert!(
            problems.iter().any(|p| p.code() == code),
            "{} should report {code}, got {:?}",
            path.display(),
            problems
                .iter()
                .map(rlp::diagnostics::Diagnostic::code)
                .collect::<Vec<_>>()
        );
        if code.contains("::E") {
            assert!(
                compilation.plan.is_none(),
                "an error must withhold the plan"
            );
        } else {
            assert!(
                compilation.plan.is_some(),
                "warnings alone must not withhold the plan"
            );
        }
        with_snapshot_settings(path, || {
            insta::assert_snapshot!("diagnostics", compilation.diagnostics.render_plain(80));
        });
    });
}

#[test]
fn diagnostics_are_sorted_by_position() {
    let src =
        "use prelude\nseed 1\ntask t {\n    contexts zooo\n    phrasing compct\n}\npretrian x {}\n";
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("x.rlp", src));
    let starts: Vec<usize> = compilation
        .diagnostics
        .problems
        .iter()
        .map(|p| p.primary().0)
        .collect();
    assert_eq!(
        starts.len(),
        3,
        "{}",
        compilation.diagnostics.render_plain(80)
    );
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}

#[test]
fn sweep_cells_share_the_stages_that_do_not_depend_on_the_sweep() {
    let path = crate::common::root().join("tests/fixtures/analysis/ok/sweep-shares-base.rlp");
    let plan = compile(&path).plan.unwrap();
    assert_eq!(plan.cells.len(), 4);
    let bases: Vec<_> = plan.cells.iter().map(|c| c.stages[0]).collect();
    assert!(
        bases.iter().all(|b| *b == bases[0]),
        "every cell starts from the same base instance"
    );
    assert_eq!(plan.stages[bases[0].0].cells, vec![0, 1, 2, 3]);
    let posts: std::collections::BTreeSet<_> = plan.cells.iter().map(|c| c.stages[1]).collect();
    assert_eq!(posts.len(), 4, "each cell has its own RL stage");
    let hashes: std::collections::BTreeSet<_> =
        plan.stages.iter().map(|s| s.hash.clone()).collect();
    assert_eq!(
        hashes.len(),
        plan.stages.len(),
        "distinct instances have distinct hashes"
    );
}

#[test]
fn stage_hash_depends_on_content_and_seed() {
    let base = std::fs::read_to_string(
        crate::common::root().join("tests/fixtures/analysis/ok/minimal.rlp"),
    )
    .unwrap();
    let hash = |src: &str| {
        let plan = rlp::compile(&rlp::syntax::SourceFile::new("m.rlp", src))
            .plan
            .unwrap();
        (plan.stages[0].hash.clone(), plan.stages[0].seed)
    };
    let (h, seed) = hash(&base);
    assert_eq!(hash(&base), (h.clone(), seed), "same file, same hash");
    let reformatted = base.replace("    tokens 1M", "    tokens 1000k  # same amount");
    assert_eq!(
        hash(&reformatted).0,
        h,
        "layout and spelling of equal values do not matter"
    );
    assert_ne!(hash(&base.replace("tokens 1M", "tokens 2M")).0, h);
    let reseeded = hash(&base.replace("seed 7", "seed 8"));
    assert_ne!(reseeded.0, h);
    assert_ne!(reseeded.1, seed);
}

#[test]
fn a_stage_seed_makes_replicas_sharing_their_parent() {
    let src = "seed 7\nuse prelude\ntask t { contexts zoo\n phrasing compact }\n\
        pretrain base { model tiny\n data t[op 2..=3]\n tokens 1M }\n\
        sweep rep = [0, 1, 2]\n\
        midtrain more from base { data t[op 2..=3]\n tokens 1M\n seed $rep }\n";
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("r.rlp", src))
        .plan
        .unwrap();
    let stage = |cell: usize, i: usize| &plan.stages[plan.cells[cell].stages[i].0];
    assert_eq!(plan.cells.len(), 3);
    assert!(
        (0..3).all(|c| stage(c, 0).id == stage(0, 0).id),
        "one shared base"
    );
    let seeds: std::collections::BTreeSet<u64> = (0..3).map(|c| stage(c, 1).seed).collect();
    assert_eq!(seeds.len(), 3, "each replica has its own seed");
    let hashes: std::collections::BTreeSet<&str> =
        (0..3).map(|c| stage(c, 1).hash.as_str()).collect();
    assert_eq!(hashes.len(), 3, "and its own stage instance");
    let unseeded = src
        .replace("sweep rep = [0, 1, 2]\n", "")
        .replace("\n seed $rep", "");
    let plain = rlp::compile(&rlp::syntax::SourceFile::new("r.rlp", unseeded))
        .plan
        .unwrap();
    assert_eq!(
        plain.stages[plain.cells[0].stages[1].0].seed,
        stage(0, 1).seed,
        "`seed 0` is the default seed"
    );
}
