//! Hugging Face's checkpoint format for rlp's models, as files: `config.json` of
//! `Qwen2ForCausalLM`, the generation config, the tokenizer in the `tokenizers` library's
//! format ([`tokenizer`]), and the check that a directory fits a plan's model and tokenizer.
//! Weights are read and written by [`crate::model::hf`]; this module needs no tensors, so
//! `rlp check` can use it.
//!
//! ```text
//! DIR/
//!   config.json               Qwen2ForCausalLM: sizes, heads, rope, norm, tied embeddings
//!   generation_config.json    bos, pad, and the ids generation stops at
//!   model.safetensors         the weights under Qwen2's names (rlp's own), float32
//!   tokenizer.json            the vocabulary in the `tokenizers` library's format
//!   tokenizer_config.json     PreTrainedTokenizerFast, rlp's special tokens, a chat template
//!   special_tokens_map.json
//!   README.md                 what the model is and how to prompt it
//! ```

pub mod tokenizer;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::plan::ModelSpec;
use crate::tokenizer::{BOS, EOS, PAD, Tokenizer};

/// The `transformers` version whose file layout the export follows.
pub const TRANSFORMERS_VERSION: &str = "4.46.0";

/// `config.json` of `Qwen2ForCausalLM` with rlp's model: every field `transformers` and
/// candle-transformers read. Qwen2 always has q/k/v biases; a model without them is exported
/// with zero biases (see [`crate::model::hf::write_dir`]). No sliding window: the window is
/// the whole context.
#[must_use]
pub fn config(model: &ModelSpec, vocab: usize) -> Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab,
        "hidden_size": model.hidden,
        "intermediate_size": model.ffn,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "num_key_value_heads": model.kv_heads,
        "head_dim": model.hidden / model.heads,
        "hidden_act": "silu",
        "max_position_embeddings": model.context,
        "rope_theta": model.rope_theta,
        "rope_scaling": null,
        "rms_norm_eps": model.norm_eps,
        "tie_word_embeddings": model.tied_embeddings,
        "use_sliding_window": false,
        "sliding_window": model.context,
        "max_window_layers": model.layers,
        "attention_dropout": 0.0,
        "initializer_range": model.init_std,
        "use_cache": true,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
    })
}

/// `generation_config.json`: generation stops where rlp's does, at `[EOS]` or the tag that
/// closes the answer.
#[must_use]
pub fn generation_config(tokenizer: &Tokenizer) -> Value {
    json!({
        "bos_token_id": BOS,
        "eos_token_id": tokenizer.completion_stops(),
        "pad_token_id": PAD,
        "transformers_version": TRANSFORMERS_VERSION,
    })
}

/// Why writing a checkpoint directory, or reading one back, failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum HfError {
    /// A file cannot be read or parsed.
    #[error("cannot read {}: {reason}", path.display())]
    #[diagnostic(code(rlp::export::read))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The output directory exists.
    #[error("{} already exists", path.display())]
    #[diagnostic(
        code(rlp::export::exists),
        help("remove it or choose another --out: an export never overwrites")
    )]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// An exported directory does not fit the model or tokenizer it is read for.
    #[error("{} does not fit: {reason}", dir.display())]
    #[diagnostic(code(rlp::export::mismatch))]
    Mismatch {
        /// The exported directory.
        dir: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot write {}: {reason}", path.display())]
    #[diagnostic(code(rlp::export::write))]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn read_text(path: &Path) -> Result<String, HfError> {
    std::fs::read_to_string(path).map_err(|e| HfError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, HfError> {
    serde_json::from_str(text).map_err(|e| HfError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Checks an exported directory's config and tokenizer against a model and tokenizer: the
/// fields rlp's model depends on, and the vocabulary id by id.
///
/// # Errors
/// [`HfError::Mismatch`] naming the first difference, or a file that cannot be read.
pub fn check_dir(dir: &Path, model: &ModelSpec, tokenizer: &Tokenizer) -> Result<(), HfError> {
    let mismatch = |reason: String| HfError::Mismatch {
        dir: dir.to_owned(),
        reason,
    };
    let path = dir.join("tokenizer.json");
    let found: Value = parse(&path, &read_text(&path)?)?;
    let vocab = found
        .pointer("/model/vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| mismatch("tokenizer.json has no word-level vocabulary".to_owned()))?;
    if vocab.len() != tokenizer.len() {
        return Err(mismatch(format!(
            "tokenizer.json has {} tokens, this plan's tokenizer {}",
            vocab.len(),
            tokenizer.len()
        )));
    }
    for (id, token) in tokenizer.tokens.iter().enumerate() {
        if vocab.get(token).and_then(Value::as_u64) != Some(id as u64) {
            return Err(mismatch(format!(
                "token {token:?} is not id {id} in tokenizer.json, as in this plan's tokenizer"
            )));
        }
    }
    let path = dir.join("config.json");
    let found: Value = parse(&path, &read_text(&path)?)?;
    let expected = config(model, tokenizer.len());
    for key in [
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "hidden_act",
        "max_position_embeddings",
        "rope_theta",
        "rms_norm_eps",
        "tie_word_embeddings",
    ] {
        if found.get(key) != expected.get(key) {
            return Err(mismatch(format!(
                "config.json has {key} {}, model `{}` with this plan's vocabulary has {}",
                found.get(key).unwrap_or(&Value::Null),
                model.name,
                expected[key]
            )));
        }
    }
    Ok(())
}
