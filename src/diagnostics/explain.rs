//! Long explanations of every diagnostic code, for `rlp explain CODE`. Each example is the
//! fixture that the test suite checks fires the code, so the examples cannot go stale.

use std::fmt::Write as _;

/// One code's explanation.
#[derive(Debug, Clone, Copy)]
pub struct Explanation {
    /// The code without the `rlp::` prefix, e.g. `E0405`.
    pub code: &'static str,
    /// A few words.
    pub title: &'static str,
    /// What the check is and why it exists.
    pub text: &'static str,
    /// An example file that triggers it, and its path under `tests/fixtures`.
    pub example: Option<(&'static str, &'static str)>,
}

impl Explanation {
    /// The explanation as printed by `rlp explain`.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!(
            "rlp::{}: {}\n\n{}\n",
            self.code,
            self.title,
            wrap(self.text, 80)
        );
        if let Some((path, source)) = self.example {
            let _ = write!(out, "\nExample ({path}):\n\n");
            for line in source.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        out
    }
}

/// Finds a code, written `E0405`, `e0405` or `rlp::E0405`.
#[must_use]
pub fn find(code: &str) -> Option<&'static Explanation> {
    let code = code.trim().trim_start_matches("rlp::").to_ascii_uppercase();
    EXPLANATIONS.iter().find(|e| e.code == code)
}

fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

macro_rules! example {
    ($path:literal) => {
        Some(($path, include_str!(concat!("../../tests/fixtures/", $path))))
    };
}

/// Every code, in order.
pub const EXPLANATIONS: &[Explanation] = &[
    Explanation {
        code: "E0101",
        title: "syntax error",
        text: "The text does not follow the grammar of .rlp files at the marked place. The message says what the grammar allows there (a `{`, a value, an item keyword ...) and what it found instead. Items start on their own line; a block's `{` goes on the same line as its name; lines inside a block are separated by newlines or `;`, and a line may continue after a comma.",
        example: example!("syntax/err/E0101-expected-brace.rlp"),
    },
    Explanation {
        code: "E0102",
        title: "brackets nested too deeply",
        text: "rlp refuses input whose brackets nest more than 64 levels deep, so that no file can exhaust the parser's stack. Real experiments never come close: split a deep reward expression into simpler parts.",
        example: example!("syntax/err/E0102-nesting-too-deep.rlp"),
    },
    Explanation {
        code: "E0103",
        title: "file is not UTF-8",
        text: "An .rlp file must be UTF-8 text. The label points at the first byte that is not valid UTF-8, often a file saved in Latin-1 or a binary file passed by mistake. Example: a file whose second line is the single byte 0xFF.",
        example: None,
    },
    Explanation {
        code: "E0104",
        title: "number too large",
        text: "A number literal overflows to infinity (for example `1e999`). Every quantity in rlp is finite; write the number you mean.",
        example: example!("syntax/err/E0104-number-too-large.rlp"),
    },
    Explanation {
        code: "E0201",
        title: "unknown name",
        text: "A name refers to no definition. rlp suggests the closest defined name of the expected kind. Names of the standard prelude (`zoo`, `teacher`, `movie`, `english`, `compact`, `tiny`, `small`, `paper-100m`) are only visible after `use prelude`.",
        example: example!("analysis/err/E0201-unknown-name.rlp"),
    },
    Explanation {
        code: "E0202",
        title: "duplicate name",
        text: "Two definitions share a name. Contexts, phrasings, tasks, models, mixtures, stages, rewards and budgets live in one namespace, so a stage and a mixture cannot share a name either. Sweep variables, eval blocks and eval splits must also be unique.",
        example: example!("analysis/err/E0202-duplicate-name.rlp"),
    },
    Explanation {
        code: "E0203",
        title: "unknown block kind",
        text: "A block starts with a word that is not a block kind. The kinds are `context`, `phrasing`, `task`, `model`, `mixture`, `pretrain`, `midtrain`, `rl` and `eval`.",
        example: example!("analysis/err/E0203-unknown-block-kind.rlp"),
    },
    Explanation {
        code: "E0204",
        title: "unknown field",
        text: "A line in a block starts with a field that kind of block does not have (or a source argument other than `op`, `context` and `mode`). rlp suggests the closest field, or lists the block's fields. The README's language tour lists every field with its default.",
        example: example!("analysis/err/E0204-unknown-field.rlp"),
    },
    Explanation {
        code: "E0205",
        title: "duplicate field",
        text: "A field that takes one value is given on two lines, so it is unclear which one counts. Only `entities`, `items` (contexts) and `split` (evals) may repeat.",
        example: example!("analysis/err/E0205-duplicate-field.rlp"),
    },
    Explanation {
        code: "E0206",
        title: "missing field",
        text: "A required field is missing. Required are: `model`, `data` and `tokens` for pretrain; `data` and `tokens` for midtrain; `prompts`, `steps` and `reward` for rl; `models` and at least one `split` for eval; `contexts` and `phrasing` for a task; `op` in a source; every slot of a phrasing; and the names and templates of a context. Everything else has a default, shown by `rlp plan`.",
        example: example!("analysis/err/E0206-missing-field.rlp"),
    },
    Explanation {
        code: "E0207",
        title: "block without a name",
        text: "Every block except `eval` needs a name, because other blocks refer to it (`data base_mix`, `rl post from base`).",
        example: example!("analysis/err/E0207-missing-name.rlp"),
    },
    Explanation {
        code: "E0208",
        title: "unknown sweep variable",
        text: "`$name` is used but no `sweep name = [...]` defines it. rlp suggests the closest sweep variable.",
        example: example!("analysis/err/E0208-unknown-sweep-variable.rlp"),
    },
    Explanation {
        code: "E0209",
        title: "unknown reward primitive",
        text: "Reward expressions are built from the primitives `answer` (1 if the final answer is right), `process` (the process-verified score R_pv in [0, 1]), `format` (1 if the completion is well-formed) and `length` (completion length as a share of `max_new_tokens`), with numbers, `+ - * /`, comparisons, `min`, `max` and `if ... { } else { }`.",
        example: example!("analysis/err/E0209-unknown-primitive.rlp"),
    },
    Explanation {
        code: "E0210",
        title: "unknown function",
        text: "Reward expressions can call `min(a, b, ...)` and `max(a, b, ...)`, each with at least two arguments. Clamp with `min(1, max(0, x))`.",
        example: example!("analysis/err/E0210-unknown-function.rlp"),
    },
    Explanation {
        code: "E0211",
        title: "unknown template placeholder",
        text: "A template uses a `{placeholder}` its slot does not provide. Each phrasing slot and context question has a fixed set of placeholders (for example `ask_item` has `{item}` and `{entity}`); the help lists them. Write `{{` and `}}` for literal braces.",
        example: example!("analysis/err/E0211-unknown-placeholder.rlp"),
    },
    Explanation {
        code: "E0212",
        title: "unknown import",
        text: "The only import is `use prelude`, which brings in the standard contexts, phrasings and models.",
        example: example!("analysis/err/E0212-unknown-import.rlp"),
    },
    Explanation {
        code: "E0213",
        title: "`from` not allowed",
        text: "Only `midtrain` and `rl` stages start from another stage's weights. A `pretrain` stage trains from random initialisation; contexts, tasks, models and mixtures have no parent.",
        example: example!("analysis/err/E0213-from-not-allowed.rlp"),
    },
    Explanation {
        code: "E0214",
        title: "missing `from`",
        text: "A `midtrain` or `rl` stage continues training another stage's model, so it must name that stage: `rl post from base { ... }`.",
        example: example!("analysis/err/E0214-missing-from.rlp"),
    },
    Explanation {
        code: "E0215",
        title: "name of the wrong kind",
        text: "A name refers to a definition of a different kind than the place expects: a model where a mixture belongs, a task where a stage belongs, and so on.",
        example: example!("analysis/err/E0215-wrong-kind.rlp"),
    },
    Explanation {
        code: "E0301",
        title: "stage starts from itself",
        text: "A stage names itself after `from`. Every chain of `from` must end at a `pretrain` stage.",
        example: example!("analysis/err/E0301-from-itself.rlp"),
    },
    Explanation {
        code: "E0302",
        title: "cycle of stages",
        text: "Stages start from each other in a cycle, so none of them can run first. Every chain of `from` must end at a `pretrain` stage.",
        example: example!("analysis/err/E0302-stage-cycle.rlp"),
    },
    Explanation {
        code: "E0401",
        title: "value of the wrong type",
        text: "A field got a value of the wrong kind: a name where a number belongs, a range where one value belongs, a sweep variable outside stages, mixtures and evals. The help shows the field's syntax.",
        example: example!("analysis/err/E0401-wrong-value.rlp"),
    },
    Explanation {
        code: "E0402",
        title: "value out of range",
        text: "A value has the right type but lies outside what it may be: a negative temperature, a top_p above 1, a share above 100%, a batch of zero, and so on. The message states the allowed range.",
        example: example!("analysis/err/E0402-value-out-of-range.rlp"),
    },
    Explanation {
        code: "E0403",
        title: "exclusive range",
        text: "rlp writes every range with `..=`, and both ends are included: `op 2..=5` means ops 2, 3, 4 and 5. `2..5` is rejected rather than guessed at.",
        example: example!("analysis/err/E0403-exclusive-range.rlp"),
    },
    Explanation {
        code: "E0404",
        title: "empty range",
        text: "A range's start is after its end, so it contains nothing. Write the smaller number first.",
        example: example!("analysis/err/E0404-empty-range.rlp"),
    },
    Explanation {
        code: "E0405",
        title: "mixture weights do not sum to 1",
        text: "The weights of a mixture are the shares of its sources and must sum to 1 (100%). If you mean relative weights, add a line `normalized` to the mixture and rlp rescales them.",
        example: example!("analysis/err/E0405-mixture-weights.rlp"),
    },
    Explanation {
        code: "E0406",
        title: "op range the task cannot produce",
        text: "A source asks for op(G) values outside what its task generates: op counts the edges of the solution's dependency graph, so it is at least 1, and a task generates up to its `max_op` (default 20, the reference's range).",
        example: example!("analysis/err/E0406-op-not-producible.rlp"),
    },
    Explanation {
        code: "E0407",
        title: "pass@k above the number of samples",
        text: "pass@k estimates the chance that at least one of k samples is correct, so it needs at least k samples per problem. Raise `samples` or drop the larger k.",
        example: example!("analysis/err/E0407-pass-at-exceeds-samples.rlp"),
    },
    Explanation {
        code: "E0408",
        title: "extrapolative split overlaps training",
        text: "A split marked `extrapolative` claims to test ops beyond everything the evaluated models trained on, but a stage in a model's lineage (the stage and every stage it starts from) trains on some of its ops. Move the split above the training range, or drop the flag.",
        example: example!("analysis/err/E0408-extrapolative-overlap.rlp"),
    },
    Explanation {
        code: "E0409",
        title: "held-out context leaks into training",
        text: "A split marked `held_out` claims its contexts were never seen in training, but a stage in an evaluated model's lineage trains on one of them. Restrict that stage's data with `context ...`.",
        example: example!("analysis/err/E0409-held-out-leak.rlp"),
    },
    Explanation {
        code: "E0410",
        title: "reward can leave [0, 1]",
        text: "rlp computes, by interval arithmetic over the primitives' ranges, every value a reward can take; rewards must stay within [0, 1] so that rewards are comparable and GRPO's normalisation behaves. Weight terms so that they add up to at most 1, gate with `answer * (...)`, or clamp with `min(1, max(0, ...))`. A divisor that can be 0 makes a reward unbounded.",
        example: example!("analysis/err/E0410-reward-out-of-range.rlp"),
    },
    Explanation {
        code: "E0411",
        title: "budget overspent",
        text: "Stages take shares of a declared budget (`tokens 50% of compute`, `steps 50% of compute`); within each sweep cell, the shares of one budget must add up to at most 100%.",
        example: example!("analysis/err/E0411-budget-overspent.rlp"),
    },
    Explanation {
        code: "E0412",
        title: "hidden size not divisible by heads",
        text: "Attention splits the hidden size evenly over the heads (head dimension = hidden / heads), so `hidden` must be a multiple of `heads`.",
        example: example!("analysis/err/E0412-hidden-not-divisible.rlp"),
    },
    Explanation {
        code: "E0413",
        title: "heads not divisible by kv_heads",
        text: "Grouped-query attention shares each key/value head among heads / kv_heads query heads, so `heads` must be a multiple of `kv_heads`.",
        example: example!("analysis/err/E0413-kv-heads-not-divisible.rlp"),
    },
    Explanation {
        code: "E0414",
        title: "model context too short",
        text: "rlp estimates, from the task's contexts and phrasing, the most tokens one example can take at the highest op a stage trains or evaluates on (every sentence as long as the longest names make it, as many distractors as the structure holds). A model whose `context` is shorter could never see whole problems. Raise the context, lower the ops, turn distractors off, or use the `compact` phrasing.",
        example: example!("analysis/err/E0414-context-too-short.rlp"),
    },
    Explanation {
        code: "E0415",
        title: "unused sweep variable",
        text: "A sweep multiplies the number of cells by its number of values; if no stage, mixture or eval uses `$name`, every extra cell repeats the same work.",
        example: example!("analysis/err/E0415-unused-sweep-variable.rlp"),
    },
    Explanation {
        code: "E0416",
        title: "budget in units a stage cannot use",
        text: "A stage takes a share of a budget whose unit it cannot convert to its own: training stages count tokens, RL stages count steps. Declare the exchange rate on the budget: `budget compute = 100 rl_steps where rl_step = 200k tokens` (the reference's ratio is one RL step to about 20.3M mid-training tokens; flops convert to tokens at 6 x parameters).",
        example: example!("analysis/err/E0416-budget-unit-mismatch.rlp"),
    },
    Explanation {
        code: "E0417",
        title: "context not used by the task",
        text: "A source restricts its task to a context the task does not draw from. Add the context to the task's `contexts` line, or pick one of the task's contexts.",
        example: example!("analysis/err/E0417-context-not-in-task.rlp"),
    },
    Explanation {
        code: "E0418",
        title: "empty list",
        text: "A list that needs entries has none: a mixture without sources, a name pool without names.",
        example: example!("analysis/err/E0418-empty-list.rlp"),
    },
    Explanation {
        code: "E0419",
        title: "malformed template",
        text: "A template has a `{` without its `}` or a stray `}`. Placeholders are written `{name}`; literal braces are written `{{` and `}}`.",
        example: example!("analysis/err/E0419-malformed-template.rlp"),
    },
    Explanation {
        code: "E0420",
        title: "mode weights do not sum to 1",
        text: "A task's `modes` line gives the shares of forward and reverse (solve-for-x) problems; they must sum to 1. `modes forward` alone means forward only.",
        example: example!("analysis/err/E0420-mode-weights.rlp"),
    },
    Explanation {
        code: "E0421",
        title: "empty sweep",
        text: "A sweep with no values would expand the file into no cells at all.",
        example: example!("analysis/err/E0421-empty-sweep.rlp"),
    },
    Explanation {
        code: "E0422",
        title: "extra value on a line",
        text: "A line has more values than its field takes. The help shows the field's syntax.",
        example: example!("analysis/err/E0422-trailing-value.rlp"),
    },
    Explanation {
        code: "E0423",
        title: "sequence longer than the model's context",
        text: "`batch N x T` packs training examples into sequences of T tokens; the model cannot attend over more than its `context`.",
        example: example!("analysis/err/E0423-sequence-too-long.rlp"),
    },
    Explanation {
        code: "E0424",
        title: "too many sweep cells",
        text: "Sweeps multiply: three sweeps of seven values make 343 cells. rlp refuses more than 256 cells in one file; split the experiment or sweep fewer values.",
        example: example!("analysis/err/E0424-too-many-cells.rlp"),
    },
    Explanation {
        code: "E0425",
        title: "context pools too small",
        text: "A problem draws its quantities from one entity pool and one item pool (at most five names each, as the reference does). Each item quantity contributes at most 4 ops and each entity total at most one per item, so the pools bound the largest op(G) a problem can have. Add names, or lower the task's `max_op`.",
        example: example!("analysis/err/E0425-context-too-small.rlp"),
    },
    Explanation {
        code: "E0426",
        title: "zipped sweeps of different lengths",
        text: "`sweep b = [...] zip a` makes b take its i-th value in the same cell as a's i-th value (for example mid-training and RL shares of one budget, `[20%, 80%]` with `[80%, 20%]`), so both need the same number of values.",
        example: example!("analysis/err/E0426-zip-length-mismatch.rlp"),
    },
    Explanation {
        code: "W0101",
        title: "no seed",
        text: "Without a `seed` item, rlp uses seed 0. Results are still deterministic, but a reader of the file cannot see the seed; write `seed 1234`.",
        example: example!("analysis/err/W0101-no-seed.rlp"),
    },
    Explanation {
        code: "W0102",
        title: "unused definition",
        text: "A context, phrasing, task, model, mixture, reward or budget that nothing refers to. Usually a leftover or a typo in the name that should use it.",
        example: example!("analysis/err/W0102-unused-definition.rlp"),
    },
    Explanation {
        code: "W0103",
        title: "identical greedy samples",
        text: "At temperature 0 decoding is greedy, so all samples of one problem are the same and pass@k equals pass@1. Sample at a temperature above 0 (the reference evaluates at 0.7) or take one sample.",
        example: example!("analysis/err/W0103-greedy-samples.rlp"),
    },
    Explanation {
        code: "W0104",
        title: "learning rate rises",
        text: "`lr A -> B` goes from the peak A (after warmup) to the floor B; a floor above the peak is almost always a swapped pair.",
        example: example!("analysis/err/W0104-lr-rises.rlp"),
    },
    Explanation {
        code: "W0105",
        title: "shadows the prelude",
        text: "A definition in the file has the name of a prelude definition and replaces it everywhere in the file. Rename it to keep both.",
        example: example!("analysis/err/W0105-shadows-prelude.rlp"),
    },
    Explanation {
        code: "W0106",
        title: "constant reward",
        text: "A reward that uses no primitive gives every rollout of a group the same reward; GRPO normalises rewards within the group, so every advantage is zero and nothing is learnt.",
        example: example!("analysis/err/W0106-constant-reward.rlp"),
    },
    Explanation {
        code: "W0107",
        title: "answer-only metric",
        text: "At laptop scale, answer-only accuracy is mostly guessing: with constants 1-4, always answering the commonest value scores 0.27 at op 2. `metric verified` (the default) checks every step of the solution. Reports print the guessing baseline next to answer-only numbers.",
        example: example!("analysis/err/W0107-answer-metric.rlp"),
    },
    Explanation {
        code: "W0108",
        title: "budget underspent",
        text: "The stages of a cell use less than all of a budget. Compute-matched comparisons usually spend the whole budget in every cell.",
        example: example!("analysis/err/W0108-budget-underspent.rlp"),
    },
    Explanation {
        code: "W0109",
        title: "held-out context not shown",
        text: "A split holds contexts out, but the task's phrasing never prints entity or item names (the `compact` phrasing names quantities by letters), so held-out and seen contexts look identical to the model.",
        example: example!("analysis/err/W0109-context-invisible.rlp"),
    },
    Explanation {
        code: "W0110",
        title: "long warmup",
        text: "More than half of the stage is spent warming the learning rate up. The reference warms up for 5% of pre-training and 15% of mid-training.",
        example: example!("analysis/err/W0110-long-warmup.rlp"),
    },
    Explanation {
        code: "W0111",
        title: "no eval",
        text: "The file trains models but has no `eval` block, so a run produces checkpoints but no scores.",
        example: example!("analysis/err/W0111-no-eval.rlp"),
    },
];
