//! Training and sampling throughput of rlp's decoder on the shapes of
//! `benches/torch_baseline.py` (run both with `benches/compare.sh`). Prints one JSON line per
//! configuration: training tokens/s (forward, masked loss, backward, clipping, AdamW) and
//! KV-cache sampling tokens/s (64 continuations of one 64-token prompt, 192 new tokens).
//!
//! `cargo bench --bench model -- A B` (configurations as arguments; default both).
#![allow(clippy::print_stdout, clippy::unwrap_used)] // a benchmark reports and fails loudly

use std::time::Instant;

use candle_core::Device;
use rlp::model::sample::{Sampling, sample};
use rlp::model::{Config, build};
use rlp::plan::{DataSpec, Decay, LossTarget, LrSchedule, TrainSpec};
use rlp::train::data::Block;
use rlp::train::trainer::Trainer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The quickstart's vocabulary size, as the PyTorch script uses.
const VOCAB: usize = 2459;

fn config(name: &str) -> (Config, usize, usize) {
    let (hidden, layers, heads, kv_heads, ffn, seq, batch) = match name {
        "A" => (128, 4, 4, 4, 384, 256, 32),
        "B" => (256, 6, 8, 4, 768, 512, 16),
        other => panic!("unknown configuration {other} (A or B)"),
    };
    let config = Config {
        vocab: VOCAB,
        layers,
        hidden,
        heads,
        kv_heads,
        ffn,
        context: 1024,
        rope_theta: 1e6,
        qkv_bias: true,
        norm_eps: 1e-6,
        init_std: 0.02,
    };
    (config, seq, batch)
}

fn spec(seq: usize, batch: usize) -> TrainSpec {
    TrainSpec {
        model: rlp::plan::ModelId(0),
        data: DataSpec {
            mixture: None,
            components: Vec::new(),
        },
        tokens: 0,
        batch: batch as u32,
        seq_len: seq as u32,
        lr: LrSchedule {
            peak: 1e-3,
            floor: 1e-3,
            decay: Decay::Constant,
            warmup: 0.0,
        },
        weight_decay: 0.1,
        grad_clip: 1.0,
        loss: LossTarget::Full,
        eval_every: 1,
        checkpoint_every: 1,
    }
}

fn main() {
    let steps: usize = std::env::var("RLP_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a == "A" || a == "B")
        .collect();
    if names.is_empty() {
        names = vec!["A".into(), "B".into()];
    }
    for name in names {
        let (config, seq, batch) = config(&name);
        let (varmap, model) = build(&config, &Device::Cpu, Some(0)).unwrap();
        let mut trainer = Trainer::new(&varmap, &spec(seq, batch), 1000).unwrap();
        let blocks: Vec<Block> = (0..batch)
            .map(|b| Block {
                tokens: (0..=seq)
                    .map(|i| ((b * 131 + i * 17) % VOCAB) as u32)
                    .collect(),
                mask: vec![true; seq],
            })
            .collect();
        trainer.step(&model, &blocks).unwrap();
        let start = Instant::now();
        for _ in 0..steps {
            trainer.step(&model, &blocks).unwrap();
        }
        let train = (steps * batch * seq) as f64 / start.elapsed().as_secs_f64();

        let prompt: Vec<u32> = (0..64).map(|i| ((i * 29) % VOCAB) as u32).collect();
        let sampling = Sampling {
            temperature: 0.8,
            top_p: 1.0,
            max_new_tokens: 192,
            stop: Vec::new(),
        };
        let start = Instant::now();
        let out = sample(&model, &prompt, 64, &sampling, 0).unwrap();
        let generated: usize = out.iter().map(Vec::len).sum();
        let rate = generated as f64 / start.elapsed().as_secs_f64();
        println!(
            "{{\"impl\": \"rlp\", \"config\": \"{name}\", \"train_tokens_per_s\": {train:.1}, \"sample_tokens_per_s\": {rate:.1}}}"
        );
    }
}
