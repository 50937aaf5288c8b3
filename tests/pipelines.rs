//! Every bundled pipeline checks clean, and its plan is snapshotted.

use crate::common::{plan_for_snapshot, root, with_snapshot_settings};

#[test]
fn pipelines_check_clean() {
    insta::glob!("../pipelines", "*.rlp", |path| {
        let src = std::fs::read_to_string(path).unwrap();
        let name = format!("pipelines/{}", path.file_name().unwrap().to_string_lossy());
        let compilation = rlp::compile(&rlp::syntax::SourceFile::new(name, src));
        assert!(
            compilation.diagnostics.problems.is_empty(),
            "{}",
            compilation.diagnostics.render_plain(80)
        );
        let plan = compilation.plan.unwrap();
        with_snapshot_settings(path, || {
            insta::assert_json_snapshot!("plan", plan_for_snapshot(&plan));
        });
    });
}

#[test]
fn experiment_families_share_their_base() {
    for file in ["edge-of-competence", "compute-matched", "reward-variants"] {
        let src = std::fs::read_to_string(root().join(format!("pipelines/{file}.rlp"))).unwrap();
        let plan = rlp::compile(&rlp::syntax::SourceFile::new(file, src))
            .plan
            .unwrap();
        assert!(plan.cells.len() >= 3, "{file} sweeps");
        let base = plan.cells[0].stages[0];
        assert!(
            plan.cells.iter().all(|c| c.stages[0] == base),
            "{file}: one base for all cells"
        );
        assert_eq!(
            plan.stages.iter().filter(|s| s.name == "base").count(),
            1,
            "{file}"
        );
    }
}

#[test]
fn quickstart_is_small() {
    let src = std::fs::read_to_string(root().join("pipelines/quickstart.rlp")).unwrap();
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("quickstart", src))
        .plan
        .unwrap();
    assert_eq!(plan.cells.len(), 1);
    let rlp::plan::StageSpec::Pretrain(spec) = &plan.stages[0].spec else {
        panic!("a pretrain stage")
    };
    assert!(
        spec.tokens <= 10_000_000,
        "the quickstart must stay a few minutes on 2 cores"
    );
    assert_eq!(plan.models[spec.model.0].name, "tiny");
}

#[test]
fn findings_pipelines_declare_the_ladders_stages_unchanged() {
    // `rlp run` copies a stage from another run directory only when its key (content hash
    // and tokenizer) matches: the findings pipelines must declare the ladder's base exactly.
    let load = |file: &str| {
        let src = std::fs::read_to_string(root().join(format!("pipelines/{file}.rlp"))).unwrap();
        rlp::compile(&rlp::syntax::SourceFile::new(file, src))
            .plan
            .unwrap()
    };
    let ladder = load("ladder");
    let tokenizer = |plan: &rlp::plan::Plan| {
        serde_json::to_string(&rlp::tokenizer::Tokenizer::for_plan(plan)).unwrap()
    };
    for file in ["f1-edge", "f3-compute", "f4-rewards"] {
        let plan = load(file);
        assert_eq!(tokenizer(&plan), tokenizer(&ladder), "{file}: tokenizer");
        for stage in &ladder.stages {
            let same = plan.stages.iter().find(|s| s.name == stage.name);
            assert_eq!(
                same.map(|s| &s.hash),
                Some(&stage.hash),
                "{file}: stage `{}`",
                stage.name
            );
        }
    }
}
