//! `rlp report --pair MODEL:BASE` on the report fixture (two RL ranges, two seeds each, from
//! one base): any two models on the same problems, within a run and across runs.

use std::path::Path;
use std::process::Command;

use rlp::report::{PairRequest, PairedRow, Selection, load, load_runs};

use crate::common::root;
use crate::report::{copy_tree, fixture, fixture_in_two_runs};

fn requests(texts: &[&str]) -> Vec<PairRequest> {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

fn rows<'a>(paired: &'a [PairedRow], model: &str, base: &str) -> Vec<&'a PairedRow> {
    paired
        .iter()
        .filter(|r| r.difference.model == model && r.base == base)
        .collect()
}

/// Rewrites the sweep bindings in the manifest of every cell of the run at `dir`.
fn edit_bindings(dir: &Path, edit: &dyn Fn(&mut Vec<serde_json::Value>)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let manifest = entry.unwrap().path().join("manifest.json");
        if manifest.is_file() {
            let mut json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
            edit(json["bindings"].as_array_mut().unwrap());
            std::fs::write(&manifest, json.to_string()).unwrap();
        }
    }
}

#[test]
fn any_two_models_of_a_run_are_paired_on_the_same_problems() {
    let lineage = load(&fixture()).unwrap();
    let asked = load_runs(
        &[fixture()],
        &requests(&[
            "base:post",
            "post:base",
            "post[range=3..=3]:post[range=2..=2]",
        ]),
        &[],
    )
    .unwrap();
    let (plain, split) = (&lineage.splits[0], &asked.splits[0]);
    assert!(plain.paired.iter().all(|r| !r.asked));
    assert_eq!(
        rows(&split.paired, "post", "base").len(),
        plain.paired.len(),
        "`post:base` is the lineage's pair, not added twice"
    );
    // The base minus each post is the lineage's row negated, per group and selection.
    let reversed = rows(&split.paired, "base", "post");
    assert_eq!(reversed.len(), plain.paired.len());
    for row in &plain.paired {
        let twin = reversed
            .iter()
            .find(|r| {
                r.difference.units == row.difference.units
                    && r.difference.selection == row.difference.selection
            })
            .unwrap_or_else(|| panic!("no reversed row for {row:?}"));
        assert!(twin.asked);
        assert_eq!(twin.difference.replicas, 2);
        for (r, d) in twin.difference.answer.iter().zip(&row.difference.answer) {
            assert!((r.value + d.value).abs() < 1e-15, "{r:?} {d:?}");
            assert_eq!(r.seed_min, d.seed_max.map(|x| -x));
        }
    }
    // Siblings: range 3's posts minus range 2's, seed by seed; over the same problems the
    // mean difference is the difference of the two groups' means.
    let siblings = rows(&split.paired, "post[range=3..=3]", "post[range=2..=2]");
    assert!(!siblings.is_empty());
    let group = |unit: &str, selection: &Selection| {
        plain
            .groups
            .iter()
            .find(|r| r.model == "post" && &r.selection == selection && r.units == [unit])
            .unwrap()
    };
    for row in siblings {
        let d = &row.difference;
        assert_eq!(d.units, ["range=3..=3"], "only the model's cells");
        assert_eq!(d.replicas, 2, "seed 1 with seed 1, seed 2 with seed 2");
        let (three, two) = (
            group("range=3..=3", &d.selection),
            group("range=2..=2", &d.selection),
        );
        for ((e, a), b) in d.answer.iter().zip(&three.answer).zip(&two.answer) {
            assert!((e.value - (a.value - b.value)).abs() < 1e-12, "{e:?}");
            assert!(e.lo <= e.value && e.value <= e.hi, "{e:?}");
        }
    }
}

#[test]
fn models_of_two_runs_are_paired_cell_by_cell() {
    let (a, b) = fixture_in_two_runs("pairs");
    let one = load_runs(
        &[fixture()],
        &requests(&["post[range=3..=3]:post[range=2..=2]"]),
        &[],
    )
    .unwrap();
    let two = load_runs(
        &[a.clone(), b.clone()],
        &requests(&["b/post[range=3..=3]:a/post[range=2..=2]", "post:base"]),
        &[],
    )
    .unwrap();
    let across = rows(
        &two.splits[0].paired,
        "post[range=3..=3]",
        "a: post[range=2..=2]",
    );
    let within = rows(
        &one.splits[0].paired,
        "post[range=3..=3]",
        "post[range=2..=2]",
    );
    assert_eq!(across.len(), within.len());
    for (x, w) in across.iter().zip(&within) {
        assert_eq!(x.difference.units, ["b: range=3..=3"]);
        assert_eq!(x.difference.selection, w.difference.selection);
        assert_eq!(
            (&x.difference.verified, &x.difference.answer),
            (&w.difference.verified, &w.difference.answer),
            "the same records, wherever they are read from"
        );
    }
    // `post:base` in each run is its lineage row, once.
    let lineage = load_runs(&[a.clone(), b.clone()], &[], &[]).unwrap();
    assert_eq!(
        rows(&two.splits[0].paired, "post", "base").len(),
        rows(&lineage.splits[0].paired, "post", "base").len()
    );

    let error = |texts: &[&str]| {
        load_runs(&[a.clone(), b.clone()], &requests(texts), &[])
            .unwrap_err()
            .to_string()
    };
    let no_partner = error(&["b/post:a/post"]);
    assert!(
        no_partner.contains("no cell holds both"),
        "the ranges differ and the base does not name them: {no_partner}"
    );
    // The model's bindings only pick its cells: seed 1's post minus seed 1's post.
    let seed = load_runs(
        &[a.clone(), b.clone()],
        &requests(&["b/post[replica=1]:a/post[range=2..=2]"]),
        &[],
    )
    .unwrap();
    let one_seed = rows(
        &seed.splits[0].paired,
        "post[replica=1]",
        "a: post[range=2..=2]",
    );
    assert!(!one_seed.is_empty() && one_seed.iter().all(|r| r.difference.replicas == 1));
    // A base run that sweeps a variable the model's does not: which base is ambiguous.
    let c = a.parent().unwrap().join("c");
    copy_tree(&a, &c, &|_| true);
    edit_bindings(&c, &|bindings| bindings.retain(|b| b[0] != "replica"));
    let ambiguous = load_runs(
        &[c.clone(), b.clone()],
        &requests(&["c/post:b/post[range=3..=3]"]),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        ambiguous.contains("matches 2 cells")
            && ambiguous.contains("b/post[range=3..=3, replica=1]"),
        "{ambiguous}"
    );
    for (text, says) in [
        ("c/post:a/post", "no run `c`"),
        ("b/post:a/mid", "evaluates no model `mid`"),
        ("b/post[seed=1]:a/post", "`seed` is not a sweep variable"),
        (
            "b/post[range=9..=9]:a/post",
            "no cell of run `b` has [range=9..=9]",
        ),
        ("b/post:b/post", "a model minus itself"),
        ("b/post[replica=1]:b/post", "a model minus itself"),
    ] {
        let message = error(&[text]);
        assert!(
            message.contains(says) && message.contains(text),
            "{text}: {message}"
        );
    }
}

#[test]
fn a_variable_zipped_with_a_named_one_follows_it() {
    // The fixture with a second variable zipped with `range`, as `updates` with `per_step` in
    // f1-rollouts: naming the range names the steps too, so the pair needs only the range.
    let zipped = root().join(format!(
        "target/test-runs/report-zipped-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&zipped);
    copy_tree(&fixture(), &zipped, &|_| true);
    edit_bindings(&zipped, &|bindings| {
        let long = bindings.iter().any(|b| b[1] == "3..=3");
        bindings.push(serde_json::json!([
            "steps",
            if long { "200" } else { "100" }
        ]));
    });
    let pair = "post[range=3..=3]:post[range=2..=2]";
    let plain = load_runs(&[fixture()], &requests(&[pair]), &[]).unwrap();
    let expected = rows(
        &plain.splits[0].paired,
        "post[range=3..=3]",
        "post[range=2..=2]",
    );
    assert!(!expected.is_empty());
    // Either variable decides the other: naming the steps of the base picks range 2's cells.
    for (pair, base) in [
        (pair, "post[range=2..=2]"),
        ("post[range=3..=3]:post[steps=100]", "post[steps=100]"),
    ] {
        let with = load_runs(std::slice::from_ref(&zipped), &requests(&[pair]), &[])
            .unwrap_or_else(|e| panic!("{pair}: {e}"));
        let found = rows(&with.splits[0].paired, "post[range=3..=3]", base);
        assert_eq!(found.len(), expected.len(), "{pair}");
        for (x, e) in found.iter().zip(&expected) {
            assert_eq!(x.difference.replicas, 2, "{pair}: seed by seed");
            assert_eq!(
                (&x.difference.verified, &x.difference.answer),
                (&e.difference.verified, &e.difference.answer),
                "{pair}"
            );
        }
    }
    // A variable the named ones do not decide must still agree: the seed.
    let seeds = load_runs(
        std::slice::from_ref(&zipped),
        &requests(&["post[replica=1]:post[replica=2]"]),
        &[],
    )
    .unwrap();
    let across = rows(
        &seeds.splits[0].paired,
        "post[replica=1]",
        "post[replica=2]",
    );
    let units: Vec<&[String]> = across.iter().map(|r| &r.difference.units[..]).collect();
    for range in ["range=2..=2, steps=100", "range=3..=3, steps=200"] {
        assert!(
            units.contains(&&[range.to_owned()][..]),
            "{range}: {units:?}"
        );
    }
    assert!(
        across.iter().all(|r| r.difference.replicas == 1),
        "one seed minus the other"
    );
}

#[test]
fn pairs_are_asked_for_on_the_command_line() {
    let out = root().join(format!(
        "target/test-runs/report-pair-{}",
        std::process::id()
    ));
    let rlp = |pair: &str| {
        Command::new(env!("CARGO_BIN_EXE_rlp"))
            .args([
                "report", "--format", "md", "--format", "json", "--pair", pair,
            ])
            .arg("--out")
            .arg(&out)
            .arg(fixture())
            .output()
            .unwrap()
    };
    let output = rlp("base:post");
    assert!(output.status.success(), "{output:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| base - post |") && md.contains("asked for with `--pair`"));
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(json.contains("\"asked\": true"));
    for (pair, says) in [
        ("post:nope", "evaluates no model `nope`"),
        ("post", "is not MODEL:BASE"),
    ] {
        let output = rlp(pair);
        assert_eq!(output.status.code(), Some(2), "{pair}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{pair}: {output:?}"
        );
    }
}
