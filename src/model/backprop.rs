//! The fused CPU path's gradients with a hand-written backward pass: the training step of
//! `pretrain`/`midtrain` and GRPO's update.
//!
//! candle's `Tensor::backward` gives every edge of the graph a zero tensor the size of the
//! gradient (`GradStore::or_insert`) and then adds the gradient to it: for the ~30 edges of a
//! transformer block that is one allocation, one memset and one full read-modify-write per
//! activation-sized tensor, and fresh allocations fault their pages in (what that costs:
//! docs/performance.md). This module runs the same fused kernels forward
//! on untracked tensors, keeps the activations the backward pass needs (what candle's graph
//! keeps), and walks the blocks back by hand: each gradient is computed once, and only the
//! tensors that really have several contributions (the residual stream, the normalised input
//! read by several projections, the tied embedding) are summed.
//!
//! The plain path (candle's composite ops and autograd) stays the reference: a test checks
//! these gradients against it parameter by parameter.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::Linear;

use super::{Layer, Transformer, ops};

/// What one block's backward pass reads, kept from its forward pass.
struct BlockTape {
    /// The block's input (the residual stream).
    x: Tensor,
    /// `attention_norm(x)`, the projections' input.
    normed: Tensor,
    /// Rotated queries and keys, values: (batch, heads, seq, head_dim).
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// The attention's output per head, and merged (batch, seq, hidden).
    heads_out: Tensor,
    merged: Tensor,
    /// The residual stream after attention, its norm, and the MLP's inner activations.
    mid: Tensor,
    mid_normed: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
}

/// A linear layer applied to untracked tensors.
fn project(linear: &Linear, x: &Tensor) -> Result<Tensor> {
    let bias = linear.bias().map(Tensor::detach);
    ops::linear(x, &linear.weight().detach(), bias.as_ref())
}

/// Stores a linear layer's weight (and bias) gradients from [`ops::linear_grads`]; returns dx.
fn linear_backward(
    linear: &Linear,
    x: &Tensor,
    g: &Tensor,
    grads: &mut GradStore,
) -> Result<Tensor> {
    let (dx, dw, db) = ops::linear_grads(x, &linear.weight().detach(), g)?;
    grads.insert(linear.weight(), dw);
    if let Some(bias) = linear.bias() {
        grads.insert(bias, db);
    }
    Ok(dx)
}

/// A gradient store holding no gradient of any variable: candle's `GradStore` has no public
/// constructor, and the backward pass of an untracked scalar returns one that holds only that
/// scalar's own gradient (which no variable shares).
fn empty_grads(device: &Device) -> Result<GradStore> {
    Tensor::zeros((), DType::F32, device)?.backward()
}

impl Layer {
    /// The fused forward pass of a training batch (no cache, positions from 0), keeping what
    /// [`Layer::backward`] reads.
    fn forward_taped(&self, x: Tensor, rotary: &super::Rotary) -> Result<(Tensor, BlockTape)> {
        let attention = &self.attention;
        let normed = ops::rms_norm(
            &x,
            &self.attention_norm.weight.detach(),
            self.attention_norm.eps,
        )?;
        let tables = Some(&rotary.tables);
        let q = ops::split_heads(&project(&attention.q, &normed)?, attention.heads, tables, 0)?;
        let k = ops::split_heads(
            &project(&attention.k, &normed)?,
            attention.kv_heads,
            tables,
            0,
        )?;
        let v = ops::split_heads(
            &project(&attention.v, &normed)?,
            attention.kv_heads,
            None,
            0,
        )?;
        let heads_out = ops::causal_attention(&q, &k, &v, attention.scale())?;
        let merged = ops::merge_heads(&heads_out, None, 0)?;
        let mid = (&x + project(&attention.o, &merged)?)?;
        let mid_normed = ops::rms_norm(&mid, &self.mlp_norm.weight.detach(), self.mlp_norm.eps)?;
        let gate = project(&self.mlp.gate, &mid_normed)?;
        let up = project(&self.mlp.up, &mid_normed)?;
        let act = ops::swiglu(&gate, &up)?;
        let out = (&mid + project(&self.mlp.down, &act)?)?;
        let tape = BlockTape {
            x,
            normed,
            q,
            k,
            v,
            heads_out,
            merged,
            mid,
            mid_normed,
            gate,
            up,
            act,
        };
        Ok((out, tape))
    }

    /// The gradient at the block's input from the gradient `dy` at its output; the weights'
    /// gradients go to `grads`. The tape is taken by value: the block's activations are freed
    /// as soon as its gradients are out.
    fn backward(
        &self,
        tape: BlockTape,
        dy: &Tensor,
        rotary: &super::Rotary,
        grads: &mut GradStore,
    ) -> Result<Tensor> {
        let (attention, mlp) = (&self.attention, &self.mlp);
        let BlockTape {
            x,
            normed,
            q,
            k,
            v,
            heads_out,
            merged,
            mid,
            mid_normed,
            gate,
            up,
            act,
        } = tape;
        // out = mid + down(swiglu(gate(n), up(n))), n = mlp_norm(mid)
        let d_act = linear_backward(&mlp.down, &act, dy, grads)?;
        let (d_gate, d_up) = ops::swiglu_grads(&gate, &up, &d_act)?;
        let d_mid_normed = (linear_backward(&mlp.gate, &mid_normed, &d_gate, grads)?
            + linear_backward(&mlp.up, &mid_normed, &d_up, grads)?)?;
        let (d_mid, d_norm_weight) = ops::rms_norm_grads(
            &mid,
            &self.mlp_norm.weight.detach(),
            self.mlp_norm.eps,
            &d_mid_normed,
        )?;
        grads.insert(&self.mlp_norm.weight, d_norm_weight);
        let d_mid = (dy + d_mid)?;
        // mid = x + o(merge(attention(q, k, v))), q/k/v = split(proj(n)), n = attention_norm(x)
        let d_merged = linear_backward(&attention.o, &merged, &d_mid, grads)?;
        let d_heads_out = ops::split_heads(&d_merged, attention.heads, None, 0)?;
        let (dq, dk, dv) = ops::causal_attention_grads(
            &q,
            &k,
            &v,
            &heads_out,
            &d_heads_out,
            attention.scale() as f32,
        )?;
        let tables = Some(&rotary.tables);
        let dq = ops::merge_heads(&dq, tables, 0)?;
        let dk = ops::merge_heads(&dk, tables, 0)?;
        let dv = ops::merge_heads(&dv, None, 0)?;
        let d_normed = ((linear_backward(&attention.q, &normed, &dq, grads)?
            + linear_backward(&attention.k, &normed, &dk, grads)?)?
            + linear_backward(&attention.v, &normed, &dv, grads)?)?;
        let (dx, d_norm_weight) = ops::rms_norm_grads(
            &x,
            &self.attention_norm.weight.detach(),
            self.attention_norm.eps,
            &d_normed,
        )?;
        grads.insert(&self.attention_norm.weight, d_norm_weight);
        d_mid + dx
    }
}

impl Transformer {
    /// A scalar loss and the gradients of every variable, for a loss that depends on the model
    /// only through the log-probabilities of `targets` after `inputs` (both (batch, seq)).
    ///
    /// `loss` gets the log-probabilities (batch, seq), which it may differentiate through with
    /// any candle ops, and the logits (batch, seq, vocab), untracked (for statistics such as the
    /// entropy). On the fused CPU path the model is differentiated by hand (see the module
    /// docs); elsewhere (the plain path, the GPU) by candle's autograd,
    /// [`Transformer::autograd_loss_and_grads`].
    pub fn loss_and_grads(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        loss: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, GradStore)> {
        if self.fused_kernels() {
            self.hand_written_loss_and_grads(inputs, targets, loss)
        } else {
            self.autograd_loss_and_grads(inputs, targets, loss)
        }
    }

    /// [`Transformer::loss_and_grads`] through the model's forward pass and candle's
    /// autograd, on any path: the reference the hand-written backward pass is tested and
    /// benchmarked against.
    pub fn autograd_loss_and_grads(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        loss: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, GradStore)> {
        let logits = self.forward(inputs)?;
        let log_probs = super::token_log_probs(&logits, targets, self.fused_kernels())?;
        let loss = loss(&log_probs, &logits.detach())?;
        let grads = loss.backward()?;
        Ok((loss.detach(), grads))
    }

    /// [`Transformer::loss_and_grads`] on the fused CPU path: the gradient at the
    /// log-probabilities comes from candle's autograd over the loss's small graph; from there
    /// the pass is by hand: d logits = −d logp ⊙ (softmax − onehot), then the LM head, the
    /// final norm and the blocks in reverse.
    fn hand_written_loss_and_grads(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        loss: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, GradStore)> {
        let (batch, seq) = inputs.dims2()?;
        if seq > self.config.context {
            candle_core::bail!(
                "sequence of {seq} tokens exceeds the model's context of {}",
                self.config.context
            );
        }
        let (vocab, hidden) = (self.config.vocab, self.config.hidden);
        let embeddings = self.embedding.embeddings().detach();
        let ids = inputs.flatten_all()?;
        let mut x = embeddings
            .index_select(&ids, 0)?
            .reshape((batch, seq, hidden))?;
        let mut tapes = Vec::with_capacity(self.layers.len());
        for block in &self.layers {
            let (out, tape) = block.forward_taped(x, &self.rotary)?;
            tapes.push(tape);
            x = out;
        }
        let norm_weight = self.norm.weight.detach();
        let normed = ops::rms_norm(&x, &norm_weight, self.norm.eps)?;
        // Tied embeddings: the output head is the embedding matrix.
        let logits = ops::linear(&normed, &embeddings, None)?;
        let flat_logits = logits.reshape((batch * seq, vocab))?;
        let targets = targets.flatten_all()?;
        let log_probs = Var::from_tensor(
            &ops::cross_entropy(&flat_logits, &targets)?
                .neg()?
                .reshape((batch, seq))?,
        )?;
        let loss = loss(log_probs.as_tensor(), &logits)?;
        let d_rows = match loss.backward()?.get(log_probs.as_tensor()) {
            // The cross-entropy is −log p: its rows' gradient is −d log p.
            Some(d_log_probs) => d_log_probs.neg()?.flatten_all()?,
            None => Tensor::zeros(batch * seq, DType::F32, self.device())?,
        };
        let d_logits = ops::cross_entropy_grad(&flat_logits, &targets, &d_rows)?
            .reshape((batch, seq, vocab))?;

        let mut grads = empty_grads(self.device())?;
        let (d_normed, d_head, _) = ops::linear_grads(&normed, &embeddings, &d_logits)?;
        let (mut dx, d_norm_weight) =
            ops::rms_norm_grads(&x, &norm_weight, self.norm.eps, &d_normed)?;
        grads.insert(&self.norm.weight, d_norm_weight);
        for (block, tape) in self.layers.iter().zip(tapes).rev() {
            dx = block.backward(tape, &dx, &self.rotary, &mut grads)?;
        }
        let d_lookup =
            embeddings
                .zeros_like()?
                .index_add(&ids, &dx.reshape((batch * seq, hidden))?, 0)?;
        grads.insert(self.embedding.embeddings(), (d_head + d_lookup)?);
        Ok((loss.detach(), grads))
    }
}
