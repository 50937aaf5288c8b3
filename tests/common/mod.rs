//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use rlp::plan::Plan;
use serde_json::Value;

/// The repository root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `f` with insta writing snapshots to the top-level `snapshots/` folder, one readable
/// file per fixture.
pub(crate) fn with_snapshot_settings(input: &Path, f: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(input);
    settings.bind(f);
}

/// The plan as JSON for snapshots: contexts and phrasings (the long, shared vocabulary of the
/// prelude, tested on their own in `prelude.rs`) are shown by name and a summary.
pub(crate) fn plan_for_snapshot(plan: &Plan) -> Value {
    let mut value = serde_json::to_value(plan).expect("plans serialize");
    if let Some(contexts) = value["contexts"].as_array_mut() {
        for c in contexts {
            let pools = |key: &str| {
                c[key].as_array().map(|ps| {
                    ps.iter()
                        .map(|p| p["names"].as_array().map_or(0, Vec::len))
                        .collect::<Vec<_>>()
                })
            };
            *c = serde_json::json!({
                "name": c["name"],
                "entity_pool_sizes": pools("entities"),
                "item_pool_sizes": pools("items"),
                "capacity": c["capacity"],
            });
        }
    }
    if let Some(phrasings) = value["phrasings"].as_array_mut() {
        for p in phrasings {
            *p = serde_json::json!({ "name": p["name"], "shows_context": p["shows_context"] });
        }
    }
    value
}

/// Tasks over every kind of phrasing: the user-defined `terse` of a fixture (with its own
/// context), the reference's `english` and `compact`, an english task without distractors, and a
/// compact one whose sentences come in solution order.
pub(crate) fn phrasings_plan() -> Plan {
    let custom = std::fs::read_to_string(
        root().join("tests/fixtures/analysis/ok/custom-context-phrasing.rlp"),
    )
    .unwrap();
    let src = custom
        + "use prelude\n\
           task words {\n    contexts zoo, teacher, movie\n    phrasing english\n}\n\
           task symbols {\n    contexts zoo, teacher, movie\n    phrasing compact\n}\n\
           task plain {\n    contexts zoo, teacher\n    phrasing english\n    distractors off\n    max_value 100\n}\n\
           task ordered {\n    contexts zoo, movie\n    phrasing compact\n    sentences ordered\n}\n";
    let compilation = rlp::compile(&rlp::syntax::SourceFile::new("phrasings.rlp", src));
    compilation
        .plan
        .unwrap_or_else(|| panic!("{}", compilation.diagnostics.render_plain(80)))
}

/// The largest absolute difference between two tensors of the same shape.
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
