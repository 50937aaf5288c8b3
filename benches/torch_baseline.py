"""PyTorch baseline for `cargo bench --bench model`: the same Qwen2-style decoder (RMSNorm,
RoPE rotate-half, grouped-query attention with q/k/v biases, SwiGLU, tied embeddings, init std
0.02), the same shapes, the same AdamW step with global-norm clipping, and KV-cache sampling of
64 continuations of one 64-token prompt (one shared prefill), 192 new tokens, temperature 0.8.

Run by benches/compare.sh; prints one JSON line per measurement (`--measure train|sample|gemm`,
one per process so that `peak_rss_mb` is the measurement's own). Eager mode, CPU, fp32,
`--threads` threads (2 on the reference machine). `--attention sdpa` uses PyTorch's fused
scaled_dot_product_attention; `--attention eager` the plain matmul-softmax-matmul. `--device cuda`
runs on the first GPU (fp32, no TF32, as candle's default), where config P is `paper-100m`.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    # name: (hidden, layers, heads, kv_heads, ffn, seq, batch)
    "A": (128, 4, 4, 4, 384, 256, 32),
    "A8": (128, 4, 4, 4, 384, 256, 8),
    "B": (256, 6, 8, 4, 768, 512, 16),
    # The prelude's `paper-100m` (a GPU shape).
    "P": (768, 12, 12, 2, 3072, 512, 16),
}


class Block(torch.nn.Module):
    def __init__(self, d, heads, kv_heads, ffn, attention):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.q = torch.nn.Linear(d, d, bias=True)
        self.k = torch.nn.Linear(d, kv_heads * self.hd, bias=True)
        self.v = torch.nn.Linear(d, kv_heads * self.hd, bias=True)
        self.o = torch.nn.Linear(d, d, bias=False)
        self.gate = torch.nn.Linear(d, ffn, bias=False)
        self.up = torch.nn.Linear(d, ffn, bias=False)
        self.down = torch.nn.Linear(ffn, d, bias=False)
        self.n1 = torch.nn.Parameter(torch.ones(d))
        self.n2 = torch.nn.Parameter(torch.ones(d))
        self.attention = attention

    @staticmethod
    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    @staticmethod
    def rope(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def forward(self, x, cos, sin, cache=None):
        b, t, d = x.shape
        h = self.norm(x, self.n1)
        q = self.q(h).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        groups = self.heads // self.kv_heads
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        causal = t > 1
        if self.attention == "sdpa":
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            s = q @ k.transpose(-1, -2) / math.sqrt(self.hd)
            if causal:
                total = k.shape[2]
                mask = torch.ones(t, total, dtype=torch.bool, device=s.device).tril(total - t)
                s = s.masked_fill(~mask, float("-inf"))
            a = s.softmax(-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        h = self.norm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, vocab, d, layers, heads, kv_heads, ffn, context, attention):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(
            Block(d, heads, kv_heads, ffn, attention) for _ in range(layers)
        )
        self.norm = torch.nn.Parameter(torch.ones(d))
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        hd = d // heads
        inv = 1.0 / (1e6 ** (torch.arange(0, hd // 2).float() * 2 / hd))
        ang = torch.outer(torch.arange(context).float(), inv)
        ang = torch.cat([ang, ang], dim=-1)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, tokens, caches=None, offset=0):
        t = tokens.shape[1]
        cos, sin = self.cos[offset : offset + t], self.sin[offset : offset + t]
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, None if caches is None else caches[i])
        x = Block.norm(x, self.norm)
        return x @ self.embed.weight.t()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(model, vocab, seq, batch, steps, device):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=gen).to(device)

    def step():
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch * seq / (time.perf_counter() - start)


@torch.no_grad()
def sample_rate(model, vocab, device, n=64, prompt_len=64, new=192):
    gen = torch.Generator(device=device).manual_seed(0)
    prompt = torch.randint(0, vocab, (1, prompt_len), generator=gen, device=device)
    sync(device)
    start = time.perf_counter()
    caches = [dict() for _ in model.blocks]
    logits = model(prompt, caches, 0)[:, -1]
    for c in caches:
        c["k"], c["v"] = c["k"].expand(n, -1, -1, -1), c["v"].expand(n, -1, -1, -1)
    logits = logits.expand(n, -1)
    for i in range(new):
        probs = (logits / 0.8).softmax(-1)
        nxt = torch.multinomial(probs, 1, generator=gen)
        if i + 1 == new:
            break
        logits = model(nxt, caches, prompt_len + i)[:, -1]
    sync(device)
    return n * new / (time.perf_counter() - start)


def gemm_rate(device, reps=10):
    """fp32 GFLOP/s of an n x n x n matrix product (the machine's GEMM peak, as torch sees it):
    n = 1024 on the CPU, 4096 on a GPU."""
    n = 1024 if device.type == "cpu" else 4096
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def peak_rss_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=sorted(CONFIGS), default="A")
    ap.add_argument("--measure", choices=["train", "sample", "both", "gemm"], default="both")
    ap.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=2459)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.measure == "gemm":
        out = {"impl": "torch", "device": args.device, "gemm_gflops": gemm_rate(device)}
        print(json.dumps(out), flush=True)
        return
    d, layers, heads, kv, ffn, seq, batch = CONFIGS[args.config]
    model = Model(args.vocab, d, layers, heads, kv, ffn, 1024, args.attention).to(device)
    out = {"impl": f"torch-{args.attention}", "device": args.device, "config": args.config}
    if args.measure in ("train", "both"):
        out["train_tokens_per_s"] = train_rate(model, args.vocab, seq, batch, args.steps, device)
    if args.measure in ("sample", "both"):
        # A fresh process samples at half speed on its first run (measured: 1.9k, then 3.8k,
        # 4.4k tokens/s on config A): time the second of two runs, as rlp does.
        sample_rate(model.eval(), args.vocab, device)
        out["sample_tokens_per_s"] = sample_rate(model.eval(), args.vocab, device)
    out["peak_rss_mb"] = peak_rss_mb(device)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
