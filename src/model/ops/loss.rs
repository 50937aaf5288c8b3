//! Cross-entropy: per-row `logsumexp(logits) - logits[target]`, and its gradient.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::lanes::{LANES, exp_in_place, fast_exp, lane_max};
use super::{f32s, last_dim, u32s};

pub(super) struct CrossEntropy;

pub(super) struct CrossEntropyGrad;

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
    use candle_core::{D, Device};

    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
