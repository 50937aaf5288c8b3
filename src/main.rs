//! The `rlp` command: see [`rlp::cli`].

/// mimalloc: generation and training allocate many short-lived buffers, where glibc's
/// allocator spends a third of the time (callgrind) and candle's buffers cause page-fault
/// storms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rlp::keep_freed_memory();
    rlp::cli::main()
}
