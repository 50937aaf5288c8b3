//! `rlp check` on a generated 1,000-line experiment (target: at most 20 ms), and on 5 MB
//! files: one with a diagnostic per stage, one with a single typo at its end (target: each
//! under 1 s, compiled and rendered as `rlp check` does, with its allocator and settings),
//! and one whose every stage differs, the worst case of stage hashing.
//!
//! Run with `cargo bench --bench check`.

use std::fmt::Write as _;

/// The allocator the `rlp` binary uses, so the numbers are the binary's.
#[path = "../src/allocator.rs"]
mod allocator;

fn main() {
    allocator::keep_freed_memory();
    allocator::small_pages();
    divan::main();
}

/// A valid file of about `lines` lines: tasks, mixtures, a chain of stages, rewards and evals.
fn generated_file(lines: usize) -> String {
    let mut src = String::from("seed 1\nuse prelude\n\n");
    let mut i = 0;
    while src.lines().count() < lines {
        let _ = write!(
            src,
            "task t{i} {{\n    contexts zoo, teacher, movie\n    phrasing compact\n    modes forward 0.5, reverse 0.5\n}}\n\n\
             mixture m{i} {{\n    0.2 t{i}[op 2..=4]\n    0.3 t{i}[op 5..=6, context zoo | teacher]\n    0.5 t{i}[op 7..=8]\n}}\n\n\
             reward r{i} = answer * (0.2 + 0.8 * process)\n\n\
             pretrain p{i} {{\n    model tiny\n    data m{i}\n    tokens 2M\n    batch 8 x 256\n    lr 1e-3 -> 1e-4 cosine warmup 5%\n}}\n\n\
             rl q{i} from p{i} {{\n    prompts t{i}[op 6..=8]\n    steps 50\n    reward r{i}\n    filter pass_rate 0.1..=0.9 samples 8\n}}\n\n\
             eval e{i} {{\n    models p{i}, q{i}\n    split id t{i}[op 2..=8]\n    split hard t{i}[op 10..=12] extrapolative\n    samples 16\n    pass_at 1, 4, 16\n}}\n\n"
        );
        i += 1;
    }
    src
}

#[divan::bench]
fn check_1000_lines(bencher: divan::Bencher) {
    let src = generated_file(1000);
    let file = rlp::syntax::SourceFile::new("generated.rlp", src);
    let compilation = rlp::compile(&file);
    assert!(
        compilation.diagnostics.problems.is_empty(),
        "{}",
        compilation.diagnostics.render_plain(100)
    );
    bencher.bench(|| rlp::compile(divan::black_box(&file)));
}

#[divan::bench]
fn fmt_1000_lines(bencher: divan::Bencher) {
    let src = generated_file(1000);
    bencher.bench(|| rlp::format::format_source(divan::black_box(&src)));
}

/// About `bytes` of the quickstart followed by repeats of `block(i)`.
fn five_megabytes(block: impl Fn(usize) -> String) -> String {
    let mut src = std::fs::read_to_string("pipelines/quickstart.rlp").unwrap_or_default();
    let mut i = 0;
    while src.len() < 5_000_000 {
        src.push_str(&block(i));
        i += 1;
    }
    src
}

/// Compiles and renders the diagnostics as `rlp check` does (human and JSON). The compilation
/// is returned, so that freeing it falls outside the timing, as the command exits instead.
fn check_and_render(src: &str) -> (rlp::Compilation, usize, usize) {
    let compilation = rlp::compile_bytes("big.rlp", src.as_bytes());
    let human = compilation.diagnostics.render_plain(100).len();
    let json = compilation.diagnostics.to_json().len();
    (compilation, human, json)
}

#[divan::bench(sample_count = 3)]
fn check_5mb_every_stage_a_duplicate(bencher: divan::Bencher) {
    let src = five_megabytes(|_| {
        "pretrain base {\n    model tiny\n    data arith[op 2..=3]\n    tokens 2000k\n}\n"
            .to_owned()
    });
    bencher.bench(|| check_and_render(divan::black_box(&src)));
}

#[divan::bench(sample_count = 3)]
fn check_5mb_one_typo_at_the_end(bencher: divan::Bencher) {
    let mut src = five_megabytes(|i| {
        format!("midtrain m{i} from base {{\n    data arith[op 2..=3]\n    tokens 10k\n}}\n")
    });
    src.push_str("midtrain last from bsae {\n    data arith[op 2..=3]\n    tokens 10k\n}\n");
    bencher.bench(|| check_and_render(divan::black_box(&src)));
}

#[divan::bench(sample_count = 3)]
fn check_5mb_every_stage_different(bencher: divan::Bencher) {
    let src = five_megabytes(|i| {
        format!(
            "midtrain m{i} from base {{\n    data arith[op 2..=3]\n    tokens {}k\n}}\n",
            10 + i
        )
    });
    bencher.bench(|| check_and_render(divan::black_box(&src)));
}
