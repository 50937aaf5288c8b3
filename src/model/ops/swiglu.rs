//! SwiGLU: `silu(gate) ⊙ up`, with its backward.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32s;
use super::lanes::fast_exp;

/// `silu(gate) ⊙ up`, elementwise.
pub(super) struct SwiGlu;

/// The gradients of [`SwiGlu`] from (gate, up, g), stacked as (2, …): first with respect to
/// gate, then to up.
pub(super) struct SwiGluGrad;

/// 1 / (1 + e^−x).
#[inline]
pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// Elements per parallel task of the elementwise kernels.
pub(super) const ELEMENTWISE_CHUNK: usize = 1 << 14;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
}
