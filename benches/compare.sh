#!/usr/bin/env bash
# rlp against PyTorch eager (CPU, fp32) on the same shapes, in one run, alternating A/B rounds
# so that drift of the machine's speed hits both alike. Each measurement runs in its own process
# (so its peak memory is its own) and prints a JSON line; the summary table gives the medians,
# the rlp/PyTorch ratios, peak memory, and MFU: analytic training FLOPs per token (6 N over the
# matrices a token meets, LM head included, plus 12 L T d for attention, as PaLM counts it)
# against the best fp32 GEMM rate measured in the same run (1024³ products, rlp and torch).
#
#   benches/compare.sh [ROUNDS]          (needs python3 with torch: PYTHON=/path/to/python)
#
# DEVICE=cuda runs both on the first GPU (rlp built with `--features cuda`), on the shapes P
# (`paper-100m`), B and A; the GEMM peak is then a 4096³ fp32 product. RLP_BENCH=FILE uses a
# prebuilt `model` bench binary (`cargo bench --bench model --no-run` prints where it is)
# instead of building one, for a machine without cargo. On a GPU the memory columns are
# PyTorch's peak device allocation; rlp's is not measured there (left empty).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
python=${PYTHON:-python3}
threads=${THREADS:-2}
device=${DEVICE:-cpu}
# As `rlp run` sets them: candle's element-wise pool gets no extra (spinning) workers.
export RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=${CANDLE_NUM_THREADS:-1}
if [ "$device" = cuda ]; then
  train_configs="P B A" sample_configs="P A" rlp_device=cuda
else
  train_configs="A A8 B" sample_configs="A B" rlp_device=
fi
if [ -z "${RLP_BENCH:-}" ]; then
  cargo bench --bench model --no-run --quiet 2>/dev/null
fi
out=$(mktemp)
rlp() {
  if [ -n "${RLP_BENCH:-}" ]; then "$RLP_BENCH" $rlp_device "$@"
  else cargo bench --quiet --bench model -- $rlp_device "$@"
  fi | tee -a "$out"
}
torch() { "$python" benches/torch_baseline.py --threads "$threads" --device "$device" "$@" | tee -a "$out"; }
for round in $(seq "$rounds"); do
  rlp gemm
  torch --measure gemm
  for config in $train_configs; do
    rlp "$config" train
    torch --config "$config" --measure train --attention sdpa
    torch --config "$config" --measure train --attention eager
  done
  for config in $sample_configs; do
    rlp "$config" sample
    torch --config "$config" --measure sample --attention sdpa
  done
done
"$python" - "$out" "$train_configs" "$sample_configs" "$device" <<'PY'
import json, statistics, sys
sys.path.insert(0, "benches")
from torch_baseline import CONFIGS
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, config, key):
    v = [r[key] for r in rows if r["impl"] == impl and r.get("config") == config and key in r]
    return statistics.median(v) if v else float("nan")
gemm = {i: med(i, None, "gemm_gflops") for i in ["rlp", "torch"]}
peak = max(gemm.values()) * 1e9
size = 1024 if sys.argv[4] == "cpu" else 4096
print(f"device {sys.argv[4]}; fp32 GEMM {size}^3: rlp {gemm['rlp']:.1f} GFLOP/s, torch {gemm['torch']:.1f} GFLOP/s (peak = the larger)")
def flops_per_token(config, vocab=2459):
    d, layers, heads, kv, ffn, seq, batch = CONFIGS[config]
    hd = d // heads
    n = layers * (d * d + 2 * d * kv * hd + d * d + 3 * d * ffn) + vocab * d
    return 6 * n + 12 * layers * seq * d
print(f"{'config':<7}{'measure':<8}{'rlp':>9}{'sdpa':>9}{'eager':>9}{'rlp/sdpa':>9}{'rlp/eag':>8}"
      f"{'rlp MB':>8}{'sdpa MB':>8}{'rlp MFU':>8}{'sdpa MFU':>9}")
rows_wanted = [(c, "train") for c in sys.argv[2].split()] + [(c, "sample") for c in sys.argv[3].split()]
for config, measure in rows_wanted:
    key = f"{measure}_tokens_per_s"
    r, s, e = (med(i, config, key) for i in ["rlp", "torch-sdpa", "torch-eager"])
    mem = lambda impl: statistics.median([x.get("peak_rss_mb", float("nan")) for x in rows if x["impl"] == impl
                                          and x.get("config") == config and key in x] or [float("nan")])
    mfu = lambda rate: rate * flops_per_token(config) / peak if measure == "train" else float("nan")
    print(f"{config:<7}{measure:<8}{r:>9.0f}{s:>9.0f}{e:>9.0f}{r/s:>9.2f}{r/e:>8.2f}"
          f"{mem('rlp'):>8.0f}{mem('torch-sdpa'):>8.0f}{mfu(r):>8.0%}{mfu(s):>9.0%}")
PY
rm -f "$out"
