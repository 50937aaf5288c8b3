//! Evals. An eval block's table is reused when its key (spec and models) is unchanged; below
//! it, each model's rows and samples are kept in the run's `evals/` under what they depend on
//! (the eval's settings and splits, the task definitions, the model's stage key), so that a
//! model evaluated the same way in several cells, a base shared by every cell of a sweep, is
//! evaluated once. A model's rows do not depend on the other models of its eval: problems
//! and sampling seeds come from the eval's seed, and each model samples on its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{EvalTable, RunError, Runner, Status, create_dir, files, sha256_hex, write};
use crate::eval::report;
use crate::eval::runner::{EvalError, Evaluator, Row};
use crate::model::{Config, Transformer};
use crate::plan::{EvalSpec, StageId};

/// One model's part of an eval: its rows, and its lines of the samples file.
#[derive(Debug, Serialize, Deserialize)]
struct ModelRows {
    /// What the rows depend on ([`Runner::model_rows_key`]).
    key: String,
    /// The model's rows, splits in the eval's order.
    rows: Vec<Row>,
    /// The model's lines of `eval/<eval>-samples.jsonl`.
    samples: String,
}

impl Runner<'_> {
    /// The key of an eval's results ([`table_key`]).
    fn eval_key(&self, eval: &EvalSpec) -> Result<String, RunError> {
        table_key(eval, &self.model_dirs(eval))
    }

    /// The directory names of the stages an eval evaluates.
    fn model_dirs(&self, eval: &EvalSpec) -> Vec<String> {
        eval.models.iter().map(|m| self.stage_dir(m.0)).collect()
    }

    /// Whether `eval`'s table in the cell directory `dir` is there and current.
    pub(super) fn eval_done(&self, eval: &EvalSpec, dir: &Path) -> bool {
        table_done(eval, &self.model_dirs(eval), dir)
    }

    /// Runs one eval (or reuses its table) and writes its JSON, CSV and plots.
    pub(super) fn eval(&self, eval: &EvalSpec, dir: &Path) -> Result<(Vec<Row>, Status), RunError> {
        let key = self.eval_key(eval)?;
        let json_path = dir.join("eval").join(format!("{}.json", eval.name));
        if let Some(rows) = read_table(&json_path, &key) {
            self.observer.note(&format!(
                "eval `{}`: computed in an earlier run, reused",
                eval.name
            ));
            return Ok((rows, Status::Reused));
        }
        // Each model's rows: kept from another cell that evaluated it the same way (a shared
        // base), or evaluated now.
        let mut parts = Vec::with_capacity(eval.models.len());
        let mut missing = Vec::new();
        for &id in &eval.models {
            let part_key = self.model_rows_key(eval, id)?;
            let kept = std::fs::read_to_string(self.model_rows_path(&part_key))
                .ok()
                .and_then(|text| serde_json::from_str::<ModelRows>(&text).ok())
                .filter(|part| part.key == part_key);
            if kept.is_some() {
                self.observer.note(&format!(
                    "eval `{}`: `{}` was evaluated the same way in another cell, reused",
                    eval.name, self.plan.stages[id.0].name
                ));
            } else {
                missing.push((id, part_key));
            }
            parts.push(kept);
        }
        if !missing.is_empty() {
            let evaluated = self.evaluate(eval, &missing)?;
            for ((id, _), part) in missing.iter().zip(evaluated) {
                let slot = eval.models.iter().position(|m| m == id);
                if let Some(slot) = slot {
                    parts[slot] = Some(part);
                }
            }
        }
        let parts: Vec<ModelRows> = parts.into_iter().flatten().collect();
        let table = EvalTable {
            eval: eval.name.clone(),
            key,
            rows: parts.iter().flat_map(|p| p.rows.iter().cloned()).collect(),
        };
        let eval_dir = dir.join("eval");
        let samples: String = parts.iter().map(|p| p.samples.as_str()).collect();
        write(
            &eval_dir.join(format!("{}-samples.jsonl", eval.name)),
            samples.as_bytes(),
        )?;
        write(
            &eval_dir.join(format!("{}.csv", eval.name)),
            report::csv(eval, &table.rows).as_bytes(),
        )?;
        for split in &eval.splits {
            let svg = report::plot_split(eval, &table.rows, &split.name)
                .map_err(|e| RunError::Internal(format!("plot: {e}")))?;
            write(
                &eval_dir.join(format!("{}-{}.svg", eval.name, split.name)),
                svg.as_bytes(),
            )?;
        }
        // The JSON last: its presence with this key marks the eval as done.
        write(&json_path, &files::pretty_json(&table)?)?;
        let status = if missing.is_empty() {
            Status::Reused
        } else {
            Status::Finished
        };
        Ok((table.rows, status))
    }

    /// What one model's rows in an eval depend on: the eval without its name and models, the
    /// definitions its splits' ids point into, and the model's stage directory name (its
    /// content and tokenizer).
    fn model_rows_key(&self, eval: &EvalSpec, model: StageId) -> Result<String, RunError> {
        let mut settings = eval.clone();
        settings.name.clear();
        settings.models.clear();
        let plan = self.plan;
        let text =
            serde_json::to_string(&(&settings, &plan.tasks, &plan.phrasings, &plan.contexts))
                .map_err(|e| RunError::Internal(format!("eval JSON: {e}")))?;
        Ok(sha256_hex(
            format!("{text}\n{}", self.stage_dir(model.0)).as_bytes(),
        ))
    }

    fn model_rows_path(&self, key: &str) -> PathBuf {
        self.root.join("evals").join(format!("{key}.json"))
    }

    /// Evaluates `models` (with their keys) on `eval`'s splits, keeps each one's part under
    /// its key, and returns the parts in order.
    fn evaluate(
        &self,
        eval: &EvalSpec,
        models: &[(StageId, String)],
    ) -> Result<Vec<ModelRows>, RunError> {
        let mut built = Vec::new();
        for (id, _) in models {
            let stage = &self.plan.stages[id.0];
            let weights = self.stage_path(*id).join("model.safetensors");
            let config = Config::from_spec(
                &self.plan.models[stage.spec.model().0],
                self.tokenizer.len(),
            );
            let (mut varmap, model) = crate::model::build(&config, &self.options.device, None)?;
            varmap.load(&weights)?;
            built.push((stage.name.clone(), model));
        }
        let refs: Vec<(String, &Transformer)> = built.iter().map(|(n, m)| (n.clone(), m)).collect();
        let evaluator = Evaluator::new(self.plan, &self.tokenizer);
        let problems = crate::eval::runner::problem_count(eval, models.len());
        // "eval eval" for an unnamed block reads badly.
        let label = if eval.name == "eval" {
            "eval".to_owned()
        } else {
            format!("eval {}", eval.name)
        };
        self.observer.begin(&label, problems);
        let mut tick = |done: u64, _total: u64| {
            self.observer.advance(done, "problems");
            !self.options.interrupt.load(Ordering::SeqCst)
        };
        let evaluation = match evaluator.evaluate(eval, &refs, &mut tick) {
            Ok(evaluation) => evaluation,
            Err(EvalError::Interrupted) => {
                self.observer.end("interrupted");
                return Err(RunError::EvalInterrupted {
                    eval: eval.name.clone(),
                });
            }
            Err(EvalError::Generate(e)) => return Err(e.into()),
            Err(EvalError::Tensor(e)) => return Err(e.into()),
        };
        self.observer.end("done");
        create_dir(&self.root.join("evals"))?;
        let mut parts = Vec::with_capacity(models.len());
        for ((_, key), (name, _)) in models.iter().zip(&built) {
            let mut samples = String::new();
            for record in evaluation.samples.iter().filter(|r| &r.model == name) {
                let line = serde_json::to_string(record)
                    .map_err(|e| RunError::Internal(format!("sample JSON: {e}")))?;
                samples.push_str(&line);
                samples.push('\n');
            }
            let part = ModelRows {
                key: key.clone(),
                rows: evaluation
                    .rows
                    .iter()
                    .filter(|r| &r.model == name)
                    .cloned()
                    .collect(),
                samples,
            };
            write(&self.model_rows_path(key), &files::pretty_json(&part)?)?;
            parts.push(part);
        }
        Ok(parts)
    }
}

/// The key of an eval's results: its spec and the directory names (keys) of the models it
/// evaluates.
///
/// # Errors
/// The spec cannot be serialized.
pub(super) fn table_key(eval: &EvalSpec, model_dirs: &[String]) -> Result<String, RunError> {
    let spec =
        serde_json::to_string(eval).map_err(|e| RunError::Internal(format!("eval JSON: {e}")))?;
    Ok(sha256_hex(
        format!("{spec}\n{}", model_dirs.join("\n")).as_bytes(),
    ))
}

/// Whether `eval`'s table in the cell directory `dir` is there with the current key.
pub(super) fn table_done(eval: &EvalSpec, model_dirs: &[String], dir: &Path) -> bool {
    table_key(eval, model_dirs).is_ok_and(|key| {
        read_table(&dir.join("eval").join(format!("{}.json", eval.name)), &key).is_some()
    })
}

/// The rows of the eval table at `path`, if its key is `key`.
fn read_table(path: &Path, key: &str) -> Option<Vec<Row>> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<EvalTable>(&text).ok())
        .filter(|table| table.key == key)
        .map(|table| table.rows)
}
