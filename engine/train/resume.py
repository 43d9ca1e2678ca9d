"""A training's checkpoint.pt: what it holds, how it is read back, and what a resume may change.

The same machinery as a search's (engine/runs/checkpoint.py: atomic save, RNG capture, weights_only load), with
the training's parts: the network's state_dict, SGD and its cosine schedule, the RNG states (drop path
draws from torch's), the position in the data (epoch, batch), the epoch's running sums, and beside them the
genotype, its source and the resolved config, so a checkpoint describes itself and rebuilds its network.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from engine.core.config import ConfigError
from engine.runs.checkpoint import CheckpointError, load_checkpoint, load_states
from engine.space.cnn.genotype import Genotype
from engine.train.config import RESUMABLE_TRAIN_FIELDS, TrainConfig

__all__ = ["TRAIN_FORMAT", "load_train_checkpoint", "check_train_resume", "restore_train_state"]

TRAIN_FORMAT = "dartboard-train-checkpoint/1"
_REQUIRED = ("format", "step", "epoch", "batch", "model", "optimizer", "scheduler", "rng", "config", "genotype")


def load_train_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    return load_checkpoint(path, TRAIN_FORMAT, _REQUIRED, "training")


def check_train_resume(ckpt: dict[str, Any], config: TrainConfig, genotype: Genotype, fingerprint: str) -> None:
    """Refuse a resume that would train something else than the checkpoint did (ConfigError naming the field)."""
    saved = ckpt["config"]
    for key, value in config.to_dict().items():
        if key not in RESUMABLE_TRAIN_FIELDS and key in saved and saved[key] != value:
            raise ConfigError(key, value, f"the checkpoint trained with {key}={saved[key]!r}; a resumed training keeps "
                                          f"it (only {', '.join(sorted(RESUMABLE_TRAIN_FIELDS))} may change)")
    if Genotype.from_dict(ckpt["genotype"]) != genotype:
        raise CheckpointError("the checkpoint trained another genotype than config.json names")
    saved_fp = ckpt.get("data_fingerprint")
    if saved_fp is not None and saved_fp != fingerprint:
        raise ConfigError("dataset", config.dataset, f"the data found now (fingerprint {fingerprint[:12]}) is not the "
                                                     f"data the run started with ({saved_fp[:12]}); point data_root at "
                                                     "the same files")


def restore_train_state(ckpt: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any) -> None:
    """Load the checkpoint's states into the training's parts; a CheckpointError if they do not fit."""
    load_states(ckpt, {"model": model, "optimizer": optimizer, "scheduler": scheduler}, "this network")
