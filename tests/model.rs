//! The decoder: shapes, causality, cache consistency, gradients for every parameter, and the
//! parameter count the plan reports.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rlp::model::{Cache, Config, Transformer};

use crate::common::max_abs_diff;

/// The test model, as a plan would declare it; the decoder's config is derived from it.
fn spec() -> rlp::plan::ModelSpec {
    rlp::plan::ModelSpec {
        name: "test".into(),
        layers: 2,
        hidden: 32,
        heads: 4,
        kv_heads: 2,
        ffn: 48,
        context: 64,
        rope_theta: 1e6,
        tied_embeddings: true,
        qkv_bias: true,
        norm_eps: 1e-6,
        init_std: 0.02,
        non_embedding_params: 0,
    }
}

fn config() -> Config {
    Config::from_spec(&spec(), 40)
}

fn model() -> (VarMap, Transformer) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Transformer::load(&config(), &vb).unwrap();
    (varmap, model)
}

fn tokens(ids: &[u32], batch: usize) -> Tensor {
    Tensor::from_vec(ids.repeat(batch), (batch, ids.len()), &Device::Cpu).unwrap()
}

#[test]
fn logits_have_batch_seq_vocab_shape() {
    let (_, model) = model();
    let logits = model.forward(&tokens(&[1, 5, 7, 9, 2], 3)).unwrap();
    assert_eq!(logits.dims(), &[3, 5, 40]);
}

#[test]
fn a_future_token_does_not_change_earlier_logits() {
    let (_, model) = model();
    let a = model.forward(&tokens(&[1, 5, 7, 9, 2, 4], 1)).unwrap();
    let b = model.forward(&tokens(&[1, 5, 7, 9, 30, 4], 1)).unwrap();
    assert!(max_abs_diff(&a.narrow(1, 0, 4).unwrap(), &b.narrow(1, 0, 4).unwrap()) == 0.0);
    assert!(max_abs_diff(&a.narrow(1, 4, 1).unwrap(), &b.narrow(1, 4, 1).unwrap()) > 0.0);
}

#[test]
fn cached_decoding_matches_a_full_forward() {
    let (_, model) = model();
    let ids = [1u32, 5, 7, 9, 2, 4, 11, 3];
    let full = model.forward(&tokens(&ids, 2)).unwrap();
    // A growing cache, one preallocated with room to spare, and one that fills up exactly and
    // then has to grow.
    for mut cache in [
        Cache::default(),
        Cache::with_capacity(32),
        Cache::with_capacity(6),
    ] {
        let prefix = model
            .forward_cached(&tokens(&ids[..5], 2), &mut cache)
            .unwrap();
        assert!(max_abs_diff(&prefix, &full.narrow(1, 0, 5).unwrap()) < 1e-5);
        for (i, id) in ids.iter().enumerate().skip(5) {
            let step = model
                .forward_cached(&tokens(&[*id], 2), &mut cache)
                .unwrap();
            assert!(
                max_abs_diff(&step, &full.narrow(1, i, 1).unwrap()) < 1e-5,
                "position {i}"
            );
        }
        assert_eq!(cache.len, ids.len());
        let too_long = tokens(&[1; 60], 1);
        assert!(
            model.forward_cached(&too_long, &mut cache).is_err(),
            "context overflow is an error, not a panic"
        );
    }
}

#[test]
fn every_parameter_receives_a_gradient() {
    let (varmap, model) = model();
    let ids = tokens(&[1, 5, 7, 9, 2, 4], 2);
    let logits = model.forward(&ids).unwrap();
    let (b, t, v) = logits.dims3().unwrap();
    let targets = tokens(&[5, 7, 9, 2, 4, 3], 2);
    let loss = candle_nn::loss::cross_entropy(
        &logits.reshape((b * t, v)).unwrap(),
        &targets.flatten_all().unwrap(),
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let grad = grads
            .get(data[name].as_tensor())
            .unwrap_or_else(|| panic!("{name} gets no gradient"));
        let norm = grad
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "{name} has a zero gradient");
    }
}

#[test]
fn parameter_count_matches_the_plan() {
    let (varmap, _) = model();
    let cfg = config();
    let total: usize = varmap
        .all_vars()
        .iter()
        .map(|v| v.as_tensor().elem_count())
        .sum();
    let non_embedding = rlp::analysis::non_embedding_params(&spec());
    assert_eq!(
        total as u64,
        non_embedding + (cfg.vocab * cfg.hidden) as u64
    );
}

fn sampling(
    temperature: f64,
    max_new_tokens: usize,
    stop: Vec<u32>,
) -> rlp::model::sample::Sampling {
    rlp::model::sample::Sampling {
        temperature,
        top_p: 1.0,
        max_new_tokens,
        stop,
    }
}

#[test]
fn greedy_sampling_follows_the_full_forward_argmax() {
    let (_, model) = model();
    let prompt = [1u32, 5, 7, 9];
    let out = rlp::model::sample::sample(&model, &prompt, 3, &sampling(0.0, 6, vec![]), 0).unwrap();
    assert!(
        out.iter().all(|o| *o == out[0]),
        "greedy samples are identical"
    );
    let mut sequence = prompt.to_vec();
    for _ in 0..6 {
        let logits = model.forward(&tokens(&sequence, 1)).unwrap();
        let last = logits
            .narrow(1, sequence.len() - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap();
        sequence.push(last.argmax(0).unwrap().to_scalar::<u32>().unwrap());
    }
    assert_eq!(out[0], sequence[prompt.len()..]);
}

#[test]
fn sampling_is_seeded_bounded_and_stops() {
    let (_, model) = model();
    let prompt = [1u32, 5, 7];
    let a = rlp::model::sample::sample(&model, &prompt, 4, &sampling(1.0, 8, vec![]), 7).unwrap();
    let b = rlp::model::sample::sample(&model, &prompt, 4, &sampling(1.0, 8, vec![]), 7).unwrap();
    assert_eq!(a, b, "same seed, same samples");
    assert!(
        a.iter().all(|o| o.len() == 8),
        "no stop token: max_new_tokens each"
    );
    let c = rlp::model::sample::sample(&model, &prompt, 4, &sampling(1.0, 8, vec![]), 8).unwrap();
    assert_ne!(
        a, c,
        "another seed, other samples (40-token vocabulary, 32 draws)"
    );
    let every_token: Vec<u32> = (0..40).collect();
    let stopped =
        rlp::model::sample::sample(&model, &prompt, 4, &sampling(1.0, 8, every_token), 7).unwrap();
    assert!(
        stopped.iter().all(|o| o.len() == 1),
        "each sequence ends at its first stop token"
    );
}

#[test]
fn left_padded_batches_decode_like_each_prompt_alone() {
    let (_, model) = model();
    let prompts: [&[u32]; 3] = [&[1, 5, 7], &[1, 9, 9, 4, 12, 30], &[1, 2]];
    let longest = 6;
    let mut prefills = Vec::new();
    for prompt in prompts {
        let mut cache = Cache::shifted(prompt.len(), longest - prompt.len());
        model
            .forward_cached(&tokens(prompt, 1), &mut cache)
            .unwrap();
        prefills.push(cache);
    }
    let parts: Vec<(&Cache, usize)> = prefills.iter().map(|c| (c, 2)).collect();
    let mut batch = Cache::join(&parts, longest + 4).unwrap();
    // Each prompt's two copies continue with different tokens, twice.
    let next = [[3u32, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14]];
    for step in 0..2 {
        let input: Vec<u32> = next.iter().map(|pair| pair[step]).collect();
        let logits = model
            .forward_cached(
                &Tensor::from_vec(input, (6, 1), &Device::Cpu).unwrap(),
                &mut batch,
            )
            .unwrap();
        for (row, pair) in next.iter().enumerate() {
            let mut sequence = prompts[row / 2].to_vec();
            sequence.extend(&pair[..=step]);
            let alone = model.forward(&tokens(&sequence, 1)).unwrap();
            let alone = alone
                .narrow(1, sequence.len() - 1, 1)
                .unwrap()
                .flatten_all()
                .unwrap();
            let batched = logits.get(row).unwrap().flatten_all().unwrap();
            let diff = max_abs_diff(&alone, &batched);
            assert!(
                diff < 1e-5,
                "row {row} step {step}: logits differ by {diff}"
            );
        }
    }
}

#[test]
fn a_batch_of_prompts_samples_what_each_prompt_samples_alone() {
    use rlp::model::sample::{Request, sample, sample_batch};
    let (_, model) = model();
    let prompts: [&[u32]; 2] = [&[1, 5, 7], &[1, 9, 9, 4, 12, 30, 2]];
    // A quarter of the vocabulary stops a sequence, so rows finish at different steps and the
    // batch is compacted along the way (16 rows, compaction from 8 live).
    let stop: Vec<u32> = (0..10).collect();
    let sampling = sampling(1.0, 12, stop);
    let requests: Vec<Request<'_>> = prompts
        .iter()
        .enumerate()
        .map(|(i, prompt)| Request {
            prompt,
            n: 8,
            seed: 40 + i as u64,
        })
        .collect();
    let together = sample_batch(&model, &requests, &sampling).unwrap();
    let lengths: Vec<usize> = together.iter().flatten().map(Vec::len).collect();
    assert!(
        lengths.iter().min() < lengths.iter().max(),
        "rows finish at different steps: {lengths:?}"
    );
    for (request, batched) in requests.iter().zip(&together) {
        let alone = sample(&model, request.prompt, request.n, &sampling, request.seed).unwrap();
        assert_eq!(&alone, batched);
    }
    // Rows are split across one worker per thread; the output does not depend on how many.
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let split = pool.install(|| sample_batch(&model, &requests, &sampling).unwrap());
        assert_eq!(split, together, "{threads} threads");
    }
}

#[test]
fn the_full_model_gradient_matches_finite_differences() {
    // Seeded weights, large enough (std 0.3) that attention is far from uniform and every
    // parameter's gradient is well above float noise; a sequence long enough for two
    // attention blocks of rows.
    let wide = Config {
        context: 128,
        init_std: 0.3,
        ..config()
    };
    let (varmap, model) = rlp::model::build(&wide, &Device::Cpu, Some(3)).unwrap();
    let ids: Vec<u32> = (0..70).map(|i| (i * 7 + 3) % 40).collect();
    let inputs = tokens(&ids[..69], 1);
    let targets = tokens(&ids[1..], 1).flatten_all().unwrap();
    let loss = || {
        let logits = model.forward(&inputs).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits.squeeze(0).unwrap(), &targets).unwrap();
        f64::from(loss.to_scalar::<f32>().unwrap())
    };
    let logits = model.forward(&inputs).unwrap();
    let grads = candle_nn::loss::cross_entropy(&logits.squeeze(0).unwrap(), &targets)
        .unwrap()
        .backward()
        .unwrap();
    let norm = |t: &Tensor| {
        f64::from(
            t.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
        .sqrt()
    };
    // Each parameter tensor, moved by 0.1% of its norm (at least 1e-3) along its own gradient:
    // the loss changes at the rate |g| of that tensor.
    for (name, var) in rlp::model::sorted_vars(&varmap).unwrap() {
        let grad = grads.get(var.as_tensor()).unwrap().clone();
        let (g, w) = (norm(&grad), norm(var.as_tensor()));
        let epsilon = 1e-3 * w.max(1.0);
        let original = var.as_tensor().copy().unwrap();
        let at = |e: f64| {
            var.set(&(&original + (&grad * (e / g)).unwrap()).unwrap())
                .unwrap();
            loss()
        };
        let numeric = (at(epsilon) - at(-epsilon)) / (2.0 * epsilon);
        var.set(&original).unwrap();
        assert!(
            (numeric - g).abs() < 0.05 * g,
            "{name}: directional derivative {numeric} against |g| = {g}"
        );
    }
}

/// The gradients of `loss` (a function of the targets' log-probabilities, as in
/// `Transformer::loss_and_grads`) from the hand-written backward pass and from candle's
/// autograd on the plain path agree for every parameter.
fn check_hand_written_backward(loss: impl Fn(&Tensor) -> Tensor) {
    // Grouped-query heads, q/k/v biases, odd sizes, three blocks of attention rows, and a
    // repeated token (its embedding row sums several gradients).
    let odd = Config {
        context: 160,
        init_std: 0.3,
        ffn: 37,
        ..config()
    };
    let (varmap, mut model) = rlp::model::build(&odd, &Device::Cpu, Some(5)).unwrap();
    let (batch, seq) = (3, 131);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|i| ((i * 11 + i / 7) % 40) as u32)
        .collect();
    let rows: Vec<&[u32]> = ids.chunks(seq + 1).collect();
    let take = |from: usize| {
        let flat: Vec<u32> = rows
            .iter()
            .flat_map(|r| r[from..from + seq].to_vec())
            .collect();
        Tensor::from_vec(flat, (batch, seq), &Device::Cpu).unwrap()
    };
    let (inputs, targets) = (take(0), take(1));

    let (value, grads) = model
        .loss_and_grads(&inputs, &targets, |log_probs, _| Ok(loss(log_probs)))
        .unwrap();
    let value = value.to_scalar::<f32>().unwrap();
    model.set_fused_kernels(false);
    let logits = model.forward(&inputs).unwrap();
    let log_probs = rlp::model::token_log_probs(&logits, &targets, false).unwrap();
    let reference = loss(&log_probs);
    let reference_grads = reference.backward().unwrap();
    let reference = reference.to_scalar::<f32>().unwrap();
    // On the plain path `loss_and_grads` is candle's autograd: the reference itself.
    let (plain, plain_grads) = model
        .loss_and_grads(&inputs, &targets, |log_probs, _| Ok(loss(log_probs)))
        .unwrap();
    assert_eq!(
        plain.to_scalar::<f32>().unwrap().to_bits(),
        reference.to_bits()
    );
    for (name, var) in rlp::model::sorted_vars(&varmap).unwrap() {
        let (a, b) = (&plain_grads, &reference_grads);
        let (a, b) = (
            a.get(var.as_tensor()).unwrap(),
            b.get(var.as_tensor()).unwrap(),
        );
        assert!(
            max_abs_diff(a, b) <= 0.0,
            "{name}: the plain path is candle's autograd"
        );
    }
    assert!(
        (value - reference).abs() < 1e-5 * reference.abs(),
        "loss {value} against {reference}"
    );
    for (name, var) in rlp::model::sorted_vars(&varmap).unwrap() {
        let expected = reference_grads.get(var.as_tensor()).unwrap();
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} gets no gradient"));
        assert_eq!(got.dims(), expected.dims(), "{name}");
        let scale = expected.abs().unwrap().flatten_all().unwrap();
        let scale = scale.max(0).unwrap().to_scalar::<f32>().unwrap();
        let diff = max_abs_diff(got, expected);
        assert!(scale > 0.0, "{name} has a zero gradient");
        assert!(
            diff <= 1e-4 * scale,
            "{name}: largest difference {diff} against largest gradient {scale}"
        );
    }
}

/// A mask with holes over the test batch (3 × 131).
fn holey_mask() -> Tensor {
    let mask: Vec<u8> = (0..3 * 131).map(|i| u8::from(i % 5 != 0)).collect();
    Tensor::from_vec(mask, (3, 131), &Device::Cpu).unwrap()
}

#[test]
fn the_hand_written_backward_matches_candles_autograd_for_the_next_token_loss() {
    let mask = holey_mask();
    check_hand_written_backward(|log_probs| {
        rlp::train::trainer::masked_mean_nll(log_probs, &mask).unwrap()
    });
}

#[test]
fn the_hand_written_backward_matches_candles_autograd_for_the_grpo_objective() {
    // The RL update's objective: clipped policy loss against log-probabilities shifted from
    // the current ones (ratios on both sides of the clip range), mixed advantages, plus the
    // k3 KL to another set of log-probabilities.
    let mask = holey_mask();
    let advantages = Tensor::new(&[[1.0f32], [-0.5], [0.25]], &Device::Cpu).unwrap();
    check_hand_written_backward(|log_probs| {
        let wobble = Tensor::from_vec(
            (0..3 * 131)
                .map(|i| ((i % 7) as f32 - 3.0) * 0.15)
                .collect::<Vec<f32>>(),
            (3, 131),
            &Device::Cpu,
        )
        .unwrap();
        let old = (log_probs.detach() + &wobble).unwrap();
        let reference = (log_probs.detach() - &wobble).unwrap();
        let (policy, _) =
            rlp::rl::grpo::policy_loss(log_probs, &old, &advantages, &mask, 0.2, 0.28).unwrap();
        let kl = rlp::rl::grpo::kl_k3(log_probs, &reference, &mask).unwrap();
        (policy + (kl * 0.1).unwrap()).unwrap()
    });
}
