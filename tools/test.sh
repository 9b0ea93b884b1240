#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the GPU features' build, Rust and Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CPU backend's ONNX Runtime engine loads the library setup.sh linked (cargo also sets this
# from .cargo/config.toml; exported for the Python tests' `dvt` runs too), and its tests must
# run here, not skip.
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.venv/lib/libonnxruntime.so}"
export DVT_REQUIRE_ORT=1
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The library as an embedder builds it (no ONNX Runtime, no clap/indicatif/plotters), and the
# tract-only binaries.
cargo clippy --lib --no-default-features -- -D warnings
cargo clippy --lib --bins --no-default-features --features cli -- -D warnings
# ...and an embedder's dependency tree has none of the command line's crates.
if cargo tree -p dvt-edge --no-default-features -e normal --prefix none | grep -E '^(clap|indicatif|plotters) '; then
  echo "the library without default features pulls in a command-line crate" >&2
  exit 1
fi
cargo test
# The embedder's example runs (AdaptiveCascade on the bundled model under a budget).
cargo run --quiet --example classify -- 0.01gflops 500
# GPU features. check-shim.sh first: it fetches both pinned TensorRT header sets (so build.rs
# never has to) and compiles the shim against TRT 10.16 and 11.4. Then build + lint with the
# features (shim against TRT 10) and run the tests that need no device.
tools/trt-headers/check-shim.sh
cargo clippy --lib --bins --tests --features cuda,tensorrt -- -D warnings
# DVT_NVINFER: the real TensorRT 10.16 lean runtime that setup.sh fetched from PyPI, so the loader
# test dlopens and version-checks a genuine libnvinfer (and the backend refuses cleanly: no GPU).
DVT_NVINFER="$PWD/.venv/trt-lean/tensorrt_lean_libs/libnvinfer_lean.so.10" \
  cargo test --features cuda,tensorrt --test backends
# dvtd's NVML power budget source (nvml-wrapper loads libnvidia-ml at run time).
cargo clippy --lib --bins --features nvml -- -D warnings
# Bounded fuzzing of the frame and reply parsers (needs a nightly toolchain).
if rustup toolchain list 2>/dev/null | grep -q nightly; then tools/fuzz.sh 20; fi
# The Python tests of the official-model exporter and of tools/train.py run the built `dvt
# check-bundle`/`eval`/`calibrate` on the bundles they write (Rust CPU backend vs PyTorch), and
# the pre-processing parity test runs the `preprocess` example, so both are built first.
cargo build --bin dvt --example preprocess
export DVT_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/dvt"
export DVT_PREPROCESS_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/examples/preprocess"
.venv/bin/python -m pytest -q tools/tests

# ---- ROS 2 node (clients/ros2) ----------------------------------------------------------------
# Its tests start a real dvtd and the real node and talk real DDS, confined to loopback by
# tools/isolated.sh (as root: a network namespace with only `lo`). DVT_REQUIRE_ROS2: a missing
# piece fails them here instead of skipping. `timeout`: they stop by themselves regardless.
cargo build --bin dvtd
export DVTD_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/dvtd"
DVT_REQUIRE_ROS2=1 timeout -k 10 600 clients/ros2/tools/isolated.sh \
  .venv-ros2/bin/python -m pytest -q -p no:cacheprovider clients/ros2/tests

# ---- Triton backend (triton/) -----------------------------------------------------------------
# libtriton_dvt.so: lints (also with the TensorRT features it needs on a GPU server), unit tests,
# then the real thing: setup.sh's tritonserver 2.51 (nvidia-pytriton wheel) on 127.0.0.1 with
# random free ports, loading the backend, driven by tritonclient with Fashion-MNIST test images
# and compared with `dvt eval` (triton/tests/test_triton.py). DVT_REQUIRE_TRITON: a missing
# piece fails instead of skipping. `timeout`: bounded regardless; the tests stop the server by
# its PID.
cargo fmt --all --check
cargo clippy -p triton-dvt --all-targets -- -D warnings
cargo clippy -p triton-dvt --lib --features cuda,tensorrt -- -D warnings
cargo test -p triton-dvt
cargo build -p triton-dvt --lib --example reference
. triton/env.sh
TARGET="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug"
DVT_REQUIRE_TRITON=1 DVT_TRITON_LIB="$TARGET/libtriton_dvt.so" \
  DVT_TRITON_REFERENCE="$TARGET/examples/reference" \
  timeout -k 10 600 "$DVT_TRITON_VENV/bin/python" -m pytest -q -p no:cacheprovider triton/tests
