//! Training: the [`trainer::Trainer`] and its pieces — the learning-rate schedule, packing
//! examples into fixed-length sequences with their loss mask, AdamW, and gradient clipping by
//! global norm (which candle does not provide).

pub mod data;
pub mod optim;
pub mod schedule;
pub mod trainer;

use candle_core::{Result, Var, backprop::GradStore};

/// Scales every gradient so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping. A non-finite norm is returned as is (the caller stops the stage).
pub fn clip_grad_norm(vars: &[Var], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    // Per-gradient sums stay on the device and are read back once (one GPU sync, not one per
    // variable); each is summed in f32 and the sum of sums in f64.
    let squares = vars
        .iter()
        .filter_map(|var| grads.get(var.as_tensor()))
        .map(|grad| grad.sqr()?.sum_all()?.reshape(1))
        .collect::<Result<Vec<_>>>()?;
    let total: f64 = if squares.is_empty() {
        0.0
    } else {
        candle_core::Tensor::cat(&squares, 0)?
            .to_vec1::<f32>()?
            .iter()
            .map(|&s| f64::from(s))
            .sum()
    };
    let norm = total.sqrt();
    if norm.is_finite() && norm > max_norm && max_norm > 0.0 {
        let scale = max_norm / norm;
        for var in vars {
            if let Some(grad) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (grad * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::clip_grad_norm;

    #[test]
    fn clipping_scales_the_global_norm_down_and_leaves_small_ones() {
        let a = Var::from_tensor(&Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.0f32, 4.0], &Device::Cpu).unwrap()).unwrap();
        // d/dx of sum(x^2)/2 is x: gradients (3, 0) and (0, 4), global norm 5.
        let loss = ((a.as_tensor().sqr().unwrap().sum_all().unwrap()
            + b.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap()
            * 0.5)
            .unwrap();
        let vars = [a.clone(), b.clone()];
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&vars, &mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let ga: Vec<f32> = grads.get(a.as_tensor()).unwrap().to_vec1().unwrap();
        let gb: Vec<f32> = grads.get(b.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(
            (ga[0] - 0.6).abs() < 1e-6 && (gb[1] - 0.8).abs() < 1e-6,
            "scaled to norm 1"
        );
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&vars, &mut grads, 10.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let ga: Vec<f32> = grads.get(a.as_tensor()).unwrap().to_vec1().unwrap();
        assert!((ga[0] - 3.0).abs() < 1e-6, "below the limit: unchanged");
    }
}
