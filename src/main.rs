//! The `rlp` command: see [`rlp::cli`].

mod allocator;

fn main() -> std::process::ExitCode {
    allocator::keep_freed_memory();
    // Training reuses its buffers for hours; everything else touches its memory once.
    if std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .as_deref()
        != Some("run")
    {
        allocator::small_pages();
    }
    rlp::cli::main()
}
