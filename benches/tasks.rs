//! Task engine throughput: problems generated per second (op 2, 10, 20) and solutions
//! verified per second, on one core. Run with `cargo bench --bench tasks`.
//!
//! Before the timings it prints the acceptance rate per op (problems / attempts).
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark reports, and fails loudly

use divan::counter::ItemsCount;

/// The allocator the `rlp` binary uses, so the numbers are the binary's.
#[path = "../src/allocator.rs"]
#[allow(dead_code)] // this benchmark does not train: it keeps mimalloc's default purging
mod allocator;

use rlp::plan::{Mode, Plan, TaskId};
use rlp::tasks::trace::parse;
use rlp::tasks::verify::score;

fn main() {
    let plan = plan();
    for (name, task) in [("english", 0), ("compact", 1)] {
        for op in [2, 10, 20] {
            let (problems, attempts) = (0..2000u64).fold((0u64, 0u64), |(p, a), seed| {
                let mode = if seed % 2 == 0 {
                    Mode::Forward
                } else {
                    Mode::Reverse
                };
                let problem = rlp::tasks::generate(
                    &plan,
                    TaskId(task),
                    plan.tasks[task].contexts[0],
                    mode,
                    op,
                    seed,
                )
                .unwrap();
                (p + 1, a + u64::from(problem.attempts))
            });
            println!(
                "acceptance {name} op {op}: {:.1}% ({problems} problems in {attempts} attempts)",
                100.0 * problems as f64 / attempts as f64
            );
        }
    }
    divan::main();
}

fn plan() -> Plan {
    let src = "seed 1\nuse prelude\ntask words {\n    contexts zoo\n    phrasing english\n}\ntask symbols {\n    contexts zoo\n    phrasing compact\n}\n";
    rlp::compile(&rlp::syntax::SourceFile::new("bench.rlp", src))
        .plan
        .unwrap()
}

/// Problems per timed iteration: the same seeds every iteration, so every sample times the
/// same mix of shapes (single problems vary several-fold in size).
const BATCH: u64 = 256;

fn generate_batch(
    generator: &rlp::tasks::Generator<'_>,
    task: usize,
    op: u32,
    modes: &[Mode],
) -> usize {
    let plan = generator.plan;
    (0..BATCH)
        .map(|seed| {
            let mode = modes[seed as usize % modes.len()];
            rlp::tasks::generate(
                plan,
                TaskId(task),
                plan.tasks[task].contexts[0],
                mode,
                op,
                seed,
            )
            .unwrap()
            .rendered
            .problem
            .len()
        })
        .sum()
}

#[divan::bench(args = [2, 10, 20], sample_count = 20)]
fn generate_english_forward(bencher: divan::Bencher, op: u32) {
    let plan = plan();
    let generator = rlp::tasks::Generator::new(&plan);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| generate_batch(&generator, 0, op, &[Mode::Forward]));
}

#[divan::bench(args = [2, 10, 20], sample_count = 20)]
fn generate_english_reverse(bencher: divan::Bencher, op: u32) {
    let plan = plan();
    let generator = rlp::tasks::Generator::new(&plan);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| generate_batch(&generator, 0, op, &[Mode::Reverse]));
}

#[divan::bench(args = [2, 10, 20], sample_count = 20)]
fn generate_compact(bencher: divan::Bencher, op: u32) {
    let plan = plan();
    let generator = rlp::tasks::Generator::new(&plan);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| generate_batch(&generator, 1, op, &[Mode::Forward]));
}

#[divan::bench(args = [2, 10, 20], sample_count = 20)]
fn verify_english(bencher: divan::Bencher, op: u32) {
    let plan = plan();
    let format = rlp::tasks::trace_format(&plan, TaskId(0));
    let problems: Vec<(String, String)> = (0..64)
        .map(|seed| {
            let p = rlp::tasks::generate(
                &plan,
                TaskId(0),
                plan.tasks[0].contexts[0],
                Mode::Forward,
                op,
                seed,
            )
            .unwrap();
            let completion = format!(
                " {} </solution> <answer> {} </answer>",
                p.rendered.body, p.rendered.answer
            );
            (p.rendered.solution, completion)
        })
        .collect();
    let golds: Vec<_> = problems
        .iter()
        .map(|(gold, _)| parse(gold, &format))
        .collect();
    bencher
        .counter(ItemsCount::new(problems.len()))
        .bench_local(|| {
            problems
                .iter()
                .zip(&golds)
                .map(|((_, completion), gold)| score(gold, &parse(completion, &format)).r_pv)
                .sum::<f64>()
        });
}
