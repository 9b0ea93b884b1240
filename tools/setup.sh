#!/usr/bin/env bash
# One-time set-up on a fresh Debian (bookworm) machine: system packages, Rust check, Python venv.
# Idempotent; safe to re-run. Needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# python3-torch: CPU-only PyTorch for the offline tools and their tests (far lighter than PyPI's);
# dataset-fashion-mnist: the bundled model's data; systemd: systemd-analyze for
# tests/daemon/systemd_units.rs (no running systemd needed); the rest: ONNX tooling and the venv.
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

# torchvision (Debian's, built for python3-torch): tools/train.py's image transforms and the
# reference of the pre-processing parity test. Without recommends: they pull ffmpeg's device libs.
dpkg-query -W -f='${Status}' python3-torchvision 2>/dev/null | grep -q "install ok installed" || {
  echo "setup: installing python3-torchvision"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torchvision >/dev/null
}

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
# Real photos for the pre-processing parity tests: the 20 ImageNet JPEGs in foolbox's wheel
# (1.7 MB; only its data files are used, so no dependencies).
[ -e .venv/foolbox-data/foolbox/data/imagenet_10_541.jpg ] || \
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --target .venv/foolbox-data foolbox==3.3.4
echo "setup: ok"

# ---- ROS 2 node (clients/ros2) ----------------------------------------------------------------
# ROS 2 Kilted from PyPI wheels in a venv of its own: the wheels' bootstrapper (.pth) re-executes
# every Python process of its venv with LD_LIBRARY_PATH set, which the main .venv must not get.
# Then the node (editable, so tests run this checkout's code) and the message packages, built with
# the wheels' rosidl generators (python3-dev: the generated C extensions; iproute2: `ip`, for the
# tests' network namespace).
ROS_APT=(python3-dev iproute2)
ros_missing=()
for p in "${ROS_APT[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || ros_missing+=("$p")
done
if [ ${#ros_missing[@]} -gt 0 ]; then
  echo "setup: installing ${ros_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${ros_missing[@]}" >/dev/null
fi
[ -x .venv-ros2/bin/python ] || /usr/bin/python3 -m venv .venv-ros2
.venv-ros2/bin/python -c "import rclpy, sensor_msgs.msg, diagnostic_msgs.msg, catkin_pkg, pytest" 2>/dev/null || \
  .venv-ros2/bin/pip install -q --disable-pip-version-check -r clients/ros2/requirements.txt
.venv-ros2/bin/python -c "import sys, dvt_ros2, dvtd_client; sys.exit(not dvt_ros2.__file__.startswith('$PWD/'))" 2>/dev/null || \
  .venv-ros2/bin/pip install -q --disable-pip-version-check --no-deps -e clients/ros2
clients/ros2/tools/build_msgs.sh .venv-ros2
echo "setup: ROS 2 venv ok"

# ---- Triton backend (triton/) -----------------------------------------------------------------
# A real Triton 2.51 server for the backend's tests: the PyPI wheel nvidia-pytriton bundles it
# (no GPU needed). Unpacked, once, outside the clone (triton/env.sh says where; the wheel is
# checked against its pinned sha256), plus a venv with tritonclient[http] for the test clients.
. triton/env.sh
if [ ! -x "$DVT_TRITON_SERVER/pytriton/tritonserver/bin/tritonserver" ]; then
  echo "setup: fetching nvidia-pytriton $PYTRITON_VERSION (Triton 2.51 server) into $DVT_TRITON_HOME"
  mkdir -p "$DVT_TRITON_HOME/wheels"
  [ -f "$DVT_TRITON_HOME/wheels/$PYTRITON_WHEEL" ] || \
    .venv/bin/pip download -q --disable-pip-version-check --no-deps \
      -d "$DVT_TRITON_HOME/wheels" "nvidia-pytriton==$PYTRITON_VERSION"
  echo "$PYTRITON_SHA256  $DVT_TRITON_HOME/wheels/$PYTRITON_WHEEL" | sha256sum -c --quiet
  rm -rf "$DVT_TRITON_SERVER.tmp"
  /usr/bin/python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$DVT_TRITON_HOME/wheels/$PYTRITON_WHEEL" "$DVT_TRITON_SERVER.tmp"
  # zipfile drops the executable bit.
  chmod +x "$DVT_TRITON_SERVER.tmp/pytriton/tritonserver/bin/tritonserver"
  rm -rf "$DVT_TRITON_SERVER" && mv "$DVT_TRITON_SERVER.tmp" "$DVT_TRITON_SERVER"
fi
[ -x "$DVT_TRITON_VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$DVT_TRITON_VENV"
"$DVT_TRITON_VENV/bin/python" -c "import tritonclient.http, pytest" 2>/dev/null || \
  "$DVT_TRITON_VENV/bin/pip" install -q --disable-pip-version-check -r triton/tests/requirements.txt
echo "setup: Triton test kit ok ($DVT_TRITON_HOME)"
