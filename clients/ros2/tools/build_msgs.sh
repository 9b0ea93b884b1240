#!/usr/bin/env bash
# Builds the message packages in clients/ros2/msgs (dvt_msgs, and the vision_msgs subset) with
# the rosidl generators of a PyPI-wheel ROS 2 venv, without colcon, and installs them into the
# venv's own prefix: their Python modules land in its site-packages and their libraries in its
# lib/, which the wheels' bootstrapper already puts on LD_LIBRARY_PATH, so nothing needs setting
# at run time. Skips a package whose sources are unchanged since its last build.
# Usage: build_msgs.sh VENV
set -euo pipefail
VENV="$(cd "${1:?usage: build_msgs.sh VENV}" && pwd)"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY="$VENV/bin/python"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# The wheels were built in a manylinux image: their CMake export files name that image's
# Python and numpy include directories, which do not exist here. Point them at this venv's
# (the interpreter's headers and the venv's numpy); idempotent.
PYINC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[ -f "$PYINC/Python.h" ] || { echo "build_msgs: $PYINC/Python.h missing (apt install python3-dev)"; exit 1; }
mapfile -t exports < <(grep -rl /opt/python/cp311-cp311/ "$VENV"/share/*/cmake 2>/dev/null || true)
if [ ${#exports[@]} -gt 0 ]; then
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
         -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$SITE#g" "${exports[@]}"
fi

mkdir -p "$VENV/build"
for pkg in vision_msgs dvt_msgs; do
  src="$HERE/msgs/$pkg"
  build="$VENV/build/$pkg"
  stamp="$VENV/build/$pkg.stamp"
  sum="$(cd "$src" && cat CMakeLists.txt package.xml msg/*.msg | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && \
     "$PY" -c "import $pkg.msg" 2>/dev/null; then
    continue
  fi
  echo "build_msgs: building $pkg"
  rm -rf "$build"
  # AMENT_PREFIX_PATH: ament's package index (std_msgs, the generators) lives in the venv.
  AMENT_PREFIX_PATH="$VENV" "$VENV/bin/cmake" -S "$src" -B "$build" -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" >"$VENV/build/$pkg.log" 2>&1 \
    || { tail -30 "$VENV/build/$pkg.log"; echo "build_msgs: configuring $pkg failed"; exit 1; }
  AMENT_PREFIX_PATH="$VENV" "$VENV/bin/cmake" --build "$build" -j "$(nproc)" >>"$VENV/build/$pkg.log" 2>&1 \
    && "$VENV/bin/cmake" --install "$build" >>"$VENV/build/$pkg.log" 2>&1 \
    || { tail -30 "$VENV/build/$pkg.log"; echo "build_msgs: building $pkg failed"; exit 1; }
  echo "$sum" >"$stamp"
done
