# Pins and cache locations of the Triton test kit: sourced by tools/setup.sh (which installs it)
# and tools/test.sh (which uses it). Kept outside the clone so that CI's fresh clones reuse it.
#
# nvidia-pytriton 0.7.0 bundles tritonserver 2.51.0 (TRITONBACKEND API 1.19), the version the
# headers in triton/include are pinned to. Its wheel is checked against this sha256.
PYTRITON_VERSION=0.7.0
PYTRITON_WHEEL=nvidia_pytriton-0.7.0-py3-none-manylinux_2_35_x86_64.whl
PYTRITON_SHA256=21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df
if [ -z "${DVT_TRITON_HOME:-}" ]; then
  if mkdir -p /var/cache/dvt-edge/pytriton 2>/dev/null && [ -w /var/cache/dvt-edge/pytriton ]; then
    DVT_TRITON_HOME=/var/cache/dvt-edge/pytriton
  else
    DVT_TRITON_HOME="$HOME/.cache/dvt-edge/pytriton"
  fi
fi
# The unpacked wheel (pytriton/tritonserver/bin/tritonserver, nvidia_pytriton.libs/).
DVT_TRITON_SERVER="$DVT_TRITON_HOME/nvidia-pytriton-$PYTRITON_VERSION"
# tritonclient[http] + pytest (triton/tests/requirements.txt), on Debian's python3 and numpy.
DVT_TRITON_VENV="$DVT_TRITON_HOME/venv-tritonclient-2.73.0"
export DVT_TRITON_HOME DVT_TRITON_SERVER DVT_TRITON_VENV
