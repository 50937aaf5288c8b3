#!/usr/bin/env bash
# rlp against PyTorch eager (CPU, fp32) on the same shapes, in one run, alternating A/B rounds
# so that drift of the machine's speed hits both alike. Prints each measurement as a JSON line,
# then the rlp/PyTorch ratios (median of the rounds).
#
#   benches/compare.sh [ROUNDS]          (needs python3 with torch: PYTHON=/path/to/python)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
python=${PYTHON:-python3}
threads=${THREADS:-2}
export RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=$threads
cargo bench --bench model --no-run --quiet 2>/dev/null
out=$(mktemp)
for round in $(seq "$rounds"); do
  for config in A B; do
    cargo bench --quiet --bench model -- "$config" | tee -a "$out"
    "$python" benches/torch_baseline.py --config "$config" --attention sdpa --threads "$threads" | tee -a "$out"
    "$python" benches/torch_baseline.py --config "$config" --attention eager --threads "$threads" | tee -a "$out"
  done
done
"$python" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, config, key):
    v = [r[key] for r in rows if r["impl"] == impl and r["config"] == config and key in r]
    return statistics.median(v) if v else float("nan")
print(f"{'config':<7}{'measure':<10}{'rlp':>10}{'torch-sdpa':>12}{'torch-eager':>12}{'rlp/sdpa':>10}{'rlp/eager':>10}")
for config in ["A", "B"]:
    for key, label in [("train_tokens_per_s", "train"), ("sample_tokens_per_s", "sample")]:
        r, s, e = (med(i, config, key) for i in ["rlp", "torch-sdpa", "torch-eager"])
        print(f"{config:<7}{label:<10}{r:>10.0f}{s:>12.0f}{e:>12.0f}{r/s:>10.2f}{r/e:>10.2f}")
PY
rm -f "$out"
