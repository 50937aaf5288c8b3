//! The README and `docs/` stay honest: their commands parse, their complete example files
//! check clean, the outputs they show are what rlp prints, and the diagnostics page is what
//! `rlp explain --markdown` generates. Dated notes (`docs/notes/`) record history and are not
//! checked.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser as _;

use crate::common::root;

/// The manual's pages: the README, CONTRIBUTING.md and `docs/*.md`.
fn pages() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// Fenced blocks of a page with the given info string, with the line each starts on.
fn blocks<'a>(text: &'a str, info: &str) -> Vec<(usize, &'a str)> {
    let mut out = Vec::new();
    // Inside a fence: `Some(wanted)`, where `wanted` is where the block's text starts (its line
    // and byte offset) when the fence has the wanted info string.
    let mut open: Option<Option<(usize, usize)>> = None;
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let fence = line.trim_end();
        if let Some(rest) = fence.strip_prefix("```") {
            match open.take() {
                None => {
                    open = Some((rest.trim() == info).then_some((number + 2, offset + line.len())));
                }
                Some(Some((start_line, start))) => out.push((start_line, &text[start..offset])),
                Some(None) => {}
            }
        }
        offset += line.len();
    }
    out
}

/// Splits a shell command line into words: quotes group, `#` after a space starts a comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `rlp` arguments of a documented command line, if it runs rlp.
fn rlp_arguments(line: &str) -> Option<Vec<String>> {
    let words = shell_words(line.trim().trim_start_matches("$ "));
    let start = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["rlp" | "./target/release/rlp", ..] => 1,
        ["cargo", "run", "--release", "--", ..] => 4,
        _ => return None,
    };
    // A redirection or a pipe ends rlp's arguments.
    let end = words
        .iter()
        .position(|w| w.starts_with('>') || w.starts_with("2>") || w == "|")
        .unwrap_or(words.len());
    Some(words[start..end.max(start)].to_vec())
}

#[test]
fn documented_commands_parse_and_name_real_files() {
    let mut checked = 0;
    for (path, text) in pages() {
        for info in ["sh", "text"] {
            for (start, block) in blocks(&text, info) {
                for (i, line) in block.lines().enumerate() {
                    // A `text` block shows a command only after a prompt.
                    if info == "text" && !line.starts_with("$ ") {
                        continue;
                    }
                    let Some(args) = rlp_arguments(line) else {
                        continue;
                    };
                    let at = format!("{}:{}", path.display(), start + i);
                    let parsed = rlp::cli::Arguments::try_parse_from(
                        std::iter::once("rlp".to_owned()).chain(args.iter().cloned()),
                    );
                    assert!(parsed.is_ok(), "{at}: `{line}` does not parse: {parsed:?}");
                    for arg in &args {
                        if arg.starts_with("pipelines/") {
                            assert!(root().join(arg).is_file(), "{at}: no file {arg}");
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} documented commands found");
}

#[test]
fn relative_links_lead_somewhere() {
    for (path, text) in pages() {
        let dir = path.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let end = target.find([')', '#', ' ']).unwrap_or(target.len());
            let target = &target[..end];
            if target.is_empty() || target.starts_with("http") {
                continue;
            }
            assert!(
                dir.join(target).exists(),
                "{}: the link `{target}` leads nowhere",
                path.display()
            );
        }
    }
}

#[test]
fn documented_complete_files_check_clean() {
    let mut checked = 0;
    // The diagnostics page's examples are meant to fail: the fixture tests check each fires
    // its code.
    for (path, text) in pages()
        .into_iter()
        .filter(|(p, _)| !p.ends_with("diagnostics.md"))
    {
        for (start, block) in blocks(&text, "rlp") {
            // Fragments (one block, one reward) are not files; a complete example sets a seed.
            if !block.lines().any(|l| l.starts_with("seed ")) {
                continue;
            }
            let compilation = rlp::compile_bytes("example.rlp", block.as_bytes());
            assert!(
                compilation.plan.is_some(),
                "{}:{start}: the example does not check clean:\n{}",
                path.display(),
                compilation.diagnostics.render_plain(100)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} complete examples found");
}

#[test]
fn documented_sample_outputs_are_real() {
    let page = std::fs::read_to_string(root().join("docs/tasks.md")).unwrap();
    let mut checked = 0;
    for (_, block) in blocks(&page, "text") {
        let Some(command) = block
            .lines()
            .next()
            .filter(|l| l.starts_with("$ rlp sample"))
        else {
            continue;
        };
        let args = rlp_arguments(command).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap();
        let shown = block.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim_end(),
            shown.trim_end(),
            "docs/tasks.md shows stale output for `{command}`"
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "docs/tasks.md shows two samples");
}

#[test]
fn the_diagnostics_page_is_generated() {
    let page = std::fs::read_to_string(root().join("docs/diagnostics.md")).unwrap();
    assert!(
        page == rlp::diagnostics::explain::markdown(),
        "docs/diagnostics.md is stale: run `cargo run --release -- explain --markdown > docs/diagnostics.md`"
    );
}
