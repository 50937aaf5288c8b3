//! The model: a Qwen2-style decoder in candle.
//!
//! RMSNorm, rotary position embeddings, grouped-query attention with a causal mask, a SwiGLU
//! MLP and tied embeddings, initialised with std 0.02 as the reference. Every op used here has
//! a gradient in candle (its fused `softmax_last_dim`, `rms_norm` and `rope` ops silently have
//! none), which a test checks parameter by parameter.
//! Incremental decoding keeps per-layer key/value caches.
//! On the CPU the forward pass runs fused kernels ([`ops`]), and a training step differentiates
//! through a hand-written backward pass (`backprop`, [`Transformer::loss_and_grads`]) instead
//! of candle's autograd.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Init, Linear, VarBuilder};

use crate::plan::ModelSpec;

mod backprop;
pub mod denormals;
pub mod hf;
pub mod ops;
pub mod sample;

/// A decoder's shape: the plan's [`ModelSpec`] plus the vocabulary size.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Vocabulary size (from the tokenizer).
    pub vocab: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Residual width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// SwiGLU inner width.
    pub ffn: usize,
    /// Longest sequence.
    pub context: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Whether q/k/v have biases.
    pub qkv_bias: bool,
    /// RMSNorm epsilon.
    pub norm_eps: f64,
    /// Initial weight standard deviation.
    pub init_std: f64,
}

impl Config {
    /// The config of a plan's model with a given vocabulary.
    #[must_use]
    pub fn from_spec(spec: &ModelSpec, vocab: usize) -> Self {
        Self {
            vocab,
            layers: spec.layers as usize,
            hidden: spec.hidden as usize,
            heads: spec.heads as usize,
            kv_heads: spec.kv_heads as usize,
            ffn: spec.ffn as usize,
            context: spec.context as usize,
            rope_theta: spec.rope_theta,
            qkv_bias: spec.qkv_bias,
            norm_eps: spec.norm_eps,
            init_std: spec.init_std,
        }
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

fn init(cfg: &Config) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: cfg.init_std,
    }
}

/// The variables of `varmap` in name order: the deterministic order of initialisation,
/// optimizer state and checkpoints.
pub fn sorted_vars(varmap: &candle_nn::VarMap) -> Result<Vec<(String, candle_core::Var)>> {
    let mut vars: Vec<(String, candle_core::Var)> = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?
        .iter()
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// A model on `device` and its variables: with weights drawn under `seed`, or, with `None`,
/// with candle's placeholder init for a caller that loads weights next (skipping the seeded
/// draw, which would be overwritten).
pub fn build(
    config: &Config,
    device: &Device,
    seed: Option<u64>,
) -> Result<(candle_nn::VarMap, Transformer)> {
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = Transformer::load(config, &vb)?;
    if let Some(seed) = seed {
        seeded_init(&varmap, config, seed)?;
    }
    Ok((varmap, model))
}

/// Draws every matrix of `varmap` (projections and the embedding) afresh from N(0, init_std)
/// under `seed`; vectors (norm gains, biases) keep their constant initial values. candle's own
/// random init cannot be seeded on the CPU, and a run must be reproducible from its seed.
pub fn seeded_init(varmap: &candle_nn::VarMap, config: &Config, seed: u64) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let vars = sorted_vars(varmap)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for (_, var) in vars {
        if var.rank() != 2 {
            continue;
        }
        // Box-Muller: two uniforms give two independent standard normals.
        let count = var.elem_count();
        let mut values = Vec::with_capacity(count + 1);
        while values.len() < count {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let radius = (-2.0 * u1.ln()).sqrt() * config.init_std;
            let angle = std::f64::consts::TAU * u2;
            values.push((radius * angle.cos()) as f32);
            values.push((radius * angle.sin()) as f32);
        }
        values.truncate(count);
        let fresh = Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&fresh)?;
    }
    Ok(())
}

fn linear(
    cfg: &Config,
    inputs: usize,
    outputs: usize,
    bias: bool,
    vb: &VarBuilder<'_>,
) -> Result<Linear> {
    let weight = vb.get_with_hints((outputs, inputs), "weight", init(cfg))?;
    let bias = if bias {
        Some(vb.get_with_hints(outputs, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// Which kernels a model's forward pass runs, chosen once per model
/// ([`Transformer::set_fused_kernels`]) and handed to every layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// The fused CPU kernels of [`ops`] (the CPU only: elsewhere, the composite ops).
    Fused,
    /// candle's composite ops, which the fused path is tested against.
    Composite,
}

impl Kernels {
    /// Whether the fused kernels run on `x`'s device.
    fn fused_on(self, x: &Tensor) -> bool {
        self == Kernels::Fused && x.device().is_cpu()
    }
}

/// `linear.forward(x)`, through the fused op (one autograd node) on the CPU when `fused`.
fn project(linear: &Linear, x: &Tensor, fused: bool) -> Result<Tensor> {
    if fused && x.device().is_cpu() {
        ops::linear(x, linear.weight(), linear.bias())
    } else {
        linear.forward(x)
    }
}

/// RMSNorm written with differentiable ops (candle's fused one has no backward).
#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(cfg: &Config, vb: &VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(cfg.hidden, "weight", Init::Const(1.0))?,
            eps: cfg.norm_eps,
        })
    }
}

impl RmsNorm {
    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        if kernels.fused_on(x) {
            return ops::rms_norm(x, &self.weight, self.eps);
        }
        let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x.broadcast_div(&(mean_square + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)
    }
}

/// Rotary embedding tables for every position up to the context.
#[derive(Debug, Clone)]
struct Rotary {
    cos: Tensor,
    sin: Tensor,
    tables: ops::RopeTables,
}

impl Rotary {
    fn new(cfg: &Config, device: &Device) -> Result<Self> {
        let half = cfg.head_dim() / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim() as f64) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let positions = Tensor::arange(0u32, cfg.context as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.context, 1))?;
        let angles = positions.matmul(&inv_freq)?;
        let angles = Tensor::cat(&[&angles, &angles], D::Minus1)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        Ok(Self {
            tables: ops::RopeTables::new(&cos, &sin)?,
            cos,
            sin,
        })
    }

    /// Rotates `x` (batch, heads, seq, head_dim) at positions `offset..offset + seq` with
    /// composite ops (the fused path rotates inside [`ops::split_heads`]).
    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, _, seq, dim) = x.dims4()?;
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        let half = dim / 2;
        let rotated = Tensor::cat(
            &[
                &x.narrow(D::Minus1, half, half)?.neg()?,
                &x.narrow(D::Minus1, 0, half)?,
            ],
            D::Minus1,
        )?;
        x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(cfg: &Config, vb: &VarBuilder<'_>) -> Result<Self> {
        let head_dim = cfg.head_dim();
        let kv = cfg.kv_heads * head_dim;
        Ok(Self {
            q: linear(cfg, cfg.hidden, cfg.hidden, cfg.qkv_bias, &vb.pp("q_proj"))?,
            k: linear(cfg, cfg.hidden, kv, cfg.qkv_bias, &vb.pp("k_proj"))?,
            v: linear(cfg, cfg.hidden, kv, cfg.qkv_bias, &vb.pp("v_proj"))?,
            o: linear(cfg, cfg.hidden, cfg.hidden, false, &vb.pp("o_proj"))?,
            heads: cfg.heads,
            kv_heads: cfg.kv_heads,
            head_dim,
        })
    }

    /// The attention scores' scale, 1 / sqrt(head_dim).
    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// Repeats each key/value head for the query heads that share it.
    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let groups = self.heads / self.kv_heads;
        if groups == 1 {
            return Ok(x);
        }
        let (b, kv, seq, dim) = x.dims4()?;
        x.unsqueeze(2)?
            .expand((b, kv, groups, seq, dim))?
            .reshape((b, kv * groups, seq, dim))
    }

    /// `x` (batch, seq, hidden) at cache slots `offset..offset + seq`, rotated as positions
    /// `position..position + seq`; `starts` (empty, or one per sequence) is each sequence's
    /// first valid cache slot (left-padded prompts of a batch).
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        (offset, position): (usize, usize),
        starts: &[usize],
        cache: &mut LayerCache,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let fused = kernels.fused_on(x);
        // (b, t, heads · d) → (b, heads, t, d), rotated for queries and keys.
        let split = |t: Tensor, heads: usize, rotate: bool| {
            if fused {
                let tables = rotate.then_some(&rotary.tables);
                return ops::split_heads(&t, heads, tables, position);
            }
            let t = t
                .reshape((batch, seq, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?;
            if rotate {
                rotary.apply(&t, position)
            } else {
                Ok(t)
            }
        };
        let q = split(project(&self.q, x, fused)?, self.heads, true)?;
        let k = split(project(&self.k, x, fused)?, self.kv_heads, true)?;
        let v = split(project(&self.v, x, fused)?, self.kv_heads, false)?;
        let total = offset + seq;
        let (k, v) = cache.append(k, v, offset)?;
        let scale = self.scale();
        let padded = starts.iter().any(|&s| s > 0);
        if seq == 1 && total > 1 && fused {
            // One new token per sequence: read the cache in place instead of one tiny GEMM
            // per (sequence, head). Sampling only (no gradient).
            let out = ops::decode_attention(&q, &k, &v, total, starts, scale)?;
            return project(&self.o, &out.reshape((batch, 1, hidden))?, fused);
        }
        if padded && seq > 1 {
            candle_core::bail!("left-padded sequences take one new token at a time");
        }
        if offset == 0 && fused {
            // Training and prefill: the fused blockwise attention, grouped-query heads read in
            // place, no (t × t) scores.
            let out =
                ops::causal_attention(&q, &k.narrow(2, 0, total)?, &v.narrow(2, 0, total)?, scale)?;
            return project(
                &self.o,
                &out.transpose(1, 2)?.reshape((batch, seq, hidden))?,
                fused,
            );
        }
        let (k, v) = (k.narrow(2, 0, total)?, v.narrow(2, 0, total)?);
        let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let weights = if fused {
            ops::causal_softmax(&scores, scale)?
        } else {
            let mut scores =
                (scores * scale)?.broadcast_add(&causal_mask(seq, total, x.device())?)?;
            if padded {
                scores = scores.broadcast_add(&padding_mask(starts, total, x.device())?)?;
            }
            candle_nn::ops::softmax(&scores, D::Minus1)?
        };
        let out = weights
            .matmul(&v.contiguous()?)?
            .transpose(1, 2)?
            .reshape((batch, seq, hidden))?;
        project(&self.o, &out, fused)
    }
}

/// One layer's cached keys and values, (batch, kv_heads, capacity, head_dim): positions
/// before the current offset are valid. With a capacity, new entries are written in place (no
/// copy of the whole cache per token, no fresh allocation); without one, the cache grows by
/// concatenation.
#[derive(Debug, Clone, Default)]
struct LayerCache {
    buffers: Option<(Tensor, Tensor)>,
    capacity: usize,
}

impl LayerCache {
    /// Stores `k`, `v` (batch, kv_heads, seq, d) at `offset`; returns buffers whose first
    /// `offset + seq` positions are the keys and values so far.
    fn append(&mut self, k: Tensor, v: Tensor, offset: usize) -> Result<(Tensor, Tensor)> {
        let total = offset + k.dim(2)?;
        let buffers = match self.buffers.take() {
            Some((kb, vb)) if kb.dim(2)? >= total => {
                kb.slice_set(&k, 2, offset)?;
                vb.slice_set(&v, 2, offset)?;
                (kb, vb)
            }
            Some((kb, vb)) => (
                Tensor::cat(&[&kb.narrow(2, 0, offset)?, &k], 2)?,
                Tensor::cat(&[&vb.narrow(2, 0, offset)?, &v], 2)?,
            ),
            None if self.capacity > total => {
                let (b, heads, _, d) = k.dims4()?;
                let shape = (b, heads, self.capacity, d);
                let kb = Tensor::zeros(shape, k.dtype(), k.device())?;
                let vb = Tensor::zeros(shape, v.dtype(), v.device())?;
                kb.slice_set(&k, 2, offset)?;
                vb.slice_set(&v, 2, offset)?;
                (kb, vb)
            }
            None => (k, v),
        };
        self.buffers = Some(buffers.clone());
        Ok(buffers)
    }
}

/// Additive mask for `seq` new positions attending over `total` positions: position i of the
/// new ones (absolute `total - seq + i`) sees keys up to itself.
fn causal_mask(seq: usize, total: usize, device: &Device) -> Result<Tensor> {
    let past = total - seq;
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (seq, total), device)
}

/// Additive mask (batch, 1, 1, total) hiding each sequence's cache slots before its start.
fn padding_mask(starts: &[usize], total: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = starts
        .iter()
        .flat_map(|&start| (0..total).map(move |j| if j < start { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (starts.len(), 1, 1, total), device)
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    fn load(cfg: &Config, vb: &VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            gate: linear(cfg, cfg.hidden, cfg.ffn, false, &vb.pp("gate_proj"))?,
            up: linear(cfg, cfg.hidden, cfg.ffn, false, &vb.pp("up_proj"))?,
            down: linear(cfg, cfg.ffn, cfg.hidden, false, &vb.pp("down_proj"))?,
        })
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let fused = kernels.fused_on(x);
        let (gate, up) = (project(&self.gate, x, fused)?, project(&self.up, x, fused)?);
        if fused {
            return project(&self.down, &ops::swiglu(&gate, &up)?, true);
        }
        self.down.forward(&(gate.silu()? * up)?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attention_norm: RmsNorm,
    attention: Attention,
    mlp_norm: RmsNorm,
    mlp: Mlp,
}

impl Layer {
    fn load(cfg: &Config, vb: &VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            attention_norm: RmsNorm::load(cfg, &vb.pp("input_layernorm"))?,
            attention: Attention::load(cfg, &vb.pp("self_attn"))?,
            mlp_norm: RmsNorm::load(cfg, &vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::load(cfg, &vb.pp("mlp"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        at: (usize, usize),
        starts: &[usize],
        cache: &mut LayerCache,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let x = (x + self.attention.forward(
            &self.attention_norm.forward(x, kernels)?,
            rotary,
            at,
            starts,
            cache,
            kernels,
        )?)?;
        &x + self
            .mlp
            .forward(&self.mlp_norm.forward(&x, kernels)?, kernels)?
    }
}

/// The decoder.
#[derive(Debug, Clone)]
pub struct Transformer {
    embedding: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    rotary: Rotary,
    config: Config,
    kernels: Kernels,
}

/// Per-layer key/value caches for incremental decoding.
///
/// A batch of prompts of different lengths is decoded left-padded: prompt r of length p_r sits
/// in slots `P - p_r..P` (P the longest), its keys rotated at those same positions (rotary
/// embeddings depend only on the distance between positions, so a shift changes nothing), and
/// `starts` hides the slots before each prompt.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    layers: Vec<LayerCache>,
    /// Positions already in the cache.
    pub len: usize,
    capacity: usize,
    /// Added to the slot of each new token to give its rotary position.
    shift: usize,
    /// Each sequence's first valid slot (empty: all 0).
    starts: Vec<usize>,
}

impl Cache {
    /// A cache that preallocates room for `capacity` positions on first use (sampling knows
    /// prompt length + new tokens), so decoding writes keys and values in place.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// A cache for one prompt whose tokens will be rotated as positions `shift..`: its
    /// prefill is then ready to sit at slots `shift..` of a left-padded batch ([`Cache::join`]).
    #[must_use]
    pub fn shifted(capacity: usize, shift: usize) -> Self {
        Self {
            capacity,
            shift,
            ..Self::default()
        }
    }

    /// One batch from prefilled single-prompt caches, each given as (cache, copies):
    /// left-padded to the longest (every cache must have been built with
    /// [`Cache::shifted`] by `longest - len`), each repeated `copies` times, with room for
    /// `capacity` slots.
    pub fn join(parts: &[(&Cache, usize)], capacity: usize) -> Result<Self> {
        let longest = parts
            .iter()
            .map(|(c, _)| c.shift + c.len)
            .max()
            .unwrap_or(0);
        let layers = parts.first().map_or(0, |(c, _)| c.layers.len());
        let mut starts = Vec::new();
        for (cache, copies) in parts {
            if cache.shift + cache.len != longest || cache.starts.iter().any(|&s| s > 0) {
                candle_core::bail!("joined caches must be single prompts shifted to the end");
            }
            starts.extend(std::iter::repeat_n(cache.shift, *copies));
        }
        let joined = (0..layers)
            .map(|l| {
                let mut ks = Vec::with_capacity(parts.len());
                let mut vs = Vec::with_capacity(parts.len());
                for (cache, copies) in parts {
                    let Some((k, v)) = cache.layers.get(l).and_then(|c| c.buffers.as_ref()) else {
                        candle_core::bail!("joined caches must be prefilled");
                    };
                    for (src, out) in [(k, &mut ks), (v, &mut vs)] {
                        let (_, heads, _, d) = src.dims4()?;
                        let padded =
                            Tensor::zeros((1, heads, capacity, d), src.dtype(), src.device())?;
                        padded.slice_set(&src.narrow(2, 0, cache.len)?, 2, cache.shift)?;
                        out.push(padded.repeat((*copies, 1, 1, 1))?);
                    }
                }
                Ok(LayerCache {
                    buffers: Some((Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?)),
                    capacity,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers: joined,
            len: longest,
            capacity,
            shift: 0,
            starts,
        })
    }

    /// Keeps only the sequences at `rows` (in that order): finished sequences leave the batch.
    pub fn select(&mut self, rows: &[u32]) -> Result<()> {
        let Some(device) = self
            .layers
            .iter()
            .find_map(|l| l.buffers.as_ref().map(|(k, _)| k.device().clone()))
        else {
            return Ok(());
        };
        let index = Tensor::new(rows, &device)?;
        for layer in &mut self.layers {
            if let Some((k, v)) = layer.buffers.take() {
                layer.buffers = Some((k.index_select(&index, 0)?, v.index_select(&index, 0)?));
            }
        }
        if !self.starts.is_empty() {
            self.starts = rows.iter().map(|&r| self.starts[r as usize]).collect();
        }
        Ok(())
    }
}

impl Transformer {
    /// Builds the model; variables are created (or loaded) through `vb` under Qwen2's names.
    pub fn load(config: &Config, vb: &VarBuilder<'_>) -> Result<Self> {
        let embedding_weight = vb.pp("model.embed_tokens").get_with_hints(
            (config.vocab, config.hidden),
            "weight",
            init(config),
        )?;
        let layers = (0..config.layers)
            .map(|i| Layer::load(config, &vb.pp(format!("model.layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embedding: Embedding::new(embedding_weight, config.hidden),
            layers,
            norm: RmsNorm::load(config, &vb.pp("model.norm"))?,
            rotary: Rotary::new(config, vb.device())?,
            config: config.clone(),
            kernels: Kernels::Fused,
        })
    }

    /// The device the weights live on.
    #[must_use]
    pub fn device(&self) -> &Device {
        self.embedding.embeddings().device()
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the fused CPU kernels of [`ops`] run (on by default; they exist for the CPU
    /// only). Off, the model computes the same functions with candle's composite ops: the
    /// plain path the fused one is tested against.
    pub fn set_fused_kernels(&mut self, on: bool) {
        self.kernels = if on {
            Kernels::Fused
        } else {
            Kernels::Composite
        };
    }

    /// Whether this model's forward pass, and the losses computed from its logits, use the
    /// fused CPU kernels.
    #[must_use]
    pub fn fused_kernels(&self) -> bool {
        self.kernels == Kernels::Fused && self.device().is_cpu()
    }

    /// Logits (batch, seq, vocab) for `tokens` (batch, seq), without a cache.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let mut scratch = Cache::default();
        self.forward_cached(tokens, &mut scratch)
    }

    /// Logits for `tokens` continuing the sequences in `cache`, which it extends.
    pub fn forward_cached(&self, tokens: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let (_, seq) = tokens.dims2()?;
        if cache.len + cache.shift + seq > self.config.context {
            candle_core::bail!(
                "sequence of {} tokens exceeds the model's context of {}",
                cache.len + cache.shift + seq,
                self.config.context
            );
        }
        cache.layers.resize(
            self.layers.len(),
            LayerCache {
                buffers: None,
                capacity: cache.capacity,
            },
        );
        let mut x = self.embedding.forward(tokens)?;
        let at = (cache.len, cache.len + cache.shift);
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(
                &x,
                &self.rotary,
                at,
                &cache.starts,
                layer_cache,
                self.kernels,
            )?;
        }
        cache.len += seq;
        let x = self.norm.forward(&x, self.kernels)?;
        // Tied embeddings: the output head is the embedding matrix.
        if self.fused_kernels() {
            return ops::linear(&x, self.embedding.embeddings(), None);
        }
        x.broadcast_matmul(&self.embedding.embeddings().t()?)
    }
}

/// The log-probability of each target token, (rows, tokens), differentiable. With `fused` (the
/// model's [`Transformer::fused_kernels`]) it comes from one CPU kernel
/// ([`ops::cross_entropy`]).
pub fn token_log_probs(logits: &Tensor, targets: &Tensor, fused: bool) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logits = logits.reshape((b * t, v))?;
    let targets = targets.reshape(b * t)?;
    let log_probs = if fused && logits.device().is_cpu() {
        ops::cross_entropy(&logits, &targets)?.neg()?
    } else {
        candle_nn::ops::log_softmax(&logits, D::Minus1)?
            .gather(&targets.unsqueeze(1)?, 1)?
            .squeeze(1)?
    };
    log_probs.reshape((b, t))
}
