"""What every dataset loader returns: a Pool, the whole training set before the subset and the split.

A pool is either held in memory as one uint8 array (then a batch is one indexing operation: fast,
deterministic, and a resumed run can skip batches for free) or, for trees too big for memory, it
decodes the requested images on demand. engine/search/data.py turns a pool into the search split.
Pixels stay numpy arrays until a batch is made: numpy's single-threaded gather and conversion cost
microseconds, where torch's thread pool on a busy 2-core machine was seen to take 10+ ms per tiny op.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Pool", "memory_pool", "sha256_arrays", "REPO_ROOT"]

# engine/datasets/base.py -> the repository root, where assets/ lives.
REPO_ROOT = Path(__file__).resolve().parents[2]


class DataError(Exception):
    """A dataset is missing or unreadable; the message names the path and how to get the data."""


def sha256_arrays(*arrays: np.ndarray | bytes | str) -> str:
    """sha256 hex over the raw bytes of arrays (and strings), each prefixed by its shape and dtype.

    Content, not files: the same images gzipped differently (Debian recompressed Fashion-MNIST) hash alike.
    """
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, str):
            a = a.encode()
        if isinstance(a, bytes):
            h.update(b"bytes%d:" % len(a))
            h.update(a)
            continue
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype.str}{arr.shape}:".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Pool:
    """The training set of one dataset; every image has shape (in_channels, image_size, image_size)."""

    name: str
    labels: np.ndarray                      # (N,) int64
    classes: list[str] | None
    in_channels: int
    image_size: int                         # the stored side length (the data's own, or decoded to)
    identity: str                           # sha256 hex of the content (or of a file listing, for lazy trees)
    images: np.ndarray | None = None        # (N, C, S, S) uint8 when held in memory
    decode: Callable[[np.ndarray], np.ndarray] | None = None    # lazy: indices (n,) -> (n, C, S, S) uint8
    # Known per-channel normalisation constants (in [0, 1] units); None = compute from the selected images.
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = field(default=None)

    def __post_init__(self) -> None:
        if (self.images is None) == (self.decode is None):
            raise ValueError("a Pool holds either images in memory or a decode function, not both or neither")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images (n, C, S, S) for pool indices (n,)."""
        if self.images is not None:
            return self.images[np.asarray(indices, dtype=np.int64)]
        assert self.decode is not None
        return self.decode(np.asarray(indices, dtype=np.int64))

    def select(self, indices: np.ndarray) -> Pool:
        """The pool of just these images, in this order (held images are copied, so the rest can be freed)."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) == len(self) and np.array_equal(idx, np.arange(len(self))):
            return self
        if self.images is not None:
            images, decode = self.take(idx), None
        else:
            images, decode = None, _Reindexed(self, idx)
        return dataclasses.replace(self, labels=self.labels[idx], images=images, decode=decode,
                                   identity=sha256_arrays(self.identity, idx))


@dataclass(frozen=True)
class _Reindexed:
    """Decode through a selection: position i of the selected pool is index[i] of the parent."""

    parent: Pool
    index: np.ndarray

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return self.parent.take(self.index[indices])


def memory_pool(name: str, images: np.ndarray, labels: np.ndarray, classes: list[str] | None,
                channels_last: bool = False) -> Pool:
    """A pool held in memory from uint8 images (N, C, S, S), or (N, S, S, C) with channels_last, or (N, S, S)."""
    x = np.asarray(images, dtype=np.uint8)
    if x.ndim == 3:
        x = x[:, None]                                          # (N, 1, S, S)
    elif channels_last:
        x = x.transpose(0, 3, 1, 2)                             # (N, S, S, C) -> (N, C, S, S)
    x = np.ascontiguousarray(x)                                 # one image = one contiguous block
    if not x.flags.writeable:
        x = x.copy()                                            # torch.from_numpy (for stats) wants writable memory
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if x.shape[0] != len(y) or x.shape[2] != x.shape[3]:
        raise DataError(f"{name}: {x.shape[0]} images of shape {tuple(x.shape[1:])} for {len(y)} labels; "
                        "expected one square image per label")
    return Pool(name=name, labels=y, classes=classes, in_channels=int(x.shape[1]), image_size=int(x.shape[2]),
                identity=sha256_arrays(x, y, "\n".join(classes or [])), images=x)
