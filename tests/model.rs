//! The decoder: shapes, causality, cache consistency, gradients for every parameter, and the
//! parameter count the plan reports.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rlp::model::{Cache, Config, Transformer};

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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
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
