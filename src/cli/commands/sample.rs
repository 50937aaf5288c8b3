//! `rlp sample FILE --source SRC [-n N] [--seed S] [--json]`

use std::fmt::Write as _;
use std::path::Path;

use super::super::{Status, compile_file, eprint_line, eprint_raw, print_raw};
use crate::tasks::stream::{example_seed, from_source};

pub(crate) fn run(
    file: &Path,
    source: &str,
    count: u64,
    seed: Option<u64>,
    json: bool,
    color: bool,
) -> Status {
    let plan = match compile_file(file, color) {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let spec = match crate::analysis::source_in_plan(&plan, source) {
        Ok(spec) => spec,
        Err(diagnostics) => {
            eprint_raw(&diagnostics.render_human(color));
            return Status::Error;
        }
    };
    let seed = seed.unwrap_or(plan.seed);
    let generator = crate::tasks::Generator::new(&plan);
    let mut out = String::new();
    for i in 0..count {
        let mut rng =
            <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(example_seed(seed, i));
        let problem = match from_source(&generator, &spec, &mut rng) {
            Ok(problem) => problem,
            Err(error) => {
                eprint_line(&format!("error: {error}"));
                return Status::Error;
            }
        };
        let record = problem.record(&plan, i);
        if json {
            out.push_str(&serde_json::to_string(&record).unwrap_or_default());
            out.push('\n');
        } else {
            let _ = write!(
                out,
                "# problem {i}: op {}, context {}, {}\nProblem:  {}\nQuestion: {}\nSolution: {}\nAnswer:   {}\n\n",
                record.op,
                record.template,
                record.mode,
                record.problem.trim(),
                record.question,
                record.solution,
                record.answer
            );
        }
    }
    print_raw(&out);
    Status::Success
}
