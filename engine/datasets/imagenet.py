"""The ImageNet recipe's data: an ImageFolder tree split into train/ and val/, read from the files each batch.

The DARTS paper's ImageNet transfer (reference: quark0/darts cnn/train_imagenet.py) augments the original files,
which the square, pre-decoded Pools of folder.py cannot do (RandomResizedCrop picks an area of the whole image,
of any aspect ratio):

    train: RandomResizedCrop(size) (scale 0.08-1, ratio 3/4-4/3), RandomHorizontalFlip, ColorJitter(0.4, 0.4,
           0.4, 0.2), ToTensor, Normalize(ImageNet mean/std)
    val:   Resize(size * 256/224) of the shorter side, CenterCrop(size), ToTensor, Normalize

torchvision draws these from torch's global generator; here every draw comes from a numpy generator the caller
seeds per image (seed, epoch, batch, position), so a resumed training decodes exactly the pixels the uninterrupted
one did, whatever thread decodes them. The arithmetic is torchvision's own functional ops on PIL images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from engine.datasets.base import DataError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EVAL_RESIZE", "folder_split", "decode_train", "decode_eval"]

# torchvision's ImageNet statistics, which the reference normalises with (not measured on the user's tree).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_RESIZE = 256 / 224          # Resize(256) + CenterCrop(224), kept in proportion at other image sizes
_SCALE, _RATIO = (0.08, 1.0), (3 / 4, 4 / 3)   # RandomResizedCrop's defaults, which the reference uses


def folder_split(root: Path, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """(classes, [(path, label)]) of root/split/<class>/<image>; a DataError naming the layout when it is not there."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    layout = "<data_root>/train/<class>/<image> and <data_root>/val/<class>/<image>"
    if not root.is_dir():
        raise DataError(f"image folder {root} not found; point --set data_root=... at an ImageNet-style tree: {layout}")
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"image folder {root} has no {split}/ folder; the ImageNet recipe reads {layout}")
    try:
        classes, class_to_idx = find_classes(str(folder))
        samples = make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as e:  # no class folders, or a class folder with no image in it
        raise DataError(f"image folder {folder}: {e}; expected {layout}") from e
    if len(classes) < 2:
        raise DataError(f"image folder {folder} has {len(classes)} class folder(s); a classifier needs at least 2")
    return classes, samples


def _open_rgb(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")     # torchvision's pil_loader: greyscale and CMYK files become RGB too
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def _crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """RandomResizedCrop.get_params (top, left, height, width), drawn from `rng` instead of torch's generator."""
    area = height * width
    log_ratio = (math.log(_RATIO[0]), math.log(_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    ratio = width / height     # fallback: the central crop, its aspect clamped into the ratio range
    if ratio < _RATIO[0]:
        w, h = width, round(width / _RATIO[0])
    elif ratio > _RATIO[1]:
        h, w = height, round(height * _RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _to_array(im) -> np.ndarray:
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)        # (3, S, S)


def decode_train(path: str, size: int, rng: np.random.Generator, flip: bool, jitter: float,
                 hue: float) -> np.ndarray:
    """One training image as uint8 (3, size, size): random resized crop, flip, colour jitter in a random order."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    im = _open_rgb(path)
    top, left, h, w = _crop_box(im.width, im.height, rng)
    im = TF.resized_crop(im, top, left, h, w, [size, size], interpolation=TF.InterpolationMode.BILINEAR)
    if flip and rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if jitter or hue:
        # ColorJitter: the four adjustments in a random order, each factor uniform around 1 (hue around 0)
        factors = {"brightness": rng.uniform(max(0.0, 1 - jitter), 1 + jitter),
                   "contrast": rng.uniform(max(0.0, 1 - jitter), 1 + jitter),
                   "saturation": rng.uniform(max(0.0, 1 - jitter), 1 + jitter),
                   "hue": rng.uniform(-hue, hue)}
        adjust = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
                  "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}
        for name in rng.permutation(list(factors)):
            if (name == "hue" and hue) or (name != "hue" and jitter):
                im = adjust[name](im, float(factors[name]))
    return _to_array(im)


def decode_eval(path: str, size: int) -> np.ndarray:
    """One evaluation image as uint8 (3, size, size): shorter side resized to size * 256/224, centre crop."""
    import torchvision.transforms.functional as TF

    im = TF.resize(_open_rgb(path), round(size * EVAL_RESIZE), interpolation=TF.InterpolationMode.BILINEAR)
    return _to_array(TF.center_crop(im, [size, size]))
