"""Seeded, class-balanced choices over a data pool and its per-channel statistics, shared by the search's and
the training's data (engine/search/data.py, engine/train/data.py).

Every random choice comes from a numpy generator seeded by [seed, stream(, ...)], so the images a run uses are
a pure function of its config; the stream numbers below are part of every run's data fingerprint: keep them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.datasets.base import Pool

__all__ = ["rng", "balanced_order", "choose_subset", "histogram_stats", "pool_stats", "SUBSET_STREAM",
           "STATS_STREAM"]

SUBSET_STREAM, STATS_STREAM = 0, 4
STATS_SAMPLE = 1024        # images decoded to estimate mean/std when a pool is not held in memory


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def balanced_order(labels: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """Indices in a random order that deals the classes out in turn: any prefix is class-balanced."""
    perm = gen.permutation(len(labels))
    by_class = perm[np.argsort(labels[perm], kind="stable")]        # classes in blocks, random within
    sorted_labels = labels[by_class]
    rank = np.arange(len(labels)) - np.searchsorted(sorted_labels, sorted_labels)  # position within class
    return by_class[np.lexsort((sorted_labels, rank))]              # rank 0 of every class, then rank 1...


def choose_subset(labels: np.ndarray, subset: int | None, seed: int) -> np.ndarray:
    """Sorted indices of the images a run uses: all, or `subset` of them, class-balanced."""
    if subset is None or subset >= len(labels):
        return np.arange(len(labels))
    return np.sort(balanced_order(labels, rng(seed, SUBSET_STREAM))[:subset])


def histogram_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units of uint8 images (n, C, S, S), exact via 256-bin counts."""
    values = np.arange(256, dtype=np.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        pixels = torch.from_numpy(np.ascontiguousarray(images[:, c])).reshape(-1)   # torch's bincount: 20x numpy's
        counts = torch.bincount(pixels, minlength=256).numpy().astype(np.float64)
        mean = float(counts @ values / counts.sum())
        std = math.sqrt(float(counts @ (values - mean) ** 2 / counts.sum()))
        means.append(mean)
        stds.append(std if std > 0 else 1.0)    # a constant channel: centre it, don't divide by zero
    return tuple(means), tuple(stds)


def pool_stats(pool: Pool, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a pool: its own when it carries them, else exact, or from a seeded sample."""
    if pool.mean_std is not None:
        return pool.mean_std
    if pool.images is not None:
        return histogram_stats(pool.images)
    sample = np.sort(rng(seed, STATS_STREAM).permutation(len(pool))[:STATS_SAMPLE])
    return histogram_stats(pool.take(sample))
