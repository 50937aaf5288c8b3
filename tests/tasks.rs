//! The task engine: exact op(G), self-verifying gold solutions, the reference examples, and
//! the verifier on corrupted solutions.
#![allow(clippy::float_cmp, clippy::type_complexity)] // exact scores are the point here

use proptest::prelude::*;
use rlp::plan::{Mode, Plan, TaskId};
use rlp::tasks::trace::{TraceFormat, parse};
use rlp::tasks::verify::{outcome, score, well_formed};

fn plan() -> Plan {
    crate::common::phrasings_plan()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn generated_problems_verify_against_themselves(
        task in 0usize..5, context in 0usize..3, reverse in any::<bool>(), op in 1u32..=20, seed in any::<u64>(),
    ) {
        let plan = plan();
        let task_id = TaskId(task);
        let spec = &plan.tasks[task];
        let op = op.min(spec.max_op);
        let context = spec.contexts[context % spec.contexts.len()];
        let mode = if reverse { Mode::Reverse } else { Mode::Forward };
        let Ok(problem) = rlp::tasks::generate(&plan, task_id, context, mode, op, seed) else {
            // Reverse mode needs a leaf besides the target: op 1 has none.
            prop_assert!(reverse && op == 1);
            return Ok(());
        };
        let graph = &problem.graph;
        prop_assert_eq!(graph.op(), op, "op(G) is exactly the request");
        for &n in graph.order.iter().chain(&graph.distractors) {
            prop_assert_eq!(graph.evaluate(n), graph.nodes[n].value, "values follow the rules");
            prop_assert!((1..=spec.max_value).contains(&graph.nodes[n].value), "values stay in bounds");
        }
        let asked = graph.unknown.unwrap_or(graph.target());
        prop_assert_eq!(problem.rendered.answer.clone(), graph.nodes[asked].value.to_string());
        let format = rlp::tasks::trace_format(&plan, task_id);
        let parsed = parse(&problem.rendered.solution, &format);
        prop_assert_eq!(&parsed, &problem.gold_graph(), "the gold solution parses back into the graph");
        let s = score(&parsed, &parse(&problem.rendered.body, &format));
        prop_assert!(s.process_acc == 1.0 && s.mismatches.answer, "the body alone has every step but no answer");
        let completion = format!(" {} </solution> <answer> {} </answer>", problem.rendered.body, problem.rendered.answer);
        let s = score(&parsed, &parse(&completion, &format));
        prop_assert!(s.verified_correct && s.process_acc == 1.0 && (s.r_pv - 1.0).abs() < 1e-12);
        prop_assert!(well_formed(&completion) && outcome(&completion, &problem.rendered.answer, &format.answer_marker));
        prop_assert!(problem.rendered.text().starts_with(&problem.rendered.prompt()));
        let again = rlp::tasks::generate(&plan, task_id, context, mode, op, seed).unwrap();
        prop_assert_eq!(again.rendered, problem.rendered, "same seed, same problem");
    }

    #[test]
    fn the_verifier_never_panics(text in ".{0,300}", tail in prop::collection::vec(prop::sample::select(vec![
        "Define", " as ", "V", ";", " = ", "x", "so", ".", "<answer>", "</answer>", "Answer:", "3", "+", "(", ")", "-", "*", "/", "A", "B", " a ", "é", "\n",
    ]), 0..60)) {
        let garbage = text + &tail.concat();
        for format in [TraceFormat::reference(), TraceFormat { keyword: None, connector: "as".into(), answer_marker: "ANS".into() }] {
            let parsed = parse(&garbage, &format);
            let _ = score(&parsed, &parse(&garbage, &format));
        }
    }
}

const EX1: &str = "Define adult blue jay in Oakridge Riverside as n; so n = 1. Define adult crow in Oakridge Riverside as X; H = n = 1; so X = 1 + H = 1 + 1 = 2. Define total number of adult animals in Oakridge Riverside as I; so I = X + n = 2 + 1 = 3. Answer: 3.";
const EX2: &str = "Define private middle school in Clearwater Bay as L; so L = 3. Define public highschool in Shoreline City as u; w = L = 3; so u = 2 * w = 2 * 3 = 6. Define public highschool in Clearwater Bay as f; n = u - L = 6 - 3 = 3; so f = 1 + n = 1 + 3 = 4. Answer: 4.";
const EX3: &str = "The question is difficult, so we use equations to solve it. Define adult eagle in South Zoo as x; we don't know its value yet but will find it out later. Define adult owl in Jefferson Circus as S; n = x = x; so S = 3 + n = 3 + x = x + 3. Define total number of adult animals in Jefferson Circus as d; so d = S = x + 3. We know d = 6, so we have x + 3 = 6 and we solve it through the following steps: Simplifying the equation: x + 3 = 6. Move all terms to one side: x - 3 = 0. Isolate the term with x: 1*x = 3. Divide both sides by 1: x = 3 / 1. Solution: x = 3. Answer: 3.";

/// `(name, value, parents)` of every parsed node, sorted by name.
fn graph(text: &str) -> (Vec<(String, Option<f64>, Vec<String>)>, Option<f64>) {
    let parsed = parse(text, &TraceFormat::reference());
    let nodes = parsed
        .nodes
        .into_iter()
        .map(|(name, n)| (name, n.value, n.deps.into_iter().collect()))
        .collect();
    (nodes, parsed.answer)
}

fn node(name: &str, value: f64, deps: &[&str]) -> (String, Option<f64>, Vec<String>) {
    (
        name.to_owned(),
        Some(value),
        deps.iter().map(|d| (*d).to_owned()).collect(),
    )
}

#[test]
fn reference_examples_parse_into_their_graphs() {
    assert_eq!(
        graph(EX1),
        (
            vec![
                node("adult blue jay in Oakridge Riverside", 1.0, &[]),
                node(
                    "adult crow in Oakridge Riverside",
                    2.0,
                    &["adult blue jay in Oakridge Riverside"]
                ),
                node(
                    "total number of adult animals in Oakridge Riverside",
                    3.0,
                    &[
                        "adult blue jay in Oakridge Riverside",
                        "adult crow in Oakridge Riverside"
                    ]
                ),
            ],
            Some(3.0)
        )
    );
    assert_eq!(
        graph(EX2),
        (
            vec![
                node("private middle school in Clearwater Bay", 3.0, &[]),
                node(
                    "public highschool in Clearwater Bay",
                    4.0,
                    &[
                        "private middle school in Clearwater Bay",
                        "public highschool in Shoreline City"
                    ]
                ),
                node(
                    "public highschool in Shoreline City",
                    6.0,
                    &["private middle school in Clearwater Bay"]
                ),
            ],
            Some(4.0)
        )
    );
    assert_eq!(
        graph(EX3),
        (
            vec![
                node("adult eagle in South Zoo", 3.0, &[]),
                node(
                    "adult owl in Jefferson Circus",
                    6.0,
                    &["adult eagle in South Zoo"]
                ),
                node(
                    "total number of adult animals in Jefferson Circus",
                    6.0,
                    &["adult owl in Jefferson Circus"]
                ),
            ],
            Some(3.0)
        )
    );
}

/// The score of `gold` with `from` replaced by `to`, against `gold`, in `format`.
fn score_corrupted(
    format: &TraceFormat,
    gold: &str,
    from: &str,
    to: &str,
) -> rlp::tasks::verify::Score {
    assert!(gold.contains(from), "{from}");
    score(
        &parse(gold, format),
        &parse(&gold.replace(from, to), format),
    )
}

/// Scores a corrupted version of `gold`: (missing, extra, value, dependency, answer, `ProcessAcc`, `VerifiedCorrect`, `R_pv`).
fn corrupted(
    gold: &str,
    from: &str,
    to: &str,
) -> (usize, usize, usize, usize, bool, f64, bool, f64) {
    let s = score_corrupted(&TraceFormat::reference(), gold, from, to);
    let m = s.mismatches;
    (
        m.missing,
        m.extra,
        m.value,
        m.dependency,
        m.answer,
        s.process_acc,
        s.verified_correct,
        s.r_pv,
    )
}

#[test]
fn corrupted_solutions_get_the_expected_counts() {
    let third = 1.0 / 3.0;
    // Wrong value: I computed as 4. One value mismatch of three nodes; R_pv = 1 - 1/3.
    assert_eq!(
        corrupted(EX1, "2 + 1 = 3.", "2 + 1 = 4."),
        (0, 0, 1, 0, false, 2.0 * third, false, 1.0 - third)
    );
    // Wrong parent: H copies I's... an unknown letter instead of n, so X loses its parent.
    assert_eq!(
        corrupted(EX1, "H = n = 1", "H = q = 1"),
        (0, 0, 0, 1, false, 2.0 * third, false, 1.0 - third)
    );
    // Missing step: u's step removed; f then depends on L only through n.
    let (missing, extra, value, dependency, answer, acc, verified, r_pv) = corrupted(
        EX2,
        "Define public highschool in Shoreline City as u; w = L = 3; so u = 2 * w = 2 * 3 = 6. ",
        "",
    );
    assert_eq!(
        (missing, extra, value, dependency, answer, verified),
        (1, 0, 0, 1, false, false)
    );
    assert!((acc - third).abs() < 1e-12 && (r_pv - third).abs() < 1e-12);
    // Extra step: allowed by VerifiedCorrect, penalised by R_pv.
    assert_eq!(
        corrupted(
            EX1,
            "Answer: 3.",
            "Define adult owl in Pine Ridge as Q; so Q = 4. Answer: 3."
        ),
        (0, 1, 0, 0, false, 1.0, true, 1.0 - third)
    );
    // Wrong answer.
    assert_eq!(
        corrupted(EX3, "Answer: 3.", "Answer: 4."),
        (0, 0, 0, 0, true, 1.0, false, 1.0 - third)
    );
}

/// Scores a corrupted compact solution against its gold: (value mismatches, `VerifiedCorrect`,
/// `ProcessAcc`).
fn corrupted_compact(gold: &str, from: &str, to: &str) -> (usize, bool, f64) {
    let format = TraceFormat {
        keyword: None,
        connector: "as".into(),
        answer_marker: "ANS".into(),
    };
    let s = score_corrupted(&format, gold, from, to);
    (s.mismatches.value, s.verified_correct, s.process_acc)
}

#[test]
fn every_equation_of_a_step_must_hold() {
    let third = 1.0 / 3.0;
    // Forward: the chain's links disagree (1 + H is 2, then 4 is written), although the last
    // number is right.
    assert_eq!(
        corrupted(EX1, "so X = 1 + H = 1 + 1 = 2", "so X = 1 + H = 4 = 2"),
        (0, 0, 1, 0, false, 2.0 * third, false, 1.0 - third)
    );
    // A wrong value propagates: X written as 3, then I's chain substitutes 2 for X, so I's
    // `X + n = 2 + 1` no longer holds either.
    assert_eq!(
        corrupted(EX1, "1 + 1 = 2.", "1 + 1 = 3."),
        (0, 0, 2, 0, false, third, false, 1.0 - 2.0 * third)
    );
    // Reverse: an inconsistent chain whose last expression still evaluates right.
    assert_eq!(
        corrupted(
            EX3,
            "so S = 3 + n = 3 + x = x + 3",
            "so S = 1 + n = 1 + x = x + 3"
        ),
        (0, 0, 1, 0, false, 2.0 * third, false, 1.0 - third)
    );
    // Reverse: a wrong equation-solving step, with the right solution at the end; the step
    // that states the equation answers for it.
    assert_eq!(
        corrupted(
            EX3,
            "Simplifying the equation: x + 3 = 6",
            "Simplifying the equation: x = 8"
        ),
        (0, 0, 1, 0, false, 2.0 * third, false, 1.0 - third)
    );
    assert_eq!(
        corrupted(
            EX3,
            "Divide both sides by 1: x = 3 / 1",
            "Divide both sides by 1: x = 4 / 1"
        ),
        (0, 0, 1, 0, false, 2.0 * third, false, 1.0 - third)
    );
    // An unknown letter in a chain is a wrong parent, not a wrong value (as before).
    assert_eq!(
        corrupted(EX1, "H = n = 1", "H = q = 1"),
        (0, 0, 0, 1, false, 2.0 * third, false, 1.0 - third)
    );
    // Compact letter steps: the same checks, the solving pieces charged to the step before.
    let gold = "SOLVE . t = x . l = t = x ; y = 4 * l = 4 * x = 4*x . W = y = 4*x . 4*x = 12 . 4*x - 12 = 0 . 4 * x = 12 . x = 3 . ANS 3";
    assert_eq!(corrupted_compact(gold, "ANS 3", "ANS 3"), (0, true, 1.0));
    assert_eq!(
        corrupted_compact(gold, "4*x - 12 = 0", "4*x - 10 = 0"),
        (1, false, 2.0 * third)
    );
    assert_eq!(
        corrupted_compact(gold, "y = 4 * l = 4 * x", "y = 3 * l = 4 * x"),
        (1, false, 2.0 * third)
    );
    // Decimal points are not clause ends.
    assert_eq!(
        corrupted_compact(gold, "x = 3 .", "x = 3.0 ."),
        (0, true, 1.0)
    );
}

#[test]
fn outcome_reward_is_an_exact_string_match() {
    assert!(outcome(
        " ... </solution> <answer> 3 </answer>",
        "3",
        "Answer:"
    ));
    assert!(outcome("... Answer: 3.", "3", "Answer:"));
    assert!(
        !outcome(" <answer> 3.0 </answer>", "3", "Answer:"),
        "the reference compares strings"
    );
    assert!(!outcome("no answer at all", "3", "Answer:"));
    assert!(well_formed(
        " Define a as V; so V = 1. </solution> <answer> 1 </answer>"
    ));
    assert!(!well_formed(
        " Define a as V; so V = 1. </solution> <answer> one </answer>"
    ));
    assert!(!well_formed(
        " </solution> <answer> 1 </answer> </solution>"
    ));
}

#[test]
fn mixture_weights_are_honoured_and_streams_are_reproducible() {
    let src = "seed 9\nuse prelude\ntask arith {\n    contexts zoo\n    phrasing compact\n}\n\
               mixture m {\n    0.2 arith[op 2]\n    0.8 arith[op 7]\n}\n\
               pretrain p {\n    model tiny\n    data m\n    tokens 1M\n}\neval {\n    models p\n    split s arith[op 2]\n}\n";
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("m.rlp", src))
        .plan
        .unwrap();
    let stage = &plan.stages[0];
    let generator = rlp::tasks::Generator::new(&plan);
    let n = 4000;
    let ops: Vec<u32> = (0..n)
        .map(|i| {
            rlp::tasks::stream::example(&generator, stage.spec.data(), stage.seed, i)
                .unwrap()
                .op
        })
        .collect();
    let share = ops.iter().filter(|&&op| op == 2).count() as f64 / n as f64;
    // Binomial standard deviation at n = 4000 is 0.0063: five of them either way.
    assert!(
        (share - 0.2).abs() < 0.032,
        "share of the 0.2 component: {share}"
    );
    let again =
        rlp::tasks::stream::example(&generator, stage.spec.data(), stage.seed, 1234).unwrap();
    assert_eq!(again.op, ops[1234]);
    let other_seed =
        rlp::tasks::stream::example(&generator, stage.spec.data(), stage.seed + 1, 1234).unwrap();
    assert_ne!(other_seed.rendered, again.rendered);
}

/// Where each variable's sentence stands in a compact problem (`B = 3 . D = B + 2 . ...`).
fn sentence_positions(problem: &str) -> std::collections::HashMap<char, usize> {
    problem
        .split(" . ")
        .enumerate()
        .filter_map(|(i, sentence)| Some((sentence.trim().chars().next()?, i)))
        .collect()
}

#[test]
fn ordered_sentences_follow_the_solution_and_shuffled_ones_do_not() {
    let plan = plan();
    let task = |name: &str| TaskId(plan.tasks.iter().position(|t| t.name == name).unwrap());
    let in_solution_order = |task: TaskId, mode: Mode, op: u32, seed: u64| {
        let context = plan.tasks[task.0].contexts[0];
        let problem = rlp::tasks::generate(&plan, task, context, mode, op, seed).unwrap();
        let positions = sentence_positions(&problem.rendered.problem);
        let stated: Vec<usize> = problem
            .graph
            .order
            .iter()
            .filter_map(|&n| positions.get(&problem.rendered.vars[n]).copied())
            .collect();
        assert!(stated.len() >= 2, "{}", problem.rendered.problem);
        stated.windows(2).all(|w| w[0] < w[1])
    };
    let (ordered, shuffled) = (task("ordered"), task("symbols"));
    let mut shuffled_in_order = 0;
    for seed in 0..100 {
        for (op, mode) in [(3, Mode::Forward), (6, Mode::Forward), (9, Mode::Reverse)] {
            assert!(
                in_solution_order(ordered, mode, op, seed),
                "seed {seed} op {op}"
            );
            shuffled_in_order += usize::from(in_solution_order(shuffled, mode, op, seed));
        }
    }
    assert!(
        shuffled_in_order < 100,
        "{shuffled_in_order} of 300 shuffled problems were in order"
    );
}
