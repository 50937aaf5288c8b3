//! The `rlp` command line: argument parsing, dispatch to one file per subcommand, and the
//! mapping of outcomes to exit codes. This is the only module that prints.
//!
//! Exit codes: 0 success; 1 the input has problems (diagnostics, or `fmt --check` found
//! differences, or `rlp run` failed); 2 usage or I/O error; 130 `rlp run` interrupted by Ctrl-C
//! (run it again to resume). rlp never exits with a panic's 101 on any input.

mod args;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser as _;

pub use args::{Arguments, Command, OutputFormat};

use crate::run::write_atomically;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything fine.
    Success,
    /// The input has problems.
    Problems,
    /// Bad usage or an I/O error.
    Error,
    /// Stopped by Ctrl-C (`rlp run`; resumable).
    Interrupted,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(match status {
            Status::Success => 0,
            Status::Problems => 1,
            Status::Error => 2,
            Status::Interrupted => 130,
        })
    }
}

/// Runs `rlp` with the process arguments.
#[must_use]
pub fn main() -> ExitCode {
    run(std::env::args_os()).into()
}

/// Runs `rlp` with the given arguments (the first is the program name).
pub fn run<I, T>(args: I) -> Status
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let arguments = match Arguments::try_parse_from(args) {
        Ok(arguments) => arguments,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                Status::Error
            } else {
                Status::Success
            };
        }
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    match arguments.command {
        Command::Check { files, format } => commands::check::run(&files, format, color),
        Command::Plan {
            file,
            cost,
            throughput,
        } => {
            if cost {
                commands::plan::cost(&file, throughput, color)
            } else {
                commands::plan::run(&file, color)
            }
        }
        Command::Status { run, json } => commands::status::run(&run, json),
        Command::Submit {
            file,
            slurm: _,
            out,
            dry_run,
            kinds,
            sbatch,
        } => commands::submit::run(&file, &out, dry_run, &kinds, &sbatch, color),
        Command::Report {
            runs,
            out,
            k,
            pair,
            ops,
            format,
        } => commands::report::run(&runs, out.as_deref(), &k, &pair, &ops, &format),
        Command::Explain { code, markdown } => commands::explain::run(code.as_deref(), markdown),
        Command::Fmt { files, check } => commands::fmt::run(&files, check, color),
        Command::Sample {
            file,
            source,
            count,
            seed,
            json,
        } => commands::sample::run(&file, &source, count, seed, json, color),
        Command::Data {
            file,
            stage,
            cell,
            out,
            count,
            format,
        } => commands::data::run(&file, &stage, cell.as_deref(), &out, count, format, color),
        Command::Export {
            run,
            stage,
            cell,
            out,
        } => commands::export::run(&run, &stage, cell.as_deref(), &out),
        Command::Run {
            file,
            out,
            threads,
            device,
            cell,
            stage,
            eval,
        } => commands::run::run(
            &file,
            &out,
            threads,
            device,
            &commands::run::Part { cell, stage, eval },
            color,
        ),
        Command::Verify {
            input,
            out,
            phrasing,
        } => commands::verify::run(&input, out.as_deref(), &phrasing),
    }
}

/// Compiles a file and prints its diagnostics; the plan, or the status to exit with.
fn compile_file(path: &std::path::Path, color: bool) -> Result<crate::plan::Plan, Status> {
    let bytes = read(path)?;
    let compilation = crate::compile_bytes(&path.display().to_string(), &bytes);
    if compilation.diagnostics.has_errors() {
        eprint_raw(&compilation.diagnostics.render_human(color));
    }
    compilation.plan.ok_or(Status::Problems)
}

/// Reads a file, or reports why it cannot be read.
fn read(path: &std::path::Path) -> Result<Vec<u8>, Status> {
    std::fs::read(path).map_err(|error| {
        eprint_line(&format!("error: cannot read {}: {error}", path.display()));
        Status::Error
    })
}

#[allow(clippy::print_stderr)]
fn eprint_line(text: &str) {
    eprintln!("{text}");
}

#[allow(clippy::print_stderr)]
fn eprint_raw(text: &str) {
    eprint!("{text}");
}

#[allow(clippy::print_stdout)]
fn print_raw(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`rlp plan x | head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
