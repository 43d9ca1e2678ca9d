"""SDARTS-RS (Chen & Hsieh, ICML 2020): random smoothing of the architecture in the weight step.

In each weight step the op weights are softmax(alpha) plus noise drawn uniformly from [-epsilon, epsilon]
(global torch RNG, so a resumed search draws the same), then projected back onto the simplex as the official
`Network.clip`: each row clamped to [0, 1] (a row left all zero gets a 1 at its largest entry) and divided
by its sum. The network's weights take their SGD step at those perturbed op weights; the alphas are not
touched (the perturbation is a constant of the step, no gradient flows to them). The architecture step is
plain DARTS (first or second order) at the unperturbed alphas, as the official code. Training the weights
under random alpha noise flattens the validation loss around the alphas the search ends at.

epsilon grows linearly over the epochs, eps = min + (max - min) * epoch / epochs (0.03 to 0.3 in the
official `train_search.py`), kept beside the alphas as a buffer (`epsilon`). Readers draw softmax(alpha);
derivation is the DARTS rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from engine.variants import register
from engine.variants.base import Variant
from engine.variants.darts import softmax_weights
from engine.variants.options import Option, Rule

if TYPE_CHECKING:
    import torch

__all__ = ["SdartsRs", "epsilon_at", "perturb", "project_rows"]


def epsilon_at(epoch: int, epochs: int, eps_min: float, eps_max: float) -> float:
    """The official schedule: eps_min + (eps_max - eps_min) * epoch / epochs."""
    return eps_min + (eps_max - eps_min) * epoch / epochs


def project_rows(w: torch.Tensor) -> torch.Tensor:
    """Each row (..., ops) clamped to [0, 1] and normalised to sum 1; an all-zero row keeps its argmax (clip)."""
    import torch

    top = w.argmax(dim=-1, keepdim=True)
    c = w.clamp(0.0, 1.0)
    empty = c.sum(dim=-1, keepdim=True) == 0
    c = torch.where(empty, torch.zeros_like(c).scatter(-1, top, 1.0), c)
    return c / c.sum(dim=-1, keepdim=True)


def perturb(weights: torch.Tensor, epsilon: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(perturbed op weights, noise): noise ~ U[-epsilon, epsilon] (global torch RNG), rows projected back."""
    import torch

    noise = (torch.rand_like(weights) * 2 - 1) * epsilon
    return project_rows(weights + noise), noise


@register
class SdartsRs(Variant):
    name = "sdarts_rs"
    summary = "DARTS with uniform noise on the op weights in the weight step (SDARTS-RS)"
    paper = ("Chen & Hsieh, Stabilizing Differentiable Architecture Search via Perturbation-based Regularization, "
             "ICML 2020 (xiangning-chen/SmoothDARTS)")
    lesson_title = "SDARTS-RS: train around the architecture"
    lesson = ("In the network-weight step the op weights get uniform noise in [-epsilon, epsilon] (the architecture "
              "step sees none), so the network weights learn to do well for architectures near the current one. The "
              "validation loss becomes smoother in alpha, the Hessian's top eigenvalue stays lower, and the cell "
              "collapses less.")
    # The noise is on an edge's softmax row, whatever the ops are: the recurrent cell's weight step takes it too.
    spaces = ("cnn", "rnn")
    options = (
        Option("sdarts_epsilon_min", 0.03, label="Noise at start", minimum=0, maximum=1, step=0.01,
               allowed="a number from 0 to 1 (noise on softmax weights)",
               help="SDARTS-RS: radius of the uniform noise on the op weights in the weight step, first epoch"),
        Option("sdarts_epsilon_max", 0.3, label="Noise at end", minimum=0, maximum=1, step=0.05,
               allowed="a number from sdarts_epsilon_min={sdarts_epsilon_min} to 1 (the radius grows)",
               help="SDARTS-RS: the radius grows linearly towards this",
               rules=(Rule(lambda v: v["sdarts_epsilon_min"] <= v["sdarts_epsilon_max"]),)),
    )

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        import torch

        return {"epsilon": torch.tensor(float(self.config["sdarts_epsilon_min"]))}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return softmax_weights(arch)

    def weight_step_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        import torch

        with torch.no_grad():
            return {kind: perturb(w, arch["epsilon"])[0] for kind, w in self.weights(arch).items()}

    def start_epoch(self, state: Mapping[str, torch.Tensor], epoch: int, epochs: int) -> None:
        state["epsilon"].fill_(epsilon_at(epoch, epochs, float(self.config["sdarts_epsilon_min"]),
                                          float(self.config["sdarts_epsilon_max"])))

    def state_text(self, arch: Mapping[str, np.ndarray]) -> str | None:
        if "epsilon" not in arch:
            return None
        epsilon = float(np.ravel(arch["epsilon"])[0])
        return (f"Noise radius epsilon = {epsilon:.3f}: the weight step sees op weights perturbed by uniform noise in "
                "[-epsilon, epsilon], so the network weights learn to do well around the current architecture (a "
                "smoother loss in alpha); the architecture step sees none.")
