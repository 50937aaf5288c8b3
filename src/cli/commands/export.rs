//! `rlp export RUNDIR --stage NAME [--cell NAME] --out DIR`

use std::path::{Path, PathBuf};

use super::super::{Status, eprint_line};
use crate::plan::{Plan, StagePlan};
use crate::run::RunDir;
use crate::tokenizer::Tokenizer;

pub(crate) fn run(run_dir: &Path, stage: &str, cell: Option<&str>, out: &Path) -> Status {
    match export(run_dir, stage, cell, out) {
        Ok(stage_dir) => {
            eprint_line(&format!(
                "exported stage `{stage}` ({}) to {}",
                stage_dir.display(),
                out.display()
            ));
            Status::Success
        }
        Err(message) => {
            eprint_line(&format!("error: {message}"));
            Status::Error
        }
    }
}

/// Finds the stage's directory in the run and writes the checkpoint; returns the stage's
/// directory, or what went wrong in a line or two.
fn export(run_dir: &Path, stage: &str, cell: Option<&str>, out: &Path) -> Result<PathBuf, String> {
    let run = RunDir::open(run_dir)?;
    let instance = run.plan.stage_instance(stage, cell)?;
    let tokenizer = std::str::from_utf8(&run.tokenizer_json)
        .map_err(|e| e.to_string())
        .and_then(|json| Tokenizer::from_json(json).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", run_dir.join("tokenizer.json").display()))?;
    let stage_dir = run.stage_dir(instance.id.0);
    let weights = stage_dir.join("model.safetensors");
    if !weights.is_file() || !stage_dir.join("done.json").is_file() {
        return Err(format!(
            "stage `{stage}` has not finished in {} (run it first: `rlp run FILE --stage {stage}`{})",
            stage_dir.display(),
            cell.map(|c| format!(" --cell {c}")).unwrap_or_default()
        ));
    }
    let model = &run.plan.models[instance.spec.model().0];
    crate::model::hf::write_dir(
        model,
        &tokenizer,
        &weights,
        &readme(&run.plan, instance),
        out,
    )
    .map_err(|e| e.to_string())?;
    Ok(stage_dir)
}

/// The export's README: what it is, how to prompt it, how to score its completions, and the
/// stage's spec.
fn readme(plan: &Plan, stage: &StagePlan) -> String {
    let spec = serde_json::to_string_pretty(&stage.spec).unwrap_or_default();
    let model = &plan.models[stage.spec.model().0];
    let phrasing = stage
        .spec
        .data()
        .components
        .first()
        .map(|c| &plan.tasks[c.source.task.0])
        .map_or("english", |task| {
            plan.phrasings[task.phrasing.0].name.as_str()
        });
    format!(
        "# `{name}` of `{plan}`, exported by rlp {version}\n\n\
         A Qwen2 causal language model trained by rlp: stage `{name}` of the plan `{plan}` \
         (stage content hash `{hash}`), model `{model}` ({params} parameters outside the \
         embedding). Load it with `transformers`:\n\n\
         ```python\n\
         from transformers import AutoModelForCausalLM, AutoTokenizer\n\
         tok = AutoTokenizer.from_pretrained(DIR)\n\
         model = AutoModelForCausalLM.from_pretrained(DIR)\n\
         prompt = \"<question> ... </question> <solution>\"\n\
         ids = tok(prompt, return_tensors=\"pt\").input_ids  # [BOS] is added in front\n\
         out = model.generate(ids, do_sample=False, max_new_tokens=240)  # stops at [EOS] or </answer>\n\
         print(tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True))\n\
         ```\n\n\
         ## Prompt layout\n\n\
         A problem is `[BOS]<question> PROBLEM QUESTION </question> <solution>`; the model \
         continues with the solution steps, then ` </solution> <answer> VALUE </answer>`. \
         `rlp data FILE --stage NAME --out data.jsonl` writes problems in this layout (field \
         `text`, the prompt being everything up to `<solution>`). The vocabulary is closed \
         (every piece rlp's tasks produce); other text becomes `[UNK]`.\n\n\
         ## Scoring completions step by step\n\n\
         Write JSONL records with the gold `solution` (from `rlp data`) and the model's \
         `completion`, then run `rlp verify completions.jsonl --phrasing {phrasing}`: the verifier rlp's training \
         and evaluation use (process accuracy, verified correctness, the answer).\n\n\
         ## The stage\n\n\
         ```json\n{spec}\n```\n",
        name = stage.name,
        plan = plan.name,
        version = env!("CARGO_PKG_VERSION"),
        params = model.non_embedding_params,
        model = model.name,
        hash = stage.hash,
    )
}
