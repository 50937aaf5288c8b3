#!/usr/bin/env bash
# rlp against PyTorch eager (CPU, fp32) on the same shapes, in one run, alternating A/B rounds
# so that drift of the machine's speed hits both alike. Each measurement runs in its own process
# (so its peak memory is its own) and prints a JSON line; the summary table gives the medians,
# the rlp/PyTorch ratios, peak memory, and MFU: analytic training FLOPs per token (6 N over the
# matrices a token meets, LM head included, plus 12 L T d for attention, as PaLM counts it)
# against the best fp32 GEMM rate measured in the same run (1024³ products, rlp and torch).
#
#   benches/compare.sh [ROUNDS]          (needs python3 with torch: PYTHON=/path/to/python)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
python=${PYTHON:-python3}
threads=${THREADS:-2}
# As `rlp run` sets them: candle's element-wise pool gets no extra (spinning) workers.
export RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=${CANDLE_NUM_THREADS:-1}
cargo bench --bench model --no-run --quiet 2>/dev/null
out=$(mktemp)
rlp() { cargo bench --quiet --bench model -- "$@" | tee -a "$out"; }
torch() { "$python" benches/torch_baseline.py --threads "$threads" "$@" | tee -a "$out"; }
for round in $(seq "$rounds"); do
  rlp gemm
  torch --measure gemm
  for config in A A8 B; do
    rlp "$config" train
    torch --config "$config" --measure train --attention sdpa
    torch --config "$config" --measure train --attention eager
  done
  for config in A B; do
    rlp "$config" sample
    torch --config "$config" --measure sample --attention sdpa
  done
done
"$python" - "$out" <<'PY'
import json, statistics, sys
sys.path.insert(0, "benches")
from torch_baseline import CONFIGS
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, config, key):
    v = [r[key] for r in rows if r["impl"] == impl and r.get("config") == config and key in r]
    return statistics.median(v) if v else float("nan")
gemm = {i: med(i, None, "gemm_gflops") for i in ["rlp", "torch"]}
peak = max(gemm.values()) * 1e9
print(f"fp32 GEMM 1024^3: rlp {gemm['rlp']:.1f} GFLOP/s, torch {gemm['torch']:.1f} GFLOP/s (peak = the larger)")
def flops_per_token(config, vocab=2459):
    d, layers, heads, kv, ffn, seq, batch = CONFIGS[config]
    hd = d // heads
    n = layers * (d * d + 2 * d * kv * hd + d * d + 3 * d * ffn) + vocab * d
    return 6 * n + 12 * layers * seq * d
print(f"{'config':<7}{'measure':<8}{'rlp':>9}{'sdpa':>9}{'eager':>9}{'rlp/sdpa':>9}{'rlp/eag':>8}"
      f"{'rlp MB':>8}{'sdpa MB':>8}{'rlp MFU':>8}{'sdpa MFU':>9}")
for config, measure in [("A", "train"), ("A8", "train"), ("B", "train"), ("A", "sample"), ("B", "sample")]:
    key = f"{measure}_tokens_per_s"
    r, s, e = (med(i, config, key) for i in ["rlp", "torch-sdpa", "torch-eager"])
    mem = lambda impl: statistics.median([x["peak_rss_mb"] for x in rows if x["impl"] == impl
                                          and x.get("config") == config and key in x] or [float("nan")])
    mfu = lambda rate: rate * flops_per_token(config) / peak if measure == "train" else float("nan")
    print(f"{config:<7}{measure:<8}{r:>9.0f}{s:>9.0f}{e:>9.0f}{r/s:>9.2f}{r/e:>8.2f}"
          f"{mem('rlp'):>8.0f}{mem('torch-sdpa'):>8.0f}{mfu(r):>8.0%}{mfu(s):>9.0%}")
PY
rm -f "$out"
