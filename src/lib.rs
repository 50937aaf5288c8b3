//! `rlp`: controlled experiments on how pre-training, mid-training and RL shape the reasoning
//! of small language models.
//!
//! The front end turns a `.rlp` file into a [`plan::Plan`]:
//! [`syntax::parse`] (text → [`syntax::ast::Ast`]) → [`analysis::compile`] (AST → plan, with
//! [`diagnostics`]). [`format`] prints a file back in canonical form; [`cli`] is the `rlp`
//! command. Nothing in the front end depends on the training backend.

pub mod analysis;
pub mod cli;
pub mod diagnostics;
pub mod eval;
pub mod format;
pub mod hf;
pub mod model;
pub mod plan;
pub mod report;
pub mod rl;
pub mod run;
pub mod syntax;
pub mod tasks;
pub mod tokenizer;
pub mod train;

pub use analysis::{Compilation, compile, compile_bytes};
