"""DARTS (Liu et al., ICLR 2019): a softmax over the ops of each edge, so every op runs and each row sums to one."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.space.cnn.cell import CELL_KINDS
from engine.variants import _BUILTIN, register
from engine.variants.base import Variant

__all__ = ["Darts"]


@register
class Darts(Variant):
    name = "darts"
    summary = _BUILTIN["darts"]["summary"]

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {kind: torch.softmax(arch[kind], dim=-1) for kind in CELL_KINDS}  # (edges, ops) each
