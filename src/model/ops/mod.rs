//! Fused CPU kernels with hand-written backward passes, for the ops where candle's composite
//! versions spend most of a training step: each composite op allocates and walks a fresh tensor, and its backward does so again per op.
//!
//! - [`causal_softmax`]: scale, causal mask and softmax of attention scores in one pass.
//! - [`causal_attention`]: the whole causal attention, blockwise, never holding the (t × t)
//!   scores of more than one block of rows per worker.
//! - [`rms_norm`]: `x / rms(x) * w`.
//! - [`swiglu`]: `silu(gate) ⊙ up`.
//! - [`rope`]: rotary position embedding (rotate-half layout, as Qwen2).
//! - [`cross_entropy`]: per-row `logsumexp(logits) - logits[target]`.
//! - [`linear`]: `x wᵀ + b` as one node, its weight gradient split over the rows in parallel.
//!
//! Each works on contiguous f32 CPU tensors and is differentiable: its `bwd` runs another fused
//! kernel. On other devices the model uses the composite ops instead ([`super`]). Tests compare
//! values and gradients with the composite ops on random shapes.

// Kernels read best with the formulas' own one-letter names (x, w, g, q, k, v, d, s, ...).
#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, Layout, Result};

/// The contiguous f32 data of a storage.
fn f32s<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("fused op: expected an f32 tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fused op: input must be contiguous");
    };
    Ok(&data[start..end])
}

/// The contiguous u32 data of a storage.
fn u32s<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [u32]> {
    let CpuStorage::U32(data) = storage else {
        candle_core::bail!("fused op: expected a u32 tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fused op: input must be contiguous");
    };
    Ok(&data[start..end])
}

/// The last two dimensions of a layout, (rows per matrix, columns): (t, s) of scores, (t, d)
/// of a (b, h, t, d) tensor.
fn last_two_dims(layout: &Layout) -> Result<(usize, usize)> {
    match layout.dims() {
        [.., rows, cols] => Ok((*rows, *cols)),
        _ => candle_core::bail!("fused op: expected at least two dimensions"),
    }
}

/// The last dimension of a layout.
fn last_dim(layout: &Layout) -> Result<usize> {
    layout
        .dims()
        .last()
        .copied()
        .ok_or_else(|| candle_core::Error::Msg("fused op: scalar input".into()))
}

mod attention;
mod decode;
mod lanes;
mod linear;
mod loss;
mod norm;
mod rope;
mod softmax;
mod swiglu;

pub use self::attention::*;
pub use self::decode::*;
pub use self::lanes::*;
pub use self::linear::*;
pub use self::loss::*;
pub use self::norm::*;
pub use self::rope::*;
pub use self::softmax::*;
pub use self::swiglu::*;

/// What the kernels' tests share: random inputs and the fused-against-composite comparison.
#[cfg(test)]
mod test_support {
    use candle_core::{Device, Tensor, Var};
    use rand::{Rng, SeedableRng};

    pub(super) fn random(shape: &[usize], seed: u64) -> Var {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
    }

    pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Values of `fused` and `plain` on the same inputs, and the gradients of a random linear
    /// function of each with respect to every input, agree within `tol`.
    pub(super) fn agree(
        inputs: &[Var],
        fused: impl Fn(&[Tensor]) -> Tensor,
        plain: impl Fn(&[Tensor]) -> Tensor,
        tol: f32,
    ) {
        let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
        let (a, b) = (fused(&xs), plain(&xs));
        assert_eq!(a.dims(), b.dims());
        assert!(
            max_diff(&a, &b) < tol,
            "values differ by {}",
            max_diff(&a, &b)
        );
        let weights = random(a.dims(), 99);
        let ga = (a * weights.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (b * weights.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, var) in inputs.iter().enumerate() {
            let (Some(ga), Some(gb)) = (ga.get(var.as_tensor()), gb.get(var.as_tensor())) else {
                panic!("input {i} got no gradient");
            };
            assert!(
                max_diff(ga, gb) < tol,
                "gradient of input {i} differs by {}",
                max_diff(ga, gb)
            );
        }
    }
}
