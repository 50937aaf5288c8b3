//! `rlp report` on a fixture run directory (`tests/fixtures/report/replicas/`, written by
//! `rlp run tests/fixtures/report/replicas.rlp` with the weights left out): two RL ranges, two
//! seeds each, from one base.

use std::path::{Path, PathBuf};
use std::process::Command;

use rlp::report::{ComparisonRow, Selection, load, load_runs, render, restrict_ks};

use crate::common::{root, with_snapshot_settings};

pub(crate) fn fixture() -> std::path::PathBuf {
    root().join("tests/fixtures/report/replicas")
}

#[test]
fn replicas_are_found_and_shared_models_counted_once() {
    let report = load(&fixture()).unwrap();
    assert_eq!(report.replica_variables, ["replica"]);
    assert_eq!(report.cells.len(), 4);
    assert_eq!(
        report
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["base", "post", "post", "post", "post"],
        "one base for every cell, one post per cell"
    );
    let split = &report.splits[0];
    let all = |model: &str| {
        split
            .groups
            .iter()
            .filter(|r| r.model == model && r.selection == Selection::All)
            .collect::<Vec<_>>()
    };
    let base = all("base");
    assert_eq!(base.len(), 1, "the shared base is one row: {base:?}");
    assert_eq!(base[0].units, ["range=2..=2", "range=3..=3"]);
    assert_eq!(base[0].replicas, 1);
    let post = all("post");
    assert_eq!(post.len(), 2);
    assert!(post.iter().all(|r| r.replicas == 2 && r.problems == 6));
    for row in post {
        for e in &row.answer {
            let (lo, hi) = (e.seed_min.unwrap(), e.seed_max.unwrap());
            assert!(lo <= e.value && e.value <= hi, "{e:?}");
            assert!(e.lo <= e.value && e.value <= e.hi, "{e:?}");
        }
    }
    // Training curves: the base's loss, at most 200 points (bucket means of 391 steps), and
    // one series per post instance.
    let loss = report
        .curves
        .iter()
        .find(|c| c.stage == "base" && c.metric == "loss")
        .unwrap();
    assert_eq!(loss.series.len(), 1);
    assert!(loss.series[0].1.len() <= 200 && loss.series[0].1.len() > 100);
    let first = loss.series[0].1[0];
    let last = loss.series[0].1[loss.series[0].1.len() - 1];
    assert!(first.1 > last.1, "the loss falls: {first:?} -> {last:?}");
    let reward = report
        .curves
        .iter()
        .find(|c| c.stage == "post" && c.metric == "reward/mean")
        .unwrap();
    assert_eq!(reward.series.len(), 4);
    assert!(reward.series.iter().all(|(_, points)| points.len() == 3));
    // The per-cell table has the same base row once, and one post row per cell.
    let cells_all = split
        .cells
        .iter()
        .filter(|r| r.selection == Selection::All)
        .count();
    assert_eq!(cells_all, 1 + 4);
}

#[test]
fn paired_rows_are_each_model_minus_its_base_over_the_same_problems() {
    let report = load(&fixture()).unwrap();
    let split = &report.splits[0];
    let row_of = |model: &str, unit: &str, selection: &Selection| {
        split
            .groups
            .iter()
            .find(|r| {
                r.model == model && &r.selection == selection && r.units.iter().any(|u| u == unit)
            })
            .unwrap()
    };
    // One row per group and selection: `post - base` over the two seeds' pairs.
    assert!(!split.paired.is_empty());
    for paired in &split.paired {
        let row = &paired.difference;
        assert_eq!((row.model.as_str(), paired.base.as_str()), ("post", "base"));
        assert_eq!(
            row.units.len(),
            1,
            "each group has its own posts: {:?}",
            row.units
        );
        assert_eq!(row.replicas, 2);
        let (post, base) = (
            row_of("post", &row.units[0], &row.selection),
            row_of("base", &row.units[0], &row.selection),
        );
        assert_eq!(row.problems, post.problems);
        // Over the same problems the mean difference is the difference of the means.
        for ((d, p), b) in row.answer.iter().zip(&post.answer).zip(&base.answer) {
            assert!(
                (d.value - (p.value - b.value)).abs() < 1e-12,
                "{d:?} {p:?} {b:?}"
            );
            assert!(d.lo <= d.value && d.value <= d.hi, "{d:?}");
            let (lo, hi) = (d.seed_min.unwrap(), d.seed_max.unwrap());
            assert!(lo <= d.value && d.value <= hi, "{d:?}");
        }
    }
    let groups: Vec<&str> = split
        .paired
        .iter()
        .map(|r| &r.difference)
        .filter(|r| r.selection == Selection::All)
        .map(|r| r.units[0].as_str())
        .collect();
    assert_eq!(groups, ["range=2..=2", "range=3..=3"]);
}

#[test]
fn markdown_and_json_are_stable() {
    let report = load(&fixture()).unwrap();
    let blocks = render::document(&report).unwrap();
    with_snapshot_settings(&fixture(), || {
        insta::assert_snapshot!("markdown@report__replicas", render::markdown(&blocks));
        // The curves' points are checked in `replicas_are_found_...`; here, their shape.
        let mut json = serde_json::to_value(&report).unwrap();
        for curve in json["curves"].as_array_mut().unwrap() {
            for series in curve["series"].as_array_mut().unwrap() {
                series[1] = format!("{} points", series[1].as_array().unwrap().len()).into();
            }
        }
        // The per-op and per-context rows are in the Markdown; the JSON keeps the whole-split
        // ones, for the shape of a row.
        for split in json["splits"].as_array_mut().unwrap() {
            for table in ["cells", "groups", "paired"] {
                split[table]
                    .as_array_mut()
                    .unwrap()
                    .retain(|row| row["selection"] == "all");
            }
        }
        insta::assert_json_snapshot!("json@report__replicas", json);
    });
}

#[test]
fn the_page_is_self_contained() {
    let out = root().join(format!("target/test-runs/report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_rlp"))
        .args(["report", "--out"])
        .arg(&out)
        .arg(fixture())
        .status()
        .unwrap();
    assert!(status.success());
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("<table>"));
    assert!(!page.contains("<script"), "no script");
    // Every URL on the page is an SVG namespace, never a resource to fetch.
    for (at, _) in page.match_indices("http") {
        let around = &page[at.saturating_sub(8)..(at + 40).min(page.len())];
        assert!(around.contains("http://www.w3.org/"), "{around}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for link in md.split("](").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(out.join(target).is_file(), "{target}");
    }
    assert!(out.join("report.json").is_file());
    // A directory that is not a run: a clear error, exit 2.
    let output = Command::new(env!("CARGO_BIN_EXE_rlp"))
        .args(["report"])
        .arg(root().join("pipelines"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no cell directory"));
}

/// Copies a directory tree, leaving out the top-level entries `keep` refuses.
pub(crate) fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep(&name) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name), &|_| true);
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The fixture as two runs: `a` with the cells of range 2, `b` with those of range 3; both hold
/// every stage directory, as runs that copied the shared base do. `test` names the copy.
pub(crate) fn fixture_in_two_runs(test: &str) -> (PathBuf, PathBuf) {
    let out = root().join(format!(
        "target/test-runs/report-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let (a, b) = (out.join("a"), out.join("b"));
    for (dir, range) in [(&a, "range=2..=2"), (&b, "range=3..=3")] {
        copy_tree(&fixture(), dir, &|name| {
            !name.starts_with("range=") || name.starts_with(range)
        });
    }
    (a, b)
}

#[test]
fn several_runs_are_one_report_with_each_row_labelled_by_its_run() {
    let (a, b) = fixture_in_two_runs("two");
    let one = load(&fixture()).unwrap();
    let two = load_runs(&[a.clone(), b.clone()], &[], &[]).unwrap();
    assert_eq!(two.name, "a + b");
    assert_eq!(two.runs, ["a", "b"]);
    assert!(load_runs(&[], &[], &[]).is_err(), "nothing to report on");
    let cells: Vec<&str> = two.cells.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cells,
        [
            "a: range=2..=2,replica=1",
            "a: range=2..=2,replica=2",
            "b: range=3..=3,replica=1",
            "b: range=3..=3,replica=2"
        ]
    );
    let base: Vec<_> = two.stages.iter().filter(|s| s.name == "base").collect();
    assert_eq!(base.len(), 1, "the base both runs hold is one stage");
    assert_eq!(base[0].used_by, "a: every cell; b: every cell");
    assert_eq!(two.stages.len(), one.stages.len());
    // Each run's rows are the one-run report's, with the group labelled by its run: the
    // shared base, evaluated in both, is one row standing for a group of each.
    let run_of = |unit: &str| {
        if unit.starts_with("range=2") {
            "a"
        } else {
            "b"
        }
    };
    let relabelled = |row: &ComparisonRow| -> Vec<String> {
        row.units
            .iter()
            .map(|u| format!("{}: {u}", run_of(u)))
            .collect()
    };
    let (split_one, split_two) = (&one.splits[0], &two.splits[0]);
    assert_eq!(split_two.ks, split_one.ks);
    assert_eq!(split_two.groups.len(), split_one.groups.len());
    for row in &split_one.groups {
        let twin = split_two
            .groups
            .iter()
            .find(|r| {
                r.model == row.model && r.selection == row.selection && r.units == relabelled(row)
            })
            .unwrap_or_else(|| panic!("no row for {row:?}"));
        assert_eq!((&twin.verified, &twin.answer), (&row.verified, &row.answer));
    }
    assert_eq!(split_two.paired.len(), split_one.paired.len());
    for row in &split_one.paired {
        assert!(split_two.paired.iter().any(|r| {
            r.difference.units == relabelled(&row.difference)
                && r.difference.selection == row.difference.selection
                && r.difference.verified == row.difference.verified
        }));
    }
    let areas: Vec<(Vec<String>, f64)> = split_one
        .areas
        .iter()
        .map(|area| {
            let units = area
                .units
                .iter()
                .map(|u| format!("{}: {u}", run_of(u)))
                .collect();
            (units, area.value)
        })
        .collect();
    let areas_two: Vec<(Vec<String>, f64)> = split_two
        .areas
        .iter()
        .map(|a| (a.units.clone(), a.value))
        .collect();
    assert_eq!(areas_two, areas);
    let reward = two
        .curves
        .iter()
        .find(|c| c.stage == "post" && c.metric == "reward/mean")
        .unwrap();
    assert_eq!(reward.series.len(), 4);
    let loss = two
        .curves
        .iter()
        .find(|c| c.stage == "base" && c.metric == "loss");
    assert_eq!(
        loss.unwrap().series.len(),
        1,
        "the shared base is drawn once"
    );

    // From the command line: --out is required, a run given twice is refused, and the page
    // holds every run's cells.
    let rlp = |args: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_rlp"))
            .arg("report")
            .args(args)
            .output()
            .unwrap()
    };
    let output = rlp(&[&a, &b]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs --out"));
    let out = a.parent().unwrap().join("report");
    let output = rlp(&[&a, &a.join("."), Path::new("--out"), &out]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("given twice"));
    let output = rlp(&[
        &a,
        &b,
        Path::new("--out"),
        &out,
        Path::new("--format"),
        Path::new("md"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("# Report: a + b") && md.contains("| b: range=3..=3 | post |"));
}

#[test]
fn chosen_ks_are_the_ones_shown() {
    let full = load(&fixture()).unwrap();
    let mut report = full.clone();
    restrict_ks(&mut report, &[8, 2, 8]).unwrap();
    let (split, before) = (&report.splits[0], &full.splits[0]);
    assert_eq!(split.ks, [8, 2], "in the order asked, once each");
    let rows = |s: &rlp::report::SplitComparison| -> Vec<ComparisonRow> {
        let paired = s.paired.iter().map(|p| p.difference.clone());
        s.cells
            .iter()
            .chain(&s.groups)
            .cloned()
            .chain(paired)
            .collect()
    };
    for (row, whole) in rows(split).iter().zip(rows(before)) {
        for (kept, all) in [
            (&row.verified, &whole.verified),
            (&row.answer, &whole.answer),
        ] {
            let expected: Vec<_> = [8, 2]
                .iter()
                .map(|k| *all.iter().find(|e| e.k == *k).unwrap())
                .collect();
            assert_eq!(kept, &expected);
        }
    }
    // (The areas, under pass@8 now, are checked in `report::select`: here every verified
    // value is 0.)
    let error = restrict_ks(&mut full.clone(), &[1, 3]).unwrap_err();
    assert!(error.to_string().contains("pass@3"), "{error}");
    // From the command line: only the chosen columns.
    let out = root().join(format!("target/test-runs/report-ks-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_rlp"))
        .args(["report", "--k", "1,8", "--format", "md", "--out"])
        .arg(&out)
        .arg(fixture())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| verified pass@1 | verified pass@8 | answer pass@8 |"));
    assert!(!md.contains("pass@2"));
}

#[test]
fn pooled_ops_count_their_problems_together() {
    // The fixture with its teacher problems of op 2 relabelled op 4: a split of ops 2, 3 and 4
    // with unequal problems per op, so that `2..=3` is a proper part of it.
    let out = root().join(format!(
        "target/test-runs/report-pools-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let run = out.join("relabelled");
    copy_tree(&fixture(), &run, &|_| true);
    for entry in std::fs::read_dir(&run).unwrap() {
        let samples = entry.unwrap().path().join("eval/eval-samples.jsonl");
        if !samples.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&samples).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
                if record["op"] == 2 && record["context"] == "teacher" {
                    record["op"] = 4.into();
                }
                record.to_string()
            })
            .collect();
        std::fs::write(&samples, lines.join("\n") + "\n").unwrap();
    }
    let pool: rlp::report::OpPool = "2..=3".parse().unwrap();
    let report = load_runs(std::slice::from_ref(&run), &[], std::slice::from_ref(&pool)).unwrap();
    let split = &report.splits[0];
    let pooled = Selection::Ops(pool);
    let differences: Vec<ComparisonRow> =
        split.paired.iter().map(|p| p.difference.clone()).collect();
    let (mut checked, mut wholes, mut weighted) = (0, 0, false);
    for rows in [&split.cells, &split.groups, &differences] {
        for row in rows.iter().filter(|r| r.selection == pooled) {
            let of = |op: u32| {
                rows.iter()
                    .find(|r| {
                        r.selection == Selection::Op(op)
                            && (&r.units, &r.model) == (&row.units, &row.model)
                    })
                    .unwrap_or_else(|| panic!("no op {op} row beside {row:?}"))
            };
            let (two, three) = (of(2), of(3));
            assert_eq!(row.problems, two.problems + three.problems);
            weighted |= two.problems != three.problems;
            // Each estimate is a mean over problems: the pool's is the ops' weighted by
            // problems.
            for (i, e) in row.answer.iter().enumerate() {
                let (a, b) = (&two.answer[i], &three.answer[i]);
                let mean = (a.value * two.problems as f64 + b.value * three.problems as f64)
                    / row.problems as f64;
                assert!((e.value - mean).abs() < 1e-12, "{e:?} against {mean}");
                assert!(e.lo <= e.value && e.value <= e.hi, "{e:?}");
            }
            checked += 1;
        }
        wholes += rows
            .iter()
            .filter(|r| r.selection == Selection::All)
            .count();
        assert!(
            rows.iter().any(|r| r.selection == Selection::Op(4)),
            "op 4 has its own rows and is not pooled"
        );
    }
    assert!(
        weighted,
        "ops 2 and 3 have as many problems: the weights are not tested"
    );
    assert_eq!(
        checked, wholes,
        "a pool beside every row of the whole split"
    );
    assert!(checked >= 3, "cells, groups and pairs: {checked}");

    // A pool no split has all of: refused, with the splits' ops.
    let error = load_runs(std::slice::from_ref(&run), &[], &["3..=5".parse().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("--ops 3-5: no split has all of these ops")
            && error.contains("`eval/id` 2,3,4"),
        "{error}"
    );
    // From the command line: the pool's rows in the tables and its chart; a one-op pool exits
    // 2.
    let rlp = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rlp"))
            .arg("report")
            .args(args)
            .arg(&run)
            .arg("--out")
            .arg(out.join("report"))
            .output()
            .unwrap()
    };
    let output = rlp(&["--ops", "3,2", "--format", "md"]);
    assert!(output.status.success(), "{output:?}");
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(md.contains("| post | 2-3 |"), "{md}");
    // And the pool's pass@k against k, beside the whole split's.
    assert!(
        md.contains(
            "![eval / id, op 2-3: verified pass@k against k](plots/eval-id-op2-3-pass-at-k.svg)"
        ),
        "{md}"
    );
    assert!(
        out.join("report/plots/eval-id-op2-3-pass-at-k.svg")
            .is_file()
    );
    let output = rlp(&["--ops", "3"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is one op"));
}
