//! Causal softmax: scale, causal mask and softmax of attention scores in one pass.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::lanes::{exp_in_place, lane_dot, lane_max};
use super::{f32s, last_dim, last_two_dims};

/// softmax(scale · x + causal mask) over the last dim of scores (…, t, s): query row i (of t)
/// sits at absolute position `s - t + i` and sees keys `0..=s - t + i`.
pub(super) struct CausalSoftmax {
    scale: f32,
}

pub(super) struct CausalSoftmaxGrad {
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

#[cfg(test)]
mod tests {
    use candle_core::{D, Device};

    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
}
