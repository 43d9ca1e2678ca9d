"""DrNAS (Chen et al., ICLR 2021): op weights sampled from a Dirichlet whose concentration is learned.

Each forward pass draws every edge's op weights from Dirichlet(ELU(alpha) + 1) with the reparameterised
sampler (`torch.distributions.Dirichlet.rsample`, global torch RNG), so the architecture gradient flows
through the sample. The regulariser is the paper's KL divergence from each edge's Dirichlet to the uniform
prior Dirichlet(1), weighted by `drnas_kl_weight`, added to the architecture objective (the official code's
`reg_type='kl'`; its default `reg_type='l2'` is Adam's weight decay on the alphas, our `a_weight_decay`).

Readers draw the Dirichlet mean, concentration / its row sum. Derivation follows the official code:
the DARTS rule on softmax(alpha) (its `genotype()`), not on the mean (docs/variants.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES
from engine.space.cnn.genotype import Genotype
from engine.space.weights import softmax
from engine.variants import register
from engine.variants.base import Variant, cell_kinds
from engine.variants.options import Option
from engine.variants.state import StateFigure, edge_rows

if TYPE_CHECKING:
    import torch

__all__ = ["DrNas", "concentration"]


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.elu(alpha) + 1  # > 0 for every alpha


@register
class DrNas(Variant):
    name = "drnas"
    summary = "op weights sampled from a Dirichlet whose concentration is learned (DrNAS)"
    paper = ("Chen et al., DrNAS: Dirichlet Neural Architecture Search, ICLR 2021 "
             "(xiangning-chen/DrNAS)")
    lesson_title = "DrNAS: a distribution over cells"
    lesson = ("The op weights of each edge are a **sample from a Dirichlet distribution** whose concentration "
              "(ELU(alpha) + 1) is learned, drawn anew every step with a reparameterised sampler. The noise explores "
              "and regularises; the heatmap shows the mean, and the spread shrinks as the concentration grows.")
    options = (Option("drnas_kl_weight", 1e-3, label="KL weight", allowed="a number from 0 to 1e4", minimum=0,
                      maximum=1e4, step=1e-3, help="weight of KL(Dirichlet || Dirichlet(1)); 0 turns it off"),)
    # A Dirichlet over each edge's op weights needs nothing but the (edges, ops) rows: the recurrent cell's too.
    spaces = ("cnn", "rnn")
    no_second_order = ("its forward pass samples the op weights from a Dirichlet, so the finite-difference "
                       "Hessian-vector product would difference two different samples")

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for kind in cell_kinds(arch):
            c = concentration(arch[kind])
            out[kind] = c / c.sum(dim=-1, keepdim=True)  # the Dirichlet mean
        return out

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from torch.distributions import Dirichlet

        return {kind: Dirichlet(concentration(arch[kind])).rsample() for kind in cell_kinds(arch)}  # (edges, ops)

    def arch_loss_extra(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        import torch
        from torch.distributions import Dirichlet, kl_divergence

        weight = float(self.config["drnas_kl_weight"])
        if not weight:
            return None
        kl = sum(kl_divergence(Dirichlet(concentration(arch[kind])),
                               Dirichlet(torch.ones_like(arch[kind]))).sum() for kind in cell_kinds(arch))
        return weight * kl

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        # the space's own rule (the DARTS rule, or one input per recurrent node) on softmax(alpha), not the mean
        return super().derive({kind: softmax(np.asarray(arch[kind], np.float64)) for kind in cell_kinds(arch)}, arch)

    def state_figures(self, arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
        """The Dirichlet mean of each op weight (colour) with its spread (the text: mean ± std)."""
        import torch

        means, out = self.op_weights(arch), []
        for kind in CELL_KINDS:
            with torch.no_grad():
                total = concentration(torch.as_tensor(arch[kind])).sum(dim=-1, keepdim=True).numpy()
            mean = means[kind]
            std = np.sqrt(mean * (1 - mean) / (total + 1))
            text = tuple(f"{m:.2f}±{s:.2f}" for m, s in zip(mean.ravel(), std.ravel(), strict=True))
            out.append(StateFigure("heatmap", f"{kind}: Dirichlet mean ± std of each op weight",
                                   "Op weights are sampled each step; the spread shrinks as the concentration grows.",
                                   mean, edge_rows(len(mean)), PRIMITIVES, value_label="mean op weight", text=text))
        return out
