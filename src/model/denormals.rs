//! Subnormal floats flushed to zero in the threads that train and sample.
//!
//! A model that grows confident drives softmax probabilities, and the gradients made from them,
//! below f32's smallest normal number (1.2e-38). x86 cores handle such operands in microcode,
//! at many times the cost of a normal multiply-add, so matrix products slow down as training
//! goes on. Flush-to-zero (results) and denormals-are-zero (operands) make the cores treat them
//! as zero, so results change only where such a value would have reached them. The mode is
//! per thread: it is set on the calling thread and on every worker of rayon's global pool,
//! where candle's and rlp's kernels run.

/// Flush-to-zero and denormals-are-zero on this thread and on every worker of rayon's global
/// pool. Idempotent; a no-op on targets other than x86-64 and AArch64.
pub fn flush_to_zero() {
    set_on_this_thread();
    rayon::broadcast(|_| set_on_this_thread());
}

#[cfg(target_arch = "x86_64")]
fn set_on_this_thread() {
    // MXCSR bit 15 is flush-to-zero, bit 6 denormals-are-zero.
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
    let mut csr: u32 = 0;
    // SAFETY: `stmxcsr` and `ldmxcsr` read and write this thread's SSE control register through
    // a valid pointer to a local; setting FTZ and DAZ keeps every other bit as it was, so no
    // exception is unmasked.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &raw mut csr, options(nostack));
        csr |= FTZ_DAZ;
        std::arch::asm!("ldmxcsr [{}]", in(reg) &raw const csr, options(nostack, readonly));
    }
}

#[cfg(target_arch = "aarch64")]
fn set_on_this_thread() {
    // FPCR bit 24 (FZ) flushes subnormal operands and results to zero.
    const FZ: u64 = 1 << 24;
    let mut fpcr: u64;
    // SAFETY: reads and writes this thread's floating-point control register, keeping every
    // other bit as it was.
    unsafe {
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
        fpcr |= FZ;
        std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_on_this_thread() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this thread flushes subnormal floats to zero.
    fn flushing() -> bool {
        // An optimizer barrier: the compiler must not fold the product at compile time.
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        std::hint::black_box(tiny * 0.5) == 0.0
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn subnormal_results_become_zero_on_every_pool_thread() {
        // A fresh thread starts with the default mode, whatever other tests set.
        let before = std::thread::spawn(flushing).join().unwrap();
        assert!(!before, "a new thread should keep subnormals");
        std::thread::spawn(|| {
            flush_to_zero();
            assert!(flushing());
            assert!(rayon::broadcast(|_| flushing()).into_iter().all(|f| f));
        })
        .join()
        .unwrap();
    }
}
