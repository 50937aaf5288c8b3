//! Training and sampling throughput of rlp's decoder on the shapes of
//! `benches/torch_baseline.py` (run both with `benches/compare.sh`). Prints one JSON line per
//! configuration: training tokens/s (forward, masked loss, backward, clipping, AdamW) and
//! KV-cache sampling tokens/s (64 continuations of one 64-token prompt, 192 new tokens).
//!
//! `cargo bench --bench model -- A A8 B [train|sample|phases] [autograd]` (configurations as
//! arguments, default A and B; one measure or both; `phases`: milliseconds per training step
//! in each phase; `autograd`: train with candle's autograd instead of the fused path's
//! hand-written backward pass, the comparison that measures it); `cargo bench --bench model -- gemm` prints the fp32 GFLOP/s of
//! a 1024³ product through candle (4096³ on a GPU); `-- linear` the GFLOP/s of the fused linear
//! layer (forward, and forward + backward) on model A8's shapes, `-- attention` those of the
//! fused attention on one layer of A8 and B. Each line reports the process's peak memory.
//! With the argument `cuda` (a build with `--features cuda`) everything runs on the first GPU;
//! shape `P` is the `paper-100m` preset, for that.
#![allow(clippy::print_stdout, clippy::unwrap_used)] // a benchmark reports and fails loudly

use std::fmt::Write as _;
use std::time::Instant;

use candle_core::Device;
use rlp::model::sample::{Sampling, sample};
use rlp::model::{Config, build};
use rlp::plan::{DataSpec, Decay, LossTarget, LrSchedule, TrainSpec};
use rlp::train::data::Sequence;
use rlp::train::trainer::Trainer;

/// The `rlp` binary's allocator and its settings, so the numbers are the binary's.
#[path = "../src/allocator.rs"]
#[allow(dead_code)] // training keeps huge pages, as `rlp run` does
mod allocator;

/// The quickstart's vocabulary size, as the PyTorch script uses.
const VOCAB: usize = 2459;

fn config(name: &str) -> Option<(Config, usize, usize)> {
    let (hidden, layers, heads, kv_heads, ffn, seq, batch) = match name {
        "A" => (128, 4, 4, 4, 384, 256, 32),
        "A8" => (128, 4, 4, 4, 384, 256, 8),
        "B" => (256, 6, 8, 4, 768, 512, 16),
        // The prelude's `paper-100m` (a GPU shape).
        "P" => (768, 12, 12, 2, 3072, 512, 16),
        _ => return None,
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
    Some((config, seq, batch))
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
        start: None,
        stop: None,
    }
}

/// This process's peak resident memory in MiB (`VmHWM`), or 0 where /proc is missing.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// fp32 GFLOP/s of an n³ matrix product through candle (the GEMM peak rlp can reach): n = 1024
/// on the CPU, 4096 on a GPU.
fn gemm_rate(device: &Device) -> f64 {
    let n = if device.is_cpu() { 1024 } else { 4096 };
    let a = candle_core::Tensor::randn(0f32, 1.0, (n, n), device).unwrap();
    let b = candle_core::Tensor::randn(0f32, 1.0, (n, n), device).unwrap();
    a.matmul(&b).unwrap();
    device.synchronize().unwrap();
    let reps = 10;
    let start = Instant::now();
    for _ in 0..reps {
        a.matmul(&b).unwrap();
    }
    device.synchronize().unwrap();
    2.0 * (n * n * n * reps) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// GFLOP/s of `op` (doing `flops` forward), forward alone and forward + backward (counted as
/// three forwards), each timed over `reps` calls after one warm-up call.
fn op_rates(flops: f64, reps: u32, op: impl Fn() -> candle_core::Tensor) -> (f64, f64) {
    let time = |backward: bool| {
        let run = || {
            let y = op();
            if backward {
                y.sum_all().unwrap().backward().unwrap();
            }
        };
        run();
        let start = Instant::now();
        for _ in 0..reps {
            run();
        }
        start.elapsed().as_secs_f64() / f64::from(reps)
    };
    (flops / time(false) / 1e9, 3.0 * flops / time(true) / 1e9)
}

/// GFLOP/s of the fused causal attention, forward and forward + backward (counted as three
/// forwards, as for the linear layer: the backward's recomputed scores are overhead), on one
/// layer of models A8 and B (head width 32): 2 · b · h · t² · d FLOPs forward, the causal half
/// of two t × t products per head.
fn attention_rates(device: &Device) -> String {
    use candle_core::{Tensor, Var};
    let mut out = String::new();
    for (name, batch, heads, kv_heads, seq) in [("A8", 8, 4, 4, 256), ("B", 16, 8, 4, 512)] {
        let width = 32;
        let var = |n: usize| {
            let shape = (batch, n, seq, width);
            Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, device).unwrap()).unwrap()
        };
        let (q, k, v) = (var(heads), var(kv_heads), var(kv_heads));
        let flops = 2.0 * (batch * heads * seq * seq * width) as f64;
        let (forward, both) = op_rates(flops, 10, || {
            rlp::model::ops::causal_attention(&q, &k, &v, 0.2).unwrap()
        });
        write!(
            out,
            ", \"attention_{name}_gflops\": [{forward:.1}, {both:.1}]"
        )
        .unwrap();
    }
    out
}

/// GFLOP/s of the fused linear layer, forward and forward + backward, on the shapes of model A8
/// (2,048 rows): q/k/v/o, gate/up, down and the tied LM head.
fn linear_rates(device: &Device) -> String {
    use candle_core::{Tensor, Var};
    let mut out = String::new();
    for (inputs, outputs) in [(128, 128), (128, 384), (384, 128), (128, VOCAB)] {
        let rows = 2048;
        let x =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (rows, inputs), device).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.02, (outputs, inputs), device).unwrap())
            .unwrap();
        let flops = 2.0 * (rows * inputs * outputs) as f64;
        let (forward, both) =
            op_rates(flops, 20, || rlp::model::ops::linear(&x, &w, None).unwrap());
        write!(
            out,
            ", \"linear_{inputs}x{outputs}_gflops\": [{forward:.1}, {both:.1}]"
        )
        .unwrap();
    }
    out
}

/// Milliseconds per training step spent in each phase, averaged over `steps` steps after one
/// warm-up: where a step's time goes. With candle's autograd (the plain path, or `autograd`):
/// forward, loss, backward, clipping, optimizer; with the fused path's hand-written backward:
/// gradients (forward, loss and backward in one call), clipping, optimizer.
fn phase_times(
    varmap: &candle_nn::VarMap,
    model: &rlp::model::Transformer,
    (seq, batch): (usize, usize),
    steps: usize,
    autograd: bool,
) -> Vec<(&'static str, f64)> {
    use candle_core::{DType, Tensor};
    let vars = rlp::model::sorted_vars(varmap).unwrap();
    let mut optimizer = rlp::train::optim::AdamW::new(vars, 1e-3, 0.1).unwrap();
    let tokens: Vec<u32> = (0..batch * seq)
        .map(|i| ((i * 17) % VOCAB) as u32)
        .collect();
    let device = model.device();
    let inputs = Tensor::from_vec(tokens, (batch, seq), device).unwrap();
    let mask = Tensor::ones((batch, seq), DType::U8, device).unwrap();
    let hand_written = model.fused_kernels() && !autograd;
    let names: &[&'static str] = if hand_written {
        &["gradients", "clip", "optimizer"]
    } else {
        &["forward", "loss", "backward", "clip", "optimizer"]
    };
    let mut totals = vec![0f64; names.len()];
    for step in 0..=steps {
        let mut marks = vec![Instant::now()];
        let mark = |marks: &mut Vec<Instant>| {
            device.synchronize().unwrap();
            marks.push(Instant::now());
        };
        let mut grads = if hand_written {
            let (_, grads) = model
                .loss_and_grads(&inputs, &inputs, |log_probs, _| {
                    rlp::train::trainer::masked_mean_nll(log_probs, &mask)
                })
                .unwrap();
            mark(&mut marks);
            grads
        } else {
            let logits = model.forward(&inputs).unwrap();
            mark(&mut marks);
            let loss = rlp::train::trainer::masked_cross_entropy(
                &logits,
                &inputs,
                &mask,
                model.fused_kernels(),
            )
            .unwrap();
            loss.to_scalar::<f32>().unwrap();
            mark(&mut marks);
            let grads = loss.backward().unwrap();
            mark(&mut marks);
            grads
        };
        rlp::train::clip_grad_norm(&optimizer.vars(), &mut grads, 1.0).unwrap();
        mark(&mut marks);
        optimizer.step(&grads).unwrap();
        mark(&mut marks);
        if step > 0 {
            for (total, pair) in totals.iter_mut().zip(marks.windows(2)) {
                *total += (pair[1] - pair[0]).as_secs_f64() * 1e3 / steps as f64;
            }
        }
    }
    names.iter().copied().zip(totals).collect()
}

fn main() {
    allocator::keep_freed_memory();
    // As `rlp run` trains and samples.
    rlp::model::denormals::flush_to_zero();
    let steps: usize = std::env::var("RLP_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = if args.iter().any(|a| a == "cuda") {
        Device::new_cuda(0).unwrap()
    } else {
        Device::Cpu
    };
    let on = if device.is_cpu() { "cpu" } else { "cuda" };
    if args.iter().any(|a| a == "attention") {
        println!("{{\"impl\": \"rlp\"{}}}", attention_rates(&device));
        return;
    }
    if args.iter().any(|a| a == "linear") {
        println!("{{\"impl\": \"rlp\"{}}}", linear_rates(&device));
        return;
    }
    if args.iter().any(|a| a == "gemm") {
        let rate = gemm_rate(&device);
        println!("{{\"impl\": \"rlp\", \"device\": \"{on}\", \"gemm_gflops\": {rate:.2}}}");
        return;
    }
    let phases = args.iter().any(|a| a == "phases");
    let autograd = args.iter().any(|a| a == "autograd");
    let (train, sample_too) = match args.iter().find(|a| *a == "train" || *a == "sample") {
        Some(m) if m == "train" => (true, false),
        Some(_) => (false, true),
        None => (!phases, !phases),
    };
    let mut names: Vec<&String> = args.iter().filter(|a| config(a).is_some()).collect();
    let defaults = ["A".to_owned(), "B".to_owned()];
    if names.is_empty() {
        names = defaults.iter().collect();
    }
    for name in names {
        let Some((config, seq, batch)) = config(name) else {
            continue;
        };
        let (varmap, model) = build(&config, &device, Some(0)).unwrap();
        let mut row = format!("{{\"impl\": \"rlp\", \"device\": \"{on}\", \"config\": \"{name}\"");
        if phases {
            for (phase, ms) in phase_times(&varmap, &model, (seq, batch), steps, autograd) {
                write!(row, ", \"{phase}_ms\": {ms:.1}").unwrap();
            }
        }
        if train {
            let mut trainer = Trainer::new(&varmap, &spec(seq, batch), 1000).unwrap();
            trainer.candle_autograd = autograd;
            let sequences: Vec<Sequence> = (0..batch)
                .map(|b| Sequence {
                    tokens: (0..=seq)
                        .map(|i| ((b * 131 + i * 17) % VOCAB) as u32)
                        .collect(),
                    mask: vec![true; seq],
                })
                .collect();
            trainer.step(&model, &sequences).unwrap();
            let start = Instant::now();
            for _ in 0..steps {
                trainer.step(&model, &sequences).unwrap();
            }
            device.synchronize().unwrap();
            let rate = (steps * batch * seq) as f64 / start.elapsed().as_secs_f64();
            write!(row, ", \"train_tokens_per_s\": {rate:.1}").unwrap();
        }
        if sample_too {
            let prompt: Vec<u32> = (0..64).map(|i| ((i * 29) % VOCAB) as u32).collect();
            let sampling = Sampling {
                temperature: 0.8,
                top_p: 1.0,
                max_new_tokens: 192,
                stop: Vec::new(),
            };
            // The second of two runs, as the PyTorch script times it (warm allocator and pools).
            sample(&model, &prompt, 64, &sampling, 0).unwrap();
            let start = Instant::now();
            let out = sample(&model, &prompt, 64, &sampling, 0).unwrap();
            let generated: usize = out.iter().map(Vec::len).sum();
            let rate = generated as f64 / start.elapsed().as_secs_f64();
            write!(row, ", \"sample_tokens_per_s\": {rate:.1}").unwrap();
        }
        // On a GPU the host's memory is not the measure the PyTorch script reports (the
        // device's), so it goes under another name and the table leaves the column empty.
        let memory_key = if device.is_cpu() {
            "peak_rss_mb"
        } else {
            "peak_host_rss_mb"
        };
        println!("{row}, \"{memory_key}\": {:.1}}}", peak_rss_mb());
    }
}
