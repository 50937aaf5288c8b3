//! The GRPO objective as the reference runs it through verl (reference §E.3): group-normalised
//! advantages, the PPO-clipped ratio with separate low/high ε and dual clip, token-mean
//! aggregation over response tokens, and the low-variance (k3) KL to a frozen reference model
//! as a loss term.

use candle_core::{D, DType, Result, Tensor};

/// Added to a group's standard deviation, as verl does.
pub const STD_EPS: f64 = 1e-6;

/// The reference's dual-clip constant: a negative-advantage token's loss is at most `c·|A|`.
pub const DUAL_CLIP: f64 = 3.0;

/// Bound of the k3 estimate per token (verl's `low_var_kl` clamps to ±10).
const KL_BOUND: f64 = 10.0;

/// Group-normalised advantages: rewards come in consecutive groups of `group` rollouts of one
/// prompt; each becomes `(r − mean) / (std + 1e-6)` with the unbiased standard deviation of its
/// group. A group whose rewards are all equal gets zero advantages (it carries no signal); a
/// group of one keeps its reward, as verl does (mean 0, std 1).
#[must_use]
pub fn group_advantages(rewards: &[f64], group: usize) -> Vec<f64> {
    let group = group.max(1);
    let mut out = Vec::with_capacity(rewards.len());
    for chunk in rewards.chunks(group) {
        if chunk.len() == 1 {
            out.push(chunk[0]);
            continue;
        }
        let n = chunk.len() as f64;
        let mean = chunk.iter().sum::<f64>() / n;
        let var = chunk.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let std = var.sqrt();
        out.extend(chunk.iter().map(|r| (r - mean) / (std + STD_EPS)));
    }
    out
}

/// Whether every group of `group` rewards has zero spread, per group.
#[must_use]
pub fn zero_std_groups(rewards: &[f64], group: usize) -> Vec<bool> {
    rewards
        .chunks(group.max(1))
        .map(|chunk| chunk.iter().all(|r| (r - chunk[0]).abs() < 1e-12))
        .collect()
}

/// The clipped policy loss, token-mean over `mask`, and the share of masked tokens whose ratio
/// was clipped. Every tensor is (rows, tokens) except `advantages`, (rows, 1).
///
/// Per token, with `ρ = exp(logp − logp_old)`: `max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high))`, and
/// for `A < 0` additionally at most `−A·c` (dual clip).
pub fn policy_loss(
    logp: &Tensor,
    logp_old: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip_low: f64,
    clip_high: f64,
) -> Result<(Tensor, f64)> {
    let ratio = (logp - logp_old)?.exp()?;
    let advantages = advantages.broadcast_as(ratio.shape())?;
    let negative_adv = advantages.neg()?;
    let unclipped = (&negative_adv * &ratio)?;
    let clipped = (&negative_adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)?)?;
    let pessimistic = unclipped.maximum(&clipped)?;
    let dual = pessimistic.minimum(&(&negative_adv * DUAL_CLIP)?)?;
    let is_negative = advantages.lt(0.0)?;
    let per_token = is_negative.where_cond(&dual, &pessimistic)?;
    let mask = mask.to_dtype(DType::F32)?;
    let kept = mask.sum_all()?.maximum(1.0)?;
    let loss = (per_token * &mask)?.sum_all()?.div(&kept)?;
    // A token is clipped where the clipped branch is the larger (it then carries no gradient).
    let was_clipped = clipped.gt(&unclipped)?.to_dtype(DType::F32)?;
    let clip_fraction = (was_clipped * &mask)?.sum_all()?.div(&kept)?;
    Ok((loss, f64::from(clip_fraction.to_scalar::<f32>()?)))
}

/// The k3 estimate of KL(π ‖ π_ref) per token, `exp(r) − r − 1` with `r = logp_ref − logp`,
/// clamped to ±10, token-mean over `mask`.
pub fn kl_k3(logp: &Tensor, logp_ref: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let r = (logp_ref - logp)?;
    let k3 = ((r.exp()? - &r)? - 1.0)?.clamp(-KL_BOUND, KL_BOUND)?;
    let mask = mask.to_dtype(DType::F32)?;
    let kept = mask.sum_all()?.maximum(1.0)?;
    (k3 * &mask)?.sum_all()?.div(&kept)
}

/// Token-mean entropy of the distributions in `logits` (rows, tokens, vocab) over `mask`.
pub fn entropy(logits: &Tensor, mask: &Tensor) -> Result<f64> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let per_token = (log_probs.exp()? * &log_probs)?.sum(D::Minus1)?.neg()?;
    let mask = mask.to_dtype(DType::F32)?;
    let kept = mask.sum_all()?.maximum(1.0)?;
    let mean = (per_token * &mask)?.sum_all()?.div(&kept)?;
    Ok(f64::from(mean.to_scalar::<f32>()?))
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are the point
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn advantages_are_normalised_per_group() {
        // Group 1: mean 0.5, unbiased std of (1, 0, 1, 0) = sqrt(1/3).
        let a = group_advantages(&[1.0, 0.0, 1.0, 0.0, 0.3, 0.3, 0.3, 0.3], 4);
        let s = (1.0f64 / 3.0).sqrt();
        assert!(close(a[0], 0.5 / (s + STD_EPS)) && close(a[1], -0.5 / (s + STD_EPS)));
        assert_eq!(
            &a[4..],
            &[0.0; 4],
            "a zero-variance group gives zero advantages"
        );
        assert!(close(a[..4].iter().sum::<f64>(), 0.0));
        assert_eq!(
            group_advantages(&[0.7], 1),
            vec![0.7],
            "a group of one keeps its reward"
        );
        assert_eq!(zero_std_groups(&[1.0, 0.0, 0.3, 0.3], 2), vec![false, true]);
    }

    fn t(rows: &[&[f32]]) -> Tensor {
        let n = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), n), &Device::Cpu).unwrap()
    }

    #[test]
    fn clipped_objective_matches_hand_computed_values() {
        // Row 0, A = +1: ratios 1.5 (clipped to 1.2 -> max(-1.5, -1.2) = -1.2), 0.5 (max(-0.5,
        // -0.8) = -0.5). Row 1, A = -1: ratio 1.5 -> max(1.5, 1.2) = 1.5; ratio 5 -> max(5,
        // 1.2) = 5, dual-clipped to 3. The padded token (mask 0) is ignored.
        let logp_old = t(&[&[0.0, 0.0, 0.0], &[0.0, 0.0, 0.0]]);
        let logp = t(&[
            &[1.5f32.ln(), 0.5f32.ln(), 9.0],
            &[1.5f32.ln(), 5.0f32.ln(), 9.0],
        ]);
        let adv = Tensor::new(&[[1.0f32], [-1.0]], &Device::Cpu).unwrap();
        let mask = t(&[&[1.0, 1.0, 0.0], &[1.0, 1.0, 0.0]]);
        let (loss, clipped) = policy_loss(&logp, &logp_old, &adv, &mask, 0.2, 0.2).unwrap();
        let expected = (-1.2 - 0.5 + 1.5 + 3.0) / 4.0;
        assert!(close(f64::from(loss.to_scalar::<f32>().unwrap()), expected));
        // Only row 0's ratio 1.5 takes the clipped branch (row 1's ratios are above 1 + ε with
        // A < 0, where the unclipped branch is the larger): 1 of 4 tokens.
        assert!(close(clipped, 0.25));
    }

    #[test]
    fn separate_low_and_high_clip() {
        // A = +1, ratio 1.25: inside with ε_high 0.28, clipped with ε_high 0.2.
        let logp = t(&[&[1.25f32.ln()]]);
        let zero = t(&[&[0.0]]);
        let adv = Tensor::new(&[[1.0f32]], &Device::Cpu).unwrap();
        let one = t(&[&[1.0]]);
        let (wide, _) = policy_loss(&logp, &zero, &adv, &one, 0.2, 0.28).unwrap();
        let (narrow, _) = policy_loss(&logp, &zero, &adv, &one, 0.2, 0.2).unwrap();
        assert!(close(f64::from(wide.to_scalar::<f32>().unwrap()), -1.25));
        assert!(close(f64::from(narrow.to_scalar::<f32>().unwrap()), -1.2));
    }

    #[test]
    fn k3_kl_matches_hand_computed_values() {
        // r = logp_ref - logp = 0 -> 0; r = 1 -> e - 2; r = -1 -> 1/e.
        let logp = t(&[&[0.0, 0.0, 1.0, 0.0]]);
        let logp_ref = t(&[&[0.0, 1.0, 0.0, 50.0]]);
        let mask = t(&[&[1.0, 1.0, 1.0, 0.0]]);
        let kl = kl_k3(&logp, &logp_ref, &mask).unwrap();
        let e = std::f64::consts::E;
        let expected = (0.0 + (e - 2.0) + 1.0 / e) / 3.0;
        assert!(close(f64::from(kl.to_scalar::<f32>().unwrap()), expected));
        // The huge r of the masked token would be clamped to 10 had it counted.
        let all = t(&[&[0.0, 0.0, 0.0, 1.0]]);
        let kl = kl_k3(&logp, &logp_ref, &all).unwrap();
        assert!(close(f64::from(kl.to_scalar::<f32>().unwrap()), 10.0));
    }

    #[test]
    fn gradient_of_the_unclipped_objective_is_minus_the_advantage() {
        // At ratio 1 the token-mean loss -A·ρ has d/dlogp = -A / tokens.
        let logp = candle_core::Var::from_tensor(&t(&[&[0.0, 0.0]])).unwrap();
        let old = t(&[&[0.0, 0.0]]);
        let adv = Tensor::new(&[[2.0f32]], &Device::Cpu).unwrap();
        let mask = t(&[&[1.0, 1.0]]);
        let (loss, _) = policy_loss(logp.as_tensor(), &old, &adv, &mask, 0.2, 0.2).unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(logp.as_tensor()).unwrap().to_vec2().unwrap();
        assert!(close(f64::from(g[0][0]), -1.0) && close(f64::from(g[0][1]), -1.0));
    }
}
