//! Causal attention, blockwise: the (t × t) scores of at most one block of rows per worker.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32s;
use super::lanes::{exp_in_place, lane_dot, lane_max};

/// Query rows per block of the fused attention: a block's scores (rows × keys up to the
/// block's last row) are the only score matrix alive per worker, and the causal mask lets each
/// block skip the keys after it (half the FLOPs of the full T × T product).
pub(super) const ATTENTION_ROWS: usize = 64;

/// A row-major matrix view: data, row stride, column stride.
pub(super) type View<'a> = (&'a [f32], usize, usize);

/// `dst (m × n, row-major) = [dst +] alpha · a (m × k) · b (k × n)` with the `gemm` crate's
/// kernel on this thread (the callers are already parallel over batch and heads).
pub(super) fn small_gemm(
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
pub(super) fn gemm_into(
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
pub(super) fn attention_block(
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
pub(super) struct AttentionShape {
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
pub(super) struct CausalAttention {
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
pub(super) fn attention_forward(
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
pub(super) fn attention_backward(
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

#[cfg(test)]
mod tests {
    use candle_core::{D, Device};

    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
}
