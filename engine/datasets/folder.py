"""Any ImageFolder tree (data_root/<class>/<image>): custom data with its own classes, channels and size.

- Classes are the sub-folder names, sorted (torchvision's rule); files with an image extension count.
- Channels: 1 if every selected image is greyscale, else 3 (colour images are converted to RGB, alpha dropped).
- Size: `image_size` when set, else the shorter side of the tree's first image. Each image's shorter side is
  resized to it (bilinear, antialiased by PIL) and the centre square cropped, so aspect ratios are kept.
- Only the selected images (after `subset`) are opened. They are decoded once into memory when they fit
  in MEMORY_BUDGET_BYTES, else decoded per batch (a huge tree still runs, more slowly).
- Identity for the fingerprint: the file listing (relative path, byte size, class), not the pixels, so a
  tree of any size is identified without reading it all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.datasets.base import DataError, Pool

__all__ = ["load_image_folder", "MEMORY_BUDGET_BYTES"]

MEMORY_BUDGET_BYTES = 2 * 1024**3   # decoded uint8 pixels held in memory at most; beyond it, decode per batch
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _decode(path: str, mode: str, size: int) -> np.ndarray:
    """One image as uint8 (C, size, size): shorter side resized to `size`, centre square cropped."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            w, h = im.size
            scale = size / min(w, h)
            new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
            if (new_w, new_h) != (w, h):
                im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
            left, top = (new_w - size) // 2, (new_h - size) // 2
            pixels = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)      # (C, S, S)


def _header(path: str) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def _listing(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not root.is_dir():
        raise DataError(f"image folder {root} not found; point --set data_root=... at a tree of "
                        "<class name>/<image file> folders")
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as e:  # no class folders, or a class folder with no image in it
        raise DataError(f"image folder {root}: {e}; expected <class name>/<image file> folders") from e
    if len(classes) < 2:
        raise DataError(f"image folder {root} has {len(classes)} class folder(s); a classifier needs at least 2")
    return classes, samples


def load_image_folder(root: Path, image_size: int | None, choose: Callable[[np.ndarray], np.ndarray]) -> Pool:
    """The images of the tree that `choose` (labels (N,) -> sorted indices) picks, as a pool of just those.

    Choosing before decoding means a subset of a big tree never opens the other files.
    """
    classes, samples = _listing(root)
    chosen = choose(np.array([label for _, label in samples], dtype=np.int64))
    paths = [samples[i][0] for i in chosen]
    labels = np.array([samples[i][1] for i in chosen], dtype=np.int64)
    size = image_size or min(_header(samples[0][0])[1])
    mode = "L" if all(_header(p)[0] in _GREY_MODES for p in paths) else "RGB"
    channels = 1 if mode == "L" else 3
    listing = "".join(f"{Path(p).relative_to(root)}\t{Path(p).stat().st_size}\t{y}\n" for p, y in samples)
    identity = hashlib.sha256(f"imagefolder {mode} {size}\n{listing}".encode()
                              + np.asarray(chosen, dtype=np.int64).tobytes()).hexdigest()

    def decode(indices: np.ndarray) -> np.ndarray:
        return np.stack([_decode(paths[i], mode, size) for i in indices])                   # (n, C, S, S)

    common = dict(name="imagefolder", labels=labels, classes=classes, in_channels=channels, image_size=size,
                  identity=identity)
    if len(paths) * channels * size * size > MEMORY_BUDGET_BYTES:
        return Pool(**common, decode=decode)
    images = np.empty((len(paths), channels, size, size), dtype=np.uint8)     # filled in place: no 2x peak
    for i, path in enumerate(paths):
        images[i] = _decode(path, mode, size)
    return Pool(**common, images=images)
