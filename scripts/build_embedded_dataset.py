"""Build assets/fashion_mnist_subset.npz, the embedded dataset, from the original Fashion-MNIST IDX files.

    apt-get install dataset-fashion-mnist        # Debian/Ubuntu: the IDX files under /usr/share/datasets/fashion-mnist
    python scripts/build_embedded_dataset.py     # [--source DIR] [--out FILE]

Reproducible to the byte: the source files must have the recorded content (sha256 of the unzipped IDX
files, so a recompressed copy is fine); the images are chosen per class by a hash of their index (no
random generator whose stream could change between library versions); the .npz is written with fixed
member order and timestamps, compressed with bzip2 (np.load reads it like any .npz). bzip2 rather than
deflate: smaller here (4.9 MB against 5.3 MB), and its output has not changed since libbz2 1.0, where
deflate's bytes differ between zlib builds (zlib-ng). Building twice, anywhere, gives the same sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from engine.datasets.idx import parse_idx, read_raw  # noqa: E402  (the repository root is on the path now)

__all__ = ["build", "select_balanced", "SOURCE_SHA256", "CLASSES", "DEFAULT_SOURCE", "DEFAULT_OUT"]

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = REPO / "assets" / "fashion_mnist_subset.npz"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# sha256 of the unzipped files of Fashion-MNIST (github.com/zalandoresearch/fashion-mnist, as Debian ships it).
SOURCE_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SELECTION_RULE = ("per class, the N indices i with the smallest sha256('fashion-mnist/<split>/<seed>/<i>') "
                  "(first 8 bytes, big-endian), stored in ascending index order")


def _source(directory: Path, name: str) -> np.ndarray:
    """One IDX file (plain or .gz) after checking its unzipped content against SOURCE_SHA256."""
    path = next((p for p in (directory / name, directory / f"{name}.gz") if p.is_file()), None)
    if path is None:
        raise SystemExit(f"{name}[.gz] not found in {directory}; "
                         "apt-get install dataset-fashion-mnist, or pass --source DIR")
    raw = read_raw(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256[name]:
        raise SystemExit(f"{path}: unzipped sha256 {digest} is not Fashion-MNIST's {SOURCE_SHA256[name]}")
    return parse_idx(raw, path)


def select_balanced(labels: np.ndarray, per_class: int, split: str, seed: int) -> np.ndarray:
    """Ascending indices: for each class, the `per_class` indices of smallest hash (see SELECTION_RULE)."""
    keys = np.array([int.from_bytes(hashlib.sha256(f"fashion-mnist/{split}/{seed}/{i}".encode()).digest()[:8], "big")
                     for i in range(len(labels))], dtype=np.uint64)
    chosen = []
    for c in range(len(CLASSES)):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise SystemExit(f"{split}: class {c} has {len(members)} images, fewer than {per_class}")
        chosen.append(members[np.lexsort((members, keys[members]))[:per_class]])
    return np.sort(np.concatenate(chosen))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz that np.load reads, with nothing in it that depends on when or where it was written."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_BZIP2, compresslevel=9)
    os.replace(tmp, path)


def build(source: Path = DEFAULT_SOURCE, out: Path = DEFAULT_OUT, train_per_class: int = 1000,
          test_per_class: int = 200, seed: int = 0) -> str:
    """Write the asset and return its sha256."""
    arrays: dict[str, np.ndarray] = {}
    for split, prefix, per_class in (("train", "train", train_per_class), ("test", "t10k", test_per_class)):
        images = _source(source, f"{prefix}-images-idx3-ubyte")                  # (N, 28, 28)
        labels = _source(source, f"{prefix}-labels-idx1-ubyte")                  # (N,)
        index = select_balanced(labels, per_class, split, seed)
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = labels[index]
        arrays[f"{split}_indices"] = index.astype(np.int32)
    meta = {"dataset": "Fashion-MNIST", "licence": "MIT, Copyright (c) 2017 Zalando SE",
            "source": "github.com/zalandoresearch/fashion-mnist IDX files (Debian package dataset-fashion-mnist)",
            "source_sha256_unzipped": SOURCE_SHA256, "selection": SELECTION_RULE, "seed": seed,
            "train_per_class": train_per_class, "test_per_class": test_per_class,
            "builder": "scripts/build_embedded_dataset.py"}
    arrays["classes"] = np.array(CLASSES)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(out, arrays)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the four IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    digest = build(args.source, args.out, args.train_per_class, args.test_per_class, args.seed)
    with np.load(args.out, allow_pickle=False) as z:
        counts = {s: np.bincount(z[f"{s}_labels"], minlength=len(CLASSES)).tolist() for s in ("train", "test")}
    print(f"{args.out}: {args.out.stat().st_size} bytes, sha256 {digest}")
    print(f"images per class: train {counts['train']}, test {counts['test']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
