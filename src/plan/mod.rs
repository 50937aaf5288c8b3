//! The resolved plan: what [`crate::analysis`] makes of a file, and what every later stage
//! (data generation, training, RL, evaluation) reads. Names are resolved to ids, every default
//! is filled in, every stage has its seed and content hash, and sweeps are expanded into cells.
//! Nothing after analysis parses a string or looks up a name.

pub mod cost;
mod spec;
pub mod template;

use serde::{Deserialize, Serialize};
pub use spec::*;

/// The version of the plan JSON (`rlp plan`).
pub const PLAN_SCHEMA: u32 = 1;

/// A whole experiment, resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Version of this structure.
    pub schema: u32,
    /// The experiment's name (the file stem).
    pub name: String,
    /// The root seed.
    pub seed: u64,
    /// Contexts in use, indexed by [`ContextId`].
    pub contexts: Vec<ContextSpec>,
    /// Phrasings in use, indexed by [`PhrasingId`].
    pub phrasings: Vec<PhrasingSpec>,
    /// Tasks, indexed by [`TaskId`].
    pub tasks: Vec<TaskSpec>,
    /// Models in use, indexed by [`ModelId`].
    pub models: Vec<ModelSpec>,
    /// Rewards, indexed by [`RewardId`].
    pub rewards: Vec<RewardSpec>,
    /// Budgets, as declared.
    pub budgets: Vec<BudgetSpec>,
    /// Every distinct stage instance; cells that share a stage share its entry.
    pub stages: Vec<StagePlan>,
    /// The cells of the sweep (one cell when there is no sweep).
    pub cells: Vec<CellPlan>,
}

impl Plan {
    /// The instance of stage `name` in `cell`, or, without a cell, the only instance of that
    /// name. The error says what to write instead in one line.
    pub fn stage_instance(&self, name: &str, cell: Option<&str>) -> Result<&StagePlan, String> {
        let instances: Vec<&StagePlan> = self.stages.iter().filter(|s| s.name == name).collect();
        if instances.is_empty() {
            let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(format!("no stage `{name}` (stages: {})", names.join(", ")));
        }
        let cell_names = || {
            let names: Vec<&str> = self.cells.iter().map(|c| c.name.as_str()).collect();
            names.join(", ")
        };
        match cell {
            Some(cell) => {
                let index = self
                    .cells
                    .iter()
                    .find(|c| c.name == cell)
                    .map(|c| c.index)
                    .ok_or_else(|| format!("no cell `{cell}` (cells: {})", cell_names()))?;
                instances
                    .into_iter()
                    .find(|s| s.cells.contains(&index))
                    .ok_or_else(|| format!("stage `{name}` is not in cell `{cell}`"))
            }
            None if instances.len() == 1 => Ok(instances[0]),
            None => Err(format!(
                "stage `{name}` differs between cells; pick one with --cell ({})",
                cell_names()
            )),
        }
    }
}

/// One cell of the sweep grid: a binding of every sweep variable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellPlan {
    /// Position in [`Plan::cells`].
    pub index: usize,
    /// A readable, path-safe name such as `range=7..=10`, or `main` without sweeps.
    pub name: String,
    /// Variable → value as written.
    pub bindings: Vec<(String, String)>,
    /// The cell's stages in execution order, as indices into [`Plan::stages`].
    pub stages: Vec<StageId>,
    /// The cell's evaluations.
    pub evals: Vec<EvalSpec>,
}

/// One stage instance: a stage with every value resolved for one or more cells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StagePlan {
    /// Position in [`Plan::stages`].
    pub id: StageId,
    /// The stage's name in the file.
    pub name: String,
    /// The stage whose final weights this one starts from.
    pub parent: Option<StageId>,
    /// The stage's seed, derived from the root seed and the stage name.
    pub seed: u64,
    /// Content hash of spec, parent hash and seed (hex): equal hashes mean equal work.
    pub hash: String,
    /// The cells that include this instance.
    pub cells: Vec<usize>,
    /// What the stage does.
    pub spec: StageSpec,
}
