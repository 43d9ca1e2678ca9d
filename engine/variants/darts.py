"""DARTS (Liu et al., ICLR 2019): a softmax over the ops of each edge, so every op runs and each row sums to one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.space import space_of_kinds
from engine.space.cnn.cell import CELL_KINDS
from engine.variants import register
from engine.variants.base import Variant

if TYPE_CHECKING:
    import torch

__all__ = ["Darts", "softmax_weights", "op_weights"]


def op_weights(alphas: torch.Tensor) -> torch.Tensor:
    """One cell's DARTS op weights: the softmax over the ops of each edge (a row of `alphas`), of either space."""
    import torch

    return torch.softmax(alphas, dim=-1)


def softmax_weights(arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DARTS's op weights: softmax over the ops of each edge, for every cell kind of the arch's search space
    ((edges, ops) each: the normal and the reduction cell, or the recurrent cell)."""
    space = space_of_kinds(arch)
    return {kind: op_weights(arch[kind]) for kind in (space.cell_kinds if space is not None else CELL_KINDS)}


@register
class Darts(Variant):
    name = "darts"
    summary = "softmax over the ops of each edge (the original DARTS)"
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019 (quark0/darts)"
    spaces = ("cnn", "rnn")  # the paper searches both cells with the same softmax

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return softmax_weights(arch)
