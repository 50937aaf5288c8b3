//! RoPE (rotate-half layout, as Qwen2), fused with the split into heads and its transpose.

#![allow(clippy::many_single_char_names)]

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

use super::{f32s, last_two_dims};

/// Rotary embedding of (b, h, t, d) at positions `offset..offset + t`, rotate-half layout:
/// `y = x ⊙ cos + rotate_half(x) ⊙ sin`, tables (positions, d) with both halves equal.
#[derive(Clone)]
pub(super) struct Rope {
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
pub(super) fn rotate_row(
    y: &mut [f32],
    x: &[f32],
    (cos, sin): (&[f32], &[f32]),
    position: usize,
    sign: f32,
) {
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
pub(super) enum RowMap {
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

#[cfg(test)]
mod tests {
    use candle_core::{D, Device};

    use super::*;
    use crate::model::ops::test_support::{agree, random};

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
}
