//! Validation during RL (`validate` in an `rl` block): greedy completions of fixed problems,
//! scored every few steps, logged beside the step's training metrics without changing them.
#![allow(clippy::float_cmp)] // resumed values must match bit for bit

use std::path::Path;

use rlp::plan::Plan;
use rlp::run::{RunOptions, Silent, execute};
use serde_json::Value;

use crate::common::root;
use crate::run::{input, interrupt_rl_at, options, scratch};

fn compile(name: &str, src: String) -> Plan {
    rlp::compile(&rlp::syntax::SourceFile::new(name, src))
        .plan
        .unwrap()
}

/// The rows of the `rl` stage's `metrics.jsonl` after running `plan`.
fn rl_rows(plan: &Plan, options: &RunOptions) -> Vec<Value> {
    let cells = execute(plan, &input(), options, &Silent).unwrap();
    let stage = &cells[0].manifest.stages[1];
    let path = cells[0].dir.join(&stage.dir).join("metrics.jsonl");
    rows(&path)
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The rows with a validation, each keeping only its `val/` keys.
fn validations(rows: &[Value]) -> Vec<(u64, serde_json::Map<String, Value>)> {
    rows.iter()
        .filter(|r| r.get("val/verified").is_some())
        .map(|r| {
            let keys = r.as_object().unwrap().iter();
            let val = keys.filter(|(k, _)| k.starts_with("val/"));
            (
                r["step"].as_u64().unwrap(),
                val.map(|(k, v)| (k.clone(), v.clone())).collect(),
            )
        })
        .collect()
}

/// A row without its timings (wall-clock dependent) and validation keys.
fn training_keys(row: &Value) -> Value {
    let mut row = row.clone();
    row.as_object_mut().unwrap().retain(|k, _| {
        !k.starts_with("val/") && !matches!(k.as_str(), "elapsed_s" | "rollouts_per_s")
    });
    row
}

#[test]
fn rl_validates_every_few_steps_without_changing_training() {
    // The fixture's reward prefers short completions; `validate` every 4 of its 10 steps.
    let src = std::fs::read_to_string(root().join("tests/fixtures/run/rl.rlp")).unwrap();
    let validated = src.replace(
        "    checkpoint_every 4\n",
        "    checkpoint_every 4\n    validate arith[op 2..=3] problems 6 every 4\n",
    );
    assert_ne!(validated, src);
    let plan = compile("rl-validate.rlp", validated);
    let out = scratch("rl-validate");
    let plain = rl_rows(&compile("rl.rlp", src), &options(&out));
    let with = rl_rows(&plan, &options(&out));

    // Before the first step, every 4 steps, and after the last.
    let checks = validations(&with);
    let steps: Vec<u64> = checks.iter().map(|c| c.0).collect();
    assert_eq!(steps, [0, 4, 8, 10]);
    for (step, val) in &checks {
        let get = |k: &str| val[k].as_f64().unwrap_or_else(|| panic!("{step}: {k}"));
        let (verified, answer) = (get("val/verified"), get("val/answer"));
        assert!(
            (0.0..=answer).contains(&verified) && answer <= 1.0,
            "{step}: {val:?}"
        );
        assert!((0.0..=1.0).contains(&get("val/process")), "{step}");
        // Six problems at each of op 2 and 3: the whole is the mean of the two.
        let by_op = f64::midpoint(get("val/verified/op2"), get("val/verified/op3"));
        assert!((by_op - verified).abs() < 1e-12, "{step}: {val:?}");
        let by_op = f64::midpoint(get("val/answer/op2"), get("val/answer/op3"));
        assert!((by_op - answer).abs() < 1e-12, "{step}: {val:?}");
    }
    // The validation sees the policy being trained: its greedy completion changes.
    let first = |i: usize| checks[i].1["val/first_completion"].as_str().unwrap();
    assert_ne!(first(0), first(3), "{checks:?}");

    // Validating changes no training metric: the same rollouts, rewards and updates.
    let trained: Vec<Value> = with
        .iter()
        .filter(|r| r.get("reward/mean").is_some())
        .map(training_keys)
        .collect();
    assert_eq!(trained, plain.iter().map(training_keys).collect::<Vec<_>>());

    // Interrupted at the step-4 checkpoint and resumed: the same validations, the starting
    // one logged once.
    let out = scratch("rl-validate-resumed");
    interrupt_rl_at(&plan, &out, 4);
    let resumed = rl_rows(&plan, &options(&out));
    assert_eq!(validations(&resumed), checks);
}
