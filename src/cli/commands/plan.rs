//! `rlp plan FILE [--cost [--throughput FLOP/S]]`

use std::fmt::Write as _;
use std::path::Path;

use super::super::{Status, compile_file, eprint_line, eprint_raw, print_raw, read};
use crate::plan::cost::{FORWARD, RlPasses, RlStepTokens, rl_step_flops, train_flops};
use crate::plan::{
    Component, DataSpec, ModelId, Plan, RlSpec, SourceSpec, StageSpec, ValidateSpec,
};
use crate::tasks::Generator;
use crate::tasks::stream::example;
use crate::tokenizer::Tokenizer;

pub(crate) fn run(path: &Path, color: bool) -> Status {
    let bytes = match read(path) {
        Ok(bytes) => bytes,
        Err(status) => return status,
    };
    let compilation = crate::compile_bytes(&path.display().to_string(), &bytes);
    eprint_raw(&compilation.diagnostics.render_human(color));
    match compilation.plan {
        Some(plan) => match serde_json::to_string_pretty(&plan) {
            Ok(text) => {
                print_raw(&format!("{text}\n"));
                Status::Success
            }
            Err(_) => Status::Error,
        },
        None => Status::Problems,
    }
}

/// Problems drawn per stage to measure its prompt and solution lengths.
const LENGTH_SAMPLE: u64 = 64;

/// Mean lengths, in tokens, of a data spec's prompts and gold completions (solution, answer),
/// over the first problems of its stream.
fn mean_lengths(
    plan: &Plan,
    generator: &Generator<'_>,
    tokenizer: &Tokenizer,
    data: &DataSpec,
    seed: u64,
) -> Result<(f64, f64), String> {
    let (mut prompt, mut completion) = (0u64, 0u64);
    for i in 0..LENGTH_SAMPLE {
        let problem = example(generator, data, seed, i).map_err(|e| e.to_string())?;
        let prompt_text = problem.rendered.prompt();
        let text = problem.record(plan, i).text;
        let p = tokenizer.prompt_ids(&prompt_text).len() as u64;
        prompt += p;
        completion += (tokenizer.prompt_ids(&text).len() as u64).saturating_sub(p);
    }
    let n = LENGTH_SAMPLE as f64;
    Ok((prompt as f64 / n, completion as f64 / n))
}

/// A source as the data of a stream.
fn only(source: &SourceSpec) -> DataSpec {
    DataSpec {
        mixture: None,
        components: vec![Component {
            weight: 1.0,
            source: source.clone(),
        }],
    }
}

/// The greedy validations of an `rl` stage (before the first step, every `every` steps, after
/// the last), one completion per problem: (tokens, completions).
fn validation_cost(
    plan: &Plan,
    generator: &Generator<'_>,
    tokenizer: &Tokenizer,
    r: &RlSpec,
    v: &ValidateSpec,
) -> Result<(f64, u64), String> {
    let (p, c) = mean_lengths(plan, generator, tokenizer, &only(&v.source), v.seed)?;
    let ops = u64::from(v.source.op_max - v.source.op_min + 1);
    let completions = v.count(u64::from(r.steps)) * ops * u64::from(v.problems_per_op);
    let tokens = completions as f64 * (p + c.min(f64::from(r.max_new_tokens)));
    Ok((tokens, completions))
}

/// One row of the cost table.
struct CostRow {
    what: String,
    cells: usize,
    tokens: f64,
    steps: u64,
    rollouts: u64,
    flops: f64,
}

pub(crate) fn cost(path: &Path, throughput: f64, color: bool) -> Status {
    let plan = match compile_file(path, color) {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    match cost_rows(&plan) {
        Ok(rows) => {
            print_raw(&cost_table(&plan, &rows, throughput));
            Status::Success
        }
        Err(message) => {
            eprint_line(&format!("error: {message}"));
            Status::Error
        }
    }
}

fn cost_rows(plan: &Plan) -> Result<Vec<CostRow>, String> {
    let tokenizer = Tokenizer::for_plan(plan);
    let generator = Generator::new(plan);
    let params = |model: ModelId| plan.models[model.0].non_embedding_params;
    let mut rows = Vec::new();
    for stage in &plan.stages {
        let n = params(stage.spec.model());
        let row = match &stage.spec {
            StageSpec::Pretrain(t) | StageSpec::Midtrain(t) => {
                // What it trains: whole batches up to `tokens`, or up to `stop`.
                let trained = t.steps() * u64::from(t.batch) * u64::from(t.seq_len);
                CostRow {
                    what: format!("{} `{}`", stage.spec.keyword(), stage.name),
                    cells: stage.cells.len(),
                    tokens: trained as f64,
                    steps: t.steps(),
                    rollouts: 0,
                    flops: train_flops(n, trained),
                }
            }
            StageSpec::Rl(r) => {
                let (p, c) = mean_lengths(plan, &generator, &tokenizer, &r.prompts, stage.seed)?;
                let prompts = f64::from(r.prompts_per_step);
                let group = f64::from(r.group);
                let tokens = RlStepTokens {
                    sampled: (prompts * (p + group * c)).round() as u64,
                    trained: (prompts * group * (p + c)).round() as u64,
                };
                let passes = RlPasses {
                    epochs: r.epochs,
                    reference: r.kl > 0.0,
                    old_policy: r.minibatches > 1,
                };
                let steps = u64::from(r.steps);
                CostRow {
                    what: format!("rl `{}`", stage.name),
                    cells: stage.cells.len(),
                    tokens: steps as f64 * tokens.sampled as f64,
                    steps: steps * u64::from(r.epochs.max(1)) * u64::from(r.minibatches.max(1)),
                    rollouts: steps * u64::from(r.prompts_per_step) * u64::from(r.group),
                    flops: steps as f64 * rl_step_flops(n, tokens, passes),
                }
            }
        };
        rows.push(row);
        if let StageSpec::Rl(r) = &stage.spec
            && let Some(v) = &r.validate
        {
            let (tokens, completions) = validation_cost(plan, &generator, &tokenizer, r, v)?;
            rows.push(CostRow {
                what: format!("validate `{}`", stage.name),
                cells: stage.cells.len(),
                tokens,
                steps: 0,
                rollouts: completions,
                flops: FORWARD * n as f64 * tokens,
            });
        }
    }
    // Evals: every model samples every problem `samples` times (forward passes only). A
    // model's rows are kept under the eval's settings and splits, so cells that evaluate the
    // same model the same way (a shared base) count it once.
    let mut evaluated = std::collections::BTreeSet::new();
    // (problems, tokens one model samples) per eval's settings: the same for every model.
    let mut per_model: std::collections::HashMap<String, (u64, f64)> =
        std::collections::HashMap::new();
    let mut by_eval: Vec<CostRow> = Vec::new();
    for cell in &plan.cells {
        for eval in &cell.evals {
            let settings = serde_json::to_string(&(
                &eval.splits,
                eval.samples,
                eval.problems_per_op,
                eval.max_new_tokens,
                eval.seed,
            ))
            .unwrap_or_default();
            if !per_model.contains_key(&settings) {
                let (mut tokens, mut problems) = (0.0, 0);
                for split in &eval.splits {
                    let data = only(&split.source);
                    let (p, c) = mean_lengths(plan, &generator, &tokenizer, &data, eval.seed)?;
                    let ops = u64::from(split.source.op_max - split.source.op_min + 1);
                    let split_problems = ops * u64::from(eval.problems_per_op);
                    problems += split_problems;
                    let completion = c.min(f64::from(eval.max_new_tokens));
                    tokens += split_problems as f64 * (p + f64::from(eval.samples) * completion);
                }
                per_model.insert(settings.clone(), (problems, tokens));
            }
            let (problems, tokens) = per_model[&settings];
            for model in &eval.models {
                if !evaluated.insert((eval.name.clone(), settings.clone(), *model)) {
                    continue;
                }
                let n = params(plan.stages[model.0].spec.model()) as f64;
                let what = format!("eval `{}`", eval.name);
                let index = by_eval
                    .iter()
                    .position(|r| r.what == what)
                    .unwrap_or_else(|| {
                        by_eval.push(CostRow {
                            what,
                            cells: 0,
                            tokens: 0.0,
                            steps: 0,
                            rollouts: 0,
                            flops: 0.0,
                        });
                        by_eval.len() - 1
                    });
                let row = &mut by_eval[index];
                row.cells += 1;
                row.tokens += tokens;
                row.rollouts += problems * u64::from(eval.samples);
                row.flops += FORWARD * n * tokens;
            }
        }
    }
    rows.extend(by_eval);
    Ok(rows)
}

fn human(x: f64) -> String {
    match x {
        x if x >= 1e12 => format!("{:.2}T", x / 1e12),
        x if x >= 1e9 => format!("{:.2}B", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

fn cost_table(plan: &Plan, rows: &[CostRow], throughput: f64) -> String {
    let hours = |flops: f64| flops / throughput / 3600.0;
    let mut out = format!(
        "cost of `{}`: {} stage instances, {} cells\n\n| what | cells (evals: models) | tokens | optimizer steps | rollouts or samples | FLOPs | GPU-hours |\n|---|---|---|---|---|---|---|\n",
        plan.name,
        plan.stages.len(),
        plan.cells.len()
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.3e} | {:.3} |",
            row.what,
            row.cells,
            human(row.tokens),
            row.steps,
            row.rollouts,
            row.flops,
            hours(row.flops)
        );
    }
    let total: f64 = rows.iter().map(|r| r.flops).sum();
    let _ = writeln!(
        out,
        "| total | | {} | {} | {} | {total:.3e} | {:.3} |\n\nFLOPs: 6·N per trained token, 2·N per sampled or evaluated token (N: parameters outside the embedding); RL and eval lengths are the means of {LENGTH_SAMPLE} problems' prompts and gold completions of each stage's or split's data. GPU-hours at {throughput:.2e} FLOP/s sustained per GPU (`--throughput`).",
        human(rows.iter().map(|r| r.tokens).sum()),
        rows.iter().map(|r| r.steps).sum::<u64>(),
        rows.iter().map(|r| r.rollouts).sum::<u64>(),
        hours(total)
    );
    out
}
