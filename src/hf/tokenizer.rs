//! The tokenizer in the Hugging Face `tokenizers` library's own format.
//!
//! A `WordLevel` model over rlp's vocabulary behind one `Split` pre-tokenizer whose regular
//! expression cuts text into rlp's pieces (a tag, a run of letters and digits, or one other
//! character, each taking one leading space when one precedes it), so the library gives
//! rlp's ids for every text; a `Fuse` decoder joins tokens back without adding spaces, and a
//! template adds `[BOS]` in front, as rlp's prompts and training examples begin.

use serde_json::{Map, Value, json};

use crate::tokenizer::{BOS, EOS, PAD, TAGS, Tokenizer, UNK};

/// The regular expression (Oniguruma syntax, as the `tokenizers` library compiles it) that
/// cuts a text into rlp's pieces; see [`crate::tokenizer`]. A word character is what Rust's
/// `char::is_alphanumeric` accepts (Alphabetic or Numeric), `_` or `'`.
#[must_use]
pub fn piece_pattern() -> String {
    let tags: Vec<&str> = TAGS.to_vec();
    format!(
        " ?(?:{}|[\\p{{Alphabetic}}\\p{{N}}_']+|[^ ])| ",
        tags.join("|")
    )
}

/// `tokenizer.json` in the `tokenizers` library's format.
#[must_use]
pub fn tokenizer(tokenizer: &Tokenizer) -> Value {
    let special = |id: u32| {
        json!({
            "id": id,
            "content": tokenizer.tokens[id as usize],
            "single_word": false,
            "lstrip": false,
            "rstrip": false,
            "normalized": false,
            "special": true,
        })
    };
    let vocab: Map<String, Value> = tokenizer
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), json!(id)))
        .collect();
    let bos = &tokenizer.tokens[BOS as usize];
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(PAD), special(BOS), special(EOS), special(UNK)],
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": { "Regex": piece_pattern() },
            "behavior": "Isolated",
            "invert": false,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                { "SpecialToken": { "id": bos, "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
            ],
            "pair": [
                { "SpecialToken": { "id": bos, "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "Sequence": { "id": "B", "type_id": 1 } },
            ],
            "special_tokens": {
                bos.clone(): { "id": bos, "ids": [BOS], "tokens": [bos] },
            },
        },
        "decoder": { "type": "Fuse" },
        "model": {
            "type": "WordLevel",
            "vocab": vocab,
            "unk_token": tokenizer.tokens[UNK as usize],
        },
    })
}

/// The chat template: `[BOS]` and the messages' texts, nothing between them. rlp's models
/// are not chat models; this lets RL frameworks that read prompts as chat messages (verl,
/// TRL; see `rlp data --format`) build rlp's own prompt from one user message.
pub const CHAT_TEMPLATE: &str =
    "{{ bos_token }}{% for message in messages %}{{ message['content'] }}{% endfor %}";

/// `tokenizer_config.json`: the fast tokenizer, its special tokens, the chat template, and
/// no clean-up of spaces on decoding (rlp's texts put a space before `.` and the clean-up
/// would drop it).
#[must_use]
pub fn tokenizer_config(tokenizer: &Tokenizer, context: u32) -> Value {
    let token = |id: u32| tokenizer.tokens[id as usize].clone();
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token(BOS),
        "eos_token": token(EOS),
        "pad_token": token(PAD),
        "unk_token": token(UNK),
        "model_max_length": context,
        "clean_up_tokenization_spaces": false,
        "padding_side": "left",
        "chat_template": CHAT_TEMPLATE,
    })
}

/// `special_tokens_map.json`.
#[must_use]
pub fn special_tokens_map(tokenizer: &Tokenizer) -> Value {
    let token = |id: u32| tokenizer.tokens[id as usize].clone();
    json!({
        "bos_token": token(BOS),
        "eos_token": token(EOS),
        "pad_token": token(PAD),
        "unk_token": token(UNK),
    })
}
