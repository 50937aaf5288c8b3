//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// rlp: controlled experiments on how pre-training, mid-training and RL shape the reasoning of
/// small language models.
#[derive(Debug, Parser)]
#[command(name = "rlp", version, about, propagate_version = true)]
pub struct Arguments {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check .rlp files and report every problem (exit 0 clean, 1 problems, 2 usage or I/O error).
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Print the resolved plan of a file as JSON: defaults filled, sweep cells expanded, stage hashes.
    Plan {
        /// The file.
        file: PathBuf,
    },
    /// Explain a diagnostic code, with an example (`rlp explain E0405`); without a code, list them all.
    Explain {
        /// A code such as `E0405` or `rlp::E0405`.
        code: Option<String>,
    },
    /// Format files in place in canonical form, keeping comments.
    Fmt {
        /// Files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write: print a diff and exit 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
    },
}

/// How `rlp check` prints diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Code frames for people (on stderr).
    Human,
    /// One JSON document for tools (on stdout).
    Json,
}
