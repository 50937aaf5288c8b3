//! The integration test binary: one binary, one module per concern (just's layout).
#![allow(clippy::unwrap_used)] // helpers of tests fail loudly by design

mod cli;
mod codes;
mod common;
mod docs;
mod export;
mod fixtures;
mod formatting;
mod model;
mod paper;
mod pipelines;
mod prelude;
mod report;
mod report_pairs;
mod robustness;
mod run;
mod tasks;
mod tokenizer;
mod training;
mod validation;
