//! rlp's weights in a Hugging Face checkpoint directory (the format is [`crate::hf`]): written
//! with everything an export needs, and read back for a stage that starts from one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::hf::{HfError, check_dir, config, generation_config, tokenizer as tokenizer_hf};
use crate::plan::ModelSpec;
use crate::tokenizer::Tokenizer;

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
