//! Batched sampling with a KV cache: n continuations of one prompt (an eval problem's samples,
//! or an RL prompt's group), with temperature and nucleus (top-p) sampling under a seed.
//! A sequence stops at a stop token (EOS, `</answer>`) or after `max_new_tokens`.

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Cache, Transformer};

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 is greedy.
    pub temperature: f64,
    /// Nucleus threshold in (0, 1]; 1 keeps every token.
    pub top_p: f64,
    /// Longest continuation.
    pub max_new_tokens: usize,
    /// Tokens that end a sequence (kept as its last token).
    pub stop: Vec<u32>,
}

/// `n` continuations of `prompt` (token ids, BOS included if wanted), each without the
/// prompt and ending at its stop token or length limit. Same model, prompt and seed, same
/// output.
pub fn sample(
    model: &Transformer,
    prompt: &[u32],
    n: usize,
    sampling: &Sampling,
    seed: u64,
) -> Result<Vec<Vec<u32>>> {
    let device = model.device().clone();
    let mut outputs = vec![Vec::new(); n];
    if n == 0 || prompt.is_empty() {
        return Ok(outputs);
    }
    let limit = sampling
        .max_new_tokens
        .min(model.config().context.saturating_sub(prompt.len()));
    let mut prefill = Cache::with_capacity(prompt.len() + limit);
    let prompt_tensor = Tensor::from_slice(prompt, (1, prompt.len()), &device)?;
    let logits = model.forward_cached(&prompt_tensor, &mut prefill)?;
    let mut cache = prefill.repeat_batch(n)?;
    let mut last = logits
        .narrow(1, prompt.len() - 1, 1)?
        .squeeze(1)?
        .repeat((n, 1))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut done = vec![false; n];
    for step in 0..limit {
        let rows: Vec<Vec<f32>> = last.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut next = Vec::with_capacity(n);
        for (i, row) in rows.iter().enumerate() {
            let token = if done[i] {
                sampling.stop.first().copied().unwrap_or(0)
            } else {
                pick(row, sampling, &mut rng)
            };
            if !done[i] {
                outputs[i].push(token);
                done[i] = sampling.stop.contains(&token);
            }
            next.push(token);
        }
        if done.iter().all(|d| *d) || step + 1 == limit {
            break;
        }
        let input = Tensor::from_vec(next, (n, 1), &device)?;
        last = model.forward_cached(&input, &mut cache)?.squeeze(1)?;
    }
    Ok(outputs)
}

/// One token from a row of logits.
fn pick(logits: &[f32], sampling: &Sampling, rng: &mut impl Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                if l > best.1 { (i, l) } else { best }
            })
            .0 as u32
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, ((f64::from(l - max)) / sampling.temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    if !total.is_finite() || total <= 0.0 {
        return argmax();
    }
    if sampling.top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut kept = 0.0;
        let cut = probs.iter().position(|(_, p)| {
            kept += p / total;
            kept >= sampling.top_p
        });
        probs.truncate(cut.map_or(probs.len(), |c| c + 1));
    }
    let kept: f64 = probs.iter().map(|(_, p)| p).sum();
    let mut ticket = rng.random::<f64>() * kept;
    for (i, p) in &probs {
        if ticket < *p {
            return *i as u32;
        }
        ticket -= p;
    }
    probs.last().map_or_else(argmax, |(i, _)| *i as u32)
}
