//! Linear layers: `x wᵀ + b` as one node, the weight gradient split over rows in parallel.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::attention::gemm_into;
use super::{f32s, last_dim};

/// Rows per partial product of a weight gradient. `dw = gᵀ x` sums over every row of the batch
/// (k = rows, a 128 × 128 result at the quickstart's width): the rows are split into chunks of
/// this many, whose products run in parallel and are summed in a fixed order, so the result
/// does not depend on the number of threads.
pub(super) const WEIGHT_GRAD_ROWS: usize = 1024;

/// Products of at least this many multiply-adds use every thread of the pool.
pub(super) const PARALLEL_GEMM_MACS: usize = 1 << 20;

pub(super) fn gemm_parallelism(macs: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && macs >= PARALLEL_GEMM_MACS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// (rows, inputs, outputs) of `y = x wᵀ` for x (.., inputs) and w (outputs, inputs).
pub(super) fn linear_dims(x: &Layout, w: &Layout) -> Result<(usize, usize, usize)> {
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
pub(super) fn linear_shape(x: &Layout, outputs: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = outputs;
    }
    Shape::from(dims)
}

/// `x wᵀ (+ b)`: the bias is written first and the product added onto it.
pub(super) fn linear_forward(
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
pub(super) struct Linear;

/// `y = x wᵀ + b`.
pub(super) struct LinearWithBias;

/// The gradients of a linear layer from (x, w, g = dL/dy), flattened into one vector:
/// dx = g w (rows × inputs), then dw = gᵀ x (outputs × inputs), then db = Σ rows of g.
pub(super) struct LinearGrad;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
}
