//! `rlp export`, checked with Hugging Face's own code rather than a re-reading of ours: the
//! `tokenizers` library must give rlp's ids for generated texts, candle-transformers' Qwen2
//! must give rlp's logits and greedy completions, and reading an export back must give the
//! exported weights bit for bit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen2;
use rlp::model::sample::{Sampling, sample};
use rlp::model::{Config, Transformer};
use rlp::plan::{Mode, ModelSpec, Plan, TaskId};
use rlp::tokenizer::Tokenizer;

use crate::common::{max_abs_diff, root};

/// Generated texts of every phrasing, context, mode and op 1-20.
fn generated_texts(plan: &Plan, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    let mut seed = 0u64;
    while texts.len() < count {
        seed += 1;
        let task = (seed as usize) % plan.tasks.len();
        let spec = &plan.tasks[task];
        let context = spec.contexts[(seed as usize / 7) % spec.contexts.len()];
        let mode = if seed % 3 == 0 {
            Mode::Reverse
        } else {
            Mode::Forward
        };
        let op = 1 + (seed as u32 % spec.max_op.min(20));
        if let Ok(problem) = rlp::tasks::generate(plan, TaskId(task), context, mode, op, seed) {
            texts.push(problem.rendered.text());
        }
    }
    texts
}

fn hf_tokenizer(tokenizer: &Tokenizer) -> tokenizers::Tokenizer {
    let json = rlp::hf::tokenizer::tokenizer(tokenizer).to_string();
    json.parse::<tokenizers::Tokenizer>()
        .unwrap_or_else(|e| panic!("the tokenizers library rejects the export: {e}"))
}

#[test]
fn the_tokenizers_library_gives_rlps_ids_on_generated_texts() {
    let plan = crate::common::phrasings_plan();
    let tokenizer = Tokenizer::for_plan(&plan);
    let hf = hf_tokenizer(&tokenizer);
    let texts = generated_texts(&plan, 3000);
    for text in &texts {
        let ours = tokenizer.encode(text).unwrap();
        let theirs = hf.encode(text.as_str(), false).unwrap();
        assert_eq!(theirs.get_ids(), ours.as_slice(), "{text}");
        // With special tokens, the layout of rlp's prompts: [BOS] first.
        let prompt = hf.encode(text.as_str(), true).unwrap();
        assert_eq!(prompt.get_ids(), tokenizer.prompt_ids(text).as_slice());
        assert_eq!(hf.decode(theirs.get_ids(), true).unwrap(), *text);
    }
    // Texts rlp never generates still split as rlp splits them (spaces carried or alone, other
    // characters one by one, words outside the vocabulary unknown).
    for text in [
        "  double  spaces ",
        "a\nb \n<answer>5</answer>",
        "x = 3 ; ünïcode wörds 42",
        " ",
        "",
        "<question><question> </solution>",
    ] {
        let theirs = hf.encode(text, false).unwrap();
        assert_eq!(
            theirs.get_ids(),
            tokenizer.encode_lossy(text).as_slice(),
            "{text:?}"
        );
    }
}

/// A run of `tests/fixtures/run/mini.rlp` (a trained 2-layer model with grouped-query
/// attention), exported with the `rlp` binary.
fn exported_mini(label: &str) -> (PathBuf, PathBuf) {
    let out = root()
        .join("target/test-runs")
        .join(format!("export-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let rlp = |args: &[String]| {
        let output = Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args(args)
            .current_dir(root())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let runs = out.join("runs");
    let (code, stderr) = rlp(&[
        "run".to_owned(),
        "tests/fixtures/run/mini.rlp".to_owned(),
        "--out".to_owned(),
        runs.to_str().unwrap().to_owned(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let run = runs.join("mini");
    let dir = out.join("hf");
    let args = |stage: &str, dir: &Path| {
        [
            "export".to_owned(),
            run.to_str().unwrap().to_owned(),
            "--stage".to_owned(),
            stage.to_owned(),
            "--out".to_owned(),
            dir.to_str().unwrap().to_owned(),
        ]
    };
    let (code, stderr) = rlp(&(args("base", &dir)));
    assert_eq!(code, Some(0), "{stderr}");
    // An export never overwrites; an unknown stage is named.
    let (code, stderr) = rlp(&(args("base", &dir)));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, stderr) = rlp(&(args("nope", &out.join("other"))));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("no stage `nope` (stages: base)"),
        "{stderr}"
    );
    (run, dir)
}

fn plan_of(run: &Path) -> Plan {
    serde_json::from_str(&std::fs::read_to_string(run.join("plan.json")).unwrap()).unwrap()
}

fn tokenizer_of(run: &Path) -> Tokenizer {
    Tokenizer::from_json(&std::fs::read_to_string(run.join("tokenizer.json")).unwrap()).unwrap()
}

/// candle-transformers' Qwen2 with the exported config and weights.
fn hf_model(dir: &Path) -> qwen2::ModelForCausalLM {
    let config: qwen2::Config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let weights = dir.join("model.safetensors");
    // SAFETY: the file is not modified while mapped (the test wrote it and only reads it).
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
        .unwrap();
    qwen2::ModelForCausalLM::new(&config, vb).unwrap()
}

/// rlp's model with weights from rlp's own file.
fn rlp_model(spec: &ModelSpec, vocab: usize, weights: &Path) -> Transformer {
    let config = Config::from_spec(spec, vocab);
    let (mut varmap, model) = rlp::model::build(&config, &Device::Cpu, None).unwrap();
    varmap.load(weights).unwrap();
    model
}

/// Greedy decoding with candle-transformers' model and cache, until a stop token.
fn hf_greedy(
    model: &mut qwen2::ModelForCausalLM,
    prompt: &[u32],
    stop: &[u32],
    max: usize,
) -> Vec<u32> {
    model.clear_kv_cache();
    let mut out = Vec::new();
    let mut input = prompt.to_vec();
    let mut position = 0;
    while out.len() < max {
        let ids = Tensor::new(input.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model.forward(&ids, position).unwrap();
        position += input.len();
        let next = logits
            .flatten_all()
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        out.push(next);
        if stop.contains(&next) {
            break;
        }
        input = vec![next];
    }
    out
}

/// Prompts of the plan's data, as rlp's evals build them.
fn prompts(plan: &Plan, tokenizer: &Tokenizer, count: u64) -> Vec<Vec<u32>> {
    let generator = rlp::tasks::Generator::new(plan);
    (0..count)
        .map(|i| {
            let problem =
                rlp::tasks::stream::example(&generator, plan.stages[0].spec.data(), 99, i).unwrap();
            tokenizer.prompt_ids(&problem.rendered.prompt())
        })
        .collect()
}

#[test]
fn candle_transformers_qwen2_gives_rlps_logits_and_greedy_completions() {
    let (run, dir) = exported_mini("qwen2");
    let plan = plan_of(&run);
    let tokenizer = tokenizer_of(&run);
    let spec = &plan.models[0];
    let ours = rlp_model(spec, tokenizer.len(), &dir.join("model.safetensors"));
    let mut theirs = hf_model(&dir);
    let stop = tokenizer.completion_stops();
    let greedy = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        max_new_tokens: 60,
        stop: stop.clone(),
    };
    for prompt in prompts(&plan, &tokenizer, 12) {
        let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let last = prompt.len() - 1;
        let ours_last = ours.forward(&ids).unwrap().narrow(1, last, 1).unwrap();
        theirs.clear_kv_cache();
        let theirs_last = theirs.forward(&ids, 0).unwrap();
        let diff = max_abs_diff(&ours_last, &theirs_last);
        assert!(diff < 1e-4, "logits differ by {diff}");
        let our_completion = sample(&ours, &prompt, 1, &greedy, 0).unwrap().remove(0);
        let their_completion = hf_greedy(&mut theirs, &prompt, &stop, 60);
        assert_eq!(their_completion, our_completion);
    }
    // The directory's files say what transformers needs.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(config["num_key_value_heads"], 2);
    let generation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("generation_config.json")).unwrap())
            .unwrap();
    assert_eq!(generation["eos_token_id"], serde_json::json!(stop));
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("rlp verify completions.jsonl --phrasing compact"),
        "{readme}"
    );
    // Reading the export back gives the trained weights bit for bit.
    let stage_dir = std::fs::read_dir(run.join("stages"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let trained =
        candle_core::safetensors::load(stage_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let read = rlp::model::hf::read_dir(&dir, spec, &tokenizer).unwrap();
    assert_identical(&trained, &read);
    let _ = std::fs::remove_dir_all(run.parent().unwrap().parent().unwrap());
}

fn assert_identical(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    let mut names: Vec<&String> = a.keys().collect();
    names.sort();
    let mut other: Vec<&String> = b.keys().collect();
    other.sort();
    assert_eq!(names, other);
    for name in names {
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(bits(&a[name]), bits(&b[name]), "{name}");
    }
}

#[test]
fn a_model_without_qkv_biases_exports_with_zero_biases_and_reads_back_without_them() {
    let spec = ModelSpec {
        name: "plain".into(),
        layers: 2,
        hidden: 32,
        heads: 4,
        kv_heads: 1,
        ffn: 48,
        context: 128,
        rope_theta: 1e4,
        tied_embeddings: true,
        qkv_bias: false,
        norm_eps: 1e-5,
        init_std: 0.2,
        non_embedding_params: 0,
    };
    let plan = crate::common::phrasings_plan();
    let tokenizer = Tokenizer::for_plan(&plan);
    let out = root()
        .join("target/test-runs")
        .join(format!("export-plain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let config = Config::from_spec(&spec, tokenizer.len());
    let (varmap, ours) = rlp::model::build(&config, &Device::Cpu, Some(5)).unwrap();
    let weights = out.join("weights.safetensors");
    varmap.save(&weights).unwrap();
    let dir = out.join("hf");
    rlp::model::hf::write_dir(&spec, &tokenizer, &weights, "# test\n", &dir).unwrap();
    let mut theirs = hf_model(&dir);
    let prompt = tokenizer.prompt_ids(&generated_texts(&plan, 1)[0]);
    let prompt = &prompt[..prompt.len().min(100)];
    let ids = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let ours_last = ours
        .forward(&ids)
        .unwrap()
        .narrow(1, prompt.len() - 1, 1)
        .unwrap();
    let diff = max_abs_diff(&ours_last, &theirs.forward(&ids, 0).unwrap());
    assert!(diff < 1e-4, "logits differ by {diff}");
    let original = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    assert_identical(
        &original,
        &rlp::model::hf::read_dir(&dir, &spec, &tokenizer).unwrap(),
    );
    // Another model or another vocabulary does not fit, and says why.
    let wider = ModelSpec {
        hidden: 64,
        ..spec.clone()
    };
    let error = rlp::model::hf::read_dir(&dir, &wider, &tokenizer).unwrap_err();
    assert!(error.to_string().contains("hidden_size 32"), "{error}");
    let other_plan = rlp::compile(&rlp::syntax::SourceFile::new(
        "q.rlp",
        std::fs::read_to_string(root().join("pipelines/quickstart.rlp")).unwrap(),
    ))
    .plan
    .unwrap();
    let error =
        rlp::model::hf::read_dir(&dir, &spec, &Tokenizer::for_plan(&other_plan)).unwrap_err();
    assert!(error.to_string().contains("tokenizer"), "{error}");
    // Non-zero biases cannot be dropped silently.
    let mut tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.insert(
        "model.layers.0.self_attn.q_proj.bias".into(),
        Tensor::ones(32, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let error = rlp::model::hf::read_dir(&dir, &spec, &tokenizer).unwrap_err();
    assert!(error.to_string().contains("is not zero"), "{error}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn rl_data_for_verl_and_trl_carries_rlps_prompts_and_gold_solutions() {
    let out = root()
        .join("target/test-runs")
        .join(format!("export-data-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let plan = rlp::compile(&rlp::syntax::SourceFile::new(
        "quickstart.rlp",
        std::fs::read_to_string(root().join("pipelines/quickstart.rlp")).unwrap(),
    ))
    .plan
    .unwrap();
    let tokenizer = Tokenizer::for_plan(&plan);
    let hf = hf_tokenizer(&tokenizer);
    let mut rows = Vec::new();
    for format in ["rlp", "verl", "trl"] {
        let path = out.join(format!("{format}.jsonl"));
        let status = Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args([
                "data",
                "pipelines/quickstart.rlp",
                "--stage",
                "base",
                "-n",
                "50",
            ])
            .args(["--format", format, "--out", path.to_str().unwrap()])
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(status.status.code(), Some(0));
        let text = std::fs::read_to_string(&path).unwrap();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.push(records);
    }
    let (ours, verl, trl) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(ours.len(), 50);
    for ((ours, verl), trl) in ours.iter().zip(verl).zip(trl) {
        let text = ours["text"].as_str().unwrap();
        let prompt = &text[..text.find("<solution>").unwrap() + "<solution>".len()];
        for row in [&verl["prompt"], &trl["prompt"]] {
            assert_eq!(row[0]["role"], "user");
            assert_eq!(row[0]["content"], prompt);
        }
        // The chat template renders `[BOS]` and the message: the tokenizers library reads
        // that as rlp's prompt, [BOS] as its special token.
        let rendered = format!("[BOS]{prompt}");
        let ids = hf.encode(rendered.as_str(), false).unwrap();
        assert_eq!(ids.get_ids(), tokenizer.prompt_ids(prompt).as_slice());
        assert_eq!(verl["reward_model"]["ground_truth"], ours["answer"]);
        assert_eq!(verl["extra_info"]["solution"], ours["solution"]);
        assert_eq!(verl["data_source"], "rlp/quickstart/base");
        assert_eq!(trl["solution"], ours["solution"]);
        assert_eq!(trl["answer"], ours["answer"]);
        assert_eq!(trl["op"], ours["op"]);
    }
    let config = rlp::hf::tokenizer::tokenizer_config(&tokenizer, 512);
    assert_eq!(config["chat_template"], rlp::hf::tokenizer::CHAT_TEMPLATE);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_stage_from_an_exported_directory_trains_exactly_as_from_the_stage_itself() {
    let (run, dir) = exported_mini("import");
    let work = dir.parent().unwrap();
    let mini = std::fs::read_to_string(root().join("tests/fixtures/run/mini.rlp")).unwrap();
    let more = "    data arith[op 2..=3]\n    tokens 6k\n    batch 4 x 128\n    lr 1e-3 -> 1e-4 cosine\n}\n";
    // The same stage twice: once from `base` in the file that trained it, once from its export
    // in a file that only declares what the checkpoint needs (same tasks, so same vocabulary).
    let from_stage = format!("{mini}\nmidtrain more from base {{\n{more}");
    let without_base = &mini[..mini.find("pretrain base").unwrap()];
    let from_export =
        format!("{without_base}\nmidtrain more from \"hf\" {{\n    model micro\n{more}");
    std::fs::write(work.join("from_stage.rlp"), from_stage).unwrap();
    std::fs::write(work.join("from_export.rlp"), &from_export).unwrap();
    let rlp = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args(args)
            .current_dir(work)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for file in ["from_stage.rlp", "from_export.rlp"] {
        let (code, stderr) = rlp(&["run", file, "--out", "runs2"]);
        assert_eq!(code, Some(0), "{file}: {stderr}");
    }
    let weights = |plan: &str| {
        let stages = work.join("runs2").join(plan).join("stages");
        let more = std::fs::read_dir(&stages)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("more-")
            })
            .unwrap();
        candle_core::safetensors::load(more.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    assert_identical(&weights("from_stage"), &weights("from_export"));
    // A checkpoint for another model is refused by `rlp check`, saying what differs.
    let other = from_export
        .replace(
            "model micro {",
            "model other {\n    tied_embeddings on\n    qkv_bias on",
        )
        .replace("    hidden 32", "    hidden 64")
        .replace("    model micro", "    model other");
    std::fs::write(work.join("other.rlp"), other).unwrap();
    let (code, stderr) = rlp(&["check", "other.rlp"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("E0429") && stderr.contains("hidden_size"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(run.parent().unwrap().parent().unwrap());
}
