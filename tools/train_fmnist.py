#!/usr/bin/env python3
"""Train the bundled Fashion-MNIST DVT cascade and its static baselines, then write the bundle.

    python3 tools/train_fmnist.py            # train (fixed seed) + export engines/fmnist-dvt

The last 5,000 training images are held out as the calibration split (never trained on).
Loss = sum of the three exits' cross-entropies, no label smoothing (it caps confidence, which
is what the exit thresholds read). The static baselines use the same backbone on one grid.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dvtools import fmnist_data  # noqa: E402
from dvtools.fmnist_model import GRIDS, MEAN, STD, SmallVitConfig, make_cascade, make_static  # noqa: E402

CALIBRATION_IMAGES = 5000


def to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD


def batches(n, batch, generator):
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n - batch + 1, batch):
        yield perm[i:i + batch]


def train(model, x, y, epochs, batch, lr, seed, name, is_cascade, augment=False):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * (len(x) // batch)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    step, t0 = 0, time.time()
    for _ in range(epochs):
        for idx in batches(len(x), batch, g):
            xb, yb = x[idx], y[idx]
            if augment:  # random horizontal flip and a shift of up to 2 pixels
                if torch.rand(1, generator=g).item() < 0.5:
                    xb = torch.flip(xb, dims=[3])
                dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            out = model(xb)
            if is_cascade:
                loss = sum(F.cross_entropy(o[0], yb) for o in out)
            else:
                loss = F.cross_entropy(out[0], yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == steps:
                rate = step / (time.time() - t0)
                print(f"[{name}] step {step}/{steps} loss {loss.item():.4f} "
                      f"({rate:.2f} steps/s, eta {(steps - step) / rate / 60:.1f} min)", flush=True)
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y, is_cascade, batch=500):
    correct = None
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        logits = [o[0] for o in out] if is_cascade else [out[0]]
        c = [int((lg.argmax(1) == y[i:i + batch]).sum()) for lg in logits]
        correct = c if correct is None else [a + b for a, b in zip(correct, c)]
    return [c / len(x) for c in correct]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=fmnist_data.DEFAULT_DIR)
    ap.add_argument("--work", default=os.path.join(os.path.dirname(__file__), "out", "fmnist"))
    ap.add_argument("--bundle", default=os.path.join(os.path.dirname(__file__), "..", "engines", "fmnist-dvt"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--augment", action="store_true", help="flips and shifts (for longer runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-train", action="store_true", help="reuse checkpoints in --work")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    cfg = SmallVitConfig(dim=64, depth=3, heads=2, mlp_hidden=128)

    tr_img, tr_lab = fmnist_data.load("train", args.data)
    te_img, te_lab = fmnist_data.load("t10k", args.data)
    n_train = len(tr_img) - CALIBRATION_IMAGES
    x_tr, y_tr = to_tensor(tr_img[:n_train]), torch.from_numpy(tr_lab[:n_train].astype(np.int64))
    x_te, y_te = to_tensor(te_img), torch.from_numpy(te_lab.astype(np.int64))

    models = {"cascade": (make_cascade(cfg), True)}
    for g in GRIDS:
        models[f"static{g}"] = (make_static(cfg, g), False)

    results = {}
    for i, (name, (model, is_cascade)) in enumerate(models.items()):
        ckpt = os.path.join(args.work, f"{name}.pt")
        if args.skip_train and os.path.exists(ckpt):
            model.load_state_dict(torch.load(ckpt))
            model.eval()
        else:
            torch.manual_seed(args.seed + i)
            train(model, x_tr, y_tr, args.epochs, args.batch, args.lr, args.seed + i, name, is_cascade,
                  args.augment)
            torch.save(model.state_dict(), ckpt)
        results[name] = accuracy(model, x_te, y_te, is_cascade)
        print(f"{name}: test accuracy per exit {results[name]}", flush=True)

    meta = {"config": cfg.to_dict(), "grids": list(GRIDS), "seed": args.seed, "epochs": args.epochs,
            "batch": args.batch, "lr": args.lr, "augment": args.augment, "calibration_images": CALIBRATION_IMAGES,
            "test_accuracy": results}
    with open(os.path.join(args.work, "train_meta.json"), "w") as f:
        json.dump(meta, f, indent=2)

    from dvtools.bundle_writer import write_fmnist_bundle
    write_fmnist_bundle(models, cfg, meta, x_te, te_img, te_lab, args.bundle)


if __name__ == "__main__":
    main()
