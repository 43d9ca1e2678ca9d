"""One step of training a network built from a genotype, the test-set score, and an epoch's running means.

A step: forward with drop path (the network's `drop_path_prob`, set by the loop each epoch), cross entropy
(label-smoothed by `label_smoothing`, torch's own) plus `auxiliary_weight` times the auxiliary head's, SGD with
the gradient norm clipped (docs/darts.md, section 4). The test score is unsmoothed, as the reference's. This is
the arithmetic only; engine/train/loop.py decides when to step, log and checkpoint.
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
    loss: float          # the main head's (smoothed) cross entropy (the auxiliary term is in the gradient, not here)
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
    # The reference's CrossEntropyLabelSmooth is (1-e) * CE + e * mean over classes of -log p, torch's
    # label_smoothing exactly; it smooths the auxiliary term too.
    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
    total = loss
    if logits_aux is not None and config.auxiliary_weight > 0:
        total = loss + config.auxiliary_weight * F.cross_entropy(logits_aux.float(), y,
                                                                 label_smoothing=config.label_smoothing)
    if not torch.isfinite(total):
        return TrainOutcome(float(loss.detach()), 0, len(y), lr, finite=False)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    correct = int((logits.detach().argmax(1) == y).sum())
    return TrainOutcome(float(loss.detach()), correct, len(y), lr, finite=True)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[Batch], device: torch.device, amp: bool = False,
             top5: bool = False) -> dict[str, float]:
    """Mean loss and accuracy over `batches` in eval mode (no drop path, no auxiliary head, BN running stats);
    with `top5`, also the share whose class is among the 5 highest logits (all of them with 5 classes or fewer)."""
    was_training = model.training
    model.eval()
    loss_sum, correct, correct5, n = 0.0, 0, 0, 0
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            with autocast(device, amp):
                logits, _ = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            if top5:
                best = logits.topk(min(5, logits.shape[1]), dim=1).indices      # (B, 5)
                correct5 += int((best == y[:, None]).any(1).sum())
            n += len(y)
    finally:
        model.train(was_training)
    scores = {"test_loss": loss_sum / max(n, 1), "test_acc": correct / max(n, 1)}
    return scores | ({"test_top5": correct5 / max(n, 1)} if top5 else {})


class TrainMeters(RunningMeans):
    """Sample-weighted running means over the current epoch: the loss summed over samples, the correct count."""

    KEYS = ("loss", "correct")

    def update(self, outcome: TrainOutcome) -> None:
        self.add({"loss": outcome.loss * outcome.n, "correct": outcome.correct}, outcome.n)

    def means(self) -> dict[str, float]:
        m = super().means()
        return {"train_loss": m["loss"] if math.isfinite(m["loss"]) else float("nan"), "train_acc": m["correct"]}


def auxiliary_fits(image_size: int, network: str = "cifar") -> bool:
    """Whether the auxiliary head sees a 2x2 map after its pool of 5: the CIFAR head (stride 3, after two
    reductions) at about 29-40 pixel input, the ImageNet head (stride 2, after three stems and two reductions:
    the paper's 7x7) at 193-256."""
    halvings, stride = (5, 2) if network == "imagenet" else (2, 3)
    s = image_size
    for _ in range(halvings):
        s = math.ceil(s / 2)  # stride-2 convolutions with padding 1
    return s >= 5 and (s - 5) // stride + 1 == 2

