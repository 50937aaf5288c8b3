//! Batched sampling with a KV cache: continuations of one or many prompts (an eval problem's
//! samples, an RL step's groups), with temperature and nucleus (top-p) sampling under a seed
//! per prompt. A sequence stops at a stop token (EOS, `</answer>`) or after `max_new_tokens`.
//!
//! Prompts of different lengths are decoded together, left-padded (see [`Cache`]): each prompt
//! is prefilled once, its cache copied to its samples, and every decoding step runs the whole
//! batch. When half the batch has finished, the finished sequences leave it, so a long tail
//! does not pay for the short ones.

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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

impl Sampling {
    /// Sampling of a task's completions, as RL's rollouts and evals draw them: until the
    /// tokenizer's end of a completion ([`crate::tokenizer::Tokenizer::completion_stops`]).
    #[must_use]
    pub fn completions(
        tokenizer: &crate::tokenizer::Tokenizer,
        temperature: f64,
        top_p: f64,
        max_new_tokens: u32,
    ) -> Self {
        Self {
            temperature,
            top_p,
            max_new_tokens: max_new_tokens as usize,
            stop: tokenizer.completion_stops(),
        }
    }
}

/// One prompt's share of a batch: `n` continuations of `prompt`, drawn under `seed`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Token ids, BOS included if wanted.
    pub prompt: &'a [u32],
    /// Continuations wanted.
    pub n: usize,
    /// Seed of this prompt's draws.
    pub seed: u64,
}

/// Below this many live sequences a batch is not compacted (copying the cache would cost
/// more than the rows it saves).
const COMPACT_MIN: usize = 8;

/// `n` continuations of `prompt`, each without the prompt and ending at its stop token or
/// length limit. Same model, prompt and seed, same output, whatever the thread count.
pub fn sample(
    model: &Transformer,
    prompt: &[u32],
    n: usize,
    sampling: &Sampling,
    seed: u64,
) -> Result<Vec<Vec<u32>>> {
    let mut out = sample_batch(model, &[Request { prompt, n, seed }], sampling)?;
    Ok(out.pop().unwrap_or_default())
}

/// The continuations of every request, decoded as one batch: `result[r][i]` is request r's
/// i-th continuation. Every sequence may grow to `max_new_tokens` or until the longest prompt
/// fills the model's context.
///
/// Each continuation draws from its own generator, seeded by its request's seed and its index,
/// so the output does not depend on how rows are batched or split across threads. The rows are
/// split across one worker per thread of the pool: decoding gains nothing from a second thread
/// inside one matrix product at these sizes, but two independent decoders run twice as fast.
/// Inside a worker, candle's parallel kernels run on the
/// worker's own thread unless another worker is idle and steals their work.
pub fn sample_batch(
    model: &Transformer,
    requests: &[Request<'_>],
    sampling: &Sampling,
) -> Result<Vec<Vec<Vec<u32>>>> {
    let device = model.device().clone();
    let mut outputs: Vec<Vec<Vec<u32>>> = requests.iter().map(|r| vec![Vec::new(); r.n]).collect();
    let live: Vec<usize> = (0..requests.len())
        .filter(|&r| requests[r].n > 0 && !requests[r].prompt.is_empty())
        .collect();
    let Some(longest) = live.iter().map(|&r| requests[r].prompt.len()).max() else {
        return Ok(outputs);
    };
    let limit = sampling
        .max_new_tokens
        .min(model.config().context.saturating_sub(longest));
    if limit == 0 {
        return Ok(outputs);
    }
    // Prefill each prompt once, rotated at the slots it takes in the left-padded batch.
    let mut prefills: Vec<Option<(Cache, Tensor)>> = vec![None; requests.len()];
    for &r in &live {
        let prompt = requests[r].prompt;
        let mut cache = Cache::shifted(prompt.len(), longest - prompt.len());
        let tokens = Tensor::from_slice(prompt, (1, prompt.len()), &device)?;
        let logits = model.forward_cached(&tokens, &mut cache)?;
        let last = logits.narrow(1, prompt.len() - 1, 1)?.squeeze(1)?;
        prefills[r] = Some((cache, last));
    }
    let rows: Vec<(usize, usize)> = live
        .iter()
        .flat_map(|&r| (0..requests[r].n).map(move |i| (r, i)))
        .collect();
    // On a GPU one batch fills the device better than several decoders taking turns on it.
    let workers = if device.is_cpu() {
        rayon::current_num_threads()
            .min(rows.len() / ROWS_PER_WORKER)
            .max(1)
    } else {
        1
    };
    let chunk = rows.len().div_ceil(workers);
    let decoded = rows
        .par_chunks(chunk)
        .map(|rows| decode(model, requests, &prefills, rows, longest + limit, sampling))
        .collect::<Result<Vec<_>>>()?;
    for ((r, i), tokens) in decoded.into_iter().flatten() {
        outputs[r][i] = tokens;
    }
    Ok(outputs)
}

/// A continuation: (request, index among the request's continuations).
type Row = (usize, usize);

/// Fewest rows worth a worker of their own.
const ROWS_PER_WORKER: usize = 8;

/// The seed of one continuation's generator.
fn row_seed(seed: u64, row: usize) -> u64 {
    // splitmix64 of the pair: neighbouring rows get unrelated streams.
    let mut z = seed
        ^ (row as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Decodes `rows` ((request, index), grouped by request) from their prompts' prefills into a
/// cache of `capacity` slots; returns each row's continuation.
fn decode(
    model: &Transformer,
    requests: &[Request<'_>],
    prefills: &[Option<(Cache, Tensor)>],
    rows: &[(usize, usize)],
    capacity: usize,
    sampling: &Sampling,
) -> Result<Vec<(Row, Vec<u32>)>> {
    let device = model.device().clone();
    let mut parts: Vec<(&Cache, usize)> = Vec::new();
    let mut last = Vec::new();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        let Some((cache, logits)) = &prefills[group[0].0] else {
            candle_core::bail!("a sampled request has no prefill");
        };
        parts.push((cache, group.len()));
        last.push(logits.repeat((group.len(), 1))?);
    }
    let mut cache = Cache::join(&parts, capacity)?;
    let mut last = Tensor::cat(&last, 0)?;
    let limit = capacity - cache.len;
    let mut outputs: Vec<(Row, Vec<u32>)> = rows.iter().map(|&row| (row, Vec::new())).collect();
    let mut rngs: Vec<ChaCha8Rng> = rows
        .iter()
        .map(|&(r, i)| ChaCha8Rng::seed_from_u64(row_seed(requests[r].seed, i)))
        .collect();
    // Batch row j is output `live[j]`.
    let mut live: Vec<usize> = (0..rows.len()).collect();
    let mut done = vec![false; rows.len()];
    let filler = sampling.stop.first().copied().unwrap_or(0);
    for step in 0..limit {
        let logits: Vec<Vec<f32>> = last.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut next = Vec::with_capacity(live.len());
        for (j, row) in logits.iter().enumerate() {
            if done[j] {
                next.push(filler);
                continue;
            }
            let out = live[j];
            let token = pick(row, sampling, &mut rngs[out]);
            outputs[out].1.push(token);
            done[j] = sampling.stop.contains(&token);
            next.push(token);
        }
        let running = done.iter().filter(|d| !**d).count();
        if running == 0 || step + 1 == limit {
            break;
        }
        let mut input = Tensor::from_vec(next, (live.len(), 1), &device)?;
        if running >= COMPACT_MIN && running * 2 <= live.len() {
            let keep: Vec<u32> = (0..live.len())
                .filter(|&j| !done[j])
                .map(|j| j as u32)
                .collect();
            cache.select(&keep)?;
            input = input.index_select(&Tensor::new(keep.as_slice(), &device)?, 0)?;
            live = keep.iter().map(|&j| live[j as usize]).collect();
            done = vec![false; live.len()];
        }
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
