"""DARTS (Liu et al., ICLR 2019): a softmax over the ops of each edge, so every op runs and each row sums to one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.space.cnn.cell import CELL_KINDS
from engine.variants import register
from engine.variants.base import Variant

if TYPE_CHECKING:
    import torch

__all__ = ["Darts", "softmax_weights"]


def softmax_weights(arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DARTS's op weights: softmax over the ops of each edge, both cells ((edges, ops) each)."""
    import torch

    return {kind: torch.softmax(arch[kind], dim=-1) for kind in CELL_KINDS}


@register
class Darts(Variant):
    name = "darts"
    summary = "softmax over the ops of each edge (the original DARTS)"
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019 (quark0/darts)"

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return softmax_weights(arch)
