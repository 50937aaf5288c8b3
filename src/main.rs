//! The `rlp` command: see [`rlp::cli`].

mod allocator;

fn main() -> std::process::ExitCode {
    allocator::keep_freed_memory();
    rlp::cli::main()
}
