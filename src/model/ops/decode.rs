//! Decode attention: one query row per sequence over the KV cache, read in place.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32s;
use super::lanes::{exp_in_place, lane_dot, lane_max};

/// Attention of one new query per sequence over its cached keys and values: q (b, h, 1, d),
/// k and v (b, kv_heads, capacity, d) of which the first `len` positions are valid → (b, h, d).
/// Query head i reads key/value head i / (h / kv); sequence b reads from slot `starts[b]`
/// (left-padded batches; empty `starts`: from 0). Sampling only (no backward).
pub(super) struct DecodeAttention {
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
