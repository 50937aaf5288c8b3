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
    // A pipeline that sweeps a ladder stage (f1-headroom's `widen`) must have the ladder's
    // among its instances; f1-headroom-seeds draws `widen` anew and f1-headroom-long makes it
    // twice as long; both share the stages before it.
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
    let every = ["base", "more", "widen"].as_slice();
    assert_eq!(ladder.stages.len(), every.len());
    for (file, shared) in [
        ("f1-edge", every),
        ("f1-rollouts", every),
        ("f1-headroom", every),
        ("f1-headroom-seeds", &["base", "more"]),
        ("f1-headroom-long", &["base", "more"]),
        ("f3-compute", every),
        ("f4-rewards", every),
    ] {
        let plan = load(file);
        assert_eq!(tokenizer(&plan), tokenizer(&ladder), "{file}: tokenizer");
        for stage in ladder
            .stages
            .iter()
            .filter(|s| shared.contains(&s.name.as_str()))
        {
            let hashes: Vec<&String> = plan
                .stages
                .iter()
                .filter(|s| s.name == stage.name)
                .map(|s| &s.hash)
                .collect();
            assert!(
                hashes.contains(&&stage.hash),
                "{file}: stage `{}`: {hashes:?} lacks the ladder's {}",
                stage.name,
                stage.hash
            );
        }
    }
}

/// The stages' `tokens` and `steps` of the one cell of `src`, in plan order.
fn amounts(src: &str) -> Vec<(String, u64)> {
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("budget.rlp", src));
    let plan = compilation
        .plan
        .unwrap_or_else(|| panic!("{}", compilation.diagnostics.render_plain(80)));
    plan.stages
        .iter()
        .map(|s| match &s.spec {
            rlp::plan::StageSpec::Pretrain(t) | rlp::plan::StageSpec::Midtrain(t) => {
                (s.name.clone(), t.tokens)
            }
            rlp::plan::StageSpec::Rl(r) => (s.name.clone(), u64::from(r.steps)),
        })
        .collect()
}

#[test]
fn a_flop_budget_buys_tokens_at_6n_and_rl_steps_at_the_declared_rate() {
    let file = |budget: &str| {
        format!(
            "seed 1\nuse prelude\ntask arith {{ contexts zoo\n phrasing compact }}\n\
             pretrain base {{ model tiny\n data arith[op 2..=3]\n tokens 100k }}\n\
             {budget}\nreward outcome = answer\n\
             midtrain mid from base {{ data arith[op 2..=3]\n tokens 25% of compute }}\n\
             rl post from mid {{ prompts arith[op 2..=3]\n steps 75% of compute\n reward outcome }}\n\
             eval {{ models post\n split id arith[op 2..=3] }}\n"
        )
    };
    let params = 854_656.0_f64; // the prelude's `tiny`, outside the embedding
    // 1e13 FLOPs: a quarter in tokens at 6N FLOPs per token, three quarters in steps of 1e11.
    let flops = amounts(&file(
        "budget compute = 1e13 flops where rl_step = 1e11 flops",
    ));
    let expected_tokens = (0.25 * 1e13 / (6.0 * params)).round() as u64;
    assert_eq!(flops[1], ("mid".to_owned(), expected_tokens));
    assert_eq!(flops[2], ("post".to_owned(), 75));
    // The same budget counted in RL steps, with the step's rate in FLOPs: the same plan.
    let steps = amounts(&file(
        "budget compute = 100 rl_steps where rl_step = 1e11 flops",
    ));
    assert_eq!(steps, flops);
    // A rate in tokens converts through 6N as well.
    let tokens = amounts(&file(&format!(
        "budget compute = 1e13 flops where rl_step = {} tokens",
        1e11 / (6.0 * params)
    )));
    assert_eq!(tokens, flops);
}
