//! One file per subcommand.

pub(super) mod check;
pub(super) mod data;
pub(super) mod explain;
pub(super) mod export;
pub(super) mod fmt;
pub(super) mod plan;
pub(super) mod report;
pub(super) mod run;
pub(super) mod sample;
pub(super) mod status;
pub(super) mod submit;
pub(super) mod verify;
