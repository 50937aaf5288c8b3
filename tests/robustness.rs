//! No input makes `check` panic, and every input yields a plan or at least one error.

use proptest::prelude::*;

fn pipelines() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(crate::common::root().join("pipelines")).unwrap() {
        out.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    out.sort();
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[track_caller]
fn plan_or_error(bytes: &[u8]) {
    let compilation = rlp::compile_bytes("fuzz.rlp", bytes);
    assert!(
        compilation.plan.is_some() != compilation.diagnostics.has_errors(),
        "a file gets a plan exactly when it has no errors"
    );
    // Rendering must not panic either, whatever the spans.
    let _ = compilation.diagnostics.render_plain(80);
    let _ = compilation.diagnostics.to_json();
    let _ = rlp::format::format_source(&String::from_utf8_lossy(bytes));
}

/// Whitespace-separated tokens of a file, for swapping.
fn tokens(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
        .collect()
}

proptest! {
    // 200 cases each in CI; `PROPTEST_CASES=20000 cargo test --release robustness` digs deeper.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn truncated_pipelines(file in 0usize..5, cut in 0.0f64..1.0) {
        let all = pipelines();
        let bytes = &all[file % all.len()];
        plan_or_error(&bytes[..(bytes.len() as f64 * cut) as usize]);
    }

    #[test]
    fn byte_flips(file in 0usize..5, flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8)) {
        let all = pipelines();
        let mut bytes = all[file % all.len()].clone();
        for (at, value) in flips {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] = value;
        }
        plan_or_error(&bytes);
    }

    #[test]
    fn token_swaps(file in 0usize..5, swaps in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..6)) {
        let all = pipelines();
        let source = &all[file % all.len()];
        let mut toks: Vec<&[u8]> = tokens(source);
        for (a, b) in swaps {
            let (i, j) = (((toks.len() - 1) as f64 * a) as usize, ((toks.len() - 1) as f64 * b) as usize);
            toks.swap(i, j);
        }
        // Keep line structure roughly: join with newlines every few tokens.
        let mut bytes = Vec::new();
        for (k, t) in toks.iter().enumerate() {
            bytes.extend_from_slice(t);
            bytes.push(if k % 3 == 2 { b'\n' } else { b' ' });
        }
        plan_or_error(&bytes);
    }

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        plan_or_error(&bytes);
    }

    #[test]
    fn random_grammar_soup(words in prop::collection::vec(prop::sample::select(vec![
        "pretrain", "midtrain", "rl", "eval", "task", "model", "mixture", "context", "phrasing", "from", "{", "}",
        "[", "]", "(", ")", "\n", ";", ",", "$x", "sweep", "x", "=", "reward", "answer", "*", "0.5", "2..=5",
        "op", "arith", "use", "prelude", "seed", "1", "tokens", "20M", "5%", "\"s\"", "if", "else", "budget",
        "zip", "->", "..", "data", "model", "tiny",
    ]), 0..80)) {
        plan_or_error(words.join(" ").as_bytes());
    }
}
