//! Vectorizable exp and reductions: e^x without calls, and row reductions in eight lanes.

#![allow(clippy::many_single_char_names)]

/// e^x within 3e-7 relative error for x in [-87, 88] (clamped outside: below, a tiny positive
/// number instead of 0; NaN stays NaN). No branches and no calls, so loops over it vectorize:
/// libm's `expf` is one call per element, and a loop that calls it does not vectorize.
#[inline]
#[must_use]
pub fn fast_exp(x: f32) -> f32 {
    // Cody-Waite: ln 2 split so that n · LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer (no SSE4.1 `round`).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    // `shifted` lies in [2^23, 2^24), where one unit is one ulp: its low mantissa bits hold n
    // in two's complement, read off with integer ops (`n as i32` is a saturating cast that
    // compiles to one scalar conversion and two branches per element, inside a loop that
    // otherwise vectorizes).
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r for |r| <= ln 2 / 2 by its Taylor series to r^6 (remainder below 1.2e-7).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// Lanes of the reductions below: a float sum or max over one accumulator is a chain of
/// dependent adds the compiler may not reorder; eight independent ones vectorize.
pub(super) const LANES: usize = 8;

/// The sum of `xs`, in eight lanes.
#[inline]
pub(super) fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a·b over two slices of one length, in eight lanes.
#[inline]
pub(super) fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = (chunks_a.remainder().iter())
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((acc, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a·b·c over three slices of one length, in eight lanes.
#[inline]
pub(super) fn lane_dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (chunks_a, chunks_b, chunks_c) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let tail: f32 = (chunks_a.remainder().iter())
        .zip(chunks_b.remainder())
        .zip(chunks_c.remainder())
        .map(|((x, y), z)| x * y * z)
        .sum();
    for ((ca, cb), cc) in chunks_a.zip(chunks_b).zip(chunks_c) {
        for (((acc, &x), &y), &z) in acc.iter_mut().zip(ca).zip(cb).zip(cc) {
            *acc += x * y * z;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest of `xs` (−∞ for none), in eight lanes.
#[inline]
pub(super) fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// Replaces each x of `xs` by e^(x − shift) and returns their sum.
#[inline]
pub(super) fn exp_in_place(xs: &mut [f32], shift: f32) -> f32 {
    for x in xs.iter_mut() {
        *x = fast_exp(*x - shift);
    }
    lane_sum(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::float_cmp)] // e^0 is exactly 1
    fn fast_exp_is_within_three_ten_millionths_of_exp() {
        let mut worst = 0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 1.7e-4;
            let (fast, exact) = (f64::from(fast_exp(x)), f64::from(x).exp());
            worst = worst.max((fast - exact).abs() / exact);
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(fast_exp(f32::NEG_INFINITY) < 1e-37, "-inf: (almost) zero");
        assert!(fast_exp(f32::NAN).is_nan());
        assert_eq!(fast_exp(0.0), 1.0);
    }

    #[test]
    #[allow(clippy::float_cmp)] // small integers: every order of summation is exact
    fn lane_reductions_match_plain_ones() {
        for n in [0, 1, 7, 8, 9, 33] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            assert_eq!(lane_sum(&xs), xs.iter().sum::<f32>(), "n = {n}");
            assert_eq!(
                lane_max(&xs),
                xs.iter().copied().fold(f32::NEG_INFINITY, f32::max)
            );
            // Small integers: every order of summation is exact.
            let ys: Vec<f32> = (0..n).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
            let zs: Vec<f32> = (0..n).map(|i| (i % 3) as f32 + 1.0).collect();
            let dot: f32 = xs.iter().zip(&ys).map(|(x, y)| x * y).sum();
            let dot3: f32 = (xs.iter().zip(&ys).zip(&zs))
                .map(|((x, y), z)| x * y * z)
                .sum();
            assert_eq!(lane_dot(&xs, &ys), dot, "n = {n}");
            assert_eq!(lane_dot3(&xs, &ys, &zs), dot3, "n = {n}");
        }
    }
}
