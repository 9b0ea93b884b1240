#!/usr/bin/env python3
"""Streams every image of a folder through dvtd and prints one line per image plus a summary.

Images: binary PGM/PPM (P5/P6) and 8-bit non-interlaced PNG (grey, grey+alpha, RGB, RGBA),
decoded with the standard library only; any size (the daemon resizes per the bundle).
A file named like `00042_7.pgm` carries its label (7) and counts toward the accuracy.

    python3 stream_folder.py --socket /run/dvtd/dvtd.sock FOLDER
    python3 stream_folder.py --export-fmnist 100 FOLDER    # write Fashion-MNIST test images
"""

import argparse
import gzip
import os
import re
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dvtd_client import Client  # noqa: E402


def read_pnm(data):
    """P5 (grey) or P6 (RGB), maxval <= 255."""
    fields, pos = [], 2
    while len(fields) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(data[start:pos]))
    width, height, maxval = fields
    if maxval > 255:
        raise ValueError("16-bit PNM is not supported")
    channels = 1 if data[:2] == b"P5" else 3
    pixels = data[pos + 1:pos + 1 + width * height * channels]
    return height, width, channels, pixels


def read_png(data):
    """8-bit, non-interlaced PNG of colour type 0, 2, 4 or 6."""
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or interlace or ctype not in (0, 2, 4, 6):
        raise ValueError("only 8-bit non-interlaced grey/RGB(A) PNG is supported")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw, stride = zlib.decompress(idat), width * channels
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        out += line
        prev = line
    if channels == 2:  # grey + alpha: drop alpha
        out = out[0::2]
        channels = 1
    return height, width, channels, bytes(out)


def read_image(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] in (b"P5", b"P6"):
        return read_pnm(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return read_png(data)
    raise ValueError("not a PGM/PPM/PNG file")


def export_fmnist(n, folder, data_dir="/usr/share/datasets/fashion-mnist"):
    os.makedirs(folder, exist_ok=True)
    imgs = gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")).read()[16:]
    labels = gzip.open(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).read()[8:]
    for i in range(n):
        with open(os.path.join(folder, f"{i:05d}_{labels[i]}.pgm"), "wb") as f:
            f.write(b"P5\n28 28\n255\n" + imgs[i * 784:(i + 1) * 784])
    print(f"wrote {n} images to {folder}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--socket", default=os.environ.get("DVTD_SOCKET", "/run/dvtd/dvtd.sock"))
    ap.add_argument("--window", type=int, default=16, help="frames in flight")
    ap.add_argument("--export-fmnist", type=int, metavar="N",
                    help="write N Fashion-MNIST test images into FOLDER and exit")
    args = ap.parse_args()
    if args.export_fmnist:
        export_fmnist(args.export_fmnist, args.folder)
        return 0
    files = sorted(f for f in os.listdir(args.folder) if not f.startswith("."))
    frames = []
    for name in files:
        try:
            frames.append((name, read_image(os.path.join(args.folder, name))))
        except (ValueError, OSError, struct.error, zlib.error) as e:
            print(f"{name}: skipped ({e})", file=sys.stderr)
    correct = labelled = answered = 0
    t0 = time.perf_counter()
    with Client(args.socket) as c:
        pending, it = {}, iter(frames)
        while True:
            while len(pending) < args.window:
                item = next(it, None)
                if item is None:
                    break
                name, (h, w, ch, px) = item
                pending[c.send(px, h, w, ch)] = name
            if not pending:
                break
            r = c.recv()
            name = pending.pop(r.request_id)
            answered += 1
            if not r.ok:
                print(f"{name}: {r.status}: {r.text}")
                continue
            m = re.match(r".*_(\d+)\.\w+$", name)
            mark = ""
            if m:
                labelled += 1
                ok = int(m.group(1)) == r.class_id
                correct += ok
                mark = "" if ok else "  (wrong)"
            print(f"{name}: {r.label} ({r.confidence:.2f}) stage {r.exit_stage}, "
                  f"{r.gflops:.5f} GFLOPs, {r.latency_us} us{mark}")
        secs = time.perf_counter() - t0
        status = c.command("status")
    acc = f", accuracy {100.0 * correct / labelled:.1f}%" if labelled else ""
    budget = status.get("budget") or "none"
    print(f"{answered} images in {secs:.2f} s ({answered / max(secs, 1e-9):.0f} images/s){acc}; "
          f"budget {budget}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
