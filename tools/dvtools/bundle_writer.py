"""Writes a cascade bundle: manifest.toml, per-stage ONNX, baselines, reference outputs.

The manifest is the contract with the Rust runtime (docs/bundle.md).
"""
import hashlib
import json
import os
from typing import Dict, List

import numpy as np
import torch

from . import fmnist_model
from .export import check_parity, export_stage
from .flops import count_gflops

FORMAT_VERSION = 1
REFERENCE_IMAGES = 32
PARITY_LIMIT = 1e-4


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _table(lines: List[str], header: str, values: Dict):
    lines.append(f"\n{header}")
    for k, v in values.items():
        lines.append(f"{k} = {_toml_value(v)}")


def write_manifest(path: str, model: Dict, stages: List[Dict], baselines: List[Dict]):
    """Write manifest.toml (plain tables and arrays of tables; no TOML library needed)."""
    lines = ["# DVT cascade bundle: written by tools/ (dvtools.bundle_writer), never by hand.",
             f"format = {FORMAT_VERSION}"]
    top = {k: v for k, v in model.items() if k != "input"}
    _table(lines, "[model]", top)
    _table(lines, "[model.input]", model["input"])
    for s in stages:
        scalars = {k: v for k, v in s.items() if k not in ("inputs", "outputs")}
        _table(lines, "[[stages]]", scalars)
        for t in s["inputs"]:
            _table(lines, "[[stages.inputs]]", t)
        for t in s["outputs"]:
            _table(lines, "[[stages.outputs]]", t)
    for b in baselines:
        _table(lines, "[[baselines]]", b)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_reference(bundle: str, tensors: Dict[str, np.ndarray], extra: Dict = None):
    """reference.bin (little-endian f32, concatenated) + reference.json (name, shape, offset).

    `extra` keys join reference.json (tools/train.py: `files`, the images the references were
    made from, relative to the training folder, for `dvt check-bundle --data`).
    """
    index, offset = [], 0
    with open(os.path.join(bundle, "reference.bin"), "wb") as f:
        for name, arr in tensors.items():
            a = np.ascontiguousarray(arr, dtype="<f4")
            f.write(a.tobytes())
            index.append({"name": name, "shape": list(a.shape), "offset": offset})
            offset += a.size
    with open(os.path.join(bundle, "reference.json"), "w") as f:
        json.dump({"dtype": "f32", "layout": "little-endian, offsets in elements", "tensors": index,
                   **(extra or {})}, f, indent=1)


def export_cascade(cascade, bundle: str, image_shape, num_classes) -> List[Dict]:
    """Export every stage, check it against PyTorch in onnxruntime; returns manifest stage tables."""
    stages, cumulative = [], 0.0
    n = len(cascade.stages)
    for k, stage in enumerate(cascade.stages):
        feeds_next = k + 1 < n
        fname = f"stage{k + 1}.onnx"
        path = os.path.join(bundle, fname)
        inputs, outputs = export_stage(stage, path, image_shape, num_classes, feeds_next)
        errs = check_parity(stage, path, inputs, feeds_next)
        worst = max(errs.values())
        print(f"stage {k + 1}: onnxruntime vs PyTorch relative error {errs}", flush=True)
        if worst >= PARITY_LIMIT:
            raise RuntimeError(f"stage {k + 1} export parity {worst:.2e} >= {PARITY_LIMIT}")
        gflops = count_gflops(path)
        cumulative += gflops
        stages.append({
            "name": f"stage{k + 1}", "grid": [stage.grid, stage.grid], "onnx": fname,
            "sha256": sha256(path), "gflops": gflops, "cumulative_gflops": cumulative,
            "inputs": [t.to_manifest() for t in inputs], "outputs": [t.to_manifest() for t in outputs],
        })
    return stages


def write_fmnist_bundle(models, cfg, meta, x_te, te_img, te_lab, bundle: str):
    """Bundle for the trained Fashion-MNIST cascade (see tools/train_fmnist.py)."""
    os.makedirs(os.path.join(bundle, "baselines"), exist_ok=True)
    cascade = models["cascade"][0].eval()
    image_shape = (1, 28, 28)
    classes = fmnist_model.CLASSES
    stages = export_cascade(cascade, bundle, image_shape, len(classes))
    for s, acc in zip(stages, meta["test_accuracy"]["cascade"]):
        s["test_accuracy"] = acc

    baselines = []
    for g in fmnist_model.GRIDS:
        model = models[f"static{g}"][0].eval()
        fname = f"baselines/static{g}x{g}.onnx"
        path = os.path.join(bundle, fname)
        inputs, _ = export_stage(model, path, image_shape, len(classes), feeds_next=False)
        errs = check_parity(model, path, inputs, False)
        if max(errs.values()) >= PARITY_LIMIT:
            raise RuntimeError(f"baseline {g}x{g} export parity {errs}")
        baselines.append({"name": f"static-{g}x{g}", "grid": [g, g], "onnx": fname, "sha256": sha256(path),
                          "gflops": count_gflops(path), "accuracy": meta["test_accuracy"][f"static{g}"][0]})

    model_table = {
        "name": "fmnist-dvt",
        "description": "3-stage DVT (4x4, 7x7, 14x14 tokens) trained on Fashion-MNIST by tools/train_fmnist.py",
        "classes": classes,
        "backbone": {**cfg.to_dict(), "feature_reuse_dim": 48, "feature_reuse_hidden": 128},
        "accuracy_split": "Fashion-MNIST t10k (10,000 images)",
        "calibration_split": f"last {meta['calibration_images']} images of Fashion-MNIST train (held out)",
        # Trained on the 28x28 pictures as they are: other sizes are fitted with Resize(28).
        "input": {"height": 28, "width": 28, "channels": 1, "layout": "NCHW", "scale": 255.0,
                  "mean": [fmnist_model.MEAN], "std": [fmnist_model.STD], "resize": 28,
                  "interpolation": "bilinear"},
    }
    write_manifest(os.path.join(bundle, "manifest.toml"), model_table, stages, baselines)

    # Reference outputs for the runtime's parity tests: raw pixels, normalised input, every output.
    n = REFERENCE_IMAGES
    tensors = {"raw": te_img[:n].astype(np.float32), "labels": te_lab[:n].astype(np.float32),
               "image": x_te[:n].numpy()}
    with torch.no_grad():
        outs = cascade(x_te[:n])
    for k, (logits, feat, attn) in enumerate(outs):
        tensors[f"stage{k + 1}.logits"] = logits.numpy()
        if k + 1 < len(outs):
            tensors[f"stage{k + 1}.feat_out"] = feat.numpy()
            tensors[f"stage{k + 1}.attn_out"] = attn.numpy()
    write_reference(bundle, tensors)
    print(f"bundle written to {bundle}", flush=True)


def write_trained_bundle(cascade, bundle: str, model_table: Dict, image_shape, num_classes: int,
                         reference: Dict[str, np.ndarray], reference_files: List[str], fvcore: bool,
                         stage_accuracy: List[float] = None) -> List[Dict]:
    """Bundle of a cascade trained by tools/train.py: per-stage ONNX (checked in onnxruntime),
    manifest, and reference outputs of real images (`reference` holds `raw` and `image`).

    `fvcore`: count the manifest GFLOPs as the official DVT checkpoints do (official archs).
    """
    os.makedirs(bundle, exist_ok=True)
    cascade = cascade.cpu().eval()
    stages = export_cascade(cascade, bundle, image_shape, num_classes)
    if fvcore:
        cumulative = 0.0
        for s in stages:
            s["gflops"] = count_gflops(os.path.join(bundle, s["onnx"]), fvcore=True)
            cumulative += s["gflops"]
            s["cumulative_gflops"] = cumulative
    for s, acc in zip(stages, stage_accuracy or []):
        s["test_accuracy"] = acc
    write_manifest(os.path.join(bundle, "manifest.toml"), model_table, stages, [])
    tensors = dict(reference)
    with torch.no_grad():
        outs = cascade(torch.from_numpy(reference["image"]))
    for k, (logits, feat, attn) in enumerate(outs):
        tensors[f"stage{k + 1}.logits"] = logits.numpy()
        if k + 1 < len(outs):
            tensors[f"stage{k + 1}.feat_out"] = feat.numpy()
            tensors[f"stage{k + 1}.attn_out"] = attn.numpy()
    write_reference(bundle, tensors, {"files": reference_files})
    return stages
