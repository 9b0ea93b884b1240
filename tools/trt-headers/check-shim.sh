#!/usr/bin/env bash
# Compiles the TensorRT shim (syntax and types) against every pinned TensorRT header set (10.16 and
# 11.4 from trtx-sys, fetched by `cargo fetch`; nothing vendored). build.rs compiles one version;
# this proves the other major too. ~5 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
for major in 10 11; do
  manifest="tools/trt-headers/trt$major/Cargo.toml"
  (unset CARGO_TARGET_DIR; cargo fetch --locked --quiet --manifest-path "$manifest")
  crate=$(unset CARGO_TARGET_DIR; cargo metadata --locked --format-version 1 --manifest-path "$manifest" \
    | grep -o '"manifest_path":"[^"]*/trtx-sys-[^"]*/Cargo.toml"' | head -1 | sed 's/.*:"//; s#/Cargo.toml"##')
  include=$(ls -d "$crate"/TensorRT-Headers/TRT-Enterprise-"$major".* | head -1)
  ${CXX:-g++} -std=c++17 -Wall -Wextra -Werror -fsyntax-only -Icsrc -isystem "$include" csrc/trt_shim.cpp
  echo "trt shim compiles against $(basename "$include")"
done
