"""Synthetic data in the real Fashion-MNIST's on-disk format: the four IDX files, full size (60000 + 10000
28x28 images), so that the default test tier reads it through dataset.root with the real loading code.

Class k is a bright 8x8 square at the k-th place of a grid, on noise: a classifier tells the classes apart
within one epoch, so the domain extractor passes the Fashion-MNIST accuracy bar on it."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

CLASSES = 10
COUNTS = {"train": 60000, "t10k": 10000}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic (0x08 = unsigned byte, then the number of dimensions), the dimensions, the data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def synthetic_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.arange(n) % CLASSES).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for k in range(CLASSES):
        row, col = 2 + 9 * (k // 4), 2 + 6 * (k % 4)
        images[labels == k, row : row + 8, col : col + 8] += 180
    return images, labels


def write_fashion_mnist(folder: Path, seed: int = 0) -> Path:
    """Write the four files into `folder` (images raw, labels gzipped: the loader reads both forms)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in COUNTS.items():
        images, labels = synthetic_split(n, rng)
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels), compresslevel=1))
    return folder
