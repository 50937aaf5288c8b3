use rlp::plan::{Mode, TaskId};
use rlp::tasks::trace::parse;
fn main() {
    let src = "seed 1\nuse prelude\ntask words {\n    contexts zoo\n    phrasing english\n}\n";
    let plan = rlp::compile(&rlp::syntax::SourceFile::new("b.rlp", src))
        .plan
        .unwrap();
    let format = rlp::tasks::trace_format(&plan, TaskId(0));
    let what = std::env::args().nth(1).unwrap_or_default();
    let mut total = 0usize;
    for seed in 0..2000u64 {
        let p = rlp::tasks::generate(
            &plan,
            TaskId(0),
            plan.tasks[0].contexts[0],
            Mode::Forward,
            10,
            seed,
        )
        .unwrap();
        if what == "verify" {
            for _ in 0..5 {
                total += parse(&p.rendered.solution, &format).nodes.len();
            }
        }
        total += p.rendered.problem.len();
    }
    println!("{total}");
}
