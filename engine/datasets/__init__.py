"""Dataset loaders: each turns a SearchConfig into a Pool (the training set); engine/search/data.py does the rest.

One module per kind of source: idx.py (MNIST, Fashion-MNIST, the embedded subset), vision.py (CIFAR,
SVHN via torchvision), folder.py (ImageFolder trees), fake.py (random images).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.datasets.base import DataError, Pool, sha256_arrays
from engine.datasets.fake import FAKE_DEFAULT_SIZE, fake_pool
from engine.datasets.folder import load_image_folder
from engine.datasets.idx import EMBEDDED_ASSET, load_embedded, load_idx_dataset
from engine.datasets.vision import load_cifar, load_svhn
from engine.search.config import SearchConfig

__all__ = ["DataError", "Pool", "load_pool", "sha256_arrays", "EMBEDDED_ASSET", "FAKE_DEFAULT_SIZE"]


def load_pool(config: SearchConfig, choose: Callable[[np.ndarray], np.ndarray]) -> Pool:
    """The training set named by config.dataset.

    `choose` (labels (N,) -> sorted pool indices) is applied here only by loaders that profit from choosing
    before reading pixels (an image folder); the caller applies it to every other pool.
    """
    root = Path(config.data_root).expanduser().absolute()     # error messages then say exactly where
    name = config.dataset
    if name == "embedded":
        return load_embedded()
    if name == "fake":
        assert config.image_size is not None  # SearchConfig's validation requires it for "fake"
        return fake_pool(config.seed, config.subset or FAKE_DEFAULT_SIZE, config.in_channels, config.image_size,
                         config.num_classes)
    if name in ("mnist", "fashion_mnist"):
        return load_idx_dataset(name, root, config.download)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, root, config.download)
    if name == "svhn":
        return load_svhn(root, config.download)
    if name == "imagefolder":
        return load_image_folder(root, config.image_size, choose)
    raise DataError(f"unknown dataset {name!r}")
