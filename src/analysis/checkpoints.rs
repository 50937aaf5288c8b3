//! Stages that start from a checkpoint directory (`from "DIR"`): the weights' hash that enters
//! the stage key, and the check, once the plan is complete, that the directory holds the
//! stage's model and the plan's vocabulary.

use sha2::{Digest, Sha256};

use super::Analyzer;
use crate::diagnostics::AnalysisError;
use crate::plan::Checkpoint;
use crate::syntax::ast::{Ast, Block, Item};
use crate::tokenizer::Tokenizer;

impl Analyzer<'_> {
    /// The checkpoint a stage starts from (`from "DIR"`): `Ok(None)` for a stage that does
    /// not, `Err` if the directory's weights cannot be read (reported). The directory is
    /// taken relative to the file's, and its weights are hashed once per file.
    pub(super) fn start(
        &mut self,
        block: &Block,
        from_checkpoint: bool,
    ) -> Result<Option<Checkpoint>, ()> {
        let Some(path) = block.checkpoint.as_ref().filter(|_| from_checkpoint) else {
            return Ok(None);
        };
        let dir = self.base_dir.join(&path.value);
        let weights = dir.join("model.safetensors");
        let hashed = self
            .checkpoint_hashes
            .entry(weights.clone())
            .or_insert_with(|| {
                std::fs::read(&weights)
                    .map(|bytes| format!("{:x}", Sha256::digest(&bytes)))
                    .map_err(|e| format!("cannot read {}: {e}", weights.display()))
            })
            .clone();
        match hashed {
            Ok(weights_sha256) => Ok(Some(Checkpoint {
                dir,
                weights_sha256,
            })),
            Err(reason) => {
                self.sink.push(
                    AnalysisError::CheckpointUnusable {
                        path: path.value.clone(),
                        reason,
                        span: path.span,
                    }
                    .into(),
                );
                Err(())
            }
        }
    }

    /// Checks every checkpoint a stage starts from against the finished plan: its config must
    /// be the stage's model and its vocabulary the plan's tokenizer, id for id.
    pub(super) fn check_checkpoints(&mut self, ast: &Ast) {
        let mut tokenizer = None;
        for item in &ast.items {
            let Item::Block(block) = item else { continue };
            let (Some(path), Some(name)) = (&block.checkpoint, &block.name) else {
                continue;
            };
            let mut checked = Vec::new();
            for stage in self.plan.stages.iter().filter(|s| s.name == name.text) {
                let Some(start) = stage.spec.start() else {
                    continue;
                };
                let model = stage.spec.model();
                if checked.contains(&model) {
                    continue;
                }
                checked.push(model);
                let tokenizer = tokenizer.get_or_insert_with(|| Tokenizer::for_plan(&self.plan));
                if let Err(error) =
                    crate::hf::check_dir(&start.dir, &self.plan.models[model.0], tokenizer)
                {
                    self.sink.push(
                        AnalysisError::CheckpointUnusable {
                            path: path.value.clone(),
                            reason: error.to_string(),
                            span: path.span,
                        }
                        .into(),
                    );
                }
            }
        }
    }
}
