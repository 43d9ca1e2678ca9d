"""One step of training a network built from a genotype, the test-set score, and an epoch's running means.

A step: forward with drop path (the network's `drop_path_prob`, set by the loop each epoch), cross entropy
plus `auxiliary_weight` times the auxiliary head's, SGD with the gradient norm clipped (docs/darts.md,
section 4). This is the arithmetic only; engine/train/loop.py decides when to step, log and checkpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.runtime.device import autocast
from engine.train.config import TrainConfig

__all__ = ["TrainOutcome", "train_step", "evaluate", "TrainMeters", "auxiliary_fits", "oom_hint",
           "seed_everything"]

Batch = tuple[torch.Tensor, torch.Tensor]  # images (B, C, H, W), labels (B,)


@dataclass(frozen=True)
class TrainOutcome:
    loss: float          # the main head's cross entropy (the auxiliary term is in the gradient, not here)
    correct: int
    n: int
    lr: float
    finite: bool         # False: the loss was NaN or inf and no step was taken


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, config: TrainConfig,
               device: torch.device) -> TrainOutcome:
    x, y = batch
    model.train()
    lr = optimizer.param_groups[0]["lr"]
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, config.amp):
        logits, logits_aux = model(x)  # (B, classes), (B, classes) or None
    loss = F.cross_entropy(logits.float(), y)
    total = loss
    if logits_aux is not None and config.auxiliary_weight > 0:
        total = loss + config.auxiliary_weight * F.cross_entropy(logits_aux.float(), y)
    if not torch.isfinite(total):
        return TrainOutcome(float(loss.detach()), 0, len(y), lr, finite=False)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    correct = int((logits.detach().argmax(1) == y).sum())
    return TrainOutcome(float(loss.detach()), correct, len(y), lr, finite=True)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[Batch], device: torch.device, amp: bool = False
             ) -> dict[str, float]:
    """Mean loss and accuracy over `batches` in eval mode (no drop path, no auxiliary head, BN running stats)."""
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            with autocast(device, amp):
                logits, _ = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
    finally:
        model.train(was_training)
    return {"test_loss": loss_sum / max(n, 1), "test_acc": correct / max(n, 1)}


class TrainMeters:
    """Sample-weighted running means over the current epoch, kept in checkpoints for exact resume."""

    def __init__(self, state: dict[str, float] | None = None):
        self.sums = dict(state) if state else {"loss": 0.0, "correct": 0.0, "n": 0.0}

    def update(self, outcome: TrainOutcome) -> None:
        self.sums["loss"] += outcome.loss * outcome.n
        self.sums["correct"] += outcome.correct
        self.sums["n"] += outcome.n

    def means(self) -> dict[str, float]:
        n = max(self.sums["n"], 1.0)
        loss = self.sums["loss"] / n
        return {"train_loss": loss if math.isfinite(loss) else float("nan"), "train_acc": self.sums["correct"] / n}


def oom_hint(e: BaseException) -> str | None:
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return "out of memory: lower batch_size, init_channels or layers, or set amp=true on a GPU"
    return None


def auxiliary_fits(image_size: int) -> bool:
    """Whether the auxiliary head (pool 5 stride 3 after two reductions) sees a 2x2 map: about 29-40 pixel input."""
    s = math.ceil(math.ceil(image_size / 2) / 2)  # two stride-2 reductions
    return s >= 5 and (s - 5) // 3 + 1 == 2


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
