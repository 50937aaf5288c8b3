//! `pipelines/paper/`: the reference's experiments at the reference's scale. Every file checks
//! with no error (W0114 only: the English problems' worst case exceeds the context, as the
//! reference's do), is formatted, and its plan carries the reference's numbers, written here
//! from `../shared/design/reference-framework.md` §E (not read back from the files).
#![allow(clippy::float_cmp)] // the numbers are exact in f64

use rlp::diagnostics::Diagnostic;
use rlp::plan::{Decay, Plan, RlSpec, StageSpec, TrainSpec};

use crate::common::root;

fn plan(file: &str) -> Plan {
    let path = format!("pipelines/paper/{file}.rlp");
    let src = std::fs::read_to_string(root().join(&path)).unwrap();
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new(path, src));
    let unexpected: Vec<&Diagnostic> = compilation
        .diagnostics
        .problems
        .iter()
        .filter(|p| p.code() != "rlp::W0114")
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}",
        compilation.diagnostics.render_plain(100)
    );
    compilation.plan.unwrap()
}

fn train<'a>(plan: &'a Plan, name: &str) -> Vec<&'a TrainSpec> {
    plan.stages
        .iter()
        .filter(|s| s.name == name)
        .map(|s| match &s.spec {
            StageSpec::Pretrain(t) | StageSpec::Midtrain(t) => t,
            StageSpec::Rl(_) => panic!("{name} is an rl stage"),
        })
        .collect()
}

fn rl(plan: &Plan) -> Vec<&RlSpec> {
    plan.stages
        .iter()
        .filter_map(|s| match &s.spec {
            StageSpec::Rl(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// §E.1: the main base, identical in every file that starts from it.
fn assert_main_base(plan: &Plan) {
    let base = train(plan, "base")[0];
    let model = &plan.models[base.model.0];
    assert_eq!(
        (
            model.layers,
            model.hidden,
            model.heads,
            model.kv_heads,
            model.ffn,
            model.context
        ),
        (12, 768, 12, 2, 3072, 2048)
    );
    assert_eq!(model.rope_theta, 1e6);
    assert!(model.tied_embeddings && model.qkv_bias);
    assert_eq!(base.tokens, 10_000_000_000);
    assert_eq!(u64::from(base.batch) * u64::from(base.seq_len), 524_288);
    assert_eq!(base.seq_len, 2048);
    assert_eq!(
        (base.lr.peak, base.lr.floor, base.lr.warmup),
        (1e-4, 3e-5, 0.05)
    );
    assert_eq!(base.lr.decay, Decay::Cosine);
    assert_eq!((base.weight_decay, base.grad_clip), (0.1, 1.0));
}

/// The per-op weights of a mixture, ops 2.. in order.
fn weights(plan: &Plan, spec: &TrainSpec) -> Vec<(u32, f64)> {
    let _ = plan;
    spec.data
        .components
        .iter()
        .map(|c| (c.source.op_min, (c.weight * 1e4).round() / 1e4))
        .collect()
}

/// §E.3: GRPO as the reference runs it.
fn assert_reference_grpo(r: &RlSpec) {
    assert_eq!(
        (r.prompts_per_step, r.group, r.minibatches, r.epochs),
        (1024, 6, 4, 1)
    );
    assert_eq!((r.lr, r.weight_decay, r.grad_clip), (1e-6, 0.01, 1.0));
    assert_eq!((r.kl, r.clip_low, r.clip_high), (0.001, 0.2, 0.2));
    assert_eq!((r.temperature, r.top_p, r.max_new_tokens), (1.0, 1.0, 1024));
    assert_eq!(r.max_prompt_tokens, Some(1024));
    // Greedy validation on op 2-20, 200 problems each, every 20 steps and before the first.
    let validate = r
        .validate
        .as_ref()
        .expect("the reference validates during RL");
    assert_eq!(
        (validate.source.op_min, validate.source.op_max),
        (2, 20),
        "validation ops"
    );
    assert_eq!((validate.problems_per_op, validate.every), (200, 20));
}

#[test]
fn the_paper_pipelines_carry_the_references_numbers() {
    let base = plan("base");
    assert_main_base(&base);
    assert_eq!(base.cells.len(), 8, "the eight op-level mixtures");
    let mixtures: Vec<Vec<(u32, f64)>> = train(&base, "base")
        .iter()
        .map(|t| weights(&base, t))
        .collect();
    let ops: Vec<u32> = (2..=10).collect();
    let expect = |w: [f64; 9]| ops.iter().copied().zip(w).collect::<Vec<_>>();
    assert_eq!(
        mixtures[0],
        expect([0.06, 0.06, 0.08, 0.1, 0.1, 0.1, 0.16, 0.16, 0.18])
    );
    assert_eq!(
        mixtures[1],
        expect([0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.12])
    );
    assert_eq!(
        mixtures[2],
        expect([0.18, 0.16, 0.16, 0.1, 0.1, 0.1, 0.08, 0.06, 0.06])
    );
    // The headroom mixtures, normalized as the reference's loader normalizes them.
    let hard_share = |m: &[(u32, f64)]| {
        m.iter()
            .filter(|(op, _)| *op >= 8)
            .map(|c| c.1)
            .sum::<f64>()
    };
    let shares: Vec<f64> = mixtures[3..]
        .iter()
        .map(|m| (hard_share(m) * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(shares, [0.2, 0.05, 0.01, 0.009, 0.5]);
    let eval = &base.cells[0].evals[0];
    assert_eq!(
        (eval.problems_per_op, eval.samples, eval.max_new_tokens),
        (200, 128, 1024)
    );
    assert_eq!(eval.temperature, 0.7);

    // Extrapolation: four ranges, 195 steps (4 ops x 50k prompts / 1024), outcome reward.
    let extrapolation = plan("extrapolation");
    assert_main_base(&extrapolation);
    let ranges: Vec<(u32, u32)> = rl(&extrapolation)
        .iter()
        .map(|r| {
            (
                r.prompts.components[0].source.op_min,
                r.prompts.components[0].source.op_max,
            )
        })
        .collect();
    assert_eq!(ranges, [(7, 10), (9, 12), (11, 14), (17, 20)]);
    for r in rl(&extrapolation) {
        assert_reference_grpo(r);
        assert_eq!(r.steps, 195);
        assert_eq!(extrapolation.rewards[r.reward.0].name, "outcome");
    }
    // One base stage shared by every cell, the same as base.rlp's main one.
    assert_eq!(train(&extrapolation, "base").len(), 1);
    assert_eq!(
        train(&extrapolation, "base")[0].data,
        train(&base, "base")[0].data
    );

    // The four rewards, 200 steps on op 11-14.
    let rewards = plan("rewards");
    let names: Vec<&str> = rl(&rewards)
        .iter()
        .map(|r| rewards.rewards[r.reward.0].name.as_str())
        .collect();
    assert_eq!(names, ["outcome", "blend_20_80", "blend_50_50", "strict"]);
    for r in rl(&rewards) {
        assert_reference_grpo(r);
        assert_eq!(r.steps, 200);
    }

    // Compute split: a budget of 100 RL steps, 1 step = 20.3M mid-training tokens; the
    // mid-training is one 20B schedule (15% warmup) stopped at f x 100 x 20.3M tokens, which
    // lands on the reference's checkpoints 774 / 1935 / 3096 within a step (38.7 steps per
    // RL step, rounded up to whole batches).
    let compute = plan("compute");
    let mids = train(&compute, "mid");
    let stops: Vec<Option<u64>> = mids.iter().map(|m| m.stop).collect();
    assert_eq!(
        stops,
        [
            Some(0),
            Some(406_000_000),
            Some(1_015_000_000),
            Some(1_624_000_000)
        ]
    );
    let steps: Vec<u64> = mids.iter().map(|m| m.steps()).collect();
    assert_eq!(steps, [0, 775, 1936, 3098]);
    for mid in &mids {
        assert_eq!(mid.tokens, 20_000_000_000);
        assert_eq!(
            (mid.lr.peak, mid.lr.floor, mid.lr.warmup),
            (1e-4, 3e-5, 0.15)
        );
    }
    let cpt = weights(&compute, mids[0]);
    let replay: f64 = cpt.iter().filter(|(op, _)| *op <= 10).map(|c| c.1).sum();
    assert!((replay - 0.2).abs() < 0.0025, "{cpt:?}"); // 9 x .022, as the reference
    assert!(
        cpt.iter()
            .filter(|(op, _)| *op >= 11)
            .all(|c| (c.1 - 0.2).abs() < 0.001)
    );
    let rl_steps: Vec<u32> = rl(&compute).iter().map(|r| r.steps).collect();
    assert_eq!(rl_steps, [100, 80, 50, 20]);

    // Context exposure: teacher op 2 at 0 / 0.1 / 1 / 10% of the pre-training tokens.
    let context = plan("context");
    let shares: Vec<f64> = train(&context, "base")
        .iter()
        .map(|t| {
            t.data
                .components
                .iter()
                .find(|c| context.contexts[c.source.contexts[0].0].name == "teacher")
                .map_or(0.0, |c| c.weight)
        })
        .collect();
    assert_eq!(shares, [0.0, 0.001, 0.01, 0.1]);
    for r in rl(&context) {
        assert_reference_grpo(r);
        assert_eq!(r.steps, 200);
    }
}

#[test]
fn the_paper_pipelines_are_formatted_and_submit_as_one_job_graph() {
    let dir = root().join("pipelines/paper");
    let out = root()
        .join("target/test-runs")
        .join(format!("paper-submit-{}", std::process::id()));
    // Jobs: one per stage instance and one per eval of each cell.
    for (file, jobs) in [
        ("base", 16),
        ("extrapolation", 9),
        ("rewards", 9),
        ("compute", 13),
        ("context", 12),
    ] {
        let path = dir.join(format!("{file}.rlp"));
        let src = std::fs::read_to_string(&path).unwrap();
        let formatted = rlp::format::format_source(&src).unwrap();
        assert_eq!(formatted, src, "{} is not formatted", path.display());
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args([
                "submit",
                path.to_str().unwrap(),
                "--slurm",
                "--dry-run",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{file}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("{jobs} jobs written"))
                || stderr.contains(&format!("{jobs} jobs written")),
            "{file}: {stdout}{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn minibatches_and_prompt_limits_must_fit_the_step_and_context() {
    let src = std::fs::read_to_string(root().join("pipelines/paper/rewards.rlp")).unwrap();
    let bad = src.replace("    minibatches 4\n", "    minibatches 3\n");
    assert_ne!(bad, src);
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("rewards.rlp", bad));
    assert!(compilation.plan.is_none());
    let shown = compilation.diagnostics.render_plain(100);
    assert!(
        shown.contains("E0402") && shown.contains("a divisor of `prompts_per_step` (1024)"),
        "{shown}"
    );
    // And a prompt limit must leave room in the context.
    let bad = src.replace(
        "    max_prompt_tokens 1024\n",
        "    max_prompt_tokens 4096\n",
    );
    assert_ne!(bad, src);
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("rewards.rlp", bad));
    let shown = compilation.diagnostics.render_plain(100);
    assert!(shown.contains("`max_prompt_tokens`"), "{shown}");
}
