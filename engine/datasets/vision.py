"""CIFAR-10, CIFAR-100 and SVHN through torchvision, from a local root (downloaded only when allowed).

torchvision reads and checks the files (md5 of every batch file); we keep its arrays as one uint8 tensor
(CIFAR: 50,000 x 3 x 32 x 32 = 150 MB, SVHN: 73,257 x 3 x 32 x 32 = 225 MB) so a batch is an index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.datasets.base import DataError, Pool, memory_pool

__all__ = ["load_cifar", "load_svhn"]

# config name -> (torchvision class, human name, what a user can do instead of downloading)
_CIFAR = {
    "cifar10": ("CIFAR10", "CIFAR-10", "extract cifar-10-python.tar.gz into {root}"),
    "cifar100": ("CIFAR100", "CIFAR-100", "extract cifar-100-python.tar.gz into {root}"),
}


def _open(make: Any, human: str, where: Path, manual: str, root: Path, download: bool) -> Any:
    """Build a torchvision dataset, turning its errors into a DataError that says what to do."""
    try:
        return make()
    except RuntimeError as e:
        if download:
            raise DataError(f"could not download {human} into {root}: {e}") from e
        raise DataError(f"{human} not found (or corrupted) under {where}; pass --set download=true to let "
                        f"torchvision download it into {root}, or {manual.format(root=root)}") from e
    except OSError as e:  # a failed download surfaces as URLError (an OSError); so does an unreadable file
        action = f"download {human} into {root}" if download else f"read {human} under {where}"
        raise DataError(f"could not {action}: {e}") from e


def load_cifar(dataset: str, root: Path, download: bool) -> Pool:
    import torchvision.datasets as tvd  # late: torchvision's import is slow

    cls_name, human, manual = _CIFAR[dataset]
    cls = getattr(tvd, cls_name)
    where = root / cls.base_folder
    ds = _open(lambda: cls(str(root), train=True, download=download), human, where, manual, root, download)
    return memory_pool(dataset, ds.data, np.asarray(ds.targets), list(ds.classes), channels_last=True)


def load_svhn(root: Path, download: bool) -> Pool:
    import torchvision.datasets as tvd

    where = root / "train_32x32.mat"

    def make() -> Any:
        try:
            return tvd.SVHN(str(root), split="train", download=download)
        except ImportError as e:  # torchvision reads SVHN's .mat files with scipy, an optional dependency
            raise DataError(f"SVHN at {where} needs scipy to read its .mat file: pip install scipy") from e

    ds = _open(make, "SVHN", root, "put train_32x32.mat into {root}", root, download)
    # torchvision maps SVHN's label 10 (the digit 0) to 0, so the classes are the digits in order.
    return memory_pool("svhn", ds.data, ds.labels, [str(d) for d in range(10)])
