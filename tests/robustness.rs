//! No input makes `check` panic, and every input yields a plan or at least one error.

use proptest::prelude::*;

/// Every bundled `.rlp` file, `pipelines/paper/` included.
fn pipelines() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let root = crate::common::root().join("pipelines");
    for dir in [root.clone(), root.join("paper")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rlp") {
                out.push(std::fs::read(path).unwrap());
            }
        }
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
    // `check` reads a file item by item and `fmt` in one parse: the two must agree, on the
    // same error at the same place when there is one (`check` alone also checks numbers and
    // the size of reward expressions).
    let text = String::from_utf8_lossy(bytes);
    let by_item = rlp::syntax::parse(&text)
        .err()
        .map(|e| format!("{e:?}"))
        .filter(|e| !e.starts_with("InvalidNumber") && !e.starts_with("ExpressionTooLarge"));
    let whole = rlp::format::format_source(&text)
        .err()
        .map(|e| format!("{e:?}"));
    assert_eq!(
        by_item, whole,
        "item-by-item and whole-file parses disagree"
    );
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

    #[test]
    fn hostile_insertions(file in 0usize..5, at in 0.0f64..1.0, kind in 0usize..8, size in 1usize..5000) {
        // Very long lines, huge and tiny numbers, control characters, CR and BOM, dropped into
        // a real pipeline at a random place.
        let all = pipelines();
        let mut bytes = all[file % all.len()].clone();
        let insert: Vec<u8> = match kind {
            0 => std::iter::repeat_n(b"\"n\", ".as_slice(), size).flatten().copied().collect(),
            1 => format!(" 1e{} ", size % 700).into_bytes(),
            2 => format!(" 1e-{} ", size % 700).into_bytes(),
            3 => vec![(size % 32) as u8; 1 + size % 4],
            4 => vec![b'\r'; 1 + size % 3],
            5 => "\u{FEFF}".as_bytes().to_vec(),
            6 => "9".repeat(size).into_bytes(),
            _ => "x".repeat(size * 20).into_bytes(),
        };
        let i = (bytes.len() as f64 * at) as usize;
        bytes.splice(i..i, insert);
        plan_or_error(&bytes);
    }
}

fn quickstart() -> String {
    std::fs::read_to_string(crate::common::root().join("pipelines/quickstart.rlp")).unwrap()
}

#[test]
fn a_label_far_along_a_long_line_is_drawn_in_a_window() {
    // 6,000 names with one comma missing: the label sits past column 65,535, where miette's
    // renderer cannot draw, and the frame must not reprint the 70 KB line.
    let mut names: Vec<String> = (0..6000).map(|i| format!("\"item{i}\"")).collect();
    names[5998] = format!("{} {}", names[5998], names[5999]);
    names.pop();
    let src = format!(
        "seed 1\ncontext c {{\n    entity \"E\"\n    entities p \"a\", \"b\"\n    total \"t\"\n    items q {}\n    ask_total \"{{total}} {{entity}}\"\n    ask_item \"{{item}} {{entity}}\"\n}}\n",
        names.join(", ")
    );
    let compilation = rlp::compile_bytes("long.rlp", src.as_bytes());
    assert!(compilation.diagnostics.has_errors());
    let rendered = compilation.diagnostics.render_plain(100);
    assert!(rendered.contains("\"item5999\""), "{rendered}");
    assert!(rendered.contains("long.rlp:6:"), "{rendered}");
    assert!(rendered.len() < 2000, "{} bytes", rendered.len());
    let json = compilation.diagnostics.to_json();
    assert_eq!(json[0].line, 6);
    assert!(json[0].column > 65_535);
}

#[test]
fn many_repeated_diagnostics_are_capped_in_the_human_output_only() {
    let stage = "pretrain base {\n    model tiny\n    data arith[op 2..=3]\n    tokens 20k\n}\n";
    let src = quickstart() + &stage.repeat(500);
    let compilation = rlp::compile_bytes("dup.rlp", src.as_bytes());
    let json = compilation.diagnostics.to_json();
    let duplicates = json.iter().filter(|d| d.code == "rlp::E0202").count();
    assert!(duplicates >= 500, "{duplicates}");
    let rendered = compilation.diagnostics.render_plain(100);
    assert_eq!(
        rendered.matches("rlp::E0202").count(),
        rlp::diagnostics::SHOWN_PER_CODE + 1,
        "{rendered}"
    );
    assert!(rendered.contains(&format!(
        "and {} more rlp::E0202",
        duplicates - rlp::diagnostics::SHOWN_PER_CODE
    )));
}

#[test]
fn a_long_else_if_chain_is_too_deep_at_the_same_place_every_time() {
    let src = format!(
        "seed 1\nreward r = {}{{ 0 }}\n",
        "if answer > 0.5 { 1 } else ".repeat(100_000)
    );
    let first = rlp::compile_bytes("chain.rlp", src.as_bytes())
        .diagnostics
        .to_json();
    let again = rlp::compile_bytes("chain.rlp", src.as_bytes())
        .diagnostics
        .to_json();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].code, "rlp::E0102");
    assert_eq!(
        (first[0].line, first[0].column),
        (again[0].line, again[0].column)
    );
}

#[test]
fn a_byte_order_mark_and_lone_carriage_returns_are_read_as_text() {
    let plain = rlp::compile_bytes("q.rlp", quickstart().as_bytes());
    let with_bom = rlp::compile_bytes("q.rlp", format!("\u{FEFF}{}", quickstart()).as_bytes());
    assert!(with_bom.diagnostics.problems.is_empty());
    let old_mac = rlp::compile_bytes("q.rlp", quickstart().replace('\n', "\r").as_bytes());
    assert!(old_mac.diagnostics.problems.is_empty());
    let stages = |c: &rlp::Compilation| c.plan.as_ref().unwrap().stages.len();
    assert_eq!(stages(&with_bom), stages(&plain));
    assert_eq!(stages(&old_mac), stages(&plain));
}

#[test]
fn a_huge_name_is_not_echoed_whole() {
    let name = "a".repeat(1_000_000);
    let src = quickstart().replace("model tiny", &format!("model {name}"));
    let compilation = rlp::compile_bytes("huge.rlp", src.as_bytes());
    assert!(compilation.diagnostics.has_errors());
    let rendered = compilation.diagnostics.render_plain(100);
    assert!(rendered.len() < 5_000, "{} bytes", rendered.len());
    let json = serde_json::to_string(&compilation.diagnostics.to_json()).unwrap();
    assert!(json.len() < 5_000, "{} bytes", json.len());
}

#[test]
fn an_opening_bracket_after_a_complete_reward_is_the_same_error_both_ways() {
    // Found by `random_grammar_soup`: a finished reward expression, a newline, then `{` or `[`,
    // where the whole-file parse also offered the expression's continuations.
    for src in [
        "reward op = x \n {",
        "reward op = x \n [",
        "reward r = answer\n{ }\n",
        "reward r = answer * 0.5\n[1]\n",
    ] {
        plan_or_error(src.as_bytes());
    }
}
