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

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

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

// ---------------------------------------------------------------------------------------------
// Vectorizable exp and reductions

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
const LANES: usize = 8;

/// The sum of `xs`, in eight lanes.
#[inline]
fn lane_sum(xs: &[f32]) -> f32 {
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
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
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
fn lane_dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
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
fn lane_max(xs: &[f32]) -> f32 {
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
fn exp_in_place(xs: &mut [f32], shift: f32) -> f32 {
    for x in xs.iter_mut() {
        *x = fast_exp(*x - shift);
    }
    lane_sum(xs)
}

// ---------------------------------------------------------------------------------------------
// Causal softmax

/// softmax(scale · x + causal mask) over the last dim of scores (…, t, s): query row i (of t)
/// sits at absolute position `s - t + i` and sees keys `0..=s - t + i`.
struct CausalSoftmax {
    scale: f32,
}

struct CausalSoftmaxGrad {
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(storage, layout)?;
        let (t, s) = last_two_dims(layout)?;
        let offset = s.saturating_sub(t);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(s)
            .zip(x.par_chunks(s))
            .enumerate()
            .for_each(|(row, (y, x))| {
                let visible = (offset + row % t + 1).min(s);
                for (y, &x) in y[..visible].iter_mut().zip(&x[..visible]) {
                    *y = x * self.scale;
                }
                let max = lane_max(&y[..visible]);
                let inv = 1.0 / exp_in_place(&mut y[..visible], max);
                for y in &mut y[..visible] {
                    *y *= inv;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = res.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &CausalSoftmaxGrad { scale: self.scale },
        )?;
        Ok(Some(grad))
    }
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    /// scale · y ⊙ (g − Σ y ⊙ g), row by row.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (f32s(s1, l1)?, f32s(s2, l2)?);
        let s = last_dim(l1)?;
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(s)
            .zip(y.par_chunks(s).zip(g.par_chunks(s)))
            .for_each(|(out, (y, g))| {
                let dot = lane_dot(y, g);
                for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                    *o = self.scale * y * (g - dot);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Causal softmax of raw attention scores (…, t, s), scaled by `scale`; differentiable.
pub fn causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(CausalSoftmax {
        scale: scale as f32,
    })
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

struct RmsNorm {
    eps: f32,
}

struct RmsNormGradX {
    eps: f32,
}

struct RmsNormGradW {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let mean_square = lane_dot(x, x) / x.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (f32s(s1, l1)?, f32s(s2, l2)?);
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each(|(y, x)| {
                let r = inv_rms(x, self.eps);
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_x, grad_w) = rms_norm_grads(x, w, f64::from(self.eps), grad_res)?;
        Ok((Some(grad_x), Some(grad_w)))
    }
}

impl CustomOp3 for RmsNormGradX {
    fn name(&self) -> &'static str {
        "rms-norm-grad-x"
    }

    /// r · (g⊙w − x̂ · mean(g⊙w⊙x̂)) with x̂ = x · r.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(g.par_chunks(d)))
            .for_each(|(out, (x, g))| {
                let r = inv_rms(x, self.eps);
                let mean = lane_dot3(x, g, w) * r / d as f32;
                for (((o, &x), &g), &w) in out.iter_mut().zip(x).zip(g).zip(w) {
                    *o = r * (g * w - x * r * mean);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

impl CustomOp2 for RmsNormGradW {
    fn name(&self) -> &'static str {
        "rms-norm-grad-w"
    }

    /// Σ over rows of g ⊙ x̂.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (f32s(s1, l1)?, f32s(s2, l2)?);
        let d = last_dim(l1)?;
        let rows = x.len() / d.max(1);
        let chunk = rows.div_ceil(rayon::current_num_threads().max(1)).max(1) * d;
        let out = x
            .par_chunks(chunk)
            .zip(g.par_chunks(chunk))
            .map(|(x, g)| {
                let mut acc = vec![0f32; d];
                for (x, g) in x.chunks(d).zip(g.chunks(d)) {
                    let r = inv_rms(x, self.eps);
                    for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                        *a += g * x * r;
                    }
                }
                acc
            })
            .reduce(
                || vec![0f32; d],
                |mut a, b| {
                    for (a, b) in a.iter_mut().zip(b) {
                        *a += b;
                    }
                    a
                },
            );
        Ok((CpuStorage::F32(out), Shape::from(d)))
    }
}

/// The gradients (dx, dw) of [`rms_norm`] at x and w from the output's gradient g.
pub fn rms_norm_grads(x: &Tensor, w: &Tensor, eps: f64, g: &Tensor) -> Result<(Tensor, Tensor)> {
    let (x, g, eps) = (x.contiguous()?, g.contiguous()?, eps as f32);
    let grad_x = x.apply_op3_no_bwd(w, &g, &RmsNormGradX { eps })?;
    let grad_w = x.apply_op2_no_bwd(&g, &RmsNormGradW { eps })?;
    Ok((grad_x, grad_w))
}

/// `x / rms(x) * w` over the last dim; differentiable in `x` and `w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(w, RmsNorm { eps: eps as f32 })
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

/// `silu(gate) ⊙ up`, elementwise.
struct SwiGlu;

/// The gradients of [`SwiGlu`] from (gate, up, g), stacked as (2, …): first with respect to
/// gate, then to up.
struct SwiGluGrad;

/// 1 / (1 + e^−x).
#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// Elements per parallel task of the elementwise kernels.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (gate, up) = (f32s(s1, l1)?, f32s(s2, l2)?);
        if l1.dims() != l2.dims() {
            candle_core::bail!("swiglu: gate {:?} and up {:?} differ", l1.dims(), l2.dims());
        }
        let mut out = vec![0f32; gate.len()];
        out.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(gate.par_chunks(ELEMENTWISE_CHUNK))
            .zip(up.par_chunks(ELEMENTWISE_CHUNK))
            .for_each(|((y, gate), up)| {
                for ((y, &a), &u) in y.iter_mut().zip(gate).zip(up) {
                    *y = a * sigmoid(a) * u;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_gate, grad_up) = swiglu_grads(gate, up, grad_res)?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "swiglu-grad"
    }

    /// With s = sigmoid(a): d/da = g · u · s · (1 + a (1 − s)), d/du = g · a · s.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (gate, up, g) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let n = gate.len();
        let mut out = vec![0f32; 2 * n];
        let (d_gate, d_up) = out.split_at_mut(n);
        d_gate
            .par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(d_up.par_chunks_mut(ELEMENTWISE_CHUNK))
            .zip(gate.par_chunks(ELEMENTWISE_CHUNK))
            .zip(
                up.par_chunks(ELEMENTWISE_CHUNK)
                    .zip(g.par_chunks(ELEMENTWISE_CHUNK)),
            )
            .for_each(|(((d_gate, d_up), gate), (up, g))| {
                for ((((da, du), &a), &u), &g) in
                    d_gate.iter_mut().zip(d_up).zip(gate).zip(up).zip(g)
                {
                    let s = sigmoid(a);
                    *da = g * u * s * (1.0 + a * (1.0 - s));
                    *du = g * a * s;
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// The gradients (d gate, d up) of [`swiglu`] from the output's gradient g.
pub fn swiglu_grads(gate: &Tensor, up: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
    let grads =
        gate.contiguous()?
            .apply_op3_no_bwd(&up.contiguous()?, &g.contiguous()?, &SwiGluGrad)?;
    Ok((grads.get(0)?, grads.get(1)?))
}

/// `silu(gate) ⊙ up` (the SwiGLU MLP's inner activation) in one pass; differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

// ---------------------------------------------------------------------------------------------
// RoPE

/// Rotary embedding of (b, h, t, d) at positions `offset..offset + t`, rotate-half layout:
/// `y = x ⊙ cos + rotate_half(x) ⊙ sin`, tables (positions, d) with both halves equal.
#[derive(Clone)]
struct Rope {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    offset: usize,
    /// Rotate the other way (the transpose: the backward pass).
    inverse: bool,
    /// `Some(h)`: also split the heads, from a linear layer's (b, t, h·d) into (b, h, t, d)
    /// (with `inverse`, back from (b, h, t, d) to (b, t, h·d)); `None`: (b, h, t, d) in and out.
    heads: Option<usize>,
    /// Whether to rotate at all (not for the values, which only have their heads split).
    rotate: bool,
}

impl Rope {
    /// The op that splits `heads` heads out of a linear layer's output (with `inverse`, merges
    /// them back), rotating at positions from `offset` when `tables` is given.
    fn head_split(tables: Option<&RopeTables>, offset: usize, heads: usize, inverse: bool) -> Self {
        let empty = || Arc::new(Vec::new());
        Self {
            cos: tables.map_or_else(empty, |t| Arc::clone(&t.cos)),
            sin: tables.map_or_else(empty, |t| Arc::clone(&t.sin)),
            offset,
            inverse,
            heads: Some(heads),
            rotate: tables.is_some(),
        }
    }

    /// (rows of d to write, t, d, out shape, and for output row r the input row) of a call.
    fn plan(&self, layout: &Layout) -> Result<(usize, usize, usize, Shape, RowMap)> {
        match (self.heads, layout.dims()) {
            (None, _) => {
                let (t, d) = last_two_dims(layout)?;
                let rows = layout.shape().elem_count() / d.max(1);
                Ok((rows, t, d, layout.shape().clone(), RowMap::Same))
            }
            (Some(h), &[b, t, hd]) if !self.inverse && h > 0 && hd % h == 0 => {
                let d = hd / h;
                Ok((
                    b * h * t,
                    t,
                    d,
                    Shape::from((b, h, t, d)),
                    RowMap::Split { h, t },
                ))
            }
            (Some(h), &[b, hh, t, d]) if self.inverse && hh == h => Ok((
                b * t * h,
                t,
                d,
                Shape::from((b, t, h * d)),
                RowMap::Merge { h, t },
            )),
            _ => candle_core::bail!("rope: shape {:?} for {:?} heads", layout.dims(), self.heads),
        }
    }
}

/// `y = x ⊙ cos + sign · rotate_half(x) ⊙ sin` for one row x of d values at `position` of the
/// (positions, d) tables; `sign` −1 rotates back (the transpose).
#[inline]
fn rotate_row(y: &mut [f32], x: &[f32], (cos, sin): (&[f32], &[f32]), position: usize, sign: f32) {
    let d = x.len();
    let half = d / 2;
    let row = position * d..(position + 1) * d;
    // Halves as zipped slices: no index checks in the loop, which then vectorizes.
    let (c1, c2) = cos[row.clone()].split_at(half);
    let (s1, s2) = sin[row].split_at(half);
    let (x1, x2) = x.split_at(half);
    let (y1, y2) = y[..d].split_at_mut(half);
    let cos = c1.iter().zip(c2);
    let sin = s1.iter().zip(s2);
    for (((y1, y2), (&a, &b)), ((&c1, &c2), (&s1, &s2))) in y1
        .iter_mut()
        .zip(y2)
        .zip(x1.iter().zip(x2))
        .zip(cos.zip(sin))
    {
        *y1 = a * c1 - sign * b * s1;
        *y2 = b * c2 + sign * a * s2;
    }
}

/// Which input row (of d values) an output row of [`Rope`] reads, and its position in the
/// sequence.
#[derive(Clone, Copy)]
enum RowMap {
    /// Row r of (.., t, d) from row r.
    Same,
    /// Row (b, head, i) of (b, h, t, d) from row (b, i, head) of (b, t, h, d).
    Split { h: usize, t: usize },
    /// Row (b, i, head) of (b, t, h, d) from row (b, head, i) of (b, h, t, d).
    Merge { h: usize, t: usize },
}

impl RowMap {
    /// (input row, position in the sequence) of output row `row`; `t` for [`RowMap::Same`].
    fn source(self, row: usize, t_same: usize) -> (usize, usize) {
        match self {
            Self::Same => (row, row % t_same),
            Self::Split { h, t } => {
                let (b, head, i) = (row / (h * t), row / t % h, row % t);
                ((b * t + i) * h + head, i)
            }
            Self::Merge { h, t } => {
                let (b, i, head) = (row / (t * h), row / h % t, row % h);
                ((b * h + head) * t + i, i)
            }
        }
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(storage, layout)?;
        let (rows, t, d, shape, map) = self.plan(layout)?;
        if self.rotate && (self.offset + t) * d > self.cos.len() {
            candle_core::bail!("rope: positions beyond the table");
        }
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = vec![0f32; rows * d];
        if d == 0 {
            return Ok((CpuStorage::F32(out), shape));
        }
        out.par_chunks_mut(d).enumerate().for_each(|(row, y)| {
            let (source, i) = map.source(row, t);
            let x = &x[source * d..(source + 1) * d];
            if !self.rotate {
                y.copy_from_slice(x);
                return;
            }
            rotate_row(y, x, (&self.cos, &self.sin), self.offset + i, sign);
        });
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let inverse = Rope {
            inverse: !self.inverse,
            ..self.clone()
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

/// Precomputed tables for [`rope`].
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
}

impl RopeTables {
    /// Tables from (positions, d) cos and sin tensors.
    pub fn new(cos: &Tensor, sin: &Tensor) -> Result<Self> {
        let flat = |t: &Tensor| -> Result<Arc<Vec<f32>>> {
            Ok(Arc::new(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?))
        };
        Ok(Self {
            cos: flat(cos)?,
            sin: flat(sin)?,
        })
    }
}

/// Rotates `x` (b, h, t, d) at positions `offset..offset + t`; differentiable.
pub fn rope(x: &Tensor, tables: &RopeTables, offset: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Rope {
        cos: Arc::clone(&tables.cos),
        sin: Arc::clone(&tables.sin),
        offset,
        inverse: false,
        heads: None,
        rotate: true,
    })
}

/// Splits a linear layer's output x (b, t, h·d) into heads (b, h, t, d), rotated at positions
/// `offset..offset + t` when `tables` is given: one node where reshape, transpose, copy and
/// [`rope`] were four; differentiable.
pub fn split_heads(
    x: &Tensor,
    heads: usize,
    tables: Option<&RopeTables>,
    offset: usize,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op1(Rope::head_split(tables, offset, heads, false))
}

/// Merges heads x (b, h, t, d) into a linear layer's input (b, t, h·d), first rotating back
/// from positions `offset..offset + t` when `tables` is given: the transpose of
/// [`split_heads`] (so also its gradient); differentiable.
pub fn merge_heads(x: &Tensor, tables: Option<&RopeTables>, offset: usize) -> Result<Tensor> {
    let heads = x.dims4()?.1;
    x.contiguous()?
        .apply_op1(Rope::head_split(tables, offset, heads, true))
}

// ---------------------------------------------------------------------------------------------
// Decode attention

/// Attention of one new query per sequence over its cached keys and values: q (b, h, 1, d),
/// k and v (b, kv_heads, capacity, d) of which the first `len` positions are valid → (b, h, d).
/// Query head i reads key/value head i / (h / kv); sequence b reads from slot `starts[b]`
/// (left-padded batches; empty `starts`: from 0). Sampling only (no backward).
struct DecodeAttention {
    scale: f32,
    len: usize,
    starts: Vec<usize>,
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let &[b, h, one, d] = l1.dims() else {
            candle_core::bail!("decode attention: q must be (b, h, 1, d)");
        };
        let &[kb, kv_heads, capacity, kd] = l2.dims() else {
            candle_core::bail!("decode attention: k must be (b, kv_heads, s, d)");
        };
        let s = self.len;
        if one != 1
            || kb != b
            || kd != d
            || kv_heads == 0
            || h % kv_heads != 0
            || l3.dims() != l2.dims()
            || s > capacity
            || !(self.starts.is_empty() || self.starts.len() == b)
            || self.starts.iter().any(|&start| start >= s)
        {
            candle_core::bail!(
                "decode attention: shapes {:?} {:?} {:?}",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let groups = h / kv_heads;
        let mut out = vec![0f32; b * h * d];
        out.par_chunks_mut(d).enumerate().for_each_init(
            || vec![0f32; s],
            |scores, (row, out)| {
                let (batch, head) = (row / h, row % h);
                let start = self.starts.get(batch).copied().unwrap_or(0);
                let scores = &mut scores[start..];
                let q = &q[row * d..(row + 1) * d];
                let base = (batch * kv_heads + head / groups) * capacity * d;
                let (keys, values) = (
                    &k[base + start * d..base + s * d],
                    &v[base + start * d..base + s * d],
                );
                for (score, key) in scores.iter_mut().zip(keys.chunks_exact(d)) {
                    *score = lane_dot(q, key) * self.scale;
                }
                let sum = exp_in_place(scores, lane_max(scores));
                for (&p, value) in scores.iter().zip(values.chunks_exact(d)) {
                    let p = p / sum;
                    for (o, &v) in out.iter_mut().zip(value) {
                        *o += p * v;
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, h, d))))
    }
}

/// One query per sequence attending over the cached positions `starts[b]..len` (no causal
/// mask needed: the new token sees them all; `starts` empty: from 0); no gradient.
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    len: usize,
    starts: &[usize],
    scale: f64,
) -> Result<Tensor> {
    q.contiguous()?.apply_op3_no_bwd(
        &k.contiguous()?,
        &v.contiguous()?,
        &DecodeAttention {
            scale: scale as f32,
            len,
            starts: starts.to_vec(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Linear layers

/// Rows per partial product of a weight gradient. `dw = gᵀ x` sums over every row of the batch
/// (k = rows, a 128 × 128 result at the quickstart's width): the rows are split into chunks of
/// this many, whose products run in parallel and are summed in a fixed order, so the result
/// does not depend on the number of threads.
const WEIGHT_GRAD_ROWS: usize = 1024;

/// Products of at least this many multiply-adds use every thread of the pool.
const PARALLEL_GEMM_MACS: usize = 1 << 20;

fn gemm_parallelism(macs: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && macs >= PARALLEL_GEMM_MACS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// (rows, inputs, outputs) of `y = x wᵀ` for x (.., inputs) and w (outputs, inputs).
fn linear_dims(x: &Layout, w: &Layout) -> Result<(usize, usize, usize)> {
    let inputs = last_dim(x)?;
    let &[outputs, w_inputs] = w.dims() else {
        candle_core::bail!("linear: the weight must be (outputs, inputs)");
    };
    if w_inputs != inputs || inputs == 0 {
        candle_core::bail!("linear: input {:?} against weight {:?}", x.dims(), w.dims());
    }
    Ok((x.shape().elem_count() / inputs, inputs, outputs))
}

/// The output shape of a linear layer: x's with the last dimension `outputs`.
fn linear_shape(x: &Layout, outputs: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = outputs;
    }
    Shape::from(dims)
}

/// `x wᵀ (+ b)`: the bias is written first and the product added onto it.
fn linear_forward(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (rows, inputs, outputs): (usize, usize, usize),
) -> Result<Vec<f32>> {
    let mut y = vec![0f32; rows * outputs];
    if let Some(b) = b {
        if b.len() != outputs {
            candle_core::bail!("linear: bias of {} for {outputs} outputs", b.len());
        }
        for row in y.chunks_exact_mut(outputs) {
            row.copy_from_slice(b);
        }
    }
    gemm_into(
        &mut y,
        (rows, outputs, inputs),
        (x, inputs, 1),
        (w, 1, inputs),
        (1.0, b.is_some()),
        gemm_parallelism(rows * inputs * outputs),
    )?;
    Ok(y)
}

/// `y = x wᵀ`, one autograd node (candle's `Linear` is a reshape, a transpose, a product and a
/// reshape, each accumulating its own gradient).
struct Linear;

/// `y = x wᵀ + b`.
struct LinearWithBias;

/// The gradients of a linear layer from (x, w, g = dL/dy), flattened into one vector:
/// dx = g w (rows × inputs), then dw = gᵀ x (outputs × inputs), then db = Σ rows of g.
struct LinearGrad;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = linear_dims(l1, l2)?;
        let y = linear_forward(f32s(s1, l1)?, f32s(s2, l2)?, None, dims)?;
        Ok((CpuStorage::F32(y), linear_shape(l1, dims.2)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = linear_grads(x, w, grad_res)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for LinearWithBias {
    fn name(&self) -> &'static str {
        "linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = linear_dims(l1, l2)?;
        let y = linear_forward(f32s(s1, l1)?, f32s(s2, l2)?, Some(f32s(s3, l3)?), dims)?;
        Ok((CpuStorage::F32(y), linear_shape(l1, dims.2)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = linear_grads(x, w, grad_res)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// (dx, dw, db) of a linear layer `x wᵀ + b` from the output's gradient g: views into the one
/// vector [`LinearGrad`] writes.
pub fn linear_grads(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (outputs, inputs) = w.dims2()?;
    let rows = x.elem_count() / inputs.max(1);
    let flat = x.apply_op3_no_bwd(w, &g.contiguous()?, &LinearGrad)?;
    let dx = flat.narrow(0, 0, rows * inputs)?.reshape(x.shape())?;
    let dw = flat
        .narrow(0, rows * inputs, outputs * inputs)?
        .reshape((outputs, inputs))?;
    let db = flat.narrow(0, (rows + outputs) * inputs, outputs)?;
    Ok((dx, dw, db))
}

impl CustomOp3 for LinearGrad {
    fn name(&self) -> &'static str {
        "linear-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let (rows, inputs, outputs) = linear_dims(l1, l2)?;
        if g.len() != rows * outputs {
            candle_core::bail!("linear: gradient {:?} for input {:?}", l3.dims(), l1.dims());
        }
        let mut out = vec![0f32; (rows + outputs) * inputs + outputs];
        let (dx, rest) = out.split_at_mut(rows * inputs);
        let (dw, db) = rest.split_at_mut(outputs * inputs);
        // dx = g w
        gemm_into(
            dx,
            (rows, inputs, outputs),
            (g, outputs, 1),
            (w, inputs, 1),
            (1.0, false),
            gemm_parallelism(rows * inputs * outputs),
        )?;
        // dw = gᵀ x and db = Σ rows of g, chunk by chunk.
        let chunks = rows.div_ceil(WEIGHT_GRAD_ROWS).max(1);
        let per_chunk = if chunks >= rayon::current_num_threads() {
            gemm::Parallelism::None
        } else {
            gemm_parallelism(WEIGHT_GRAD_ROWS.min(rows) * inputs * outputs)
        };
        let partials = (0..chunks)
            .into_par_iter()
            .map(|c| -> Result<(Vec<f32>, Vec<f32>)> {
                let r0 = c * WEIGHT_GRAD_ROWS;
                let n = WEIGHT_GRAD_ROWS.min(rows - r0);
                let g = &g[r0 * outputs..(r0 + n) * outputs];
                let mut pw = vec![0f32; outputs * inputs];
                gemm_into(
                    &mut pw,
                    (outputs, inputs, n),
                    (g, 1, outputs),
                    (&x[r0 * inputs..], inputs, 1),
                    (1.0, false),
                    per_chunk,
                )?;
                let mut pb = vec![0f32; outputs];
                for row in g.chunks_exact(outputs) {
                    for (sum, &v) in pb.iter_mut().zip(row) {
                        *sum += v;
                    }
                }
                Ok((pw, pb))
            })
            .collect::<Result<Vec<_>>>()?;
        for (pw, pb) in &partials {
            for (sum, &v) in dw.iter_mut().zip(pw) {
                *sum += v;
            }
            for (sum, &v) in db.iter_mut().zip(pb) {
                *sum += v;
            }
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// `x wᵀ (+ b)` for x (.., inputs), w (outputs, inputs), b (outputs); differentiable in all.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, LinearWithBias),
        None => x.apply_op2(&w, Linear),
    }
}

// ---------------------------------------------------------------------------------------------
// Causal attention

/// Query rows per block of the fused attention: a block's scores (rows × keys up to the
/// block's last row) are the only score matrix alive per worker, and the causal mask lets each
/// block skip the keys after it (half the FLOPs of the full T × T product).
const ATTENTION_ROWS: usize = 64;

/// A row-major matrix view: data, row stride, column stride.
type View<'a> = (&'a [f32], usize, usize);

/// `dst (m × n, row-major) = [dst +] alpha · a (m × k) · b (k × n)` with the `gemm` crate's
/// kernel on this thread (the callers are already parallel over batch and heads).
fn small_gemm(
    dst: &mut [f32],
    dims: (usize, usize, usize),
    a: View<'_>,
    b: View<'_>,
    alpha: f32,
    accumulate: bool,
) -> Result<()> {
    gemm_into(
        dst,
        dims,
        a,
        b,
        (alpha, accumulate),
        gemm::Parallelism::None,
    )
}

/// `dst (m × n, row-major) = [dst +] alpha · a (m × k) · b (k × n)` (`scaling`: alpha and
/// whether to add to dst) with the `gemm` crate's kernel, on this thread or the pool's.
fn gemm_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: View<'_>,
    b: View<'_>,
    (alpha, accumulate): (f32, bool),
    parallelism: gemm::Parallelism,
) -> Result<()> {
    let fits = |(data, rs, cs): View<'_>, rows: usize, cols: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < data.len()
    };
    if dst.len() < m * n || !fits(a, m, k) || !fits(b, k, n) {
        candle_core::bail!("gemm: matrix view out of bounds");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return Ok(());
    }
    let stride = |x: usize| {
        isize::try_from(x).map_err(|_| candle_core::Error::Msg("gemm: stride overflow".into()))
    };
    let (dst_rs, a_rs, a_cs, b_rs, b_cs) = (
        stride(n)?,
        stride(a.1)?,
        stride(a.2)?,
        stride(b.1)?,
        stride(b.2)?,
    );
    // SAFETY: the bounds of every view were checked above; `dst` does not alias `a` or `b`
    // (it is a distinct mutable borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs,
            accumulate,
            a.0.as_ptr(),
            a_cs,
            a_rs,
            b.0.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// The probabilities of one block of query rows `r0..r0 + rows` over keys `0..keys` into `p`
/// (rows × keys): `softmax(scale · q kᵀ)` with the causal mask (row r sees keys `0..=r`).
fn attention_block(
    p: &mut [f32],
    q: &[f32],
    k: &[f32],
    (r0, rows, keys, d): (usize, usize, usize, usize),
    scale: f32,
) -> Result<()> {
    small_gemm(
        p,
        (rows, keys, d),
        (&q[r0 * d..], d, 1),
        (k, 1, d),
        scale,
        false,
    )?;
    for (i, row) in p[..rows * keys].chunks_exact_mut(keys).enumerate() {
        let visible = r0 + i + 1;
        let max = lane_max(&row[..visible]);
        let inv = 1.0 / exp_in_place(&mut row[..visible], max);
        for x in &mut row[..visible] {
            *x *= inv;
        }
        row[visible..].fill(0.0);
    }
    Ok(())
}

/// Shapes of a fused attention call: q (b, h, t, d), k and v (b, kv, t, d).
#[derive(Clone, Copy)]
struct AttentionShape {
    h: usize,
    kv: usize,
    t: usize,
    d: usize,
}

impl AttentionShape {
    fn of(q: &[usize], k: &[usize], v: &[usize]) -> Result<Self> {
        let (&[b, h, t, d], &[kb, kv, kt, kd]) = (q, k) else {
            candle_core::bail!("attention: q and k must be (b, heads, t, d)");
        };
        if kb != b || kt != t || kd != d || kv == 0 || h % kv != 0 || v != k {
            candle_core::bail!("attention: shapes {q:?} {k:?} {v:?}");
        }
        Ok(Self { h, kv, t, d })
    }
}

/// Causal self-attention `softmax(scale · q kᵀ + mask) v` without the (t × t) matrix:
/// parallel over (batch, key/value head), query head i reading key/value head i / (h / kv).
struct CausalAttention {
    scale: f32,
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let shape = AttentionShape::of(l1.dims(), l2.dims(), l3.dims())?;
        let out = attention_forward(shape, [q, k, v], self.scale)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = causal_attention_grads(q, k, v, res, grad_res, self.scale)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// The gradients (dq, dk, dv) of [`causal_attention`] at q, k and v, from its output o and
/// the output's gradient g.
pub fn causal_attention_grads(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    g: &Tensor,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let shape = AttentionShape::of(q.dims(), k.dims(), v.dims())?;
    // Read in place: the five tensors are each as large as the layer's activations.
    let tensors = [q, k, v, o, g]
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = tensors.iter().map(Tensor::storage_and_layout).collect();
    let mut data = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let candle_core::Storage::Cpu(storage) = &**storage else {
            candle_core::bail!("attention: expected CPU tensors");
        };
        data.push(f32s(storage, layout)?);
    }
    let &[q_data, k_data, v_data, o_data, g_data] = data.as_slice() else {
        candle_core::bail!("attention: five inputs");
    };
    let (dq, dk, dv) = attention_backward(shape, [q_data, k_data, v_data, o_data, g_data], scale)?;
    let device = q.device();
    Ok((
        Tensor::from_vec(dq, q.shape(), device)?,
        Tensor::from_vec(dk, k.shape(), device)?,
        Tensor::from_vec(dv, v.shape(), device)?,
    ))
}

/// [`CausalAttention`]'s output (b, h, t, d) from q (b, h, t, d), k and v (b, kv, t, d).
fn attention_forward(
    AttentionShape { h, kv, t, d }: AttentionShape,
    [q, k, v]: [&[f32]; 3],
    scale: f32,
) -> Result<Vec<f32>> {
    let groups = h / kv;
    let mut out = vec![0f32; q.len()];
    out.par_chunks_mut(groups * t * d)
        .enumerate()
        .try_for_each_init(
            || vec![0f32; ATTENTION_ROWS * t],
            |p, (bg, out)| -> Result<()> {
                let kv_range = bg * t * d..(bg + 1) * t * d;
                let (k, v) = (&k[kv_range.clone()], &v[kv_range]);
                for (head, out) in out.chunks_exact_mut(t * d).enumerate() {
                    let start = (bg * groups + head) * t * d;
                    let q = &q[start..start + t * d];
                    for r0 in (0..t).step_by(ATTENTION_ROWS) {
                        let rows = ATTENTION_ROWS.min(t - r0);
                        let keys = r0 + rows;
                        attention_block(p, q, k, (r0, rows, keys, d), scale)?;
                        small_gemm(
                            &mut out[r0 * d..],
                            (rows, d, keys),
                            (p, keys, 1),
                            (v, d, 1),
                            1.0,
                            false,
                        )?;
                    }
                }
                Ok(())
            },
        )?;
    Ok(out)
}

/// Gradients of [`CausalAttention`] with respect to q, k and v from the inputs, the output o
/// and its gradient g, recomputing each block's probabilities: with s = scale · q kᵀ and
/// p = softmax(s), dv = pᵀ g, dp = g vᵀ, ds = p ⊙ (dp − rowsum(g ⊙ o)), dq = scale · ds k,
/// dk = scale · dsᵀ q (summed over the query heads sharing a key/value head).
fn attention_backward(
    AttentionShape { h, kv, t, d }: AttentionShape,
    [q, k, v, o, g]: [&[f32]; 5],
    scale: f32,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let groups = h / kv;
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; q.len()],
        vec![0f32; k.len()],
        vec![0f32; v.len()],
    );
    dq.par_chunks_mut(groups * t * d)
        .zip(dk.par_chunks_mut(t * d).zip(dv.par_chunks_mut(t * d)))
        .enumerate()
        .try_for_each_init(
            || {
                (
                    vec![0f32; ATTENTION_ROWS * t],
                    vec![0f32; ATTENTION_ROWS * t],
                )
            },
            |(p, dp), (bg, (dq, (dk, dv)))| -> Result<()> {
                let kv_range = bg * t * d..(bg + 1) * t * d;
                let (k, v) = (&k[kv_range.clone()], &v[kv_range]);
                for (head, dq) in dq.chunks_exact_mut(t * d).enumerate() {
                    let start = (bg * groups + head) * t * d;
                    let range = start..start + t * d;
                    let (q, o, g) = (&q[range.clone()], &o[range.clone()], &g[range]);
                    for r0 in (0..t).step_by(ATTENTION_ROWS) {
                        let rows = ATTENTION_ROWS.min(t - r0);
                        let keys = r0 + rows;
                        attention_block(p, q, k, (r0, rows, keys, d), scale)?;
                        let g_block = &g[r0 * d..];
                        // dv[..keys] += pᵀ g
                        small_gemm(
                            dv,
                            (keys, d, rows),
                            (p, 1, keys),
                            (g_block, d, 1),
                            1.0,
                            true,
                        )?;
                        // dp = g vᵀ
                        small_gemm(dp, (rows, keys, d), (g_block, d, 1), (v, 1, d), 1.0, false)?;
                        // ds = p ⊙ (dp − rowsum(g ⊙ o)), in place of dp
                        for i in 0..rows {
                            let at = (r0 + i) * d;
                            let dot = lane_dot(&g[at..at + d], &o[at..at + d]);
                            let row = i * keys..(i + 1) * keys;
                            for (ds, &p) in dp[row.clone()].iter_mut().zip(&p[row]) {
                                *ds = p * (*ds - dot);
                            }
                        }
                        // dq[block] = scale · ds k;  dk[..keys] += scale · dsᵀ q[block]
                        small_gemm(
                            &mut dq[r0 * d..],
                            (rows, d, keys),
                            (dp, keys, 1),
                            (k, d, 1),
                            scale,
                            false,
                        )?;
                        small_gemm(
                            dk,
                            (keys, d, rows),
                            (dp, 1, keys),
                            (&q[r0 * d..], d, 1),
                            scale,
                            true,
                        )?;
                    }
                }
                Ok(())
            },
        )?;
    Ok((dq, dk, dv))
}

/// Causal self-attention of q (b, h, t, d) over k and v (b, kv, t, d) with `kv` dividing `h`
/// (grouped-query heads read their shared key/value head in place); differentiable in all
/// three. Scores never exist as a (b, h, t, t) tensor: each worker holds one block of rows.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        CausalAttention {
            scale: scale as f32,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

struct CrossEntropy;

struct CrossEntropyGrad;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (logits, targets) = (f32s(s1, l1)?, u32s(s2, l2)?);
        let v = last_dim(l1)?;
        if targets.iter().any(|&t| t as usize >= v) {
            candle_core::bail!("cross-entropy: a target is outside the vocabulary");
        }
        let losses: Vec<f32> = logits
            .par_chunks(v)
            .zip(targets.par_iter())
            .map(|(row, &target)| {
                let max = lane_max(row);
                // Eight running sums across the row (one horizontal sum at the end).
                let mut sums = [0f32; LANES];
                let chunks = row.chunks_exact(LANES);
                let tail: f32 = chunks.remainder().iter().map(|&l| fast_exp(l - max)).sum();
                for chunk in chunks {
                    for (sum, &l) in sums.iter_mut().zip(chunk) {
                        *sum += fast_exp(l - max);
                    }
                }
                max + (sums.iter().sum::<f32>() + tail).ln() - row[target as usize]
            })
            .collect();
        let n = losses.len();
        Ok((CpuStorage::F32(losses), Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(cross_entropy_grad(logits, targets, grad_res)?), None))
    }
}

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }

    /// g_row · (softmax(row) − onehot(target)).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (logits, targets, g) = (f32s(s1, l1)?, u32s(s2, l2)?, f32s(s3, l3)?);
        let v = last_dim(l1)?;
        let mut out = vec![0f32; logits.len()];
        out.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .zip(targets.par_iter().zip(g.par_iter()))
            .for_each(|((out, row), (&target, &g))| {
                if g == 0.0 {
                    return;
                }
                out.copy_from_slice(row);
                let sum = exp_in_place(out, lane_max(row));
                let scale = g / sum;
                for o in out.iter_mut() {
                    *o *= scale;
                }
                out[target as usize] -= g;
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The gradient of [`cross_entropy`] at the logits (n, v) from the rows' gradients g (n); rows
/// with a zero gradient are skipped.
pub fn cross_entropy_grad(logits: &Tensor, targets: &Tensor, g: &Tensor) -> Result<Tensor> {
    logits.contiguous()?.apply_op3_no_bwd(
        &targets.contiguous()?,
        &g.contiguous()?,
        &CrossEntropyGrad,
    )
}

/// Per-row cross-entropy of logits (n, v) against targets (n) u32; differentiable in logits.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, CrossEntropy)
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};
    use rand::{Rng, SeedableRng};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Var {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
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
    fn agree(
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

    #[test]
    fn causal_softmax_matches_masked_softmax() {
        // (batch, heads, t, s): square, one query over a cache (t = 1), a prefill after a
        // cached prefix (t < s), odd sizes.
        for (i, shape) in [[2, 3, 7, 7], [1, 2, 1, 5], [2, 1, 3, 8], [1, 1, 1, 1]]
            .iter()
            .enumerate()
        {
            let x = random(shape, i as u64);
            let (t, s) = (shape[2], shape[3]);
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..s).map(move |j| {
                        if j <= s - t + i {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            let mask = Tensor::from_vec(mask, (t, s), &Device::Cpu).unwrap();
            agree(
                &[x],
                |xs| causal_softmax(&xs[0], 0.3).unwrap(),
                |xs| {
                    let scaled = (&xs[0] * 0.3).unwrap().broadcast_add(&mask).unwrap();
                    candle_nn::ops::softmax(&scaled, D::Minus1).unwrap()
                },
                1e-5,
            );
        }
    }

    #[test]
    fn causal_attention_matches_the_composite_ops() {
        // (batch, heads, kv heads, t, d): grouped heads, one token, rows across several
        // blocks with a ragged last block, one key/value head for all.
        for (i, (b, h, kv, t, d)) in [
            (2, 4, 2, 7, 5),
            (1, 2, 2, 1, 3),
            (1, 1, 1, 130, 8),
            (2, 3, 1, 65, 4),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 10 * i as u64;
            let (q, k, v) = (
                random(&[b, h, t, d], seed),
                random(&[b, kv, t, d], seed + 1),
                random(&[b, kv, t, d], seed + 2),
            );
            let scale = 1.0 / (d as f64).sqrt();
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
                .collect();
            let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
            let repeat = |x: &Tensor| {
                x.unsqueeze(2)
                    .unwrap()
                    .expand((b, kv, h / kv, t, d))
                    .unwrap()
                    .reshape((b, h, t, d))
                    .unwrap()
            };
            agree(
                &[q, k, v],
                |xs| causal_attention(&xs[0], &xs[1], &xs[2], scale).unwrap(),
                |xs| {
                    let (k, v) = (repeat(&xs[1]), repeat(&xs[2]));
                    let scores = xs[0]
                        .matmul(&k.t().unwrap())
                        .unwrap()
                        .affine(scale, 0.0)
                        .unwrap()
                        .broadcast_add(&mask)
                        .unwrap();
                    candle_nn::ops::softmax(&scores, D::Minus1)
                        .unwrap()
                        .matmul(&v)
                        .unwrap()
                },
                1e-4,
            );
        }
    }

    #[test]
    fn rms_norm_matches_the_formula() {
        for (i, (rows, d)) in [(5, 16), (1, 7), (33, 3)].into_iter().enumerate() {
            let x = random(&[rows, d], i as u64);
            let w = random(&[d], 10 + i as u64);
            agree(
                &[x, w],
                |xs| rms_norm(&xs[0], &xs[1], 1e-6).unwrap(),
                |xs| {
                    let ms = xs[0].sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
                    let normed = xs[0]
                        .broadcast_div(&(ms + 1e-6).unwrap().sqrt().unwrap())
                        .unwrap();
                    normed.broadcast_mul(&xs[1]).unwrap()
                },
                1e-4,
            );
        }
    }

    #[test]
    fn rope_matches_rotate_half() {
        let (positions, d) = (12, 6);
        let angles: Vec<f32> = (0..positions)
            .flat_map(|p| (0..d).map(move |k| p as f32 * 0.37 / (1.0 + (k % (d / 2)) as f32)))
            .collect();
        let angles = Tensor::from_vec(angles, (positions, d), &Device::Cpu).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let tables = RopeTables::new(&cos, &sin).unwrap();
        for (i, (t, offset)) in [(5, 0), (1, 11), (3, 4)].into_iter().enumerate() {
            let x = random(&[2, 3, t, d], i as u64);
            agree(
                &[x],
                |xs| rope(&xs[0], &tables, offset).unwrap(),
                |xs| {
                    let x = &xs[0];
                    let half = d / 2;
                    let rotated = Tensor::cat(
                        &[
                            &x.narrow(D::Minus1, half, half).unwrap().neg().unwrap(),
                            &x.narrow(D::Minus1, 0, half).unwrap(),
                        ],
                        D::Minus1,
                    )
                    .unwrap();
                    let c = cos.narrow(0, offset, t).unwrap();
                    let s = sin.narrow(0, offset, t).unwrap();
                    (x.broadcast_mul(&c).unwrap() + rotated.broadcast_mul(&s).unwrap()).unwrap()
                },
                1e-5,
            );
        }
    }

    #[test]
    fn split_heads_matches_reshape_transpose_then_rope() {
        let (positions, d) = (12, 6);
        let angles: Vec<f32> = (0..positions * d).map(|i| i as f32 * 0.11).collect();
        let angles = Tensor::from_vec(angles, (positions, d), &Device::Cpu).unwrap();
        let tables = RopeTables::new(&angles.cos().unwrap(), &angles.sin().unwrap()).unwrap();
        for (i, (b, t, h, offset)) in [(2, 5, 3, 0), (1, 1, 1, 11), (3, 4, 2, 7)]
            .into_iter()
            .enumerate()
        {
            let x = random(&[b, t, h * d], 20 + i as u64);
            let split = |x: &Tensor| {
                x.reshape((b, t, h, d))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            agree(
                std::slice::from_ref(&x),
                |xs| split_heads(&xs[0], h, Some(&tables), offset).unwrap(),
                |xs| rope(&split(&xs[0]), &tables, offset).unwrap(),
                1e-5,
            );
            agree(
                &[x],
                |xs| split_heads(&xs[0], h, None, offset).unwrap(),
                |xs| split(&xs[0]),
                1e-6,
            );
        }
    }

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

    #[test]
    fn swiglu_matches_silu_times_up() {
        for (i, shape) in [vec![3, 5, 7], vec![1], vec![2, 40_000]]
            .into_iter()
            .enumerate()
        {
            let gate = random(&shape, 2 * i as u64);
            let up = random(&shape, 2 * i as u64 + 1);
            agree(
                &[gate, up],
                |xs| swiglu(&xs[0], &xs[1]).unwrap(),
                |xs| (xs[0].silu().unwrap() * &xs[1]).unwrap(),
                1e-5,
            );
        }
    }

    #[test]
    fn linear_matches_matmul_plus_bias() {
        // Odd sizes, one row, a 3-d input, and more rows than one weight-gradient chunk (three
        // chunks, the last partial).
        let cases: [(&[usize], usize, f32); 5] = [
            (&[7, 5], 3, 1e-4),
            (&[1, 1], 1, 1e-5),
            (&[2, 9, 33], 17, 1e-4),
            (&[1, 16], 64, 1e-4),
            (&[2 * WEIGHT_GRAD_ROWS + 452, 3], 5, 2e-3),
        ];
        for (i, (x_shape, outputs, tol)) in cases.into_iter().enumerate() {
            let inputs = *x_shape.last().unwrap();
            let seed = 3 * i as u64;
            let (x, w, b) = (
                random(x_shape, seed),
                random(&[outputs, inputs], seed + 1),
                random(&[outputs], seed + 2),
            );
            let plain = |xs: &[Tensor]| xs[0].broadcast_matmul(&xs[1].t().unwrap()).unwrap();
            agree(
                &[x.clone(), w.clone()],
                |xs| linear(&xs[0], &xs[1], None).unwrap(),
                plain,
                tol,
            );
            agree(
                &[x, w, b],
                |xs| linear(&xs[0], &xs[1], Some(&xs[2])).unwrap(),
                |xs| plain(xs).broadcast_add(&xs[2]).unwrap(),
                tol,
            );
        }
    }

    #[test]
    fn cross_entropy_matches_log_softmax() {
        for (i, (n, v)) in [(6, 11), (1, 2), (17, 64)].into_iter().enumerate() {
            let logits = random(&[n, v], i as u64);
            let targets: Vec<u32> = (0..n).map(|r| ((r * 7 + i) % v) as u32).collect();
            let targets = Tensor::from_vec(targets, n, &Device::Cpu).unwrap();
            agree(
                &[logits],
                |xs| cross_entropy(&xs[0], &targets).unwrap(),
                |xs| {
                    candle_nn::ops::log_softmax(&xs[0], D::Minus1)
                        .unwrap()
                        .gather(&targets.unsqueeze(1).unwrap(), 1)
                        .unwrap()
                        .squeeze(1)
                        .unwrap()
                        .neg()
                        .unwrap()
                },
                1e-5,
            );
        }
        let logits = random(&[2, 3], 5);
        let bad = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
        assert!(
            cross_entropy(logits.as_tensor(), &bad).is_err(),
            "target out of range"
        );
    }
}
