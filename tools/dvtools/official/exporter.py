"""Official DVT cascade -> bundle: manifest.toml, per-stage ONNX, references, operating points.

Used by tools/export.py (the CLI) and by the tests (in-process, no subprocess re-import).
"""
import json
import os
from typing import Dict, List, Optional

import numpy as np
import torch

from .. import bundle_writer
from ..flops import count_gflops
from .arch import ARCHS, GRIDS, IMAGE_SHAPE, MEAN, NUM_CLASSES, OFFICIAL_NAMES, STD, OfficialDvt
from .checkpoint import CheckpointMeta

DEFAULT_REFERENCE_IMAGES = 2
# ImageNet class names are not shipped; the runtime only needs one label per class index.
CLASSES = [f"imagenet-{i:03d}" for i in range(NUM_CLASSES)]


def geometric_fractions(p: int, stages: int = 3) -> List[float]:
    """The official target exit proportions for operating point p: q^k / sum q^j, q = p / 20."""
    q = p / 20.0
    w = [q ** (k + 1) for k in range(stages)]
    return [x / sum(w) for x in w]


def operating_points(meta: CheckpointMeta, cumulative: List[float]) -> List[Dict]:
    """The checkpoint's `dynamic_threshold` rows as manifest operating points.

    Thresholds drop the last column (-1e8: the final stage always answers). Expected GFLOPs and
    accuracy come from the checkpoint's `budgeted_batch_classification` when present (ImageNet
    figures); otherwise the GFLOPs follow from the target exit fractions and our stage costs.
    """
    points = []
    for i, row in enumerate(meta.dynamic_threshold or []):
        p = i + 1
        fractions = geometric_fractions(p, len(row))
        point = {"name": f"checkpoint-p{p:02d}", "source": "checkpoint",
                 "thresholds": [float(t) for t in row[:-1]], "exit_fractions": fractions}
        if meta.budget_flops and i < len(meta.budget_flops):
            point["expected_gflops"] = float(meta.budget_flops[i])
        else:
            point["expected_gflops"] = float(sum(f * c for f, c in zip(fractions, cumulative)))
        if meta.budget_acc and i < len(meta.budget_acc):
            acc = float(meta.budget_acc[i])
            point["accuracy"] = acc / 100.0 if acc > 1.0 else acc
        points.append(point)
    return points


def append_operating_points(manifest_path: str, points: List[Dict]):
    """Add `[[operating_points]]` tables to a manifest written by bundle_writer."""
    lines = []
    for pt in points:
        bundle_writer._table(lines, "[[operating_points]]", pt)  # same TOML writer as the rest
    with open(manifest_path, "a") as f:
        f.write("\n".join(lines) + "\n")


def reference_inputs(n: int, seed: int):
    """Random 8-bit RGB images (HWC) and their ImageNet-normalised NCHW tensors."""
    g = np.random.default_rng(seed)
    raw = g.integers(0, 256, size=(n, IMAGE_SHAPE[1], IMAGE_SHAPE[2], IMAGE_SHAPE[0])).astype(np.float32)
    x = raw / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return raw, np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)


def reference_tensors(model: OfficialDvt, n: int, seed: int) -> Dict[str, np.ndarray]:
    """Inputs and every PyTorch stage output, under the names the Rust parity checks use."""
    raw, image = reference_inputs(n, seed)
    tensors = {"raw": raw, "image": image}
    with torch.no_grad():
        outs = model(torch.from_numpy(image))
    for k, (logits, feat, attn) in enumerate(outs):
        tensors[f"stage{k + 1}.logits"] = logits.numpy()
        if k + 1 < len(outs):
            tensors[f"stage{k + 1}.feat_out"] = feat.numpy()
            tensors[f"stage{k + 1}.attn_out"] = attn.numpy()
    return tensors


def model_table(model: OfficialDvt, source: str) -> Dict:
    cfg = ARCHS[model.arch]
    return {
        "name": f"{model.arch.replace('_', '-')}-dvt",
        "description": f"official {OFFICIAL_NAMES[model.arch]} (3 stages, 7x7/10x10/14x14 tokens) "
                       f"exported by tools/export.py from {source}",
        "classes": CLASSES,
        "backbone": {"arch": model.arch, **cfg.to_dict(), "grids": list(GRIDS)},
        # inference.py: Resize(int(224 / 0.875), interpolation=3 (bicubic)) + CenterCrop(224).
        "input": {"height": IMAGE_SHAPE[1], "width": IMAGE_SHAPE[2], "channels": IMAGE_SHAPE[0],
                  "layout": "NCHW", "scale": 255.0, "mean": list(MEAN), "std": list(STD),
                  "resize": int(IMAGE_SHAPE[1] / 0.875), "interpolation": "bicubic"},
    }


def export_official(model: OfficialDvt, out: str, meta: Optional[CheckpointMeta] = None,
                    source: str = "random init", reference_images: int = DEFAULT_REFERENCE_IMAGES,
                    seed: int = 0, fp16: bool = False) -> Dict:
    """Write the FP32 bundle to `out` (and the FP16 one to `out/fp16` with `fp16`).

    Returns a summary: per-stage GFLOPs (both conventions), parity and, with fp16, the FP16 report.
    """
    os.makedirs(out, exist_ok=True)
    model.eval()
    stages = bundle_writer.export_cascade(model, out, IMAGE_SHAPE, NUM_CLASSES)
    # Manifest costs follow the official (fvcore) counting so that they agree with the
    # checkpoint's `flops` list; the plain multiply-add count is kept in the summary.
    summary = {"arch": model.arch, "stages": []}
    cumulative = 0.0
    for s in stages:
        path = os.path.join(out, s["onnx"])
        macs = s["gflops"]
        s["gflops"] = count_gflops(path, fvcore=True)
        cumulative += s["gflops"]
        s["cumulative_gflops"] = cumulative
        summary["stages"].append({"name": s["name"], "gflops_fvcore": s["gflops"], "gflops_macs": macs,
                                  "cumulative_gflops": cumulative})
    if meta is not None and meta.anytime_classification:
        for s, acc in zip(stages, meta.anytime_classification):
            s["test_accuracy"] = acc / 100.0 if acc > 1.0 else acc
    table = model_table(model, source)
    if meta is not None and meta.dynamic_threshold:
        table["calibration_split"] = "ImageNet train, 50,000 images (official dynamic_threshold)"
    if meta is not None and meta.anytime_classification:
        table["accuracy_split"] = "ImageNet val (as stored in the checkpoint)"
    manifest = os.path.join(out, "manifest.toml")
    bundle_writer.write_manifest(manifest, table, stages, [])
    points = operating_points(meta, [s["cumulative_gflops"] for s in stages]) if meta else []
    if points:
        append_operating_points(manifest, points)
    summary["operating_points"] = len(points)
    tensors = reference_tensors(model, reference_images, seed)
    bundle_writer.write_reference(out, tensors)
    if fp16:
        from .. import fp16 as fp16_mod
        summary["fp16"] = fp16_mod.write_fp16_bundle(out, os.path.join(out, "fp16"), tensors)
    with open(os.path.join(out, "export_report.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
