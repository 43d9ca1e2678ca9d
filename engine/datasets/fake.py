"""The "fake" dataset: seeded random images for benchmarks and smoke tests, generated on demand.

Image i is uniform noise drawn from a generator seeded by (seed, i), so any image can be made alone:
the pool costs nothing to build, whatever its size, and a resumed run skips batches for free. Labels are
balanced (i mod num_classes, then shuffled). Nothing is learnable here; it measures speed, not accuracy.
"""

from __future__ import annotations

import math

import numpy as np

from engine.datasets.base import Pool, sha256_arrays

__all__ = ["fake_pool", "FAKE_DEFAULT_SIZE"]

FAKE_DEFAULT_SIZE = 512     # images when `subset` is not set: a few epochs of a few steps at batch 64
# Uniform integers 0..255: mean 127.5, variance (256**2 - 1) / 12; in [0, 1] units.
_MEAN, _STD = 0.5, math.sqrt((256**2 - 1) / 12) / 255


def fake_pool(seed: int, num_images: int, in_channels: int, image_size: int, num_classes: int) -> Pool:
    labels = np.arange(num_images, dtype=np.int64) % num_classes
    labels = labels[np.random.default_rng([seed, 1]).permutation(num_images)]
    shape = (in_channels, image_size, image_size)

    def decode(indices: np.ndarray) -> np.ndarray:
        images = np.empty((len(indices), *shape), dtype=np.uint8)                    # (n, C, S, S)
        for row, i in enumerate(indices):
            images[row] = np.random.default_rng([seed, 2, int(i)]).integers(0, 256, shape, dtype=np.uint8)
        return images

    identity = sha256_arrays(f"fake seed={seed} shape={shape}", labels)
    return Pool(name="fake", labels=labels, classes=None, in_channels=in_channels, image_size=image_size,
                identity=identity, decode=decode,
                mean_std=((_MEAN,) * in_channels, (_STD,) * in_channels))
