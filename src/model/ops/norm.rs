//! RMSNorm: `x / rms(x) * w`, with its backward.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::lanes::{lane_dot, lane_dot3};
use super::{f32s, last_dim};

pub(super) struct RmsNorm {
    eps: f32,
}

pub(super) struct RmsNormGradX {
    eps: f32,
}

pub(super) struct RmsNormGradW {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
pub(super) fn inv_rms(x: &[f32], eps: f32) -> f32 {
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

#[cfg(test)]
mod tests {
    use candle_core::D;

    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
}
