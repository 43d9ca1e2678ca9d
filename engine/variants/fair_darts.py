"""FairDARTS (Chu et al., ECCV 2020): independent sigmoid op weights and the zero-one loss.

Each op's weight is sigmoid(alpha) on its own (no competition between the ops of an edge, so skip
connections no longer crowd the others out). The architecture objective adds
`fair_zero_one_weight * -mean((sigmoid(alpha) - 0.5)^2)` over both cells, which pushes every weight towards 0
or 1. Derivation follows the official code's default (`threshold_sparse`): per node, the two edges whose
strongest op is largest (the DARTS ranking), each kept only if that op's weight reaches `fair_threshold`
(0.85). A node may so keep two, one or no inputs (`Genotype.normal_fanin` / `reduce_fanin`).

The official code searches without the `none` op; this engine's space has it, so `none` takes part in the
forward pass (its output is zero whatever its weight) but not in the zero-one loss nor in derivation.
The threshold is kept beside the alphas as a buffer (`threshold`), so a reader derives with the run's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, nodes_of
from engine.space.cnn.genotype import Genotype
from engine.variants import _BUILTIN, register
from engine.variants.base import Variant

__all__ = ["FairDarts", "zero_one_loss", "threshold_cell"]

_REAL = [k for k, op in enumerate(PRIMITIVES) if op != "none"]


def zero_one_loss(arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """-mean((sigmoid(alpha) - 0.5)^2) over both cells' real (non-`none`) ops, as the official ConvSeparateLoss."""
    w = torch.sigmoid(torch.cat([arch[kind][:, _REAL] for kind in CELL_KINDS]))
    return -torch.mean((w - 0.5) ** 2)


def threshold_cell(w: np.ndarray, threshold: float) -> tuple[list[tuple[str, int]], list[int]]:
    """(pairs node by node, inputs per node) of one cell's sigmoid weights (edges, ops)."""
    nodes = nodes_of(len(w))
    ends = edge_endpoints(nodes)
    best = np.asarray(_REAL)[w[:, _REAL].argmax(axis=1)]  # (edges,) strongest real op of each edge
    strength = w[np.arange(len(w)), best]
    pairs: list[tuple[str, int]] = []
    fanin: list[int] = []
    for i in range(nodes):
        rows = [r for r, (_, node) in enumerate(ends) if node == i]
        ranked = sorted(rows, key=lambda r: -strength[r])[:2]
        # an edge from a node that kept no inputs carries nothing: it cannot be kept either
        kept = [r for r in ranked if strength[r] >= threshold and (ends[r][0] < 2 or fanin[ends[r][0] - 2] > 0)]
        pairs += [(PRIMITIVES[int(best[r])], ends[r][0]) for r in kept]
        fanin.append(len(kept))
    if not pairs:  # an empty cell is no cell: keep node 0's strongest edge (documented in docs/variants.md)
        r = max(range(2), key=lambda r: strength[r])
        pairs, fanin = [(PRIMITIVES[int(best[r])], r)], [1] + [0] * (nodes - 1)
    return pairs, fanin


@register
class FairDarts(Variant):
    name = "fair_darts"
    summary = _BUILTIN["fair_darts"]["summary"]
    options = ("fair_zero_one_weight", "fair_threshold")
    defaults = {"fair_zero_one_weight": 10.0, "fair_threshold": 0.85}
    no_second_order = _BUILTIN["fair_darts"]["no_second_order"]

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        return {"threshold": torch.tensor(float(self.config["fair_threshold"]))}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {kind: torch.sigmoid(arch[kind]) for kind in CELL_KINDS}

    def arch_loss_extra(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        weight = float(self.config["fair_zero_one_weight"])
        return weight * zero_one_loss(arch) if weight else None

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        threshold = float(np.asarray(arch.get("threshold", self.config["fair_threshold"])))
        cells = {kind: threshold_cell(np.asarray(weights[kind], np.float64), threshold) for kind in CELL_KINDS}
        concat = {kind: tuple(2 + i for i, n in enumerate(cells[kind][1]) if n) for kind in CELL_KINDS}
        return Genotype(cells["normal"][0], concat["normal"], cells["reduce"][0], concat["reduce"],
                        tuple(cells["normal"][1]), tuple(cells["reduce"][1]))
