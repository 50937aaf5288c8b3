#!/usr/bin/env bash
# Builds `rlp` and the `model` bench with `--features cuda` on a machine WITHOUT a GPU or a CUDA
# toolkit, for a GPU machine without cargo (then `benches/gpu.sh DIR` there). The toolkit comes
# from NVIDIA's PyPI wheels (nvcc, the CUDA runtime, cuBLAS, cuRAND, NVRTC, CUDA 13.0), and the
# driver library from a stub generated here: the binaries link libcuda.so.1, which only the GPU
# machine's driver provides for real.
#
#   benches/build-cuda.sh [DIR]     (DIR: where the binaries go, compressed; default gpu/)
#
# Needs python3 with pip (and the network, for the wheels), gcc and xz. Takes ~15 minutes on 2
# cores (candle's kernels are compiled by nvcc for sm_90, the H100/H200; set CUDA_COMPUTE_CAP
# for another GPU). The compiled PTX compresses about tenfold, which keeps the binaries small
# enough to travel (rlp.xz ~2.6 MB, model.xz ~1.6 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-gpu}
toolkit=${CUDA_WHEELS:-/tmp/rlp-cuda}
root=$toolkit/site/nvidia/cu13
if [ ! -x "$root/bin/nvcc" ]; then
  mkdir -p "$toolkit/wheels"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$toolkit/wheels" \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cublas==13.0.*" \
    "nvidia-curand==10.4.0.*" "nvidia-cuda-nvrtc==13.0.*"
  for wheel in "$toolkit"/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$toolkit/site"; done
  chmod +x "$root"/bin/* "$root"/nvvm/bin/*
  # The wheels ship versioned libraries only; the linker looks for the plain names.
  for lib in cudart cublas cublasLt curand nvrtc; do
    ln -sf "$(basename "$(ls "$root"/lib/lib$lib.so.* | head -1)")" "$root/lib/lib$lib.so"
  done
  # A stub driver library: every function cudarc's bindings declare, doing nothing.
  grep -ohE '^pub unsafe fn (cu[A-Za-z0-9_]+)\(' \
    "$(cargo metadata --format-version 1 --features cuda | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))' | xargs dirname)"/src/driver/sys/mod.rs |
    sed -E 's/pub unsafe fn (.*)\(/void \1(void) {}/' | sort -u >"$toolkit/libcuda-stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/libcuda.so" "$toolkit/libcuda-stub.c"
fi
export CUDA_ROOT=$root PATH=$root/bin:$PATH LIBRARY_PATH=$root/lib
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000
# Not this machine's CPU (.cargo/config.toml builds for the building CPU): the GPU host's.
export RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
cargo build --release --features cuda --bin rlp
bench=$(cargo bench --features cuda --bench model --no-run 2>&1 | grep -oE '\(.*model-[0-9a-f]+\)' | tr -d '()')
mkdir -p "$dest"
for pair in "rlp:$CARGO_TARGET_DIR/release/rlp" "model:$bench"; do
  name=${pair%%:*}
  strip -o "$dest/$name" "${pair#*:}"
  xz -f -6 "$dest/$name"
done
ls -l "$dest"
