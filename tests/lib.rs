//! The integration test binary: one binary, one module per concern (just's layout).

mod cli;
mod codes;
mod common;
mod fixtures;
mod formatting;
mod pipelines;
mod prelude;
mod robustness;
