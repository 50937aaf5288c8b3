#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and PyTorch but no Rust toolchain: given a
# folder BIN holding `rlp` and the `model` bench binary, both built with `--features cuda`,
#   1. benches/compare.sh on the GPU (rlp on candle's CUDA backend against PyTorch, same GPU,
#      shapes P = paper-100m, B and A);
#   2. the quickstart with `--device cuda`, its wall time and its summary table.
#
#   benches/gpu.sh BIN [OUT]      (OUT: where logs go, default /tmp/rlp-gpu)
#
# The binaries link cuBLAS, cuRAND and NVRTC dynamically (candle's CUDA backend); they are taken
# from wherever this machine has them (the CUDA toolkit, or PyTorch's wheels).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(cd "$1" && pwd)
out=${2:-/tmp/rlp-gpu}
mkdir -p "$out"
if [ -f "$bin/rlp.xz" ]; then  # carried compressed (the PTX inside compresses 10x)
  unpacked=$(mktemp -d)
  for name in rlp model; do xz -dc "$bin/$name.xz" >"$unpacked/$name" && chmod +x "$unpacked/$name"; done
  bin=$unpacked
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
libs=$(find /usr/local /opt /usr/lib -name 'libcublas.so.*' -printf '%h\n' 2>/dev/null | sort -u)
for name in libcurand.so libnvrtc.so libcudart.so libcublasLt.so libcuda.so; do
  libs="$libs $(find /usr/local /opt /usr/lib -name "$name.*" -printf '%h\n' 2>/dev/null | sort -u)"
done
export LD_LIBRARY_PATH=$(echo $libs | tr ' ' '\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
if ldd "$bin/rlp" | grep 'not found'; then
  echo "error: a library the CUDA build needs is missing here" >&2
  exit 1
fi

echo "== smoke: the GEMM rate and two training steps on the GPU"
RLP_BENCH_STEPS=2 timeout 120 "$bin/model" cuda gemm A8 train || echo "smoke failed: $?"

echo "== benchmark"
DEVICE=cuda RLP_BENCH="$bin/model" THREADS=${THREADS:-8} RLP_BENCH_STEPS=${RLP_BENCH_STEPS:-10} \
  timeout "${BENCH_LIMIT:-300}" benches/compare.sh 1 2>&1 | tee "$out/bench.txt"

echo "== quickstart --device cuda"
runs=$(mktemp -d)
start=$(date +%s)
timeout "${QUICKSTART_LIMIT:-300}" "$bin/rlp" run pipelines/quickstart.rlp --device cuda \
  --out "$runs" 2>"$out/quickstart.err" | tee "$out/quickstart.txt"
status=${PIPESTATUS[0]}
echo "quickstart exit $status after $(( $(date +%s) - start )) s"
tail -5 "$out/quickstart.err"
for stage in "$runs"/quickstart/stages/*/; do
  [ -f "$stage/done.json" ] && echo "$(basename "$stage"): $(cat "$stage/done.json")"
done
exit 0
