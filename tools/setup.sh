#!/usr/bin/env bash
# One-time set-up on a fresh Debian (bookworm) machine: system packages, Rust check, Python venv.
# Idempotent; safe to re-run. Needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# python3-torch: CPU-only PyTorch for the offline tools and their tests (far lighter than PyPI's);
# dataset-fashion-mnist: the bundled model's data; systemd: systemd-analyze for
# tests/systemd_units.rs (no running systemd needed); the rest: ONNX tooling and the venv.
APT_PACKAGES=(python3-torch python3-onnx python3-numpy python3-pil python3-venv python3-pip
              libopenblas0-pthread dataset-fashion-mnist pkg-config systemd)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust >= 1.92 with rustup)"; exit 1; }

# Debian's python3 (the one python3-torch is built for), with onnxruntime and pytest from PyPI.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -c "import onnxruntime, pytest" 2>/dev/null || \
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
# ONNX Runtime's shared library from that wheel, at a fixed path: the CPU backend's ort engine
# dlopens it (ORT_DYLIB_PATH, set for cargo in .cargo/config.toml).
ln -sf "$(.venv/bin/python -c 'import glob, os, onnxruntime as o; print(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so.1*"))[0])')" .venv/lib/libonnxruntime.so
# A real TensorRT runtime for the loader test (no GPU needed to dlopen and version-check it):
# NVIDIA's lean runtime, the only libnvinfer that PyPI serves as a wheel (46 MB).
[ -e .venv/trt-lean/tensorrt_lean_libs/libnvinfer_lean.so.10 ] || \
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --target .venv/trt-lean \
    tensorrt-lean-cu12-libs==10.16.1.11
echo "setup: ok"
