#!/usr/bin/env python3
"""Convert a labelled image folder into the IDX pair that `dvt eval --data` reads.

    python3 tools/images_to_idx.py --images VAL_DIR --size 224 --out DIR [--split t10k]

VAL_DIR holds one sub-folder per class (ImageNet `val/` layout: `n01440764/*.JPEG`, ...); classes are
numbered in sorted folder order, as torchvision's ImageFolder does. Each image is resized so that its
shorter side is size / crop_ratio (256 for 224, the DVT/DeiT evaluation transform) and centre-cropped
to size x size RGB. Output: DIR/{split}-images-idx3-ubyte ([n, H, W, 3] u8) and
DIR/{split}-labels-idx1-ubyte ([n] u8, so at most 256 classes; ImageNet's 1000 need the first 256 or a
subset). Normalisation is not applied here: the bundle's manifest says how, and `dvt` applies it.
"""
import argparse
import os
import struct
import sys

import numpy as np

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a u8 array as an uncompressed IDX file (magic 0x0000 08 ndim, big-endian dims)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, a.ndim]))
        f.write(struct.pack(f">{a.ndim}I", *a.shape))
        f.write(a.tobytes())


def load_rgb(path: str, size: int, crop_ratio: float) -> np.ndarray:
    """Resize (shorter side = size / crop_ratio, bicubic) and centre-crop to size x size RGB."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        short = round(size / crop_ratio)
        w, h = im.size
        scale = short / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def convert(images: str, out: str, size: int, crop_ratio: float = 0.875, split: str = "t10k",
            limit: int = 0) -> int:
    """Convert `images` (class sub-folders) into IDX files under `out`; returns the image count."""
    classes = sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d)))
    if not classes:
        raise SystemExit(f"{images}: no class sub-folders")
    if len(classes) > 256:
        raise SystemExit(f"{images}: {len(classes)} classes, but IDX labels are u8 (at most 256)")
    files = [(os.path.join(images, c, f), label) for label, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(images, c))) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if limit:
        files = files[:limit]
    if not files:
        raise SystemExit(f"{images}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    pixels = np.empty((len(files), size, size, 3), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.uint8)
    for i, (path, label) in enumerate(files):
        try:
            pixels[i] = load_rgb(path, size, crop_ratio)
        except OSError as e:  # a corrupt file: name it and stop, never write a half dataset
            raise SystemExit(f"{path}: cannot decode ({e})")
        labels[i] = label
    os.makedirs(out, exist_ok=True)
    write_idx(os.path.join(out, f"{split}-images-idx3-ubyte"), pixels)
    write_idx(os.path.join(out, f"{split}-labels-idx1-ubyte"), labels)
    return len(files)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", required=True, help="folder with one sub-folder per class")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, required=True, help="model input size (manifest model.input)")
    ap.add_argument("--crop-ratio", type=float, default=0.875)
    ap.add_argument("--split", default="t10k", choices=["t10k", "train"],
                    help="t10k = `dvt eval --split test`, train = the calibration split's file name")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    n = convert(args.images, args.out, args.size, args.crop_ratio, args.split, args.limit)
    print(f"wrote {n} images to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
