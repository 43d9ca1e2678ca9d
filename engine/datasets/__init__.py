"""Dataset loaders: each turns a config (a SearchConfig or a TrainConfig: anything with the `DataSpec` fields)
into a Pool, the training set or the test set; engine/search/data.py and engine/train/data.py do the rest.

One module per kind of source: idx.py (MNIST, Fashion-MNIST, the embedded subset), vision.py (CIFAR,
SVHN via torchvision), folder.py (ImageFolder trees), fake.py (random images). imagenet.py is not a Pool: the
ImageNet recipe's train/ and val/ splits of a tree, decoded and augmented from the files (engine/train/data.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.datasets.base import DataError, Pool, memory_pool, sha256_arrays
from engine.datasets.fake import FAKE_DEFAULT_SIZE, fake_pool
from engine.datasets.folder import load_image_folder
from engine.datasets.idx import _SETS, EMBEDDED_ASSET, _find, load_embedded, load_idx_dataset, read_idx
from engine.datasets.vision import load_cifar, load_svhn

__all__ = ["DataError", "DataSpec", "Pool", "load_pool", "load_test_pool", "sha256_arrays", "EMBEDDED_ASSET",
           "FAKE_DEFAULT_SIZE"]

_FAKE_TEST = 64
_IDX_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataSpec(Protocol):
    """The fields of a config that name its data (SearchConfig and TrainConfig both have them)."""

    dataset: str
    data_root: str
    download: bool
    subset: int | None
    image_size: int | None
    in_channels: int
    num_classes: int
    seed: int


def load_pool(config: DataSpec, choose: Callable[[np.ndarray], np.ndarray]) -> Pool:
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


def load_test_pool(config: DataSpec) -> Pool:
    """The test set of config.dataset, read beside its training set (a config's `test_subset` sizes the fake one)."""
    root, name = Path(config.data_root).expanduser().absolute(), config.dataset
    if name == "embedded":
        with np.load(EMBEDDED_ASSET, allow_pickle=False) as z:
            return memory_pool("embedded-test", z["test_images"], z["test_labels"].astype(np.int64),
                               [str(c) for c in z["classes"]])
    if name == "fake":
        size = getattr(config, "test_subset", None) or _FAKE_TEST
        return fake_pool(config.seed + 1_000_003, size, config.in_channels, config.image_size, config.num_classes)
    if name in ("mnist", "fashion_mnist"):
        folder = _SETS[name][0]
        for directory in (root / folder / "raw", root):
            found = [_find(directory, f) for f in _IDX_TEST]
            if found[0] is not None and found[1] is not None:
                return memory_pool(name + "-test", read_idx(found[0]), read_idx(found[1]).astype(np.int64), None)
        raise DataError(f"{name}: no test files ({' and '.join(_IDX_TEST)}[.gz]) in {root / folder / 'raw'} or {root}")
    import torchvision.datasets as tvd

    try:
        if name == "svhn":
            ds = tvd.SVHN(str(root), split="test", download=config.download)
            return memory_pool("svhn-test", ds.data, ds.labels, None)
        ds = getattr(tvd, {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}[name])(str(root), train=False,
                                                                              download=config.download)
    except (RuntimeError, OSError, ImportError) as e:
        raise DataError(f"the {name} test set is not readable under {root}: {e}; pass --set download=true "
                        "or put it there") from e
    return memory_pool(name + "-test", ds.data, np.asarray(ds.targets), None, channels_last=True)
