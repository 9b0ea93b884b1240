"""Fashion-MNIST IDX files (as shipped by Debian's dataset-fashion-mnist)."""
import gzip
import os
import struct

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str, data_dir: str = DEFAULT_DIR):
    """Return (images uint8 [N,28,28], labels uint8 [N]) for split 'train' or 't10k'."""
    def find(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(data_dir, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(os.path.join(data_dir, stem))
    images = _read_idx(find(f"{split}-images-idx3-ubyte"))
    labels = _read_idx(find(f"{split}-labels-idx1-ubyte"))
    return images, labels
