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
pub mod model;
pub mod plan;
pub mod rl;
pub mod run;
pub mod syntax;
pub mod tasks;
pub mod tokenizer;
pub mod train;

pub use analysis::{Compilation, compile, compile_bytes};

/// mimalloc's option index of `purge_delay` (`mimalloc.h`, enum `mi_option_e`; the Rust
/// bindings name the options around it, 14 and 16, but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc, the binaries' allocator, never to return freed memory to the OS. A training
/// step frees and reallocates the same buffers; returned pages come back as page faults that
/// the kernel must zero (transparent huge pages: 2 MiB each). The price: the process keeps its
/// peak footprint.
pub fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store into mimalloc's option table; mimalloc reads
    // this one each time it would purge (arena.c, os.c), so a change at any time is safe.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
