#!/usr/bin/env bash
# GPU check of the CUDA/TensorRT backend, for a lent NVIDIA machine (issue 4). Builds with the
# features and runs what the machine allows:
#   * CUDA driver only (a datacenter GPU without TensorRT): the `cuda` layer tests (pinned and
#     device buffers, the on-device row hand-off) and H2D/D2H bandwidth, pinned vs pageable;
#   * TensorRT too (trtexec + libnvinfer, e.g. a Jetson or an RTX box): `dvt build` of the bundled
#     cascade's FP32 and FP16 engines, GPU vs CPU logits (FP32 rel <= 1e-3, FP16 top-1 >= 99%) and a
#     per-stage / cascade timing table.
# It prints plainly what it skipped and why. Target: under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
skipped=()
status=0
step() { echo; echo "=== $*"; }

step "machine"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || skipped+=("nvidia-smi: not found")
trtexec=""
for c in "${TRTEXEC:-}" "$(command -v trtexec || true)" /usr/src/tensorrt/bin/trtexec "${TENSORRT_ROOT:-/nonexistent}/bin/trtexec"; do
  [ -n "$c" ] && [ -x "$c" ] && { trtexec="$c"; break; }
done
echo "trtexec: ${trtexec:-none}"

step "build (features cuda,tensorrt)"
# The TensorRT major of the shim must match the installed library: read it from trtexec if any.
if [ -n "$trtexec" ]; then
  code=$("$trtexec" --help 2>&1 | grep -o '\[TensorRT v[0-9]*' | head -1 | grep -o '[0-9]*$' || true)
  [ -n "$code" ] && export DVT_TRT_MAJOR=$((code / 10000)) && echo "TensorRT $code -> DVT_TRT_MAJOR=$DVT_TRT_MAJOR"
fi
cargo build --release --features cuda,tensorrt --bin dvt || { echo "BUILD FAILED"; exit 1; }

step "cuda layer tests"
cargo test --release --features cuda,tensorrt --test cuda_device --test tensorrt_loader -- --nocapture || status=1

step "H2D/D2H bandwidth (64 MiB, pinned vs pageable)"
DVT_BANDWIDTH=1 cargo test --release --features cuda --test cuda_bandwidth -- --nocapture || status=1

if [ -z "$trtexec" ]; then
  skipped+=("TensorRT engine build, GPU-vs-CPU parity and timing table: no trtexec/TensorRT on this machine")
else
  for p in fp32 fp16; do
    step "dvt build --precision $p"
    if "$CARGO_TARGET_DIR/release/dvt" build --precision "$p" --trtexec "$trtexec" --batch 1,1,32; then
      step "GPU vs CPU ($p) and timing"
      DVT_GPU_CHECK=$p cargo test --release --features cuda,tensorrt --test tensorrt_gpu -- --nocapture || status=1
    else
      status=1
      skipped+=("$p parity: engine build failed")
    fi
  done
fi

step "summary"
if [ ${#skipped[@]} -eq 0 ]; then echo "nothing skipped"; else printf 'SKIPPED: %s\n' "${skipped[@]}"; fi
[ $status -eq 0 ] && echo "GPU CHECK PASSED (for the parts that ran)" || echo "GPU CHECK FAILED"
exit $status
