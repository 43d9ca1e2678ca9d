"""One step of training a network built from a genotype, the test-set score, and an epoch's running means.

A step: forward with drop path (the network's `drop_path_prob`, set by the loop each epoch), cross entropy
plus `auxiliary_weight` times the auxiliary head's, SGD with the gradient norm clipped (docs/darts.md,
section 4). This is the arithmetic only; engine/train/loop.py decides when to step, log and checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.runs.lifecycle_resume import RunningMeans
from engine.runtime.device import autocast
from engine.train.config import TrainConfig

__all__ = ["TrainOutcome", "train_step", "evaluate", "TrainMeters", "auxiliary_fits"]

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


class TrainMeters(RunningMeans):
    """Sample-weighted running means over the current epoch: the loss summed over samples, the correct count."""

    KEYS = ("loss", "correct")

    def update(self, outcome: TrainOutcome) -> None:
        self.add({"loss": outcome.loss * outcome.n, "correct": outcome.correct}, outcome.n)

    def means(self) -> dict[str, float]:
        m = super().means()
        return {"train_loss": m["loss"] if math.isfinite(m["loss"]) else float("nan"), "train_acc": m["correct"]}


def auxiliary_fits(image_size: int) -> bool:
    """Whether the auxiliary head (pool 5 stride 3 after two reductions) sees a 2x2 map: about 29-40 pixel input."""
    s = math.ceil(math.ceil(image_size / 2) / 2)  # two stride-2 reductions
    return s >= 5 and (s - 5) // 3 + 1 == 2

