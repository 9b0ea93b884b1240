#!/usr/bin/env python3
"""Convert an official DVT checkpoint into a cascade bundle that `dvt` and `dvtd` run.

    python3 tools/export.py --arch t2t_vit_12 --checkpoint CKPT.pth.tar --out engines/t2t12-dvt
    python3 tools/export.py --arch deit_small --random-init --out /tmp/deit --fp16

Writes DIR/manifest.toml, DIR/stage{1,2,3}.onnx (FP32, opset 17, dynamic batch),
DIR/reference.{json,bin} (random images + PyTorch outputs for `dvt check-bundle`), the
checkpoint's 59 `dynamic_threshold` rows as operating points, and with --fp16 a second bundle
DIR/fp16/ whose graphs compute in FP16 (LayerNorm, softmax, the Performer core and the reused
attention logits kept FP32; graph inputs/outputs stay FP32).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from dvtools.official import ARCHS, CheckpointError, build, load_checkpoint  # noqa: E402
from dvtools.official.exporter import DEFAULT_REFERENCE_IMAGES, export_official  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official checkpoint (torch.save dict with model_state_dict)")
    src.add_argument("--random-init", action="store_true", help="random weights (tests, benchmarks)")
    ap.add_argument("--out", required=True, help="bundle directory to write")
    ap.add_argument("--fp16", action="store_true", help="also write the FP16 bundle to OUT/fp16")
    ap.add_argument("--reference-images", type=int, default=DEFAULT_REFERENCE_IMAGES)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and reference images")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.checkpoint:
        try:
            model, meta = load_checkpoint(args.checkpoint, args.arch)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        source = os.path.basename(args.checkpoint)
    else:
        torch.manual_seed(args.seed)
        model, meta, source = build(args.arch), None, f"random init (seed {args.seed})"
    summary = export_official(model, args.out, meta, source, args.reference_images, args.seed, args.fp16)
    print(f"{args.arch}: bundle written to {args.out} in {time.time() - t0:.0f} s")
    print("stage   GFLOPs(fvcore)  GFLOPs(MAC only)  cumulative")
    for s in summary["stages"]:
        print(f"{s['name']:<7} {s['gflops_fvcore']:>14.4f}  {s['gflops_macs']:>16.4f}  {s['cumulative_gflops']:>10.4f}")
    print(f"operating points from the checkpoint: {summary['operating_points']}")
    if "fp16" in summary:
        print("FP16 vs FP32 (onnxruntime, reference images):")
        for s in summary["fp16"]["stages"]:
            print(f"  {s['name']}: max |logit diff| {s['max_abs_logits']:.3e}, top-1 agreement "
                  f"{100 * s['top1_agreement']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
