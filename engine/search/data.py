"""The data of a search: a training set cut into a weight half ("train") and an architecture half ("valid").

    load the training set (a Pool, engine/datasets/)
    -> keep `subset` images: seeded and class-balanced (every class gets its share while it has images)
    -> split them `train_portion` / rest: seeded and stratified, so both halves keep the class balance
    -> batches: a seeded permutation per (part, epoch); drop_last; both parts yield steps_per_epoch batches

Every random choice comes from a numpy generator seeded by (config.seed, purpose[, epoch]), so batch b of
epoch e is a pure function of the config: a resumed run passes `start=b` and continues at that exact batch,
without touching the batches it skips. `fingerprint` hashes the data itself (content, chosen indices,
split, transform) and is recorded in config.json, so two runs can tell whether they saw the same data.

Transform: uint8 pixels -> float32, resized (bilinear, antialiased) when `image_size` differs from the
data's own, normalised per channel by the mean/std of the selected training images (exact, from pixel
histograms at the data's own size). No augmentation: the reference DARTS search crops and flips both halves,
but a deterministic, cheap batch is worth more here (a dashboard search is short, resumes must be exact,
and augmentation matters most when training the derived network, which is another job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from engine.datasets import DataError, Pool, load_pool, sha256_arrays
from engine.datasets.sampling import choose_subset, pool_stats, rng
from engine.search.config import SearchConfig

__all__ = ["SearchData", "DataError", "load_search_data", "PARTS"]

PARTS = ("train", "valid")
# Independent random streams: numpy generators seeded by [seed, stream(, epoch)]; engine/datasets/sampling.py
# holds streams 0 (the subset) and 4 (the statistics' sample).
_SPLIT = 1
_ORDER = {"train": 2, "valid": 3}


def _split(labels: np.ndarray, portion: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) sorted indices: floor(portion * N) for the weights, the rest for the alphas.

    Walking the images class by class (random order within a class), image j goes to train when
    floor((j+1)p) > floor(jp): every class is cut in the same proportion, to within one image.
    """
    perm = rng(seed, _SPLIT).permutation(len(labels))
    by_class = perm[np.argsort(labels[perm], kind="stable")]
    j = np.arange(len(labels), dtype=np.float64)
    to_train = np.floor((j + 1) * portion) > np.floor(j * portion)
    return np.sort(by_class[to_train]), np.sort(by_class[~to_train])


class SearchData:
    """The search split of a training set; batches are float32 CPU tensors (B, C, H, W) and int64 labels."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int                     # after resizing: what the network sees
    classes: list[str] | None
    num_train: int                      # the weight half
    num_valid: int                      # the architecture half
    fingerprint: str
    mean: tuple[float, ...]             # per channel, [0, 1] units
    std: tuple[float, ...]

    def __init__(self, pool: Pool, num_classes: int, train_portion: float, seed: int, image_size: int | None):
        self._pool, self._seed = pool, seed
        self._parts = dict(zip(PARTS, _split(pool.labels, train_portion, seed), strict=True))
        self.name, self.classes, self.in_channels = pool.name, pool.classes, pool.in_channels
        self.num_classes = num_classes
        self.image_size = image_size or pool.image_size
        self.num_train, self.num_valid = len(self._parts["train"]), len(self._parts["valid"])
        self.mean, self.std = pool_stats(pool, seed)
        self._shift = (np.array(self.mean, dtype=np.float32) * 255).reshape(1, -1, 1, 1)     # (1, C, 1, 1)
        self._scale = (np.array(self.std, dtype=np.float32) * 255).reshape(1, -1, 1, 1)
        resize = "bilinear-antialias" if self.image_size != pool.image_size else None
        record = {"format": 1, "dataset": pool.name, "pool": pool.identity, "image_size": self.image_size,
                  "resize": resize, "mean": self.mean, "std": self.std,
                  **{part: sha256_arrays(index) for part, index in self._parts.items()}}
        self.fingerprint = sha256_arrays(json.dumps(record, sort_keys=True))

    def __repr__(self) -> str:
        return (f"SearchData({self.name!r}, {self.num_train}+{self.num_valid} images of "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes)")

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch; the same for both parts, so one step takes one batch of each."""
        return min(self.num_train // batch_size, self.num_valid // batch_size)

    def batches(self, part: str, epoch: int, batch_size: int, start: int = 0,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """steps_per_epoch(batch_size) - start batches of `part` ("train" or "valid"), from batch `start` on.

        `shard` = (rank, world size): this rank's slice (every world-size-th image) of each global batch."""
        if part not in self._parts:
            raise ValueError(f"part must be one of {PARTS}, not {part!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        steps = self.steps_per_epoch(batch_size)
        if not 0 <= start <= steps:
            raise ValueError(f"start must be in [0, {steps}] (the batches in an epoch), not {start}")
        index = self._parts[part]
        order = index[rng(self._seed, _ORDER[part], epoch).permutation(len(index))]
        return self._iterate(order[start * batch_size:steps * batch_size], batch_size, shard)

    def _iterate(self, order: np.ndarray, batch_size: int,
                 shard: tuple[int, int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank, size = shard
        for i in range(0, len(order), batch_size):
            chosen = order[i:i + batch_size][rank::size]
            yield self._images(chosen), torch.from_numpy(self._pool.labels[chosen])

    def _images(self, indices: np.ndarray) -> torch.Tensor:
        # Normalise first (in numpy, see engine/datasets/base.py), then resize: both are linear, so the order
        # only moves float rounding.
        x = torch.from_numpy((self._pool.take(indices).astype(np.float32) - self._shift) / self._scale)  # (B, C, S, S)
        if self.image_size != self._pool.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)                           # (B, C, H, W)
        return x


def load_search_data(config: SearchConfig) -> SearchData:
    """The search split that config describes. Raises DataError when the data is missing or unreadable."""
    choose = partial(choose_subset, subset=config.subset, seed=config.seed)
    pool = load_pool(config, choose)
    pool = pool.select(choose(pool.labels))      # a no-op for pools their loader already chose (image folders)
    if len(pool) == 0:
        raise DataError(f"dataset {config.dataset!r} under {config.data_root} holds no images")
    num_classes = len(pool.classes) if pool.classes is not None else config.num_classes
    if pool.labels.min() < 0 or pool.labels.max() >= num_classes:
        raise DataError(f"dataset {config.dataset!r}: labels outside 0..{num_classes - 1}")
    return SearchData(pool, num_classes, config.train_portion, config.seed, config.image_size)
