"""Labelled image folders for tools/train.py, read by the same rules as the Rust runtime
(src/data/folder.rs) and pre-processed by torchvision's evaluation transform, which the Rust
side reproduces bit for bit (src/data/image.rs; tools/tests/test_image_preprocess.py).

Layouts of DIR:
- DIR/train/<class>/..., DIR/val/<class>/... (and optionally DIR/test/<class>/...): training on
  train/, validation and calibration on val/, the held-out comparison on test/ when present;
- DIR/<class>/...: a seeded split: in each class the `percent`% of files that come first in
  sha256("{seed}:{class}/{file}") order are held out (validation + calibration); the rest train.

Class folders are the non-hidden sub-folders in sorted order; images are the files below them
ending in .jpg, .jpeg or .png (any case); hidden files and folders are ignored.
"""
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")


class DataError(SystemExit):
    """A folder that cannot be trained on; the message says which and why."""


@dataclass
class ClassFolder:
    name: str
    files: List[str]  # relative to the class folder, "/"-separated, sorted


@dataclass
class Layout:
    """Which files train, validate/calibrate and (optionally) test, as (relative path, label)."""

    root: str
    classes: List[str]
    train: List[Tuple[str, int]]
    val: List[Tuple[str, int]]
    test: Optional[List[Tuple[str, int]]] = None
    holdout: Optional[Dict[str, int]] = None  # {"seed", "percent"} of a seeded split
    ignored: int = 0  # files that are not JPEG or PNG
    notes: List[str] = field(default_factory=list)


def _entries(d: str):
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def _walk(d: str, prefix: str, files: List[str]) -> int:
    other = 0
    for n in _entries(d):
        p, rel = os.path.join(d, n), f"{prefix}/{n}" if prefix else n
        if os.path.isdir(p):
            other += _walk(p, rel, files)
        elif n.lower().endswith(EXTENSIONS):
            files.append(rel)
        else:
            other += 1
    return other


def list_classes(d: str) -> Tuple[List[ClassFolder], int]:
    """Class folders of `d` with their images; an empty class folder is an error."""
    if not os.path.isdir(d):
        raise DataError(f"{d}: no such folder")
    classes, other = [], 0
    for n in _entries(d):
        p = os.path.join(d, n)
        if not os.path.isdir(p):
            continue
        files: List[str] = []
        other += _walk(p, "", files)
        if not files:
            raise DataError(f"{p}: class folder '{n}' has no JPEG or PNG images")
        classes.append(ClassFolder(n, sorted(files)))
    if not classes:
        raise DataError(f"{d}: no class sub-folders (expected DIR/<class>/*.jpg|png or DIR/train/<class>/...)")
    return classes, other


def held_out(c: ClassFolder, seed: int, percent: int) -> List[str]:
    """The held-out files of one class (same rule as src/data/folder.rs `held_out`)."""
    n = len(c.files)
    if n < 2:
        return []
    k = min(max((n * percent + 50) // 100, 1), n - 1)
    keyed = sorted(c.files, key=lambda f: hashlib.sha256(f"{seed}:{c.name}/{f}".encode()).digest())
    return sorted(keyed[:k])


def layout(root: str, seed: int = 0, percent: int = 20) -> Layout:
    """The training layout of `root` (see the module docs)."""
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder")
    subs = {s: os.path.join(root, s) for s in SPLITS if os.path.isdir(os.path.join(root, s))}
    if subs:
        if "train" not in subs or "val" not in subs:
            raise DataError(f"{root}: has {', '.join(s + '/' for s in subs)} but needs both train/ and val/")
        parts, other = {}, 0
        for s, d in subs.items():
            parts[s], o = list_classes(d)
            other += o
        names = [c.name for c in parts["train"]]
        for s in ("val", "test"):
            for c in parts.get(s, []):
                if c.name not in names:
                    raise DataError(f"{subs[s]}: class folder '{c.name}' is not a class of train/ ({', '.join(names)})")
        label = {n: i for i, n in enumerate(names)}
        items = {s: [(f"{s}/{c.name}/{f}", label[c.name]) for c in cs for f in c.files] for s, cs in parts.items()}
        out = Layout(root, names, items["train"], items["val"], items.get("test"), None, other)
    else:
        classes, other = list_classes(root)
        names = [c.name for c in classes]
        train, val = [], []
        for i, c in enumerate(classes):
            hold = set(held_out(c, seed, percent))
            if not hold:
                raise DataError(f"{os.path.join(root, c.name)}: class '{c.name}' has {len(c.files)} image(s); "
                                "a seeded split needs at least 2 per class (or give train/ and val/)")
            for f in c.files:
                (val if f in hold else train).append((f"{c.name}/{f}", i))
        out = Layout(root, names, train, val, None, {"seed": seed, "percent": percent}, other)
    if len(out.classes) < 2:
        raise DataError(f"{root}: only one class ('{out.classes[0]}'): a classifier needs at least two class folders")
    if other:
        out.notes.append(f"{other} file(s) that are not JPEG or PNG ignored")
    return out


@dataclass(frozen=True)
class InputSpec:
    """The bundle's `[model.input]`: geometry, torchvision Resize/CenterCrop, normalisation."""

    height: int
    width: int
    channels: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    resize: int
    interpolation: str = "bicubic"

    def manifest(self) -> Dict:
        return {"height": self.height, "width": self.width, "channels": self.channels, "layout": "NCHW",
                "scale": 255.0, "mean": list(self.mean), "std": list(self.std), "resize": self.resize,
                "interpolation": self.interpolation}


def eval_transform(spec: InputSpec):
    """torchvision's evaluation geometry: Resize(shorter side) + CenterCrop; u8 out."""
    from torchvision import transforms
    mode = getattr(transforms.InterpolationMode, spec.interpolation.upper())
    return transforms.Compose([transforms.Resize(spec.resize, interpolation=mode),
                               transforms.CenterCrop((spec.height, spec.width))])


def load_image(path: str, spec: InputSpec, geometry=None) -> np.ndarray:
    """One file as (H, W, C) u8, as torchvision's ImageFolder loader + eval_transform give it."""
    from PIL import Image
    geometry = geometry or eval_transform(spec)
    with open(path, "rb") as f:
        img = Image.open(f).convert("L" if spec.channels == 1 else "RGB")
    a = np.asarray(geometry(img), dtype=np.uint8)
    return a.reshape(spec.height, spec.width, spec.channels)


def load_many(root: str, items: List[Tuple[str, int]], spec: InputSpec, desc: str, threads: int = 0):
    """Decode `items` on a thread pool (PIL releases the GIL); unreadable files are skipped.

    Returns (pixels (N, H, W, C) u8, labels (N,) int64, kept relative paths, skipped [(path, why)]).
    """
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    geometry = eval_transform(spec)

    def one(item):
        rel, _ = item
        try:
            return load_image(os.path.join(root, rel), spec, geometry), None
        except Exception as e:  # noqa: BLE001 (PIL raises many kinds for corrupt files)
            return None, f"{type(e).__name__}: {e}"

    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(one, items)
        if tqdm:
            it = tqdm(it, total=len(items), desc=f"decode {desc}", unit="img", mininterval=2.0, dynamic_ncols=True)
        results = list(it)
    pixels, labels, kept, skipped = [], [], [], []
    for (rel, label), (px, err) in zip(items, results):
        if px is None:
            skipped.append((os.path.join(root, rel), err))
        else:
            pixels.append(px)
            labels.append(label)
            kept.append(rel)
    shape = (0, spec.height, spec.width, spec.channels)
    arr = np.stack(pixels) if pixels else np.zeros(shape, np.uint8)
    return arr, np.asarray(labels, np.int64), kept, skipped
