"""MNIST-style IDX files (MNIST, Fashion-MNIST) and the embedded Fashion-MNIST subset in assets/.

Where the IDX files may be, for `data_root` = ROOT (first match wins):
  1. ROOT/MNIST/raw or ROOT/FashionMNIST/raw: torchvision's own layout (what download=true writes);
  2. ROOT itself: the four files side by side, e.g. Debian's `dataset-fashion-mnist` package, which installs
     them gzipped under /usr/share/datasets/fashion-mnist (so data_root=/usr/share/datasets/fashion-mnist).
Each file may be plain (`train-images-idx3-ubyte`) or gzipped (`...-ubyte.gz`). We read them with the small
reader below instead of torchvision's class, which insists on layout 1 with the files already unzipped.
Only the training pair is read: the search split is cut from the training set.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from engine.datasets.base import REPO_ROOT, DataError, Pool, memory_pool

__all__ = ["read_idx", "read_raw", "parse_idx", "find_idx_pair", "load_idx_dataset", "load_embedded",
           "EMBEDDED_ASSET", "IDX_TRAIN_FILES"]

EMBEDDED_ASSET = REPO_ROOT / "assets" / "fashion_mnist_subset.npz"
IDX_TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
# config name -> (torchvision class name, which is also its folder under ROOT, human name)
_SETS = {"mnist": ("MNIST", "MNIST"), "fashion_mnist": ("FashionMNIST", "Fashion-MNIST")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (plain or .gz) as a uint8 array of the shape its header gives."""
    return parse_idx(read_raw(path), path)


def read_raw(path: Path) -> bytes:
    """The bytes of a file, gunzipped when its name ends in .gz."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """The array in the bytes of an IDX file (`path` only names it in errors)."""
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
    # dimension as a big-endian uint32.
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad header {raw[:4]!r})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header is cut short")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise DataError(f"{path}: header says shape {dims} but the file holds {len(raw) - offset} values")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx_pair(root: Path, folder: str) -> tuple[Path, Path] | None:
    """(images, labels) of the training set under ROOT/folder/raw or ROOT, or None."""
    for directory in (root / folder / "raw", root):
        found = [_find(directory, name) for name in IDX_TRAIN_FILES]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    return None


def _missing(dataset: str, root: Path) -> DataError:
    folder, human = _SETS[dataset]
    names = " and ".join(f"{n}[.gz]" for n in IDX_TRAIN_FILES)
    hint = ("; on Debian/Ubuntu `apt-get install dataset-fashion-mnist` and pass "
            "--set data_root=/usr/share/datasets/fashion-mnist" if dataset == "fashion_mnist" else "")
    return DataError(f"{human} not found: no {names} in {root / folder / 'raw'} or {root}{hint}; "
                     "or put the IDX files there, or pass --set download=true to let torchvision download them")


def load_idx_dataset(dataset: str, root: Path, download: bool) -> Pool:
    """The MNIST or Fashion-MNIST training set from IDX files (downloaded by torchvision only if allowed)."""
    import torchvision.datasets as tvd  # late: torchvision's import is slow and only these paths need it

    folder, human = _SETS[dataset]
    pair = find_idx_pair(root, folder)
    if pair is None and download:
        try:
            getattr(tvd, folder)(str(root), train=True, download=True)
        except Exception as e:  # torchvision raises RuntimeError, URLError, OSError... for a failed download
            raise DataError(f"could not download {human} into {root / folder / 'raw'}: {e}") from e
        pair = find_idx_pair(root, folder)
    if pair is None:
        raise _missing(dataset, root)
    images, labels = read_idx(pair[0]), read_idx(pair[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{pair[0]} / {pair[1]}: expected images (N, H, W) and labels (N,), "
                        f"got {images.shape} and {labels.shape}")
    return memory_pool(dataset, images, labels, list(getattr(tvd, folder).classes))


def load_embedded(path: Path | None = None) -> Pool:
    """The Fashion-MNIST subset shipped in assets/ (see assets/README.md); no network, no download."""
    path = path or EMBEDDED_ASSET
    if not path.is_file():
        raise DataError(f"the embedded dataset {path} is missing; build it with "
                        "`python scripts/build_embedded_dataset.py` (needs Debian's dataset-fashion-mnist package)")
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels, classes = z["train_images"], z["train_labels"], [str(c) for c in z["classes"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read the embedded dataset {path}: {e}; rebuild it with "
                        "`python scripts/build_embedded_dataset.py`") from e
    return memory_pool("embedded", images, labels, classes)
