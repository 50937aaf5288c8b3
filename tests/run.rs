//! `rlp run` end to end on a tiny pipeline: the run directory, reuse of finished work,
//! resume after an interruption with the losses of an uninterrupted run, a NaN stop that keeps
//! its checkpoint, and GRPO raising its reward and resuming where it stopped.
#![allow(clippy::float_cmp)] // resumed losses must match bit for bit

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rlp::plan::{Plan, StageSpec};
use rlp::run::{Input, Observer, RunError, RunOptions, Silent, Status, execute};
use serde_json::Value;

use crate::common::root;

fn fixture_plan(name: &str) -> Plan {
    let src = std::fs::read_to_string(root().join("tests/fixtures/run").join(name)).unwrap();
    rlp::compile(&rlp::syntax::SourceFile::new(name, src))
        .plan
        .unwrap()
}

fn mini_plan() -> Plan {
    fixture_plan("mini.rlp")
}

/// A fresh directory under the target dir (kept after the test for inspection).
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target/test-runs")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn options(out: &Path) -> RunOptions {
    RunOptions {
        out: out.to_owned(),
        device: candle_core::Device::Cpu,
        threads: 2,
        interrupt: Arc::new(AtomicBool::new(false)),
    }
}

pub(crate) fn input() -> Input {
    Input {
        file: "mini.rlp".into(),
        sha256: "test".into(),
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (step, loss, held-out loss) of a stage's metrics.
fn losses(path: &Path) -> Vec<(u64, f64, Option<f64>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            (
                row["step"].as_u64().unwrap(),
                row["loss"].as_f64().unwrap(),
                row["heldout_loss"].as_f64(),
            )
        })
        .collect()
}

fn stage_metrics(cell_dir: &Path) -> PathBuf {
    let manifest = json(&cell_dir.join("manifest.json"));
    cell_dir
        .join(manifest["stages"][0]["dir"].as_str().unwrap())
        .join("metrics.jsonl")
}

#[test]
fn a_run_trains_evaluates_and_reuses_finished_work() {
    let out = scratch("full");
    let plan = mini_plan();
    let cells = execute(&plan, &input(), &options(&out), &Silent).unwrap();
    let cell = out.join("mini/main");
    assert_eq!(cells[0].dir, cell);
    for file in [
        "plan.json",
        "manifest.json",
        "metrics.jsonl",
        "eval/eval.json",
        "eval/eval.csv",
        "eval/eval-id.svg",
    ] {
        assert!(cell.join(file).is_file(), "{file} missing");
    }
    assert!(out.join("mini/tokenizer.json").is_file());
    let manifest = json(&cell.join("manifest.json"));
    assert_eq!(manifest["status"], "finished");
    assert_eq!(manifest["stages"][0]["status"], "finished");
    assert_eq!(manifest["device"], "cpu");
    let stage_dir = cell.join(manifest["stages"][0]["dir"].as_str().unwrap());
    assert!(stage_dir.join("model.safetensors").is_file());
    assert!(
        !stage_dir.join("checkpoint.safetensors").exists(),
        "a finished stage drops its optimizer checkpoint"
    );

    // 40k tokens / (4 x 128) = 79 steps, one metrics row each; the loss falls.
    let rows = losses(&stage_dir.join("metrics.jsonl"));
    assert_eq!(rows.len(), 79);
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=79).collect::<Vec<_>>()
    );
    assert!(
        rows[78].1 < 0.7 * rows[0].1,
        "loss {} -> {}",
        rows[0].1,
        rows[78].1
    );
    let heldout: Vec<u64> = rows.iter().filter(|r| r.2.is_some()).map(|r| r.0).collect();
    assert_eq!(
        heldout,
        [20, 40, 60, 79],
        "held-out loss every 20 steps and at the end"
    );

    // The eval table: per op, per op and context (two contexts), and the whole split.
    let table = json(&cell.join("eval/eval.json"));
    let table_rows = table["rows"].as_array().unwrap();
    let per_op: Vec<&Value> = table_rows
        .iter()
        .filter(|r| r["context"].is_null() && !r["op"].is_null())
        .collect();
    assert_eq!(per_op.len(), 2);
    for row in &per_op {
        assert_eq!(row["problems"], 4);
        for family in ["verified", "answer", "guess_sampled"] {
            let ks: Vec<u64> = row[family]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["k"].as_u64().unwrap())
                .collect();
            assert_eq!(ks, [1, 4], "{family}");
        }
        let v1 = row["verified"][0]["value"].as_f64().unwrap();
        let v4 = row["verified"][1]["value"].as_f64().unwrap();
        assert!(v1 <= v4, "pass@k grows with k");
        // Each estimate carries its 95% interval over problems, around it and within [0, 1].
        for family in ["verified", "answer"] {
            for pass in row[family].as_array().unwrap() {
                let value = pass["value"].as_f64().unwrap();
                let (lo, hi) = (
                    pass["interval"][0].as_f64().unwrap(),
                    pass["interval"][1].as_f64().unwrap(),
                );
                assert!(
                    (0.0..=value).contains(&lo) && (value..=1.0).contains(&hi),
                    "{pass}"
                );
            }
        }
        assert!(row["guess_sampled"][0].get("interval").is_none());
        // The guessing baseline comes from the answer distribution: positive, below 1.
        let g = row["guess_sampled"][0]["value"].as_f64().unwrap();
        assert!(g > 0.0 && g < 1.0, "guessing pass@1 {g}");
    }
    let csv = std::fs::read_to_string(cell.join("eval/eval.csv")).unwrap();
    assert!(csv.starts_with("model,split,op,context,problems,samples,verified_pass@1,"));
    assert_eq!(csv.lines().count(), 1 + table_rows.len());
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",answer_pass@4_lo,answer_pass@4_hi")
    );
    let columns = csv.lines().next().unwrap().split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() == columns));
    let svg = std::fs::read_to_string(cell.join("eval/eval-id.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("base pass@4"));
    // The cell's metrics: the stage's steps, then one line per eval row.
    let cell_lines = std::fs::read_to_string(cell.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(cell_lines, 79 + table_rows.len());

    // Again: nothing is recomputed.
    let again = execute(&plan, &input(), &options(&out), &Silent).unwrap();
    assert_eq!(again[0].manifest.stages[0].status, Status::Reused);
    assert_eq!(again[0].manifest.evals[0].status, Status::Reused);
    assert_eq!(again[0].evals[0].1, cells[0].evals[0].1, "same table");
}

/// Sets the interrupt flag once a stage reaches `at` steps.
struct InterruptAt {
    at: u64,
    flag: Arc<AtomicBool>,
}

impl Observer for InterruptAt {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, done: u64, _: &str) {
        if done >= self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
    fn end(&self, _: &str) {}
    fn note(&self, _: &str) {}
}

#[test]
fn an_interrupted_run_resumes_with_the_losses_of_an_uninterrupted_one() {
    let plan = mini_plan();
    let straight = scratch("straight");
    execute(&plan, &input(), &options(&straight), &Silent).unwrap();
    let expected = losses(&stage_metrics(&straight.join("mini/main")));

    let out = scratch("resumed");
    let first = options(&out);
    let observer = InterruptAt {
        at: 30,
        flag: Arc::clone(&first.interrupt),
    };
    let error = execute(&plan, &input(), &first, &observer).unwrap_err();
    assert!(
        matches!(error, RunError::Interrupted { step: 30, .. }),
        "{error}"
    );
    let cell = out.join("mini/main");
    let manifest = json(&cell.join("manifest.json"));
    assert_eq!(manifest["status"], "interrupted");
    let metrics = stage_metrics(&cell);
    assert!(metrics.with_file_name("checkpoint.safetensors").is_file());
    // As if the process had been killed after logging two more steps than it checkpointed,
    // halfway through a line: the resumed stage drops those rows.
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"stage\":\"base\",\"step\":31,\"loss\":9.0}\n{\"stage\":\"base\",\"st");
    std::fs::write(&metrics, text).unwrap();

    execute(&plan, &input(), &options(&out), &Silent).unwrap();
    let resumed = losses(&metrics);
    assert_eq!(
        resumed, expected,
        "same steps, same losses, same held-out losses"
    );
    assert_eq!(json(&cell.join("manifest.json"))["status"], "finished");
}

#[test]
fn a_diverging_stage_stops_with_a_clear_error_and_keeps_its_checkpoint() {
    let mut plan = mini_plan();
    let StageSpec::Pretrain(spec) = &mut plan.stages[0].spec else {
        panic!("mini pre-trains")
    };
    // AdamW moves every weight by about lr per step: 1e30 overflows f32 within steps.
    spec.lr.peak = 1e30;
    spec.lr.floor = 1e30;
    spec.lr.warmup = 0.0;
    spec.checkpoint_every = 1;
    let out = scratch("nan");
    let error = execute(&plan, &input(), &options(&out), &Silent).unwrap_err();
    let RunError::NonFinite {
        step, checkpoint, ..
    } = &error
    else {
        panic!("expected a non-finite loss, got {error}")
    };
    let checkpoint = checkpoint.as_ref().expect("a checkpoint was kept");
    assert!(checkpoint.is_file());
    assert!(*step >= 1);
    let manifest = json(&out.join("mini/main/manifest.json"));
    assert_eq!(manifest["status"], "failed");
    assert!(manifest["error"].as_str().unwrap().contains("loss became"));
    let help = miette::Diagnostic::help(&error).unwrap().to_string();
    assert!(help.contains("checkpoint"), "{help}");
    // `rlp status` reads the failure from the stage's directory (stage-only runs write no
    // manifest), and the eval that needed the stage is blocked.
    let (_, lines) = rlp::run::run_status(&out.join("mini")).unwrap();
    let rlp::run::status::State::Failed { error: why } = &lines[0].state else {
        panic!("{lines:?}")
    };
    assert!(why.contains("loss became"), "{why}");
    assert!(
        lines.iter().any(|l| l.kind == "eval"
            && matches!(&l.state, rlp::run::status::State::Failed { .. })),
        "{lines:?}"
    );
}

#[test]
fn sweep_cells_share_their_common_stage() {
    let plan = fixture_plan("sweep.rlp");
    let out = scratch("sweep");
    let notes = Mutex::new(Vec::new());
    let cells = execute(&plan, &input(), &options(&out), &Notes(&notes)).unwrap();
    assert_eq!(cells.len(), 2);
    let stages = |i: usize| cells[i].manifest.stages.clone();
    let (first, second) = (stages(0), stages(1));
    assert_eq!(
        [first[0].status, first[1].status],
        [Status::Finished, Status::Finished]
    );
    assert_eq!(
        [second[0].status, second[1].status],
        [Status::Reused, Status::Finished],
        "the shared pre-training ran once"
    );
    assert_eq!(first[0].dir, second[0].dir);
    assert_ne!(first[1].dir, second[1].dir, "mid-training differs per cell");
    // Mid-training starts from the base's final weights, not from scratch: its first loss is
    // about the base's last one, far below the base's first (about ln V at initialisation).
    let base_losses = losses(&cells[0].dir.join(&first[0].dir).join("metrics.jsonl"));
    let mid_losses = losses(&cells[0].dir.join(&first[1].dir).join("metrics.jsonl"));
    let (base_first, base_last, mid_first) = (
        base_losses[0].1,
        base_losses[base_losses.len() - 1].1,
        mid_losses[0].1,
    );
    assert!(
        base_first - mid_first > 0.5 * (base_first - base_last),
        "base {base_first:.3} -> {base_last:.3}, mid starts at {mid_first:.3}"
    );
    for cell in &cells {
        let models: std::collections::BTreeSet<&str> =
            cell.evals[0].1.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(models, ["base", "mid"].into_iter().collect());
        assert!(cell.dir.join("eval/eval.json").is_file());
    }
    assert_eq!(
        cells[0].evals[0].1.iter().find(|r| r.model == "base"),
        cells[1].evals[0].1.iter().find(|r| r.model == "base"),
        "the same base model on the same problems gives the same row"
    );
    // The base was evaluated once: the second cell took its rows from the first's, which a
    // run that evaluated it twice (before rows were kept) found equal, as asserted above.
    let kept = std::fs::read_dir(out.join("sweep/evals")).unwrap().count();
    assert_eq!(kept, 3, "one base and two mid-trained models");
    let notes = notes.into_inner().unwrap();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("`base` was evaluated the same way in another cell"))
            .count(),
        1,
        "{notes:?}"
    );
}

/// Sets the interrupt flag once an `rl` stage reaches `at` steps.
struct InterruptRlAt {
    at: u64,
    flag: Arc<AtomicBool>,
    in_rl: AtomicBool,
}

/// Runs `plan` into `out` until its `rl` stage is interrupted after step `at` (a checkpoint
/// step, so that the run stops there).
pub(crate) fn interrupt_rl_at(plan: &Plan, out: &Path, at: u64) {
    let first_try = options(out);
    let observer = InterruptRlAt {
        at,
        flag: Arc::clone(&first_try.interrupt),
        in_rl: AtomicBool::new(false),
    };
    let error = execute(plan, &input(), &first_try, &observer).unwrap_err();
    assert!(
        matches!(error, RunError::Interrupted { step, .. } if step == at),
        "{error}"
    );
}

impl Observer for InterruptRlAt {
    fn begin(&self, label: &str, _: u64) {
        self.in_rl.store(label.starts_with("rl "), Ordering::SeqCst);
    }
    fn advance(&self, done: u64, _: &str) {
        if self.in_rl.load(Ordering::SeqCst) && done >= self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
    fn end(&self, _: &str) {}
    fn note(&self, _: &str) {}
}

/// A column of an `rl` stage's metrics, by step.
fn column(path: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()[key]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn grpo_raises_the_reward_and_resumes_where_it_stopped() {
    let plan = fixture_plan("rl.rlp");
    let straight = scratch("rl-straight");
    let cells = execute(&plan, &input(), &options(&straight), &Silent).unwrap();
    let stages = &cells[0].manifest.stages;
    assert_eq!(stages[1].kind, "rl");
    let done = stages[1].done.as_ref().unwrap();
    assert_eq!(done.steps, 10);
    let filter = done.filter.as_ref().unwrap();
    assert!(
        filter.iter().all(|f| f.tried == f.kept)
            && filter.iter().map(|f| f.tried).sum::<u64>() >= 40,
        "a 0..=1 band keeps every candidate: {filter:?}"
    );
    let metrics = cells[0].dir.join(&stages[1].dir).join("metrics.jsonl");
    let reward = column(&metrics, "reward/mean");
    assert_eq!(reward.len(), 10);
    let (first, last) = (
        reward[..3].iter().sum::<f64>() / 3.0,
        reward[7..].iter().sum::<f64>() / 3.0,
    );
    assert!(
        last > first + 0.1,
        "shorter completions earn more, and GRPO finds them: {reward:?}"
    );
    for key in [
        "actor/pg_clipfrac",
        "actor/kl_loss",
        "actor/entropy",
        "rollout/zero_std_frac",
    ] {
        assert!(
            column(&metrics, key)
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0),
            "{key}"
        );
    }
    assert!(
        column(&metrics, "actor/kl_loss")[9] > 0.0,
        "the policy moved away from its start"
    );
    let models: std::collections::BTreeSet<&str> = cells[0].evals[0]
        .1
        .iter()
        .map(|r| r.model.as_str())
        .collect();
    assert_eq!(models, ["base", "post"].into_iter().collect());

    // Interrupted after its fourth step (the checkpoint), then resumed: the same rewards.
    let out = scratch("rl-resumed");
    interrupt_rl_at(&plan, &out, 4);
    let cells = execute(&plan, &input(), &options(&out), &Silent).unwrap();
    let resumed = cells[0]
        .dir
        .join(&cells[0].manifest.stages[1].dir)
        .join("metrics.jsonl");
    assert_eq!(column(&resumed, "reward/mean"), reward);
    // FLOPs: every step's own, summed into the running total and into the stage's, the same
    // after the resume; the base's are 6N per trained token.
    let step_flops = column(&metrics, "compute/step_flops");
    assert!(step_flops.iter().all(|&f| f > 0.0), "{step_flops:?}");
    let running: Vec<f64> = step_flops
        .iter()
        .scan(0.0, |sum, f| {
            *sum += f;
            Some(*sum)
        })
        .collect();
    assert_eq!(column(&metrics, "compute/flops"), running);
    assert_eq!(column(&resumed, "compute/flops"), running);
    assert_eq!(done.flops, running.last().copied());
    let resumed_done = cells[0].manifest.stages[1].done.as_ref().unwrap();
    assert_eq!(resumed_done.flops, done.flops);
    let base = stages[0].done.as_ref().unwrap();
    let params = plan.models[0].non_embedding_params as f64;
    assert_eq!(base.flops, Some(6.0 * params * base.tokens as f64));
}

#[test]
fn another_pipeline_with_the_same_stage_copies_it_instead_of_training() {
    let out = scratch("adopt");
    let src = std::fs::read_to_string(root().join("tests/fixtures/run/mini.rlp")).unwrap();
    let compile = |name: &str, src: &str| {
        rlp::compile(&rlp::syntax::SourceFile::new(name, src.to_owned()))
            .plan
            .unwrap()
    };
    let first = execute(
        &compile("mini.rlp", &src),
        &input(),
        &options(&out),
        &Silent,
    )
    .unwrap();
    assert_eq!(first[0].manifest.stages[0].status, Status::Finished);
    let trained = first[0].dir.join(first[0].manifest.stages[0].dir.as_str());

    // The same stage in a file of another name: a new run directory, the stage copied.
    let other = execute(
        &compile("other.rlp", &src),
        &input(),
        &options(&out),
        &Silent,
    )
    .unwrap();
    assert_eq!(other[0].dir, out.join("other/main"));
    assert_eq!(other[0].manifest.stages[0].status, Status::Reused);
    let copied = other[0].dir.join(other[0].manifest.stages[0].dir.as_str());
    assert_ne!(
        trained.canonicalize().unwrap(),
        copied.canonicalize().unwrap()
    );
    for file in ["model.safetensors", "metrics.jsonl", "done.json"] {
        assert_eq!(
            std::fs::read(trained.join(file)).unwrap(),
            std::fs::read(copied.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(
        other[0].evals[0].1, first[0].evals[0].1,
        "same model, same table"
    );

    // A stage whose content differs is trained, not copied.
    let changed = compile("changed.rlp", &src.replace("tokens 40k", "tokens 20k"));
    let changed = execute(&changed, &input(), &options(&out), &Silent).unwrap();
    assert_eq!(changed[0].manifest.stages[0].status, Status::Finished);
}

#[test]
fn a_zero_share_passes_its_parents_model_on_and_stale_stages_train_again() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/run/sweep.rlp"))
        .unwrap()
        .replace(
            "sweep range = [3..=3, 4..=4]",
            "budget compute = 3k tokens\nsweep share = [0%, 100%]",
        )
        .replace("arith[op $range]", "arith[op 3..=3]")
        .replace("tokens 3k", "tokens $share of compute")
        .replace(
            "eval {",
            "midtrain after from mid {\n    data arith[op 3..=3]\n    tokens 512\n    batch 2 x 128\n}\n\neval {",
        );
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("share.rlp", src));
    let plan = compilation
        .plan
        .unwrap_or_else(|| panic!("{}", compilation.diagnostics.render_plain(80)));
    let out = scratch("zero-share");
    let cells = execute(&plan, &input(), &options(&out), &Silent).unwrap();
    let stages = &cells[0].manifest.stages;
    let (base_dir, mid_dir) = (
        cells[0].dir.join(&stages[0].dir),
        cells[0].dir.join(&stages[1].dir),
    );
    let done = stages[1].done.as_ref().unwrap();
    assert_eq!((done.steps, done.tokens), (0, 0));
    assert!(done.heldout_loss.is_some_and(f64::is_finite));
    assert_eq!(
        std::fs::read(mid_dir.join("model.safetensors")).unwrap(),
        std::fs::read(base_dir.join("model.safetensors")).unwrap(),
        "no step was taken"
    );
    let full = cells[1].manifest.stages[1].done.as_ref().unwrap();
    assert_eq!(
        full.steps,
        3000u64.div_ceil(2 * 128),
        "the whole budget, in batches"
    );

    // A directory an older rlp finished with another step count is trained again, with every
    // stage trained from it, and the evals of the cells that use them are computed again.
    let done_path = mid_dir.join("done.json");
    let stale = std::fs::read_to_string(&done_path)
        .unwrap()
        .replace("\"steps\": 0", "\"steps\": 1");
    std::fs::write(&done_path, stale).unwrap();
    // Values this tiny model never reaches, in the cell's table and in every model's kept rows.
    let eval_path = cells[0].dir.join("eval/eval.json");
    let kept = std::fs::read_dir(out.join("share/evals")).unwrap();
    for path in kept.map(|e| e.unwrap().path()).chain([eval_path]) {
        let mut table = json(&path);
        table["rows"][0]["process_acc"] = 0.5.into();
        std::fs::write(&path, table.to_string()).unwrap();
    }
    let again = execute(&plan, &input(), &options(&out), &Silent).unwrap();
    let mid = &again[0].manifest.stages[1];
    assert_eq!(mid.status, Status::Finished);
    assert_eq!(mid.done.as_ref().unwrap().steps, 0);
    assert_eq!(
        again[0].manifest.stages[2].status,
        Status::Finished,
        "a stage trained from the stale one is trained again too"
    );
    assert_eq!(again[0].evals, cells[0].evals, "the eval computed again");
    assert_eq!(again[1].manifest.stages[1].status, Status::Reused);
}

#[test]
fn two_runs_at_once_train_a_shared_stage_once() {
    let plan = mini_plan();
    let out = scratch("concurrent");
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| execute(&plan, &input(), &options(&out), &Silent).unwrap());
        let b = s.spawn(|| execute(&plan, &input(), &options(&out), &Silent).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    let statuses: Vec<Status> = [&first, &second]
        .iter()
        .map(|cells| cells[0].manifest.stages[0].status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == Status::Finished).count(),
        1,
        "one run trained the stage, the other waited and reused it: {statuses:?}"
    );
    let stage = &first[0].manifest.stages[0];
    let done = stage.done.as_ref().unwrap();
    let rows = losses(&first[0].dir.join(&stage.dir).join("metrics.jsonl"));
    assert_eq!(
        rows.len() as u64,
        done.steps,
        "one training's rows, not two"
    );
    assert_eq!(
        second[0].manifest.stages[0].done, first[0].manifest.stages[0].done,
        "the same result"
    );
    let lock = rlp::run::lock::lock_path(&first[0].dir.join(&stage.dir));
    assert!(!lock.exists(), "the lock is gone once the stage is done");
}

#[test]
fn a_lock_whose_heartbeat_stopped_is_taken_over() {
    let plan = mini_plan();
    let out = scratch("stale-lock");
    // The stage's directory, as a first run names it, with a lock its killed owner left.
    let first = execute(&plan, &input(), &options(&out), &Silent).unwrap();
    let stage_dir = first[0].dir.join(&first[0].manifest.stages[0].dir);
    std::fs::remove_file(stage_dir.join("done.json")).unwrap();
    let lock = rlp::run::lock::lock_path(&stage_dir);
    let abandoned = rlp::run::lock::LockInfo {
        owner: "gone:1".into(),
        token: "gone:1:0".into(),
        since_unix: 1,
        heartbeat_unix: 1,
    };
    std::fs::write(&lock, serde_json::to_string(&abandoned).unwrap()).unwrap();
    let notes = std::sync::Mutex::new(Vec::new());
    let again = execute(&plan, &input(), &options(&out), &Notes(&notes)).unwrap();
    assert_eq!(again[0].manifest.stages[0].status, Status::Finished);
    assert!(
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("taken over from gone:1, which is no longer running")),
        "{:?}",
        notes.lock().unwrap()
    );
    assert!(!lock.exists());
}

/// Keeps the run's notes.
struct Notes<'a>(&'a Mutex<Vec<String>>);

impl Observer for Notes<'_> {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64, _: &str) {}
    fn end(&self, _: &str) {}
    fn note(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
}

/// `stop` ends a stage part-way through the schedule `tokens` spans: its steps are the first
/// steps of the whole schedule, learning rate and loss alike.
#[test]
fn a_stopped_stage_takes_the_first_steps_of_its_whole_schedule() {
    let mini = std::fs::read_to_string(root().join("tests/fixtures/run/mini.rlp")).unwrap();
    let stopped = mini.replace("    tokens 40k\n", "    tokens 40k\n    stop 20k\n");
    assert_ne!(stopped, mini);
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("mini.rlp", stopped))
        .plan
        .unwrap();
    // 40k tokens in batches of 4 x 128: 79 steps; 20k: 40.
    assert_eq!(plan.stages[0].spec.steps(), 40);
    // Each step's (step, loss) and learning rate.
    let rows = |plan: &Plan, name: &str| {
        let out = scratch(name);
        execute(plan, &input(), &options(&out), &Silent).unwrap();
        let path = stage_metrics(&out.join("mini/main"));
        let lrs: Vec<f64> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["lr"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let steps: Vec<(u64, f64)> = losses(&path).iter().map(|r| (r.0, r.1)).collect();
        (steps, lrs)
    };
    let whole = rows(&mini_plan(), "stop-whole");
    let part = rows(&plan, "stop-part");
    assert_eq!((whole.0.len(), part.0.len()), (79, 40));
    assert_eq!(&whole.0[..40], part.0.as_slice());
    assert_eq!(&whole.1[..40], part.1.as_slice());
    // Past the whole schedule's tokens is an error.
    let over = mini.replace("    tokens 40k\n", "    tokens 40k\n    stop 80k\n");
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("mini.rlp", over));
    assert!(compilation.plan.is_none());
    assert!(compilation.diagnostics.render_plain(100).contains("`stop`"));
}

/// `max_prompt_tokens` skips longer prompts: a limit no prompt exceeds changes nothing, and one
/// every prompt exceeds stops the stage with a clear error instead of spinning.
#[test]
fn rl_skips_prompts_over_max_prompt_tokens() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/run/rl.rlp")).unwrap();
    let limited = |limit: u32| {
        let text = src.replace(
            "    prompts_per_step 4\n",
            &format!("    prompts_per_step 4\n    max_prompt_tokens {limit}\n"),
        );
        assert_ne!(text, src);
        rlp::compile(&rlp::syntax::SourceFile::new("rl.rlp", text))
            .plan
            .unwrap()
    };
    let rewards = |plan: &Plan, name: &str| {
        let out = scratch(name);
        let cells = execute(plan, &input(), &options(&out), &Silent).unwrap();
        let stage = &cells[0].manifest.stages[1];
        column(
            &cells[0].dir.join(&stage.dir).join("metrics.jsonl"),
            "reward/mean",
        )
    };
    assert_eq!(
        rewards(&fixture_plan("rl.rlp"), "rl-unlimited"),
        rewards(&limited(400), "rl-limited")
    );
    let out = scratch("rl-too-short");
    let error = execute(&limited(5), &input(), &options(&out), &Silent).unwrap_err();
    assert!(
        matches!(error, rlp::run::RunError::PromptsTooLong { limit: 5, .. }),
        "{error}"
    );
}
