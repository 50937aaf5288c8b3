//! Training on real generated data: the loss of a tiny model falls within a few dozen steps.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use rlp::model::{Config, Transformer};
use rlp::plan::{Decay, LossTarget, LrSchedule, StageSpec};
use rlp::tokenizer::{BOS, EOS, Tokenizer};
use rlp::train::data::Packer;
use rlp::train::trainer::Trainer;

#[test]
fn a_tiny_model_learns_from_the_quickstart_data() {
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
    let solution = tokenizer.encode("<solution>").unwrap()[0];
    let mut packer = Packer::new(64, LossTarget::Full, solution);
    let mut blocks = Vec::new();
    let mut i = 0;
    while blocks.len() < 8 * 40 {
        let problem =
            rlp::tasks::sample::example(&generator, &spec.data, plan.stages[0].seed, i).unwrap();
        let mut ids = vec![BOS];
        ids.extend(tokenizer.encode(&problem.rendered.text()).unwrap());
        ids.push(EOS);
        packer.push(&ids);
        while let Some(block) = packer.next_block() {
            blocks.push(block);
        }
        i += 1;
    }
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
    let varmap = VarMap::new();
    let model = Transformer::load(
        &config,
        &VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut trainer = Trainer::new(&varmap, &spec, 40).unwrap();
    let losses: Vec<f64> = blocks
        .chunks(8)
        .map(|batch| trainer.step(&model, &varmap, batch).unwrap())
        .collect();
    let first = losses[0];
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    eprintln!("loss: first {first:.3}, mean of the last five {last:.3}");
    // At init the loss is about ln(vocab) (std 0.02 weights, tied embeddings).
    assert!(
        (first - (tokenizer.len() as f64).ln()).abs() < 0.5,
        "initial loss {first}"
    );
    assert!(
        last < 0.6 * first,
        "loss fell from {first:.3} to {last:.3} only"
    );
}
