//! Stage instances' content hashes: a stage spec as JSON with every id replaced by what it
//! refers to, so a hash depends on content only, and equal instances are stored once.
//!
//! The hashed text is `{"kind":K,"spec":S,"parent":P,"seed":N}`: S is the spec as serde_json
//! writes it, with each id (`"model":0`, a source's `"task":0` and `"contexts":[0,1]`, an rl
//! stage's `"reward":0`) replaced by the JSON text of what it names. Run directories keep
//! stages under these hashes, so the text must not change: the plan snapshots pin it.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::plan::{Plan, StageId, StagePlan, StageSpec};

/// The keys whose values are ids in a serialized stage spec, and what they index. No other
/// field of a spec has these names, and a key cannot occur inside a string (its quotes would
/// be escaped).
const ID_KEYS: [(&str, IdKind); 4] = [
    ("\"model\":", IdKind::Model),
    ("\"task\":", IdKind::Task),
    ("\"contexts\":", IdKind::Context),
    ("\"reward\":", IdKind::Reward),
];

#[derive(Clone, Copy)]
enum IdKind {
    Model,
    Task,
    Context,
    Reward,
}

/// The key pass's own state: what it has stored and what it keeps to hash the next stage
/// fast. It reads the plan's models, tasks, contexts and rewards and appends its stages.
#[derive(Default)]
pub(super) struct StageKeys {
    /// Stage instances by content hash (cells share an instance with the same hash).
    ids: HashMap<String, StageId>,
    /// JSON text of the models, tasks, contexts and rewards that hashes embed, by kind of id
    /// and id.
    json_parts: HashMap<(u8, usize), String>,
    /// The hasher after a stage's kind and spec, by the spec as serialized with ids: stages
    /// that differ only in parent or seed (replicas, sweeps) hash their shared part once.
    spec_hashers: HashMap<String, Sha256>,
}

impl StageKeys {
    /// Stores a stage instance in the plan, or finds the identical one another cell already
    /// stored.
    pub(super) fn intern(
        &mut self,
        plan: &mut Plan,
        name: &str,
        parent: Option<StageId>,
        seed: u64,
        spec: StageSpec,
        cell: usize,
    ) -> StageId {
        let parent_hash = parent.map_or(String::new(), |p| plan.stages[p.0].hash.clone());
        let hash = self.stage_hash(plan, &spec, &parent_hash, seed);
        if let Some(&id) = self.ids.get(&hash) {
            let existing = &mut plan.stages[id.0];
            if !existing.cells.contains(&cell) {
                existing.cells.push(cell);
            }
            return id;
        }
        let id = StageId(plan.stages.len());
        self.ids.insert(hash.clone(), id);
        plan.stages.push(StagePlan {
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

    /// 16 hex digits of SHA-256 of the stage's content (see the module docs). The spec comes
    /// before parent and seed, so the hasher's state after it is shared by every stage with
    /// the same spec (replicas, sweeps over seeds), and kept.
    fn stage_hash(
        &mut self,
        plan: &Plan,
        spec: &StageSpec,
        parent_hash: &str,
        seed: u64,
    ) -> String {
        let plain = serde_json::to_string(spec).unwrap_or_default();
        let mut hasher = if let Some(hasher) = self.spec_hashers.get(&plain) {
            hasher.clone()
        } else {
            let kind = serde_json::to_string(spec.keyword()).unwrap_or_default();
            let mut hasher = Sha256::new();
            hasher.update(format!("{{\"kind\":{kind},\"spec\":"));
            self.hash_resolved(plan, &mut hasher, &plain);
            self.spec_hashers.insert(plain, hasher.clone());
            hasher
        };
        let parent = serde_json::to_string(parent_hash).unwrap_or_default();
        hasher.update(format!(",\"parent\":{parent},\"seed\":{seed}}}"));
        hasher.finalize()[..8]
            .iter()
            .fold(String::new(), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }

    /// Feeds a serialized spec to the hasher with every id replaced by the JSON text of what
    /// it names (a list of contexts by the list of their texts).
    fn hash_resolved(&mut self, plan: &Plan, hasher: &mut Sha256, plain: &str) {
        let mut rest = plain;
        while let Some((at, key, kind)) = next_id_key(rest) {
            let value_start = at + key.len();
            hasher.update(&rest[..value_start]);
            let after = &rest[value_start..];
            let (list, body) = match after.strip_prefix('[') {
                Some(inner) => (true, inner),
                None => (false, after),
            };
            let end = body
                .find(|c: char| !(c.is_ascii_digit() || (list && c == ',')))
                .unwrap_or(body.len());
            if end == 0 && !list {
                rest = after; // not an id after all: hashed as written
                continue;
            }
            if list {
                hasher.update("[");
            }
            let ids = body[..end].split(',').filter_map(|id| id.parse().ok());
            for (i, id) in ids.enumerate() {
                if i > 0 {
                    hasher.update(",");
                }
                hasher.update(self.id_json(plan, kind, id));
            }
            rest = &body[end..];
        }
        hasher.update(rest);
    }

    /// The JSON text of what an id names, serialized once per file and kept (a task stands
    /// with its phrasing).
    fn id_json(&mut self, plan: &Plan, kind: IdKind, id: usize) -> &str {
        self.json_parts.entry((kind as u8, id)).or_insert_with(|| {
            let value = match kind {
                IdKind::Model => serde_json::to_value(&plan.models[id]),
                IdKind::Task => {
                    let task = &plan.tasks[id];
                    Ok(json!({ "task": task, "phrasing": plan.phrasings[task.phrasing.0] }))
                }
                IdKind::Context => serde_json::to_value(&plan.contexts[id]),
                IdKind::Reward => serde_json::to_value(&plan.rewards[id]),
            };
            value.unwrap_or_default().to_string()
        })
    }
}

/// The first id key in `text` that starts an object member (follows `{` or `,`).
fn next_id_key(text: &str) -> Option<(usize, &'static str, IdKind)> {
    ID_KEYS
        .iter()
        .filter_map(|&(key, kind)| {
            let mut from = 0;
            while let Some(pos) = text[from..].find(key) {
                let at = from + pos;
                if at > 0 && matches!(text.as_bytes()[at - 1], b'{' | b',') {
                    return Some((at, key, kind));
                }
                from = at + 1;
            }
            None
        })
        .min_by_key(|(at, _, _)| *at)
}
