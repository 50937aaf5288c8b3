//! Training on real generated data: the loss of a tiny model falls within a few dozen steps,
//! and a run resumed from a checkpoint takes exactly the steps it would have taken.
#![allow(clippy::float_cmp)] // resuming must reproduce losses bit for bit

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use rlp::model::{Config, Transformer};
use rlp::plan::{Decay, LossTarget, LrSchedule, StageSpec, TrainSpec};
use rlp::tokenizer::{BOS, EOS, Tokenizer};
use rlp::train::data::{Packer, Sequence};
use rlp::train::trainer::Trainer;

/// `batches` batches of 8 sequences of quickstart training data, the stage's spec with a constant
/// learning rate, and a tiny model's config.
fn setup(batches: usize) -> (TrainSpec, Vec<Sequence>, Config) {
    let src =
        std::fs::read_to_string(crate::common::root().join("pipelines/quickstart.rlp")).unwrap();
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("quickstart.rlp", src))
        .plan
        .unwrap();
    let StageSpec::Pretrain(mut spec) = plan.stages[0].spec.clone() else {
        panic!("quickstart pre-trains")
    };
    spec.lr = LrSchedule {
        peak: 3e-3,
        floor: 3e-3,
        decay: Decay::Constant,
        warmup: 0.0,
    };
    let tokenizer = Tokenizer::for_plan(&plan);
    let generator = rlp::tasks::Generator::new(&plan);
    let mut packer = Packer::new(64, LossTarget::Full, &tokenizer.tag_ids("<solution>"));
    let mut blocks = Vec::new();
    let mut i = 0;
    while blocks.len() < 8 * batches {
        let problem =
            rlp::tasks::stream::example(&generator, &spec.data, plan.stages[0].seed, i).unwrap();
        let mut ids = vec![BOS];
        ids.extend(tokenizer.encode(&problem.rendered.text()).unwrap());
        ids.push(EOS);
        packer.push(&ids);
        while let Some(block) = packer.next_sequence() {
            blocks.push(block);
        }
        i += 1;
    }
    blocks.truncate(8 * batches);
    let config = Config {
        vocab: tokenizer.len(),
        layers: 2,
        hidden: 32,
        heads: 4,
        kv_heads: 2,
        ffn: 64,
        context: 128,
        rope_theta: 1e6,
        qkv_bias: true,
        norm_eps: 1e-6,
        init_std: 0.02,
    };
    (spec, blocks, config)
}

/// A freshly initialised model and its trainer.
fn fresh(config: &Config, spec: &TrainSpec, steps: u64) -> (Transformer, Trainer) {
    let varmap = VarMap::new();
    let model = Transformer::load(
        config,
        &VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let trainer = Trainer::new(&varmap, spec, steps).unwrap();
    (model, trainer)
}

#[test]
fn a_tiny_model_learns_from_the_quickstart_data() {
    let (spec, blocks, config) = setup(40);
    let (model, mut trainer) = fresh(&config, &spec, 40);
    let losses: Vec<f64> = blocks
        .chunks(8)
        .map(|batch| trainer.step(&model, batch).unwrap())
        .collect();
    let first = losses[0];
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    eprintln!("loss: first {first:.3}, mean of the last five {last:.3}");
    // At init the loss is about ln(vocab) (std 0.02 weights, tied embeddings).
    assert!(
        (first - (config.vocab as f64).ln()).abs() < 0.5,
        "initial loss {first}"
    );
    assert!(
        last < 0.6 * first,
        "loss fell from {first:.3} to {last:.3} only"
    );
}

#[test]
fn the_fused_and_the_plain_path_train_alike() {
    let (spec, blocks, config) = setup(30);
    let curve = |fused: bool| -> Vec<f64> {
        let (varmap, mut model) = rlp::model::build(&config, &Device::Cpu, Some(5)).unwrap();
        model.set_fused_kernels(fused);
        assert_eq!(model.fused_kernels(), fused);
        let mut trainer = Trainer::new(&varmap, &spec, 30).unwrap();
        blocks
            .chunks(8)
            .map(|batch| trainer.step(&model, batch).unwrap())
            .collect()
    };
    let (fused, plain) = (curve(true), curve(false));
    let worst = fused
        .iter()
        .zip(&plain)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "loss {:.4} -> {:.4} (fused) and {:.4} -> {:.4} (plain); largest gap {worst:.2e}",
        fused[0], fused[29], plain[0], plain[29]
    );
    assert!(fused[29] < 0.8 * fused[0], "the run learns: {fused:?}");
    // Only the order of float operations differs (measured gap 1e-6 over 30 steps).
    assert!(
        worst < 1e-4,
        "curves differ by {worst}: {fused:?} vs {plain:?}"
    );
}

#[test]
fn a_resumed_run_takes_exactly_the_next_steps() {
    let (spec, blocks, config) = setup(5);
    let batches: Vec<&[Sequence]> = blocks.chunks(8).collect();
    let (model, mut trainer) = fresh(&config, &spec, 5);
    for batch in &batches[..3] {
        trainer.step(&model, batch).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("rlp-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("step3.safetensors");
    trainer
        .save(&path, std::collections::HashMap::new())
        .unwrap();
    let uninterrupted = [
        trainer.step(&model, batches[3]).unwrap(),
        trainer.step(&model, batches[4]).unwrap(),
    ];
    // As in a new process: other initial weights, then the checkpoint.
    let (model, mut resumed) = fresh(&config, &spec, 5);
    resumed.load(&path).unwrap();
    assert_eq!(resumed.step, 3);
    let after_resume = [
        resumed.step(&model, batches[3]).unwrap(),
        resumed.step(&model, batches[4]).unwrap(),
    ];
    assert_eq!(
        uninterrupted, after_resume,
        "weights and Adam moments are restored exactly"
    );
    assert!(resumed.load(&dir.join("missing.safetensors")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_solution_target_counts_exactly_the_solution_tokens() {
    let src =
        std::fs::read_to_string(crate::common::root().join("pipelines/quickstart.rlp")).unwrap();
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("quickstart.rlp", src))
        .plan
        .unwrap();
    let tokenizer = Tokenizer::for_plan(&plan);
    let generator = rlp::tasks::Generator::new(&plan);
    let problem =
        rlp::tasks::stream::example(&generator, plan.stages[0].spec.data(), 5, 0).unwrap();
    let mut ids = vec![BOS];
    ids.extend(tokenizer.encode(&problem.rendered.text()).unwrap());
    ids.push(EOS);
    // One block holding exactly this example.
    let mut packer = Packer::new(
        ids.len() - 1,
        LossTarget::Solution,
        &tokenizer.tag_ids("<solution>"),
    );
    packer.push(&ids);
    let block = packer.next_sequence().unwrap();
    let counted: Vec<u32> = block
        .tokens
        .iter()
        .skip(1)
        .zip(&block.mask)
        .filter(|(_, m)| **m)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        tokenizer.decode(&counted),
        format!(
            " {} </solution> <answer> {} </answer>",
            problem.rendered.body, problem.rendered.answer
        ),
        "the loss covers what follows <solution>"
    );
    assert_eq!(
        counted.last(),
        Some(&EOS),
        "and the EOS that ends the example"
    );
}

/// An RL update with `minibatches` takes that many optimizer steps per epoch, each on whole
/// groups, and one mini-batch is the plain update.
#[test]
fn an_rl_update_takes_one_optimizer_step_per_minibatch_and_epoch() {
    let src = std::fs::read_to_string(crate::common::root().join("pipelines/f1-edge.rlp")).unwrap();
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("f1-edge.rlp", src))
        .plan
        .unwrap();
    let StageSpec::Rl(spec) = plan
        .stages
        .iter()
        .find(|s| matches!(s.spec, StageSpec::Rl(_)))
        .unwrap()
        .spec
        .clone()
    else {
        panic!("f1-edge has rl stages")
    };
    let config = Config::from_spec(&plan.models[0], Tokenizer::for_plan(&plan).len());
    let rollouts: Vec<rlp::rl::Rollout> = (0..8u32)
        .map(|i| rlp::rl::Rollout {
            prompt: vec![BOS, 5 + i, 6],
            completion: vec![7 + i % 3, 9, EOS],
        })
        .collect();
    let advantages = [1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.0, 0.0];
    let steps_and_weights = |minibatches: u32, epochs: u32| {
        let (varmap, model) = rlp::model::build(&config, &Device::Cpu, Some(3)).unwrap();
        let mut optimizer =
            rlp::train::optim::AdamW::new(rlp::model::sorted_vars(&varmap).unwrap(), 1e-3, 0.0)
                .unwrap();
        let spec = rlp::plan::RlSpec {
            group: 2,
            minibatches,
            epochs,
            kl: 0.0,
            ..spec.clone()
        };
        rlp::rl::update(&model, None, &mut optimizer, &rollouts, &advantages, &spec).unwrap();
        let weights = model
            .forward(&candle_core::Tensor::new(&[[BOS, 5, 6]], &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        (optimizer.steps, weights)
    };
    let (one, plain) = steps_and_weights(1, 1);
    let (four, split) = steps_and_weights(4, 1);
    let (eight, _) = steps_and_weights(4, 2);
    assert_eq!((one, four, eight), (1, 4, 8));
    assert_ne!(
        plain, split,
        "four steps on quarters are not one step on the whole"
    );
}
