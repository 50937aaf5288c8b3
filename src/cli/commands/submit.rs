//! `rlp submit FILE --slurm [--out runs] [--dry-run] [-- SBATCH_OPTIONS...]`

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::super::{Status, compile_file, eprint_line, print_raw};
use crate::run::submit::{Job, Work};
use crate::run::write_atomically;

/// A path as the job scripts name it: absolute, so a job runs from any directory.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// Single-quoted for the shell.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Each word quoted, each after a space.
fn words(list: &[String]) -> String {
    list.iter().fold(String::new(), |mut out, word| {
        out.push(' ');
        out.push_str(&quoted(word));
        out
    })
}

/// The job kinds `--kind` may name.
const KINDS: [&str; 4] = ["pretrain", "midtrain", "rl", "eval"];

/// `KIND=OPTIONS` pairs as (kind, options split at whitespace).
fn kind_options(kinds: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    kinds
        .iter()
        .map(|pair| {
            let (kind, options) = pair
                .split_once('=')
                .ok_or_else(|| format!("`--kind {pair}`: write KIND=OPTIONS"))?;
            if !KINDS.contains(&kind) {
                return Err(format!(
                    "`--kind {pair}`: the kinds are {}",
                    KINDS.join(", ")
                ));
            }
            Ok((
                kind.to_owned(),
                options.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect()
}

pub(crate) fn run(
    file: &Path,
    out: &Path,
    dry_run: bool,
    kinds: &[String],
    sbatch: &[String],
    color: bool,
) -> Status {
    let per_kind = match kind_options(kinds) {
        Ok(pairs) => pairs,
        Err(message) => {
            eprint_line(&format!("error: {message}"));
            return Status::Error;
        }
    };
    let plan = match compile_file(file, color) {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let (root, jobs) = match crate::run::submission(&plan, out) {
        Ok(found) => found,
        Err(error) => {
            eprint_line(&format!("error: {error}"));
            return Status::Error;
        }
    };
    let slurm = root.join("slurm");
    let rlp = std::env::current_exe().map_or_else(|_| "rlp".to_owned(), |p| absolute(&p));
    let mut script = String::from(
        "#!/usr/bin/env bash\n# Written by `rlp submit --slurm`: one job per unfinished stage instance and one per\n# cell's evals, each after the jobs it needs. Run it again after `rlp submit` to re-submit.\nset -euo pipefail\n",
    );
    let extra = words(sbatch);
    for (index, job) in jobs.iter().enumerate() {
        let path = slurm.join(format!("{}.sh", job.name));
        let body = job_script(job, &plan, &rlp, file, out, &slurm);
        if let Err(error) =
            std::fs::create_dir_all(&slurm).and_then(|()| write_atomically(&path, body.as_bytes()))
        {
            eprint_line(&format!("error: cannot write {}: {error}", path.display()));
            return Status::Error;
        }
        let dependency = if job.after.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = job.after.iter().map(|a| format!("${{job_{a}}}")).collect();
            format!(
                " --dependency=afterok:{} --kill-on-invalid-dep=yes",
                ids.join(":")
            )
        };
        let kind = match &job.work {
            Work::Stage { id, .. } => plan.stages[id.0].spec.keyword(),
            Work::Eval { .. } => "eval",
        };
        let own: Vec<String> = per_kind
            .iter()
            .filter(|(k, _)| k == kind)
            .flat_map(|(_, options)| options.iter().cloned())
            .collect();
        let own = words(&own);
        let _ = writeln!(
            script,
            "job_{index}=$(sbatch --parsable{dependency}{extra}{own} {})\necho \"{} $job_{index}\"",
            quoted(&absolute(&path)),
            job.name
        );
    }
    let submit = slurm.join("submit.sh");
    if let Err(error) =
        std::fs::create_dir_all(&slurm).and_then(|()| write_atomically(&submit, script.as_bytes()))
    {
        eprint_line(&format!(
            "error: cannot write {}: {error}",
            submit.display()
        ));
        return Status::Error;
    }
    if jobs.is_empty() {
        eprint_line("nothing to submit: every stage and eval has finished");
        return Status::Success;
    }
    if dry_run {
        print_raw(&script);
        eprint_line(&format!(
            "{} jobs written to {} (not submitted: --dry-run)",
            jobs.len(),
            slurm.display()
        ));
        return Status::Success;
    }
    match Command::new("bash").arg(&submit).output() {
        Ok(output) if output.status.success() => {
            let ids = String::from_utf8_lossy(&output.stdout).into_owned();
            let path = slurm.join("jobs.txt");
            // Appended: a re-submission's ids come after, and win, the earlier ones.
            let earlier = std::fs::read_to_string(&path).unwrap_or_default();
            let _ = write_atomically(&path, (earlier + &ids).as_bytes());
            print_raw(&ids);
            eprint_line(&format!(
                "{} jobs submitted; ids in {}",
                jobs.len(),
                path.display()
            ));
            Status::Success
        }
        Ok(output) => {
            eprint_line(&format!(
                "error: sbatch failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
            Status::Error
        }
        Err(error) => {
            eprint_line(&format!(
                "error: cannot run bash {}: {error}",
                submit.display()
            ));
            Status::Error
        }
    }
}

fn job_script(
    job: &Job,
    plan: &crate::plan::Plan,
    rlp: &str,
    file: &Path,
    out: &Path,
    slurm: &Path,
) -> String {
    let args = words(&job.run_args(plan));
    format!(
        "#!/usr/bin/env bash\n#SBATCH --job-name=rlp-{name}\n#SBATCH --output={log}\nset -euo pipefail\nexec {rlp} run {file} --out {out}{args}\n",
        // sbatch reads these lines itself, without a shell: no quotes.
        name = job.name,
        log = absolute(&slurm.join(format!("{}.log", job.name))),
        rlp = quoted(rlp),
        file = quoted(&absolute(file)),
        out = quoted(&absolute(out)),
    )
}
