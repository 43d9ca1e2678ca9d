"""One step of the bilevel search, and the running means an epoch shows.

A step is an architecture step on a batch of the architecture half (engine/search/architect.py, first or second
order), then a weight step on a batch of the weight half: SGD on the training loss with the weights'
gradient norm clipped (docs/darts.md, section 3). This is the arithmetic only; engine/search/loop.py decides
when to step, what to log and what to keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.nn.supernet import SearchNetwork
from engine.runs.lifecycle_resume import RunningMeans
from engine.runtime.device import autocast
from engine.runtime.distributed import SINGLE, World, average_
from engine.search.architect import Architect
from engine.search.config import SearchConfig

__all__ = ["StepOutcome", "bilevel_step", "EpochMeters"]

Batch = tuple[torch.Tensor, torch.Tensor]  # images (B, C, H, W), labels (B,)


@dataclass(frozen=True)
class StepOutcome:
    train_loss: float
    valid_loss: float
    train_acc: float | None     # None when the step did not finish (non-finite loss)
    valid_acc: float | None
    w_lr: float                 # the weight lr the step used (the unrolled step's xi too)
    finite: bool                # False: a loss was NaN or inf and no weight step was taken


def bilevel_step(model: SearchNetwork, architect: Architect, w_opt: torch.optim.Optimizer, train: Batch,
                 valid: Batch, config: SearchConfig, device: torch.device, epoch: int | None = None,
                 world: World = SINGLE) -> StepOutcome:
    """One step; during the first `config.arch_warmup_epochs` epochs (given `epoch`) the architecture is frozen:
    the validation batch is only measured, and no architecture step is taken (PC-DARTS's warm-up). Under
    torchrun (`world`) each rank holds its slice of the global batches, and the gradients and figures are
    averaged over the ranks (engine/runtime/distributed.py)."""
    (x, y), (xv, yv) = train, valid
    w_lr = w_opt.param_groups[0]["lr"]
    if epoch is not None and epoch < config.arch_warmup_epochs:
        arch = architect.measure(xv, yv, amp=config.amp, device=device)
    else:
        arch = architect.step(x, y, xv, yv, w_lr, w_opt, amp=config.amp, device=device)
    w_opt.zero_grad(set_to_none=True)
    with autocast(device, config.amp):
        logits = model(x, weight_step=True)  # (B, classes); SDARTS-RS perturbs the op weights here only
    loss = F.cross_entropy(logits.float(), y)
    figures = torch.stack([loss.detach(), (logits.detach().argmax(1) == y).float().mean()])
    average_([figures], world)  # every rank sees the same numbers, so all take the same branch below
    train_loss, acc = figures.tolist()
    valid_loss = float(arch["valid_loss"])
    if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
        return StepOutcome(train_loss, valid_loss, None, None, w_lr, finite=False)
    # the weight step needs no alpha gradients (the reference computes and discards them)
    loss.backward(inputs=model.weight_parameters() if model.fast else None)
    average_([p.grad for p in model.weight_parameters() if p.grad is not None], world)
    torch.nn.utils.clip_grad_norm_(model.weight_parameters(), config.w_grad_clip)
    w_opt.step()
    return StepOutcome(train_loss, valid_loss, acc, arch.get("valid_acc"), w_lr, finite=True)


class EpochMeters(RunningMeans):
    """Running means of a step's losses and accuracies over the current epoch (a step counts once)."""

    KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")

    def update(self, outcome: StepOutcome) -> None:
        self.add({k: float(v) if (v := getattr(outcome, k)) is not None else 0.0 for k in self.KEYS})
