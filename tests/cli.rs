//! The real `rlp` binary: exit codes, output streams, JSON shape.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::root;

/// A run of the binary, built up just's `Test` way.
#[must_use]
struct Run {
    args: Vec<String>,
}

impl Run {
    fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[track_caller]
    fn expect(self, code: i32) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args(&self.args)
            .current_dir(root())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(code),
            "rlp {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_exit_codes() {
    Run::new(&["check", "pipelines/quickstart.rlp"]).expect(0);
    Run::new(&["check", "tests/fixtures/analysis/err/W0101-no-seed.rlp"]).expect(0);
    let out = Run::new(&[
        "check",
        "tests/fixtures/analysis/err/E0405-mixture-weights.rlp",
    ])
    .expect(1);
    assert!(text(&out.stderr).contains("rlp::E0405"));
    let out = Run::new(&["check", "does/not/exist.rlp"]).expect(2);
    assert!(
        text(&out.stderr).contains("checked 0 of 1 file (1 could not be read)"),
        "{}",
        text(&out.stderr)
    );
    let out = Run::new(&["check", "pipelines/quickstart.rlp", "does/not/exist.rlp"]).expect(2);
    assert!(text(&out.stderr).contains("checked 1 of 2 files (1 could not be read)"));
    Run::new(&["check"]).expect(2);
    Run::new(&["check", "--format", "yaml", "pipelines/quickstart.rlp"]).expect(2);
    Run::new(&["frobnicate"]).expect(2);
    Run::new(&["--help"]).expect(0);
    Run::new(&["check", "tests/fixtures/syntax/err/E0103-invalid-utf8.rlp"]).expect(1);
}

#[test]
fn check_json_has_schema_codes_and_positions() {
    let out = Run::new(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/analysis/err/E0204-unknown-field.rlp",
        "pipelines/quickstart.rlp",
    ])
    .expect(1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["summary"]["files"], 2);
    let diagnostics = json["diagnostics"].as_array().unwrap();
    let d = diagnostics
        .iter()
        .find(|d| d["code"] == "rlp::E0204")
        .unwrap();
    assert_eq!(d["severity"], "error");
    assert_eq!(
        d["file"],
        "tests/fixtures/analysis/err/E0204-unknown-field.rlp"
    );
    assert_eq!(d["message"], "`pretrain` has no field `tokns`");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(13), Some(5))
    );
    let source =
        std::fs::read_to_string(root().join("tests/fixtures/analysis/err/E0204-unknown-field.rlp"))
            .unwrap();
    let (start, end) = (
        d["span"]["start"].as_u64().unwrap() as usize,
        d["span"]["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&source[start..end], "tokns");
    assert_eq!(d["help"], "did you mean `tokens`?");
}

#[test]
fn plan_prints_json_with_cells_and_hashes() {
    let out = Run::new(&["plan", "pipelines/edge-of-competence.rlp"]).expect(0);
    let plan: rlp::plan::Plan = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan.cells.len(), 9, "three ranges × three seeds");
    assert!(plan.stages.iter().all(|s| s.hash.len() == 16));
    Run::new(&[
        "plan",
        "tests/fixtures/analysis/err/E0405-mixture-weights.rlp",
    ])
    .expect(1);
    Run::new(&["plan", "nope.rlp"]).expect(2);
}

#[test]
fn explain_knows_every_code() {
    for e in rlp::diagnostics::explain::EXPLANATIONS {
        let out = Run::new(&["explain", e.code]).expect(0);
        let shown = text(&out.stdout);
        assert!(shown.starts_with(&format!("rlp::{}", e.code)));
        if e.example.is_some() {
            assert!(shown.contains("Example ("), "{} has an example", e.code);
        }
    }
    Run::new(&["explain", "rlp::e0405"]).expect(0);
    let list = Run::new(&["explain"]).expect(0);
    assert_eq!(
        text(&list.stdout).lines().count(),
        rlp::diagnostics::explain::EXPLANATIONS.len()
    );
    Run::new(&["explain", "E9999"]).expect(2);
}

#[test]
fn fmt_check_reports_a_diff_and_fmt_rewrites() {
    let dir = std::env::temp_dir().join(format!("rlp-fmt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("messy.rlp");
    std::fs::write(
        &file,
        "seed   1\nmodel m{layers 2;hidden 64 # note\n heads 2; context 512}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = Run::new(&["fmt", "--check", path]).expect(1);
    assert!(
        text(&out.stdout).contains("+seed 1"),
        "{}",
        text(&out.stdout)
    );
    Run::new(&["fmt", path]).expect(0);
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        formatted,
        "seed 1\nmodel m {\n    layers 2\n    hidden 64  # note\n    heads 2\n    context 512\n}\n"
    );
    Run::new(&["fmt", "--check", path]).expect(0);
    std::fs::write(&file, "model m {\n").unwrap();
    Run::new(&["fmt", path]).expect(1);
    Run::new(&["fmt", dir.join("missing.rlp").to_str().unwrap()]).expect(2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipelines_are_formatted() {
    let files: Vec<String> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rlp"))
        .map(|p| {
            p.strip_prefix(root())
                .unwrap_or(Path::new(""))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["fmt", "--check"];
    args.extend(files.iter().map(String::as_str));
    Run::new(&args).expect(0);
}

#[test]
fn sample_prints_problems_and_rejects_bad_sources() {
    let out = Run::new(&[
        "sample",
        "pipelines/quickstart.rlp",
        "--source",
        "arith[op 5, context zoo]",
        "-n",
        "3",
    ])
    .expect(0);
    let shown = text(&out.stdout);
    assert_eq!(shown.matches("# problem").count(), 3);
    assert_eq!(shown.matches("op 5, context zoo").count(), 3);
    let json = Run::new(&[
        "sample",
        "pipelines/quickstart.rlp",
        "--source",
        "arith[op 3]",
        "-n",
        "2",
        "--json",
    ])
    .expect(0);
    for line in text(&json.stdout).lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["op"], 3);
        assert!(record["text"].as_str().unwrap().starts_with("<question> "));
    }
    // A bad source gets the coded diagnostic a file would get, pointing into the argument.
    for (source, code) in [
        ("arith[op 99]", "E0406"),
        ("nothing[op 3]", "E0201"),
        ("arith[op 3", "E0101"),
        ("arith[op 3, context moon]", "E0417"),
        ("arith[op 3, colour red]", "E0204"),
    ] {
        let out = Run::new(&["sample", "pipelines/quickstart.rlp", "--source", source]).expect(2);
        let shown = text(&out.stderr);
        assert!(shown.contains(code), "{source}: {shown}");
        assert!(shown.contains("--source:1:"), "{source}: {shown}");
    }
    Run::new(&[
        "sample",
        "tests/fixtures/analysis/err/E0405-mixture-weights.rlp",
        "--source",
        "arith[op 3]",
    ])
    .expect(1);
}

#[test]
fn data_writes_reproducible_jsonl_and_verify_scores_it() {
    let dir = std::env::temp_dir().join(format!("rlp-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("base.jsonl");
    let path = out.to_str().unwrap();
    let args = [
        "data",
        "pipelines/quickstart.rlp",
        "--stage",
        "base",
        "--out",
        path,
        "-n",
        "50",
    ];
    let first = text(&Run::new(&args).expect(0).stderr);
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 50);
    let second = text(&Run::new(&args).expect(0).stderr);
    assert_eq!(first, second, "same seed, same data, same hash");
    assert!(first.contains("dataset hash "));
    Run::new(&[
        "data",
        "pipelines/edge-of-competence.rlp",
        "--stage",
        "post",
        "--out",
        path,
    ])
    .expect(2);
    Run::new(&[
        "data",
        "pipelines/edge-of-competence.rlp",
        "--stage",
        "post",
        "--cell",
        "range=4..=5,replica=2",
        "--out",
        path,
        "-n",
        "3",
    ])
    .expect(0);

    // Completions: the gold body (right), a wrong final value, and garbage.
    let mut input = String::new();
    for (i, line) in written.lines().take(3).enumerate() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = record["text"].as_str().unwrap();
        let completion = &text[text.find("<solution>").unwrap() + "<solution>".len()..];
        let completion = match i {
            0 => completion.to_owned(),
            1 => "banana".to_owned(),
            _ => completion.replace("</solution>", "X = 999 . </solution>"),
        };
        input.push_str(&serde_json::json!({"solution": record["solution"], "answer": record["answer"], "completion": completion}).to_string());
        input.push('\n');
    }
    input.push_str("{\"solution\": 3}\nnot json\n");
    let input_path = dir.join("completions.jsonl");
    std::fs::write(&input_path, input).unwrap();
    let out = Run::new(&[
        "verify",
        input_path.to_str().unwrap(),
        "--phrasing",
        "compact",
    ])
    .expect(1);
    let scores: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(scores.len(), 3);
    assert_eq!(
        (
            scores[0]["verified_correct"].as_bool(),
            scores[0]["r_pv"].as_f64()
        ),
        (Some(true), Some(1.0))
    );
    assert_eq!(
        (
            scores[1]["verified_correct"].as_bool(),
            scores[1]["r_pv"].as_f64()
        ),
        (Some(false), Some(0.0))
    );
    assert_eq!(scores[2]["extra"], 1, "the added step is an extra node");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("completions.jsonl:4: no string field `solution`"),
        "{stderr}"
    );
    assert!(stderr.contains("completions.jsonl:5: not JSON"), "{stderr}");
    assert!(
        stderr.contains("scored 3 completions (2 malformed)"),
        "{stderr}"
    );
    Run::new(&["verify", "missing.jsonl"]).expect(2);
    Run::new(&[
        "verify",
        input_path.to_str().unwrap(),
        "--phrasing",
        "klingon",
    ])
    .expect(2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_prints_a_summary_and_refuses_a_missing_device() {
    let out = root()
        .join("target/test-runs")
        .join(format!("cli-{}", std::process::id()));
    let out = out.to_str().unwrap();
    let output = Run::new(&[
        "run",
        "tests/fixtures/run/mini.rlp",
        "--out",
        out,
        "--threads",
        "1",
    ])
    .expect(0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("pretrain base"), "{stdout}");
    assert!(stdout.contains("verified pass@1/4"), "{stdout}");
    assert!(stdout.contains("guessing pass@1/4"), "{stdout}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(out).join("mini/main/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["threads"], 1);
    // Progress goes to stderr, never to stdout.
    assert!(!stdout.contains("eta"), "{stdout}");
    if !cfg!(feature = "cuda") {
        let output = Run::new(&[
            "run",
            "tests/fixtures/run/mini.rlp",
            "--out",
            out,
            "--device",
            "cuda",
        ])
        .expect(2);
        assert!(text(&output.stderr).contains("--features cuda"));
    }
    // A file with errors is checked first: the diagnostics of `rlp check`, exit 1.
    Run::new(&[
        "run",
        "tests/fixtures/analysis/err/E0405-mixture-weights.rlp",
        "--out",
        out,
    ])
    .expect(1);
}

#[test]
fn run_takes_one_cell_or_one_stage_at_a_time() {
    let out = root().join(format!("target/test-runs/parts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.display().to_string();
    let file = "tests/fixtures/run/sweep.rlp";
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file, "--out", &out_arg, "--threads", "2"];
        args.extend_from_slice(extra);
        args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    let with = |extra: &[&str]| Run { args: run(extra) };
    let stderr = |o: &Output| text(&o.stderr);
    // `mid` differs between the cells: the run asks which one.
    let o = with(&["--stage", "mid"]).expect(2);
    assert!(
        stderr(&o).contains("2 instances across cells"),
        "{}",
        stderr(&o)
    );
    let o = with(&["--cell", "nope"]).expect(2);
    assert!(
        stderr(&o).contains("range=3..=3, range=4..=4"),
        "{}",
        stderr(&o)
    );
    // A stage before its parent: a clear error naming the parent.
    let o = with(&["--stage", "mid", "--cell", "range=3..=3"]).expect(1);
    assert!(
        stderr(&o).contains("starts from `base`, which has not finished"),
        "{}",
        stderr(&o)
    );
    // The parent, then the stage: no eval, no cell manifest.
    with(&["--stage", "base"]).expect(0);
    with(&["--stage", "mid", "--cell", "range=3..=3"]).expect(0);
    let root_dir = out.join("sweep");
    let finished: Vec<_> = std::fs::read_dir(root_dir.join("stages"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("done.json").is_file())
        .collect();
    assert_eq!(finished.len(), 2, "base and one mid");
    assert!(!root_dir.join("range=3..=3/manifest.json").exists());
    // `rlp status`: the finished base and mid, the other mid pending, the evals blocked on it
    // or on nothing run yet; a lock left by a killed run shows as abandoned.
    let status = |json: bool| {
        let mut args = vec!["status".to_owned(), root_dir.display().to_string()];
        if json {
            args.push("--json".to_owned());
        }
        text(&Run { args }.expect(0).stdout)
    };
    let lines: Vec<serde_json::Value> = status(true)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                format!(
                    "{} {}",
                    l["kind"].as_str().unwrap(),
                    l["name"].as_str().unwrap()
                ),
                l["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        states,
        [
            pair("stage base", "finished"),
            pair("stage mid", "finished"),
            pair("stage mid", "pending"),
            pair("eval eval", "pending"),
            pair("eval eval", "blocked"),
        ]
    );
    let pending_mid = root_dir.join(lines[2]["dir"].as_str().unwrap());
    let lock = rlp::run::lock::LockInfo {
        owner: "gone:7".into(),
        token: "gone:7:0".into(),
        since_unix: 1,
        heartbeat_unix: 1,
    };
    std::fs::write(
        rlp::run::lock::lock_path(&pending_mid),
        serde_json::to_string(&lock).unwrap(),
    )
    .unwrap();
    assert!(
        status(false).contains("abandoned by gone:7"),
        "{}",
        status(false)
    );
    // Job ids from `rlp submit`'s record, the last submission's when there are several.
    let base_dir = lines[0]["dir"]
        .as_str()
        .unwrap()
        .trim_start_matches("stages/");
    std::fs::create_dir_all(root_dir.join("slurm")).unwrap();
    std::fs::write(
        root_dir.join("slurm/jobs.txt"),
        format!("{base_dir} 41\neval-range=4..=4-eval 43\n{base_dir} 42\n"),
    )
    .unwrap();
    let table = status(false);
    assert!(
        table.lines().next().unwrap().ends_with("(job 42)"),
        "{table}"
    );
    assert!(
        table.lines().last().unwrap().ends_with("(job 43)"),
        "{table}"
    );
    // One eval: which cell's, if several run it; refused while a model it evaluates has not
    // finished; then run on its own, and the cell's only eval done, its manifest written.
    let o = with(&["--eval", "eval"]).expect(2);
    assert!(stderr(&o).contains("run by 2 cells"), "{}", stderr(&o));
    let o = with(&["--eval", "eval", "--cell", "range=4..=4"]).expect(1);
    assert!(
        stderr(&o).contains("evaluates `mid`, which has not finished"),
        "{}",
        stderr(&o)
    );
    assert!(!root_dir.join("range=3..=3/manifest.json").exists());
    let o = with(&["--eval", "eval", "--cell", "range=3..=3"]).expect(0);
    assert!(
        stderr(&o).contains("eval `eval` of cell `range=3..=3`: Finished"),
        "{}",
        stderr(&o)
    );
    assert!(root_dir.join("range=3..=3/eval/eval.json").is_file());
    assert!(root_dir.join("range=3..=3/manifest.json").is_file());
    assert!(status(false).lines().nth(3).unwrap().contains("finished"));
    // One cell: its stages (the base reused) and evals, and only its manifest.
    assert!(!root_dir.join("range=4..=4/manifest.json").exists());
    let o = with(&["--cell", "range=4..=4"]).expect(0);
    assert!(text(&o.stdout).contains("cell `range=4..=4`"));
    assert!(root_dir.join("range=4..=4/manifest.json").is_file());
}

#[test]
fn submit_writes_one_job_per_unfinished_stage_with_the_plans_edges() {
    let out = root().join(format!("target/test-runs/submit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.display().to_string();
    let submit = |extra: &[&str]| {
        let mut args: Vec<String> = ["submit", "tests/fixtures/run/sweep.rlp", "--slurm"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(["--out".to_owned(), out_arg.clone(), "--dry-run".to_owned()]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        text(&Run { args }.expect(0).stdout)
    };
    let script = submit(&[
        "--kind",
        "midtrain=--gres=gpu:1 --time=1:00:00",
        "--",
        "--partition=cpu",
    ]);
    let lines: Vec<&str> = script.lines().filter(|l| l.starts_with("job_")).collect();
    // The shared base once, each cell's mid after it, each cell's eval after the models it
    // evaluates.
    assert_eq!(lines.len(), 5, "{script}");
    assert!(lines[0].contains("--parsable '--partition=cpu'") && lines[0].contains("/base-"));
    for mid in &lines[1..3] {
        assert!(mid.contains("--dependency=afterok:${job_0} ") && mid.contains("/mid-"));
        assert!(
            mid.contains("'--partition=cpu' '--gres=gpu:1' '--time=1:00:00' '"),
            "{mid}"
        );
    }
    assert!(
        !lines[0].contains("gres") && !lines[3].contains("gres"),
        "{script}"
    );
    assert!(
        lines[3].contains("afterok:${job_0}:${job_1} ")
            && lines[3].contains("eval-range=3..=3-eval")
    );
    assert!(
        lines[4].contains("afterok:${job_0}:${job_2} ")
            && lines[4].contains("eval-range=4..=4-eval")
    );
    let slurm = out.join("sweep/slurm");
    let eval_job = std::fs::read_to_string(slurm.join("eval-range=4..=4-eval.sh")).unwrap();
    assert!(eval_job.contains("#SBATCH --job-name=rlp-eval-range=4..=4-eval\n"));
    assert!(
        eval_job.contains("'--eval' 'eval' '--cell' 'range=4..=4'"),
        "{eval_job}"
    );
    // Once the base has finished, it has no job and nothing waits for it.
    Run::new(&[
        "run",
        "tests/fixtures/run/sweep.rlp",
        "--out",
        &out_arg,
        "--stage",
        "base",
    ])
    .expect(0);
    let script = submit(&[]);
    let lines: Vec<&str> = script.lines().filter(|l| l.starts_with("job_")).collect();
    assert_eq!(lines.len(), 4, "{script}");
    assert!(!script.contains("/base-"));
    assert!(lines[0].contains("sbatch --parsable '") && lines[0].contains("/mid-"));
}

#[test]
fn plan_cost_counts_each_stage_instance_and_shared_eval_once() {
    let out = Run::new(&[
        "plan",
        "pipelines/f1-edge.rlp",
        "--cost",
        "--throughput",
        "1e12",
    ])
    .expect(0);
    let shown = text(&out.stdout);
    let plan: serde_json::Value = serde_json::from_slice(
        &Run::new(&["plan", "pipelines/f1-edge.rlp"])
            .expect(0)
            .stdout,
    )
    .unwrap();
    let n = plan["models"][0]["non_embedding_params"].as_f64().unwrap();
    let tokens = plan["stages"][0]["spec"]["tokens"].as_f64().unwrap();
    // The shared base: one row, 6·N FLOPs per token, in all nine cells.
    let base = shown
        .lines()
        .find(|l| l.starts_with("| pretrain `base` |"))
        .unwrap();
    let cells: Vec<&str> = base.split('|').map(str::trim).collect();
    assert_eq!(cells[2], "9");
    let flops: f64 = cells[6].parse().unwrap();
    assert!((flops / (6.0 * n * tokens) - 1.0).abs() < 1e-3, "{base}");
    let hours: f64 = cells[7].parse().unwrap();
    assert!((hours - flops / 1e12 / 3600.0).abs() < 1e-3, "{base}");
    // Nine RL instances, each with steps x prompts per step x group rollouts.
    let spec = &plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "post")
        .unwrap()["spec"];
    let field = |name: &str| spec[name].as_u64().unwrap();
    let steps = field("steps");
    let expected = format!(
        "| {steps} | {} |",
        steps * field("prompts_per_step") * field("group")
    );
    let rl: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with("| rl `post` |"))
        .collect();
    assert_eq!(rl.len(), 9);
    assert!(
        rl.iter().all(|l| l.contains(&expected)),
        "{expected}\n{shown}"
    );
    // The base is evaluated once for all nine cells: ten models per eval.
    let eval = shown
        .lines()
        .find(|l| l.starts_with("| eval `eval` |"))
        .unwrap();
    assert!(eval.starts_with("| eval `eval` | 10 |"), "{eval}");
    assert!(shown.contains("| total |"));
    Run::new(&["plan", "pipelines/f1-edge.rlp", "--throughput", "1e12"]).expect(2);
}

#[test]
fn plan_cost_counts_the_validations_of_an_rl_stage() {
    // 195 steps validated before the first and every 20: 11 times 200 problems of op 2-20.
    let out = Run::new(&["plan", "pipelines/paper/extrapolation.rlp", "--cost"]).expect(0);
    let shown = text(&out.stdout);
    let rows: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with("| validate `post` |"))
        .collect();
    assert_eq!(rows.len(), 4, "one per RL instance:\n{shown}");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[5], (11 * 19 * 200).to_string(), "{row}");
        assert!(cells[6].parse::<f64>().unwrap() > 0.0, "{row}");
    }
}
