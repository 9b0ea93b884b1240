#!/usr/bin/env bash
# Bounded cargo-fuzz run of dvtd's wire parsers (fuzz/): SECONDS per target (default 30).
# Needs a nightly toolchain; installs cargo-fuzz (about a minute) when it is missing. The
# control-line and pixel parsers are fuzzed by proptest in tests/daemon/fuzz.rs (cargo test).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --root "${CARGO_FUZZ_ROOT:-$HOME/.cargo}"
  export PATH="${CARGO_FUZZ_ROOT:-$HOME/.cargo}/bin:$PATH"
fi
for target in frame_header reply; do
  cargo +nightly fuzz run "$target" -- -max_total_time="$secs"
done
