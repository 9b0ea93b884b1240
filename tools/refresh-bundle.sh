#!/usr/bin/env bash
# After a retrain: rewrite engines/fmnist-dvt from the finished checkpoints and regenerate, from
# it, everything derived from the bundle, in order. CI never runs this (it never trains).
#
#   bash tools/refresh-bundle.sh WORK [LOG]
#
# WORK is tools/train_fmnist.py's --work folder with all four models trained to the end
# (cascade, static 4x4, 7x7, 14x14); LOG (default WORK/refresh) receives each step's output,
# the figures that README.md and BENCHMARKS.md quote. Steps:
#   1. export the bundle (ONNX, manifest, baselines, reference.bin) from the checkpoints;
#   2. dvt calibrate: records, operating tables, accuracy_vs_cost.svg, the cascade's claims;
#   3. dvt eval: README's first command, and every exit and baseline;
#   4. dvt bench (the three runs of BENCHMARKS.md) -> docs/bench/;
#   5. dvt demo --bench and dvt simulate (BENCHMARKS.md, "dvtd under load");
#   6. the model-layer tests against the new bundle and its references.
# The Triton comparison (BENCHMARKS.md, last section) needs the Triton venv: see there.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:?usage: bash tools/refresh-bundle.sh WORK [LOG]}
L=${2:-$W/refresh}
B=engines/fmnist-dvt
PY=.venv/bin/python
mkdir -p "$L"

# Refuse unfinished checkpoints: train_fmnist.py --resume would go on training instead.
EPOCHS=$("$PY" - "$W" <<'EOF'
import os, sys, torch
work = sys.argv[1]
epochs = set()
for name in ("cascade", "static4", "static7", "static14"):
    path = os.path.join(work, f"{name}.ckpt")
    if not os.path.exists(path):
        sys.exit(f"{path}: missing; train first (README, 'Reproducing the bundled model')")
    state = torch.load(path, weights_only=False, map_location="cpu")
    done, total = state["epoch"], state["recipe"]["epochs"]
    if done < total:
        sys.exit(f"{path}: {done}/{total} epochs done; finish the training first")
    epochs.add(total)
if len(epochs) != 1:
    sys.exit(f"the checkpoints were trained for different epochs: {sorted(epochs)}")
print(epochs.pop())
EOF
)
step() { echo "== $1" >&2; }

step "1. export from $W ($EPOCHS epochs)"
"$PY" tools/train_fmnist.py --work "$W" --epochs "$EPOCHS" --resume 2>&1 | tee "$L/export.log"

step "2. calibrate"
cargo build -q --bins
T="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.venv/lib/libonnxruntime.so}"
"$T/dvt" calibrate --bundle "$B" | tee "$L/calibrate.txt"
"$T/dvt" calibrate --bundle "$B" --from-records --json > "$L/calibrate.json"

step "3. eval"
"$T/dvt" eval --bundle "$B" --thresholds 0.9,0.9 | tee "$L/eval-first-command.txt"
"$T/dvt" eval --bundle "$B" --all-stages | tee "$L/eval-all-stages.txt"

step "4. bench -> docs/bench/"
"$T/dvt" bench --plot docs/bench/latency_vs_accuracy.svg --json-out docs/bench/bench.json \
  | tee "$L/bench.txt"
"$T/dvt" bench --threads 1 --images 0 --json-out docs/bench/bench-1thread.json | tee "$L/bench-1thread.txt"
"$T/dvt" bench --engine tract --threads 1 --images 0 --json-out docs/bench/bench-1thread-tract.json \
  | tee "$L/bench-1thread-tract.txt"

step "5. dvtd under load, controller settling"
"$T/dvt" demo --bench --frames 1000 --steps 1 --json > "$L/demo-bench.json"
for s in 1 2 3 4 5 6 7 8; do
  "$T/dvt" simulate --bundle "$B" --scenario step --json --seed "$s" > "$L/simulate-step-seed$s.json"
done

step "6. model-layer tests on the new bundle"
cargo test -q --test model 2>&1 | tail -3 | tee "$L/tests.txt"
echo "outputs in $L; now update README.md's figures and BENCHMARKS.md from them" >&2
