//! The tokenizer: lossless on every generated text, deterministic, robust to any ids.

use proptest::prelude::*;
use rlp::plan::{Mode, Plan, TaskId};
use rlp::tokenizer::Tokenizer;

fn plan() -> Plan {
    crate::common::phrasings_plan()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_generated_text_round_trips(task in 0usize..3, context in 0usize..3, reverse in any::<bool>(), op in 1u32..=20, seed in any::<u64>()) {
        let plan = plan();
        let tokenizer = Tokenizer::for_plan(&plan);
        let spec = &plan.tasks[task];
        let mode = if reverse { Mode::Reverse } else { Mode::Forward };
        let Ok(problem) = rlp::tasks::generate(&plan, TaskId(task), spec.contexts[context % spec.contexts.len()], mode, op.min(spec.max_op), seed) else {
            return Ok(());
        };
        let text = problem.rendered.text();
        let ids = tokenizer.encode(&text).map_err(|e| TestCaseError::fail(format!("{e} in {text}")))?;
        prop_assert_eq!(&tokenizer.decode(&ids), &text);
        // The analysis' length estimate counts words and symbols as this tokenizer does, and
        // each tag as one token: the estimate's unit is this tokenizer's.
        let mut untagged = text.clone();
        for tag in rlp::tokenizer::TAGS {
            untagged = untagged.replace(tag, "");
        }
        prop_assert_eq!(ids.len() as u64, rlp::tokenizer::count_tokens(&untagged) + 6);
    }

    #[test]
    fn any_ids_decode_and_any_text_encodes_lossily(ids in prop::collection::vec(any::<u32>(), 0..50), text in ".{0,80}") {
        let tokenizer = Tokenizer::for_plan(&plan());
        let _ = tokenizer.decode(&ids);
        let lossy = tokenizer.encode_lossy(&text);
        prop_assert!(lossy.iter().all(|&id| (id as usize) < tokenizer.len()));
    }
}

#[test]
fn the_vocabulary_is_deterministic_and_survives_a_save() {
    let a = Tokenizer::for_plan(&plan());
    let b = Tokenizer::for_plan(&plan());
    assert_eq!(a, b);
    let saved = serde_json::to_string(&a).unwrap();
    assert_eq!(Tokenizer::from_json(&saved).unwrap(), a);
    assert_eq!(&a.tokens[..4], ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]);
    assert!(
        a.encode("<question> zebra").is_err(),
        "words outside the grammar are not in the vocabulary"
    );
    // Three contexts, two phrasings and the numbers 0..=1000, each with and without a space.
    assert!(
        (2000..6000).contains(&a.len()),
        "vocabulary of {} tokens",
        a.len()
    );
}
