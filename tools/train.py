#!/usr/bin/env python3
"""Train or fine-tune a DVT cascade on a folder of labelled images, then write a calibrated bundle.

    python3 tools/train.py --data PHOTOS --out engines/parts                      # small grey model
    python3 tools/train.py --data PHOTOS --out engines/parts --arch t2t_vit_12 \\
        --init t2t_vit_12.pth.tar --epochs 10                                    # fine-tune official
    python3 tools/train.py ... --resume                                          # after a stop

PHOTOS holds one sub-folder per class (JPEG/PNG, any size), either as PHOTOS/train/<class>/...
+ PHOTOS/val/<class>/... (optionally PHOTOS/test/<class>/...), or as PHOTOS/<class>/..., split
here with a fixed seed (--holdout percent of each class held out for validation and
calibration; the bundle records the split so `dvt eval|calibrate --data PHOTOS` use the same
held-out images). Pictures are pre-processed by torchvision's evaluation transform (shorter side
to --resize, centre crop to the model's input), which the Rust runtime reproduces exactly.

--arch: fmnist-small (28x28 grey, the embedded default's backbone; trains from scratch on a
CPU in minutes) or an official DVT backbone (t2t_vit_12, t2t_vit_14, deit_small; 224x224 RGB,
ImageNet normalisation). --init: an official DVT checkpoint (backbones and reuse modules
loaded strictly, the three heads replaced for the new class count) or the `model.pt` this
tool wrote into an earlier bundle. The objective is the paper's: every exit's cross-entropy,
summed (earlier exits also distilled from the last, --distill). CUDA is used when available.

Writes OUT/stage{1,2,3}.onnx, OUT/manifest.toml (class names, pre-processing, split),
OUT/reference.{json,bin} (real held-out images and PyTorch outputs), OUT/model.pt, and
runs the built `dvt check-bundle` and `dvt calibrate` on it. Checkpoints: --work (default
OUT/train), one per epoch; --resume continues them.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dvtools import bundle_writer, fmnist_model, images  # noqa: E402
from dvtools.official import ARCHS, CheckpointError, load_backbone  # noqa: E402
from dvtools.official import arch as official_arch  # noqa: E402
from dvtools.training import Recipe, cascade_logits, exit_accuracies, fit, resolve_precision  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OWN_FORMAT = "dvt-edge-train/1"
ARCH_CHOICES = ["fmnist-small", *sorted(ARCHS)]
SMALL_CONFIG = fmnist_model.SmallVitConfig(dim=64, depth=3, heads=2, mlp_hidden=128)


def input_spec(arch: str, resize, interpolation: str) -> images.InputSpec:
    if arch == "fmnist-small":
        # 28 = no zoom: 28x28 pictures pass unchanged, larger ones are shrunk to 28 and cropped.
        return images.InputSpec(28, 28, 1, (fmnist_model.MEAN,), (fmnist_model.STD,), resize or 28, interpolation)
    _, h, w = official_arch.IMAGE_SHAPE
    # 256 for 224: the official DVT / DeiT evaluation transform, Resize(int(224 / 0.875)).
    return images.InputSpec(h, w, 3, official_arch.MEAN, official_arch.STD, resize or int(h / 0.875), interpolation)


def build_model(arch: str, num_classes: int):
    if arch == "fmnist-small":
        return fmnist_model.make_cascade(SMALL_CONFIG, num_classes=num_classes)
    return official_arch.OfficialDvt(arch, num_classes)


def new_heads(model, num_classes: int):
    """Fresh zero-biased heads for `num_classes` (the backbone's weights untouched)."""
    for stage in model.stages:
        stage.head = torch.nn.Linear(stage.head.in_features, num_classes)
        torch.nn.init.trunc_normal_(stage.head.weight, std=0.02)
        torch.nn.init.zeros_(stage.head.bias)


def init_from(path: str, arch: str, classes, log):
    """The model to train, from --init: an official checkpoint or this tool's model.pt."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"--init {path}: cannot read as a torch.save file: {e}")
    if isinstance(ckpt, dict) and ckpt.get("format") == OWN_FORMAT:
        if ckpt["arch"] != arch:
            raise SystemExit(f"--init {path} is a {ckpt['arch']} model (from tools/train.py), but --arch is {arch}")
        model = build_model(arch, len(ckpt["classes"]))
        try:
            model.load_state_dict(ckpt["model_state_dict"], strict=True)
        except RuntimeError as e:
            raise SystemExit(f"--init {path}: does not fit {arch}: {str(e).splitlines()[0]}")
        same = list(ckpt["classes"]) == list(classes)
        if not same:
            new_heads(model, len(classes))
        log(f"init: {path} (tools/train.py, {arch}, {len(ckpt['classes'])} classes): all weights loaded; "
            + ("heads kept (same classes)" if same else f"heads replaced for {len(classes)} classes"))
        return model
    if arch == "fmnist-small":
        raise SystemExit(f"--init {path}: not a model.pt of tools/train.py; official checkpoints need "
                         f"--arch {'|'.join(sorted(ARCHS))}")
    try:
        model, n, _ = load_backbone(path, arch)
    except CheckpointError as e:
        raise SystemExit(f"--init: {e}")
    keys = len(model.state_dict())
    if n != len(classes):
        new_heads(model, len(classes))
        log(f"init: {path} ({official_arch.OFFICIAL_NAMES[arch]}): {keys - 6} backbone and reuse tensors loaded "
            f"strictly; the 3 heads ({n} classes) replaced by new ones for {len(classes)} classes")
    else:
        log(f"init: {path} ({official_arch.OFFICIAL_NAMES[arch]}): all {keys} tensors loaded strictly; "
            f"heads kept ({n} classes, as many as the data has)")
    return model


def find_dvt(explicit):
    """The built `dvt` binary: --dvt, $DVT_BIN, target/{release,debug}/dvt, PATH."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    for c in [explicit, os.environ.get("DVT_BIN"), os.path.join(target, "release", "dvt"),
              os.path.join(target, "debug", "dvt"), shutil.which("dvt")]:
        if c and os.access(c, os.X_OK):
            return c
    return None


def prepare_fn(spec: images.InputSpec, device):
    """u8 (B, C, H, W) -> ToTensor + Normalize, bit for bit as torchvision (and the Rust side) do."""
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def prepare(x):
        return (x.to(device).float() / 255.0 - mean) / std
    return prepare


def main(argv=None) -> int:
    d = Recipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="image folder (class sub-folders, or train/ + val/)")
    ap.add_argument("--out", required=True, help="bundle directory to write, e.g. engines/NAME")
    ap.add_argument("--arch", default="fmnist-small", choices=ARCH_CHOICES)
    ap.add_argument("--init", help="official DVT checkpoint or an earlier bundle's model.pt to fine-tune")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, help="peak learning rate (default 2e-3 from scratch, 2e-4 with --init)")
    ap.add_argument("--distill", type=float, default=d.distill, help="0 turns distillation off")
    ap.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    ap.add_argument("--seed", type=int, default=0, help="weights, batch order, augmentation and the split")
    ap.add_argument("--holdout", type=int, default=20, help="percent of each class held out (no val/ folder)")
    ap.add_argument("--resize", type=int, help="shorter side before the centre crop (default 28 / 256)")
    ap.add_argument("--interpolation", default="bicubic", choices=["bilinear", "bicubic", "lanczos", "box", "hamming"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="bf16: forward passes under bfloat16 autocast (weights stay float32); auto: bf16 "
                         "where the device runs it natively (CUDA, or a CPU with AVX512-BF16 or AMX) "
                         "and the arch supports it (fmnist-small; the official archs train in float32)")
    ap.add_argument("--work", help="checkpoint folder (default OUT/train)")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoints in --work")
    ap.add_argument("--reference-images", type=int, default=8)
    ap.add_argument("--dvt", help="the built dvt binary (default: $DVT_BIN, target/, PATH)")
    ap.add_argument("--no-calibrate", action="store_true", help="write the bundle, skip `dvt calibrate`")
    args = ap.parse_args(argv)
    t_start = time.time()
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")

    lay = images.layout(args.data, args.seed, args.holdout)
    spec = input_spec(args.arch, args.resize, args.interpolation)
    log(f"data: {args.data}: {len(lay.classes)} classes, {len(lay.train)} train / {len(lay.val)} "
        + (f"val / {len(lay.test)} test" if lay.test is not None else "val")
        + (f" images (seeded split: {args.holdout}% held out, seed {args.seed})" if lay.holdout else " images")
        + f"; device {device}")
    for n in lay.notes:
        log(f"data: {n}")
    t0 = time.time()
    x_tr, y_tr, _, skip_tr = images.load_many(args.data, lay.train, spec, "train")
    x_va, y_va, va_files, skip_va = images.load_many(args.data, lay.val, spec, "val")
    skipped = skip_tr + skip_va
    for path, why in skipped[:20]:
        log(f"skipped unreadable image {path}: {why}")
    if skipped:
        log(f"skipped {len(skipped)} unreadable image(s) of {len(lay.train) + len(lay.val)}")
    if len(x_tr) == 0 or len(x_va) == 0:
        raise SystemExit(f"{args.data}: no readable {'training' if len(x_tr) == 0 else 'validation'} images")
    decode_s = time.time() - t0

    torch.manual_seed(args.seed)  # initial weights (and fresh heads)
    classes = lay.classes
    model = init_from(args.init, args.arch, classes, log) if args.init else build_model(args.arch, len(classes))
    lr = args.lr or (2e-4 if args.init else 2e-3)
    batch = min(args.batch, len(x_tr))
    pad = 2 if spec.height <= 64 else spec.height // 14  # the random crop's padding: ~7% of the side
    precision = resolve_precision(args.precision, device)
    if args.arch != "fmnist-small" and precision == "bf16":
        # The official T2T modules' Performer mixes float32 and autocast tensors in LayerNorm.
        if args.precision == "bf16":
            raise SystemExit(f"--precision bf16: the {args.arch} modules train in float32 only")
        precision = "fp32"
    recipe = Recipe(epochs=args.epochs, batch=batch, lr=lr, distill=args.distill,
                    warmup_epochs=min(1.0, args.epochs / 10), crop_padding=0 if args.no_augment else pad,
                    hflip=not args.no_augment, seed=args.seed,
                    precision=precision)
    work = args.work or os.path.join(args.out, "train")
    prepare = prepare_fn(spec, device)
    # u8 NCHW on the CPU: pixels are normalised per batch, on the device.
    xt = torch.from_numpy(np.ascontiguousarray(x_tr.transpose(0, 3, 1, 2)))
    xv = torch.from_numpy(np.ascontiguousarray(x_va.transpose(0, 3, 1, 2)))
    t0 = time.time()
    fit(model, "cascade", xt, torch.from_numpy(y_tr), recipe, work, cascade_logits, 0.0, args.resume,
        xv, torch.from_numpy(y_va), log=log, device=device, prepare=prepare, val_batch=2 * batch)
    train_s = time.time() - t0
    history = model.training_history
    model.to(device)
    val_acc = exit_accuracies(model, xv, torch.from_numpy(y_va), cascade_logits, batch=2 * batch, prepare=prepare)
    log(f"val accuracy per exit: {', '.join(f'{100 * a:.2f}%' for a in val_acc)}")

    # The bundle: ONNX with reuse I/O, manifest, references of real held-out images.
    model = model.cpu().eval()
    os.makedirs(args.out, exist_ok=True)
    n_ref = min(args.reference_images, len(x_va))
    raw = x_va[:n_ref]
    image = prepare_fn(spec, "cpu")(torch.from_numpy(np.ascontiguousarray(raw.transpose(0, 3, 1, 2)))).numpy()
    reference = {"raw": raw.astype(np.float32), "labels": y_va[:n_ref].astype(np.float32), "image": image}
    val_desc = (f"{args.holdout}% of each class of {os.path.basename(os.path.abspath(args.data))} held out (seed "
                f"{args.seed}), {len(x_va)} images" if lay.holdout else f"val/ ({len(x_va)} images)")
    backbone = ({**SMALL_CONFIG.to_dict(), "feature_reuse_dim": 48, "feature_reuse_hidden": 128, "arch": args.arch}
                if args.arch == "fmnist-small" else
                {"arch": args.arch, **ARCHS[args.arch].to_dict(), "grids": list(official_arch.GRIDS)})
    name = os.path.basename(os.path.abspath(args.out))
    table = {
        "name": name,
        "description": f"3-stage DVT ({args.arch}) trained by tools/train.py on {len(classes)} classes"
                       + (f", fine-tuned from {os.path.basename(args.init)}" if args.init else ""),
        "classes": classes,
        "backbone": backbone,
        "accuracy_split": val_desc,
        "calibration_split": val_desc,
        "input": spec.manifest(),
    }
    if lay.holdout:
        table["holdout"] = lay.holdout
    t0 = time.time()
    bundle_writer.write_trained_bundle(model, args.out, table, (spec.channels, spec.height, spec.width),
                                       len(classes), reference, va_files[:n_ref], fvcore=args.arch != "fmnist-small",
                                       stage_accuracy=val_acc)
    torch.save({"format": OWN_FORMAT, "arch": args.arch, "classes": classes, "input": spec.manifest(),
                "model_state_dict": model.state_dict(), "recipe": recipe.to_dict(), "history": history},
               os.path.join(args.out, "model.pt"))
    export_s = time.time() - t0
    report = {"arch": args.arch, "classes": len(classes), "train_images": int(len(x_tr)),
              "val_images": int(len(x_va)), "skipped": [p for p, _ in skipped], "device": str(device),
              "recipe": recipe.to_dict(), "history": history, "val_accuracy": val_acc,
              "seconds": {"decode": decode_s, "train": train_s, "export": export_s}}

    # The runtime's own checks: stages against the references (and the pre-processing of the
    # reference files), then calibration on the held-out images.
    dvt = find_dvt(args.dvt)
    status = 0
    if dvt is None:
        log("dvt binary not found (build it: cargo build --release --bin dvt, or pass --dvt): bundle written "
            f"but not checked or calibrated; run: dvt check-bundle {args.out} --data {args.data} && "
            f"dvt calibrate --bundle {args.out} --data {args.data}")
        status = 3
    else:
        t0 = time.time()
        steps = [[dvt, "check-bundle", args.out, "--data", args.data]]
        if not args.no_calibrate:
            steps.append([dvt, "calibrate", "--bundle", args.out, "--data", args.data])
        for cmd in steps:
            log("$ " + " ".join(cmd))
            res = subprocess.run(cmd)
            if res.returncode != 0:
                log(f"{cmd[1]} failed (exit {res.returncode})")
                status = 4
                break
        report["seconds"]["check_and_calibrate"] = time.time() - t0
    report["seconds"]["total"] = time.time() - t_start
    with open(os.path.join(work, "train_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(f"bundle {args.out}: {len(classes)} classes, {len(x_tr)} training images, "
        f"{report['seconds']['total']:.0f} s in all (decode {decode_s:.0f} s, train {train_s:.0f} s, "
        f"export {export_s:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
