//! The allocator of the binaries (the `rlp` command and the benchmarks, which include this
//! file), not of the library: a program that links rlp chooses its own.
//!
//! mimalloc: generation and training allocate many short-lived buffers, where glibc's
//! allocator spends a third of the time (callgrind) and candle's buffers cause page-fault
//! storms.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option index of `purge_delay` (`mimalloc.h`, enum `mi_option_e`; the Rust
/// bindings name the options around it, 14 and 16, but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the OS. A training step frees and
/// reallocates the same buffers; returned pages come back as page faults that the kernel must
/// zero (transparent huge pages: 2 MiB each). The price: the process keeps its peak footprint.
pub(crate) fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store into mimalloc's option table; mimalloc reads
    // this one each time it would purge (arena.c, os.c), so a change at any time is safe.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Turns transparent huge pages off for this process: for the commands that read a file and
/// exit (`check`, `plan`, `fmt`, ...), whose memory is touched once. mimalloc asks for huge
/// pages; each first touch then has the kernel find and zero 2 MiB, which on a busy machine
/// cost more than the work itself (`rlp check` of a 5 MB file: 1.0-2.4 s of system time
/// with them, 0.1-0.2 s without).
pub(crate) fn small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE sets one flag of the calling process; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
