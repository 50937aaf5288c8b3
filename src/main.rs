//! The `rlp` command: see [`rlp::cli`].

fn main() -> std::process::ExitCode {
    rlp::cli::main()
}
