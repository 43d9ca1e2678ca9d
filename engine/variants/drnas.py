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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from engine.space.cnn.cell import CELL_KINDS
from engine.space.cnn.genotype import Genotype, genotype_from_weights
from engine.variants import _BUILTIN, register
from engine.variants.base import Variant

__all__ = ["DrNas", "concentration"]


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    return F.elu(alpha) + 1  # > 0 for every alpha


@register
class DrNas(Variant):
    name = "drnas"
    summary = _BUILTIN["drnas"]["summary"]
    options = ("drnas_kl_weight",)
    defaults = {"drnas_kl_weight": 1e-3}
    no_second_order = _BUILTIN["drnas"]["no_second_order"]

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for kind in CELL_KINDS:
            c = concentration(arch[kind])
            out[kind] = c / c.sum(dim=-1, keepdim=True)  # the Dirichlet mean
        return out

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {kind: Dirichlet(concentration(arch[kind])).rsample() for kind in CELL_KINDS}  # (edges, ops)

    def arch_loss_extra(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        weight = float(self.config["drnas_kl_weight"])
        if not weight:
            return None
        kl = sum(kl_divergence(Dirichlet(concentration(arch[kind])),
                               Dirichlet(torch.ones_like(arch[kind]))).sum() for kind in CELL_KINDS)
        return weight * kl

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        soft = {}
        for kind in CELL_KINDS:
            a = np.asarray(arch[kind], np.float64)
            e = np.exp(a - a.max(axis=1, keepdims=True))
            soft[kind] = e / e.sum(axis=1, keepdims=True)
        return genotype_from_weights(soft["normal"], soft["reduce"])
