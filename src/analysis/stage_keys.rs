//! Stage instances' content hashes: a stage spec as JSON with every id replaced by what it
//! refers to, so a hash depends on content only, and equal instances are stored once.

use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Analyzer;
use crate::plan::{StageId, StagePlan, StageSpec};
impl Analyzer<'_> {
    /// Stores a stage instance, or finds the identical one another cell already stored.
    pub(super) fn intern_stage(
        &mut self,
        name: &str,
        parent: Option<StageId>,
        seed: u64,
        spec: StageSpec,
        cell: usize,
    ) -> StageId {
        let parent_hash = parent.map_or(String::new(), |p| self.plan.stages[p.0].hash.clone());
        let content = json!({
            "kind": spec.keyword(),
            "spec": self.resolved_json(&spec),
            "parent": parent_hash,
            "seed": seed,
        });
        let hash = self.spliced_hash(&content.to_string());
        if let Some(&id) = self.stage_ids.get(&hash) {
            let existing = &mut self.plan.stages[id.0];
            if !existing.cells.contains(&cell) {
                existing.cells.push(cell);
            }
            return id;
        }
        let id = StageId(self.plan.stages.len());
        self.stage_ids.insert(hash.clone(), id);
        self.plan.stages.push(StagePlan {
            id,
            name: name.to_owned(),
            parent,
            seed,
            hash,
            cells: vec![cell],
            spec,
        });
        id
    }

    /// A stage spec as JSON with every id replaced by what it refers to, so the hash depends
    /// on content only (not on the order things were interned). The model, task, contexts and
    /// reward stand in it as placeholders for their JSON text, serialized once per file and
    /// put back by [`Self::spliced_hash`]: the bytes hashed are those of the whole tree, at a
    /// fraction of the cost for files with thousands of stages.
    pub(super) fn resolved_json(&self, spec: &StageSpec) -> Value {
        let mut value = serde_json::to_value(spec).unwrap_or(Value::Null);
        let model_id = spec.model().0;
        value["model"] = self.placeholder(&format!("model:{model_id}"), || {
            serde_json::to_value(&self.plan.models[model_id]).unwrap_or(Value::Null)
        });
        let data_key = if matches!(spec, StageSpec::Rl(_)) {
            "prompts"
        } else {
            "data"
        };
        if let Some(components) = value[data_key]["components"].as_array_mut() {
            for (component, original) in components.iter_mut().zip(&spec.data().components) {
                let task_id = original.source.task.0;
                let contexts: Vec<Value> = original
                    .source
                    .contexts
                    .iter()
                    .map(|c| {
                        self.placeholder(&format!("context:{}", c.0), || {
                            serde_json::to_value(&self.plan.contexts[c.0]).unwrap_or(Value::Null)
                        })
                    })
                    .collect();
                component["source"]["task"] = self.placeholder(&format!("task:{task_id}"), || {
                    let task = &self.plan.tasks[task_id];
                    json!({
                        "task": task,
                        "phrasing": self.plan.phrasings[task.phrasing.0],
                    })
                });
                component["source"]["contexts"] = Value::Array(contexts);
            }
        }
        if let StageSpec::Rl(rl) = spec {
            value["reward"] = self.placeholder(&format!("reward:{}", rl.reward.0), || {
                serde_json::to_value(&self.plan.rewards[rl.reward.0]).unwrap_or(Value::Null)
            });
        }
        value
    }

    /// A JSON string standing for `value()`'s text, which is serialized once and kept.
    pub(super) fn placeholder(&self, key: &str, value: impl FnOnce() -> Value) -> Value {
        self.json_parts
            .borrow_mut()
            .entry(key.to_owned())
            .or_insert_with(|| value().to_string());
        // Control characters cannot occur in a checked file (E0107): the markers are unique.
        Value::String(format!("\u{1}{key}\u{1}"))
    }

    /// The hash of `text` with every serialized placeholder replaced by the JSON text it stands
    /// for (16 hex digits of SHA-256), fed to the hasher piece by piece.
    pub(super) fn spliced_hash(&self, text: &str) -> String {
        const OPEN: &str = "\"\\u0001";
        const CLOSE: &str = "\\u0001\"";
        let parts = self.json_parts.borrow();
        let mut hasher = Sha256::new();
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find(CLOSE) else { break };
            hasher.update(&rest[..start]);
            match parts.get(&after[..end]) {
                Some(json) => hasher.update(json),
                None => hasher.update(&rest[start..start + OPEN.len() + end + CLOSE.len()]),
            }
            rest = &after[end + CLOSE.len()..];
        }
        hasher.update(rest);
        hasher.finalize()[..8]
            .iter()
            .fold(String::new(), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }
}
