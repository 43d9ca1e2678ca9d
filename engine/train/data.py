"""The data of a training: the training set (or a class-balanced `subset`), augmented, and the test set.

    train: seeded permutation per epoch; batch b of epoch e is augmented by a generator seeded by
           (seed, epoch, b): random crop after padding, horizontal flip, cutout (the paper's CIFAR recipe)
    test:  in order, unaugmented; scored at each epoch end

Like the search split (engine/search/data.py, whose helpers this reuses), every batch is a pure function of the
config, so a resumed training draws exactly what the uninterrupted one would have. Normalisation uses the
mean/std of the chosen training images; padding and cutout fill with 0 after normalising (the mean).

`augment="imagenet"` (the preset darts-imagenet-eval) reads an ImageFolder tree's train/ and val/ instead, from
the files each batch (FolderTrainData, engine/datasets/imagenet.py): the paper's RandomResizedCrop + flip +
ColorJitter and Resize + CenterCrop, normalised by ImageNet's mean/std, with the same seeding rule per image.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.datasets import DataError, Pool, load_pool, load_test_pool, sha256_arrays
from engine.datasets.imagenet import IMAGENET_MEAN, IMAGENET_STD, decode_eval, decode_train, folder_split
from engine.datasets.sampling import choose_subset, pool_stats
from engine.train.config import TrainConfig

__all__ = ["TrainData", "FolderTrainData", "load_train_data", "DataError"]

_ORDER, _AUGMENT, _TEST = 10, 11, 12     # numpy streams: [seed, stream, ...]


class TrainData:
    """Training and test batches as float32 CPU tensors (B, C, H, W) and int64 labels (B,)."""

    def __init__(self, train: Pool, test: Pool, num_classes: int, config: TrainConfig):
        if test.in_channels != train.in_channels:
            raise DataError(f"test images have {test.in_channels} channels, training images {train.in_channels}")
        self._train, self._test, self._cfg = train, test, config
        self.name, self.in_channels, self.num_classes = train.name, train.in_channels, num_classes
        self.image_size = config.image_size or train.image_size
        self.num_train, self.num_test = len(train), len(test)
        self.mean, self.std = pool_stats(train, config.seed)
        self._shift = (np.array(self.mean, dtype=np.float32) * 255).reshape(1, -1, 1, 1)
        self._scale = (np.array(self.std, dtype=np.float32) * 255).reshape(1, -1, 1, 1)
        record = {"format": "train/1", "train": train.identity, "test": test.identity, "image_size": self.image_size,
                  "mean": self.mean, "std": self.std}
        self.fingerprint = sha256_arrays(json.dumps(record, sort_keys=True))

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.num_train / batch_size)  # the last batch may be smaller (as the reference)

    def batches(self, epoch: int, batch_size: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The augmented training batches of `epoch`, from batch `start` on."""
        order = np.random.default_rng([self._cfg.seed, _ORDER, epoch]).permutation(self.num_train)
        for b in range(start, self.steps_per_epoch(batch_size)):
            chosen = order[b * batch_size:(b + 1) * batch_size]
            x = self._images(self._train, chosen)
            rng = np.random.default_rng([self._cfg.seed, _AUGMENT, epoch, b])
            yield self._augment(x, rng), torch.from_numpy(self._train.labels[chosen].astype(np.int64))

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.num_test, batch_size):
            chosen = np.arange(i, min(i + batch_size, self.num_test))
            yield self._images(self._test, chosen), torch.from_numpy(self._test.labels[chosen].astype(np.int64))

    def _images(self, pool: Pool, indices: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy((pool.take(indices).astype(np.float32) - self._shift) / self._scale)  # (B, C, S, S)
        if self.image_size != pool.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return x

    def _augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Crop after zero padding, flip, cutout; every choice drawn from `rng` in a fixed order."""
        cfg, (n, _, h, w) = self._cfg, x.shape
        p = cfg.crop_padding
        dy, dx = rng.integers(0, 2 * p + 1, size=(2, n))
        flips = rng.random(n) < 0.5
        cy, cx = rng.integers(0, h, size=n), rng.integers(0, w, size=n)
        if p:
            padded = F.pad(x, (p, p, p, p))
            x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        if cfg.flip and flips.any():
            x[torch.from_numpy(flips)] = x[torch.from_numpy(flips)].flip(-1)
        if cfg.cutout:
            half = cfg.cutout // 2
            for i in range(n):
                x[i, :, max(cy[i] - half, 0):cy[i] + half, max(cx[i] - half, 0):cx[i] + half] = 0.0
        return x


_DECODERS: list[ThreadPoolExecutor] = []


def _decoders() -> ThreadPoolExecutor:
    """One process-wide pool of decoding threads (a comparison's trainings share it rather than each leaving its
    own idle threads). PIL decodes and resizes without the GIL, so threads decode a batch in parallel; each
    image's draws come from its own generator, so which thread decodes it does not matter."""
    if not _DECODERS:
        _DECODERS.append(ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="decode"))
    return _DECODERS[0]


class FolderTrainData:
    """TrainData's interface over an ImageFolder tree's train/ and val/, decoded from the files batch by batch
    (an ImageNet does not fit in memory, and RandomResizedCrop needs the whole original image)."""

    def __init__(self, config: TrainConfig):
        root = Path(config.data_root).expanduser().absolute()
        classes, train = folder_split(root, "train")
        val_classes, test = folder_split(root, "val")
        if val_classes != classes:
            raise DataError(f"image folder {root}: val/ has the classes {val_classes[:5]}... and train/ "
                            f"{classes[:5]}...; both splits need the same class folders")
        self._cfg, self._root = config, root
        labels = np.array([y for _, y in train], dtype=np.int64)
        chosen = choose_subset(labels, config.subset, config.seed)
        self._train = [train[i] for i in chosen]
        test_labels = np.array([y for _, y in test], dtype=np.int64)
        self._test = test if config.test_subset is None else [
            test[i] for i in choose_subset(test_labels, config.test_subset, config.seed)]
        assert config.image_size is not None  # the config requires it with augment="imagenet"
        self.name, self.in_channels, self.num_classes = "imagefolder", 3, len(classes)
        self.image_size = config.image_size
        self.num_train, self.num_test = len(self._train), len(self._test)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self._shift = torch.tensor(self.mean).reshape(1, -1, 1, 1) * 255
        self._scale = torch.tensor(self.std).reshape(1, -1, 1, 1) * 255
        # Identity: the file listing (relative path, byte size, class) of what is used, not the pixels (as folder.py)
        listing = "".join(f"{Path(p).relative_to(root)}\t{Path(p).stat().st_size}\t{y}\n"
                          for p, y in self._train + self._test)
        record = {"format": "train-imagenet/1", "files": hashlib.sha256(listing.encode()).hexdigest(),
                  "image_size": self.image_size, "mean": self.mean, "std": self.std}
        self.fingerprint = sha256_arrays(json.dumps(record, sort_keys=True))
        self._pool = _decoders()

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.num_train / batch_size)

    def batches(self, epoch: int, batch_size: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cfg = self._cfg
        order = np.random.default_rng([cfg.seed, _ORDER, epoch]).permutation(self.num_train)
        for b in range(start, self.steps_per_epoch(batch_size)):
            chosen = order[b * batch_size:(b + 1) * batch_size]

            def one(k: int, _b: int = b, _chosen: np.ndarray = chosen) -> np.ndarray:
                rng = np.random.default_rng([cfg.seed, _AUGMENT, epoch, _b, k])
                return decode_train(self._train[_chosen[k]][0], self.image_size, rng, cfg.flip, cfg.color_jitter,
                                    cfg.hue_jitter)

            yield self._batch(list(self._pool.map(one, range(len(chosen)))), [self._train[i][1] for i in chosen])

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.num_test, batch_size):
            part = self._test[i:i + batch_size]
            images = list(self._pool.map(lambda item: decode_eval(item[0], self.image_size), part))
            yield self._batch(images, [y for _, y in part])

    def _batch(self, images: list[np.ndarray], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = (torch.from_numpy(np.stack(images)).float() - self._shift) / self._scale     # ToTensor + Normalize
        return x, torch.tensor(labels, dtype=torch.int64)


def load_train_data(config: TrainConfig) -> TrainData | FolderTrainData:
    """Training pool (a class-balanced `subset` when set) and test pool (the first `test_subset`, balanced)."""
    if config.augment == "imagenet":
        return FolderTrainData(config)
    choose = partial(choose_subset, subset=config.subset, seed=config.seed)
    train = load_pool(config, choose)  # the loaders read only the fields a SearchConfig and a TrainConfig share
    train = train.select(choose(train.labels))
    test = load_test_pool(config)
    if config.test_subset is not None and config.dataset != "fake":
        test = test.select(choose_subset(test.labels, config.test_subset, config.seed))
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"dataset {config.dataset!r} under {config.data_root} holds no training or no test images")
    num_classes = len(train.classes) if train.classes is not None else config.num_classes
    for pool in (train, test):
        if pool.labels.min() < 0 or pool.labels.max() >= num_classes:
            raise DataError(f"dataset {config.dataset!r}: labels outside 0..{num_classes - 1}")
    return TrainData(train, test, num_classes, config)
