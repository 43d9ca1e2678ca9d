"""Resuming a search: what may change, what must match, and how its parts and learning rates are brought back.

A resume continues exactly where the checkpoint left off (same weights, alphas, optimiser states, RNG
states and position in the data), so it is checked against the checkpoint itself, not against
config.json, which anyone can edit: a field that fixes *what* is searched must equal the checkpoint's,
and the data must have the fingerprint the run started with. Only how it optimises may change.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from engine.core.config import ConfigError
from engine.runs.checkpoint import CheckpointError, load_states
from engine.search.config import SearchConfig

__all__ = ["RESUMABLE_FIELDS", "check_resume", "restore_state", "reanchor_learning_rates"]

# Fields a resumed search may change (how it optimises); the rest fix what is searched and must match.
RESUMABLE_FIELDS = frozenset({"w_lr", "w_lr_min", "w_grad_clip", "a_lr", "a_weight_decay", "order", "amp",
                              "device", "log_every", "checkpoint_every_s", "fast", "threads", "derive_method"})


def check_resume(ckpt: dict[str, Any], config: SearchConfig, fingerprint: str, saved_fingerprint: str | None) -> None:
    """Refuse (ConfigError naming the field) a resume that would search something else than the checkpoint did.

    `fingerprint` is the data this process loaded; `saved_fingerprint` the one the run started with (the
    checkpoint's, or config.json's for checkpoints older than that field)."""
    saved = ckpt.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError("the checkpoint holds no config to check a resume against")
    for key, value in config.to_dict().items():
        if key not in RESUMABLE_FIELDS and key in saved and saved[key] != value:
            raise ConfigError(key, value, f"the checkpoint searched {key}={saved[key]!r}; a resumed search keeps it "
                                          f"(only {', '.join(sorted(RESUMABLE_FIELDS))} may change on resume)")
    if saved_fingerprint is not None and fingerprint != saved_fingerprint:
        raise ConfigError("dataset", config.dataset, f"the data found now (fingerprint {fingerprint[:12]}) is not the "
                                                     f"data the run started with ({saved_fingerprint[:12]}); point "
                                                     "data_root at the same files")


def restore_state(ckpt: dict[str, Any], model: torch.nn.Module, w_opt: torch.optim.Optimizer,
                  a_opt: torch.optim.Optimizer, scheduler: Any) -> None:
    """Load the checkpoint's states into the search's parts; a CheckpointError if they do not fit."""
    load_states(ckpt, {"model": model, "w_optimizer": w_opt, "a_optimizer": a_opt, "scheduler": scheduler},
                "this search network")


def reanchor_learning_rates(config: SearchConfig, w_opt: torch.optim.Optimizer, a_opt: torch.optim.Optimizer,
                            scheduler: Any) -> None:
    """A resume may lower the learning rates (e.g. after a NaN): put the schedules on the new ones, at the
    position the checkpoint reached."""
    scheduler.base_lrs = [config.w_lr]
    scheduler.eta_min = config.w_lr_min
    t, T = scheduler.last_epoch, scheduler.T_max
    lr = config.w_lr_min + (config.w_lr - config.w_lr_min) * (1 + math.cos(math.pi * t / T)) / 2
    for group in w_opt.param_groups:
        group["lr"] = lr
    for group in a_opt.param_groups:
        group["lr"], group["weight_decay"] = config.a_lr, config.a_weight_decay
