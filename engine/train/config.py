"""TrainConfig: every knob of training a network built from a genotype, validated, frozen, and named presets.

The counterpart of SearchConfig (engine/search/config.py) for the second phase of DARTS: the evaluation network
(docs/darts.md, section 4) trained from scratch on the whole training set and scored on the test set. The
resolved config goes into the run directory, so a training can be reproduced from it alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.config import DATASETS, ConfigError, FrozenConfig, check_known, check_run_fields
from engine.core.config import check as _check
from engine.core.config import is_int as _is_int
from engine.core.config import is_num as _is_num

__all__ = ["TrainConfig", "TRAIN_PRESETS", "RESUMABLE_TRAIN_FIELDS", "from_train_preset", "NETWORKS", "AUGMENTS",
           "LR_SCHEDULES", "MIN_IMAGENET_SIZE"]

NETWORKS = ("cifar", "imagenet")
AUGMENTS = ("cifar", "imagenet")
LR_SCHEDULES = ("cosine", "exponential")
MIN_IMAGENET_SIZE = 32    # 224 / 32 = 7: the paper's last map; at 32 px the last cells see 1x1

# Fields a resumed training may change (how it runs, not what it learns or the recipe's arithmetic).
RESUMABLE_TRAIN_FIELDS = frozenset({"device", "log_every", "checkpoint_every_s", "data_root", "download"})


@dataclass(frozen=True)
class TrainConfig(FrozenConfig):
    # data: the whole training set (or `subset` of it) to learn, the test set to score
    dataset: str = "embedded"        # see engine.search.config.DATASETS (imagefolder: only with augment="imagenet")
    data_root: str = "./data"
    download: bool = False
    subset: int | None = None        # at most this many training images, class-balanced (None = all)
    test_subset: int | None = None   # at most this many test images (None = all; "fake" makes 64)
    image_size: int | None = None    # resize to this (None = the data's own size; required by "fake")
    in_channels: int = 3             # only read by "fake"
    num_classes: int = 10            # only read by "fake"
    # network: NetworkCIFAR or NetworkImageNet(init_channels, classes, layers, auxiliary_weight > 0, genotype).
    # A field, not derived from image_size or dataset: neither decides it (the tests train the ImageNet network
    # at 32-64 px, and a small-image folder may want either), and config.json alone must rebuild the network.
    network: str = "cifar"           # "cifar": one 3x3 stem; "imagenet": three stride-2 stems (224 -> 28)
    init_channels: int = 36
    layers: int = 20
    # schedule: SGD with momentum, stepped once an epoch: cosine from lr to lr_min over `epochs`, or exponential
    # (lr * lr_gamma**epoch, the reference's StepLR(1, gamma) for ImageNet)
    lr_schedule: str = "cosine"
    lr_gamma: float = 0.97           # only read by the exponential schedule
    batch_size: int = 96
    epochs: int = 600
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # regularisation and augmentation. "cifar": the pool's images, padded crop, flip, cutout, normalised by their
    # own mean/std; "imagenet": an ImageFolder's train/ and val/ read from the files, RandomResizedCrop(image_size)
    # + flip + ColorJitter, evaluated after Resize(image_size*256/224) + CenterCrop, ImageNet's mean/std
    augment: str = "cifar"
    crop_padding: int = 4            # random crop after zero padding by this many pixels (0 = off; "cifar" only)
    flip: bool = True                # random horizontal flip
    cutout: int = 16                 # side of the square cut out of each training image (0 = off; "cifar" only)
    color_jitter: float = 0.0        # ColorJitter's brightness, contrast and saturation ("imagenet" only; 0 = off)
    hue_jitter: float = 0.0          # ColorJitter's hue, at most 0.5 ("imagenet" only; 0 = off)
    label_smoothing: float = 0.0     # of the training loss (main and auxiliary), as torch's cross_entropy takes it
    drop_path_prob: float = 0.2      # ramped linearly from 0 over the epochs
    auxiliary_weight: float = 0.4    # the auxiliary head's share of the loss (0 = no head)
    top5: bool = False               # also score test_top5 (the right class among the 5 highest logits)
    # run
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    log_every: int = 10              # steps between metrics lines (and one at each epoch end, with the test scores)
    checkpoint_every_s: float = 120.0

    def __post_init__(self) -> None:
        validate(self)


def _optional_int(v: Any, low: int, high: int) -> bool:
    return v is None or (_is_int(v) and low <= v <= high)


def validate(c: TrainConfig) -> None:
    """Raise ConfigError for the first field that is out of range."""
    _check(c.dataset in DATASETS, "dataset", c.dataset, f"one of {', '.join(DATASETS)}")
    # An image folder trains only with the ImageNet recipe, which reads its train/ and val/ splits; the pools of
    # the "cifar" recipe hold no test split for a folder (a search's folder is one tree).
    _check(c.dataset != "imagefolder" or c.augment == "imagenet", "dataset", c.dataset,
           "imagefolder trains only with augment=imagenet (train/ and val/ splits; see preset darts-imagenet-eval)")
    _check(c.augment in AUGMENTS, "augment", c.augment, f"one of {', '.join(AUGMENTS)}")
    _check(c.augment != "imagenet" or c.dataset == "imagefolder", "augment", c.augment,
           "imagenet needs dataset=imagefolder (it crops the original files)")
    _check(isinstance(c.data_root, str) and c.data_root != "", "data_root", c.data_root, "a directory path")
    _check(isinstance(c.download, bool), "download", c.download, "true or false")
    _check(_optional_int(c.subset, 2, 10**9), "subset", c.subset, "an integer >= 2, or none for all")
    _check(_optional_int(c.test_subset, 1, 10**9), "test_subset", c.test_subset, "an integer >= 1, or none for all")
    _check(_optional_int(c.image_size, 8, 1024), "image_size", c.image_size, "an integer from 8 to 1024, or none")
    _check(c.dataset != "fake" or c.image_size is not None, "image_size", c.image_size,
           "the fake dataset needs an image size")
    _check(_is_int(c.in_channels) and 1 <= c.in_channels <= 64, "in_channels", c.in_channels, "an integer from 1 to 64")
    _check(_is_int(c.num_classes) and 2 <= c.num_classes <= 100_000, "num_classes", c.num_classes,
           "an integer from 2 to 100000")
    _check(c.network in NETWORKS, "network", c.network, f"one of {', '.join(NETWORKS)}")
    _check(c.augment != "imagenet" or c.image_size is not None, "image_size", c.image_size,
           "augment=imagenet needs an image size (224 in the paper)")
    _check(c.network != "imagenet" or c.image_size is None or c.image_size >= MIN_IMAGENET_SIZE, "image_size",
           c.image_size, f"at least {MIN_IMAGENET_SIZE} for network=imagenet: it halves the input five times (three "
           "stems, two reduction cells), and below 32 px the last halvings find a 1x1 map")
    _check(_is_int(c.init_channels) and 2 <= c.init_channels <= 512 and c.init_channels % 2 == 0,
           "init_channels", c.init_channels, "an even integer from 2 to 512")
    _check(_is_int(c.layers) and 3 <= c.layers <= 64, "layers", c.layers, "an integer from 3 to 64")
    _check(_is_int(c.batch_size) and 1 <= c.batch_size <= 4096, "batch_size", c.batch_size, "an integer from 1 to 4096")
    _check(_is_int(c.epochs) and 1 <= c.epochs <= 10_000, "epochs", c.epochs, "an integer from 1 to 10000")
    _check(_is_num(c.lr) and 0 < c.lr <= 10, "lr", c.lr, "a number in (0, 10]")
    _check(_is_num(c.lr_min) and 0 <= c.lr_min <= c.lr, "lr_min", c.lr_min, f"a number in [0, lr={c.lr}]")
    _check(c.lr_schedule in LR_SCHEDULES, "lr_schedule", c.lr_schedule, f"one of {', '.join(LR_SCHEDULES)}")
    _check(_is_num(c.lr_gamma) and 0 < c.lr_gamma <= 1, "lr_gamma", c.lr_gamma, "a number in (0, 1]")
    _check(_is_num(c.momentum) and 0 <= c.momentum < 1, "momentum", c.momentum, "a number in [0, 1)")
    _check(_is_num(c.weight_decay) and 0 <= c.weight_decay < 1, "weight_decay", c.weight_decay, "a number in [0, 1)")
    _check(_is_num(c.grad_clip) and c.grad_clip > 0, "grad_clip", c.grad_clip, "a positive number")
    _check(_is_int(c.crop_padding) and 0 <= c.crop_padding <= 64, "crop_padding", c.crop_padding,
           "an integer from 0 to 64")
    _check(isinstance(c.flip, bool), "flip", c.flip, "true or false")
    _check(_is_int(c.cutout) and 0 <= c.cutout <= 1024, "cutout", c.cutout, "an integer from 0 (off) to 1024")
    _check(c.augment == "cifar" or c.crop_padding == 0, "crop_padding", c.crop_padding,
           "0 with augment=imagenet (RandomResizedCrop replaces the padded crop)")
    _check(c.augment == "cifar" or c.cutout == 0, "cutout", c.cutout, "0 with augment=imagenet (not in its recipe)")
    _check(_is_num(c.color_jitter) and 0 <= c.color_jitter <= 1, "color_jitter", c.color_jitter,
           "a number in [0, 1] (0 = off)")
    _check(_is_num(c.hue_jitter) and 0 <= c.hue_jitter <= 0.5, "hue_jitter", c.hue_jitter,
           "a number in [0, 0.5] (0 = off)")
    _check(c.augment == "imagenet" or (c.color_jitter == 0 and c.hue_jitter == 0), "color_jitter", c.color_jitter,
           "0 unless augment=imagenet (the cifar recipe has no colour jitter)")
    _check(_is_num(c.label_smoothing) and 0 <= c.label_smoothing < 1, "label_smoothing", c.label_smoothing,
           "a number in [0, 1)")
    _check(_is_num(c.drop_path_prob) and 0 <= c.drop_path_prob < 1, "drop_path_prob", c.drop_path_prob,
           "a number in [0, 1)")
    _check(_is_num(c.auxiliary_weight) and 0 <= c.auxiliary_weight <= 10, "auxiliary_weight", c.auxiliary_weight,
           "a number in [0, 10] (0 = no auxiliary head)")
    _check(isinstance(c.top5, bool), "top5", c.top5, "true or false")
    check_run_fields(c)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The paper's CIFAR-10 evaluation (docs/darts.md, section 4): C=36, 20 cells, batch 96, 600 epochs, SGD
    # 0.025 cosine to 0, momentum 0.9, wd 3e-4, clip 5, crop 4 + flip, cutout 16, drop path 0.2 ramped
    # linearly, auxiliary head weight 0.4. A GPU job (about 1.5 GPU-days in the paper).
    "darts-cifar10-eval": TrainConfig(dataset="cifar10"),
    # The embedded Fashion-MNIST subset (10,000 training, 2,000 test images) on a laptop CPU, sized to finish in
    # minutes on two cores (docs/training.md has the measurement): the 28x28 images at their own size,
    # C=8 and 5 cells (both reductions and a normal cell between them), batch 64, 10 epochs at twice the
    # paper's lr (few steps). Crop 2 + flip; no cutout, drop path or auxiliary head: they pay off over
    # hundreds of epochs, not ten (and the head needs an 8x8 map, i.e. about 32x32 input).
    "train-demo": TrainConfig(dataset="embedded", init_channels=8, layers=5, batch_size=64, epochs=10,
                              lr=0.05, lr_min=0.0, crop_padding=2, flip=True, cutout=0, drop_path_prob=0.0,
                              auxiliary_weight=0.0, log_every=10, checkpoint_every_s=60.0),
    # The paper's ImageNet transfer (section 3.3, Appendix A.2.3; quark0/darts cnn/train_imagenet.py, model.py
    # NetworkImageNet), the mobile setting: C=48, 14 cells, 224x224, batch 128, 250 epochs, SGD lr 0.1 decayed by
    # 0.97 every epoch, momentum 0.9, wd 3e-5, clip 5, label smoothing 0.1, auxiliary head 0.4, drop path 0 (the
    # reference's default there), RandomResizedCrop + flip + ColorJitter(0.4, 0.4, 0.4, 0.2), Resize(256) +
    # CenterCrop(224) to evaluate, top-5 reported. data_root must hold train/ and val/ (docs/training.md); nothing
    # is downloaded. A multi-GPU job in the paper; not run at full scale here.
    "darts-imagenet-eval": TrainConfig(dataset="imagefolder", data_root="./data/imagenet", image_size=224,
                                       network="imagenet", augment="imagenet", init_channels=48, layers=14,
                                       batch_size=128, epochs=250, lr=0.1, lr_schedule="exponential", lr_gamma=0.97,
                                       momentum=0.9, weight_decay=3e-5, grad_clip=5.0, crop_padding=0, flip=True,
                                       cutout=0, color_jitter=0.4, hue_jitter=0.2, label_smoothing=0.1,
                                       drop_path_prob=0.0, auxiliary_weight=0.4, top5=True),
    # For tests: random 8x8 images, 3 cells of 4 channels, a few steps, every regulariser on (drop path,
    # cutout, crop, flip), so resume covers their random state; no auxiliary head (it needs 32x32).
    "train-smoke": TrainConfig(dataset="fake", image_size=8, in_channels=3, num_classes=4, subset=32,
                               test_subset=16, init_channels=4, layers=3, batch_size=8, epochs=2, lr=0.05,
                               crop_padding=1, cutout=3, drop_path_prob=0.2, auxiliary_weight=0.0, log_every=1,
                               seed=0),
}


def from_train_preset(name: str, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise ConfigError("preset", name, f"one of {', '.join(TRAIN_PRESETS)}")
    base = TRAIN_PRESETS[name]
    check_known(TrainConfig, overrides or {})
    return dataclasses.replace(base, **dict(overrides or {}))
