//! A model as a Hugging Face Qwen2 checkpoint directory, which `transformers`, vLLM and
//! candle-transformers load as they are, and read back.
//!
//! ```text
//! DIR/
//!   config.json               Qwen2ForCausalLM: sizes, heads, rope, norm, tied embeddings
//!   generation_config.json    bos, pad, and the ids generation stops at
//!   model.safetensors         the weights under Qwen2's names (rlp's own), float32
//!   tokenizer.json            the vocabulary in the `tokenizers` library's format
//!   tokenizer_config.json     PreTrainedTokenizerFast with rlp's special tokens
//!   special_tokens_map.json
//!   README.md                 written by the caller: what the model is and how to prompt it
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};

use crate::plan::ModelSpec;
use crate::tokenizer::{BOS, EOS, PAD, Tokenizer, hf as tokenizer_hf};

/// The `transformers` version whose file layout the export follows.
const TRANSFORMERS_VERSION: &str = "4.46.0";

/// `config.json` of `Qwen2ForCausalLM` with rlp's model: every field `transformers` and
/// candle-transformers read. Qwen2 always has q/k/v biases; a model without them is
/// exported with zero biases (see [`write_dir`]). No sliding window: the window is
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

/// Writes a checkpoint directory from a model spec, its tokenizer, rlp's weights file and a
/// README: everything goes to a temporary sibling first, renamed to `out` at the end, so
/// `out` is complete or absent.
///
/// # Errors
/// `out` exists, the weights cannot be read, or a file cannot be written.
pub fn write_dir(
    model: &ModelSpec,
    tokenizer: &Tokenizer,
    weights: &Path,
    readme: &str,
    out: &Path,
) -> Result<(), HfError> {
    if out.exists() {
        return Err(HfError::Exists {
            path: out.to_owned(),
        });
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.{}.rlp-tmp", std::process::id()));
    let write_error = |path: &Path, e: &dyn std::fmt::Display| HfError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&tmp).map_err(|e| write_error(&tmp, &e))?;
    let result = (|| {
        let mut tensors =
            candle_core::safetensors::load(weights, &Device::Cpu).map_err(|e| HfError::Read {
                path: weights.to_owned(),
                reason: e.to_string(),
            })?;
        if !model.qkv_bias {
            add_zero_biases(model, &mut tensors).map_err(|e| write_error(weights, &e))?;
        }
        let path = tmp.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &path).map_err(|e| write_error(&path, &e))?;
        let files = [
            ("config.json", config(model, tokenizer.len())),
            ("generation_config.json", generation_config(tokenizer)),
            ("tokenizer.json", tokenizer_hf::tokenizer(tokenizer)),
            (
                "tokenizer_config.json",
                tokenizer_hf::tokenizer_config(tokenizer, model.context),
            ),
            (
                "special_tokens_map.json",
                tokenizer_hf::special_tokens_map(tokenizer),
            ),
        ];
        for (file, value) in files {
            let path = tmp.join(file);
            let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
            text.push('\n');
            std::fs::write(&path, text).map_err(|e| write_error(&path, &e))?;
        }
        let path = tmp.join("README.md");
        std::fs::write(&path, readme).map_err(|e| write_error(&path, &e))?;
        std::fs::rename(&tmp, out).map_err(|e| write_error(out, &e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Qwen2's attention always has q/k/v biases: a model without them gets zeros, which leave
/// its function unchanged.
fn add_zero_biases(
    model: &ModelSpec,
    tensors: &mut HashMap<String, Tensor>,
) -> candle_core::Result<()> {
    let head_dim = model.hidden / model.heads;
    for layer in 0..model.layers {
        for (proj, width) in [
            ("q_proj", model.hidden),
            ("k_proj", model.kv_heads * head_dim),
            ("v_proj", model.kv_heads * head_dim),
        ] {
            tensors.insert(
                format!("model.layers.{layer}.self_attn.{proj}.bias"),
                Tensor::zeros(width as usize, DType::F32, &Device::Cpu)?,
            );
        }
    }
    Ok(())
}

/// Reads an exported directory back as rlp weights for `model` with `tokenizer`: checks that
/// its config and tokenizer are the ones an export of this model would write, and drops the
/// zero biases an export adds to a model without them. The tensors are bit for bit the ones
/// exported.
///
/// # Errors
/// [`HfError::Mismatch`] naming the first difference, or a file that cannot be read.
pub fn read_dir(
    dir: &Path,
    model: &ModelSpec,
    tokenizer: &Tokenizer,
) -> Result<HashMap<String, Tensor>, HfError> {
    check_dir(dir, model, tokenizer)?;
    let weights = dir.join("model.safetensors");
    let mut tensors =
        candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| HfError::Read {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
    if !model.qkv_bias {
        let biases: Vec<String> = tensors
            .keys()
            .filter(|k| k.ends_with("_proj.bias"))
            .cloned()
            .collect();
        for name in biases {
            let bias = tensors.remove(&name).unwrap_or_else(|| unreachable!());
            let largest = bias
                .abs()
                .and_then(|b| b.max(0))
                .and_then(|m| m.to_scalar::<f32>())
                .unwrap_or(f32::INFINITY);
            if largest != 0.0 {
                return Err(HfError::Mismatch {
                    dir: dir.to_owned(),
                    reason: format!(
                        "`{name}` is not zero, but model `{}` has no q/k/v biases (`qkv_bias off`)",
                        model.name
                    ),
                });
            }
        }
    }
    Ok(tensors)
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
