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

On the recurrent cell (docs/variants.md, "On the recurrent cell") the same sigmoids and zero-one loss apply to its
(36, 5) rows; derivation keeps each node's one input as the recurrent rule picks it, if its op reaches the
threshold and its input state was kept, and numbers the kept nodes anew (`threshold_recurrent`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, nodes_of
from engine.space.cnn.genotype import Genotype
from engine.space.rnn import cell as rnn_cell
from engine.space.rnn.genotype import Genotype as RNNGenotype
from engine.space.rnn.genotype import select_inputs
from engine.variants import register
from engine.variants.base import Variant, cell_kinds, real_ops
from engine.variants.options import Option
from engine.variants.state import StateFigure, edge_rows

if TYPE_CHECKING:
    import torch

__all__ = ["FairDarts", "zero_one_loss", "strongest", "threshold_cell", "threshold_recurrent"]

_REAL = [k for k, op in enumerate(PRIMITIVES) if op != "none"]


def zero_one_loss(arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """-mean((sigmoid(alpha) - 0.5)^2) over every cell's real (non-`none`) ops, as the official ConvSeparateLoss
    (both convolutional cells, or the recurrent one)."""
    import torch

    real = real_ops(arch)
    w = torch.sigmoid(torch.cat([arch[kind][:, real] for kind in cell_kinds(arch)]))
    return -torch.mean((w - 0.5) ** 2)


def strongest(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(op index, weight) of each edge's strongest real (non-`none`) op in one cell's weights (edges, ops)."""
    best = np.asarray(_REAL)[w[:, _REAL].argmax(axis=1)]
    return best, w[np.arange(len(w)), best]


def threshold_cell(w: np.ndarray, threshold: float) -> tuple[list[tuple[str, int]], list[int]]:
    """(pairs node by node, inputs per node) of one cell's sigmoid weights (edges, ops)."""
    nodes = nodes_of(len(w))
    ends = edge_endpoints(nodes)
    best, strength = strongest(w)
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


def threshold_recurrent(w: np.ndarray, threshold: float) -> RNNGenotype:
    """The recurrent cell of sigmoid weights (edges, 5): each node's input as the recurrent rule picks it (its
    strongest edge by its strongest real op), kept if that op reaches `threshold` and its input state was kept.
    A node that keeps no input is no node, and nodes are numbered anew in order; the output averages the kept ones.
    With none kept, node 1's pick stays (from s_0), so the cell has an output, as the convolutional rule does."""
    kept = select_inputs(w)
    ends = rnn_cell.edge_endpoints(len(kept))
    state = {0: 0}  # old state number -> new one (s_0 is always there)
    pairs: list[tuple[str, int]] = []
    for i, (r, k) in enumerate(kept):
        j = ends[r][0]
        if w[r, k] >= threshold and j in state:
            pairs.append((rnn_cell.PRIMITIVES[k], state[j]))
            state[i + 1] = len(pairs)
    if not pairs:
        pairs = [(rnn_cell.PRIMITIVES[kept[0][1]], 0)]
    return RNNGenotype(pairs, range(1, len(pairs) + 1))


@register
class FairDarts(Variant):
    name = "fair_darts"
    summary = "independent sigmoid op weights pushed to 0 or 1 by the zero-one loss (FairDARTS)"
    paper = ("Chu et al., Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search, ECCV 2020 "
             "(xiaomi-automl/FairDARTS)")
    lesson_title = "FairDARTS: independent op weights"
    lesson = ("Softmax makes ops compete, and skip connections win that competition unfairly. FairDARTS gives each "
              "op its own sigmoid weight in (0, 1), adds a **zero-one loss** that pushes every op weight towards 0 "
              "or 1, and keeps an edge only if its best op passes 0.85: a node may keep two, one or no inputs.")
    options = (
        Option("fair_zero_one_weight", 10.0, label="Zero-one loss weight", allowed="a number from 0 to 1e4",
               help="pushes every sigmoid weight towards 0 or 1 (FairDARTS: 10)", minimum=0, maximum=1e4),
        Option("fair_threshold", 0.85, label="Keep threshold", above=0, below=1, step=0.05,
               allowed="a number strictly between 0 and 1 (a sigmoid weight)",
               help="an edge is kept when its strongest sigmoid reaches this"),
    )
    no_second_order = "FairDARTS's search is first order (its architect has no unrolled step)"
    # Independent sigmoids need nothing but each edge's op rows: the recurrent cell takes them too.
    spaces = ("cnn", "rnn")

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        import torch

        return {"threshold": torch.tensor(float(self.config["fair_threshold"]))}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        import torch

        return {kind: torch.sigmoid(arch[kind]) for kind in cell_kinds(arch)}

    def arch_loss_extra(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        weight = float(self.config["fair_zero_one_weight"])
        return weight * zero_one_loss(arch) if weight else None

    def _threshold(self, arch: Mapping[str, Any]) -> float:
        return float(np.asarray(arch.get("threshold", self.config["fair_threshold"])))

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        threshold = self._threshold(arch)
        if "recurrent" in weights:
            return threshold_recurrent(np.asarray(weights["recurrent"], np.float64), threshold)
        cells = {kind: threshold_cell(np.asarray(weights[kind], np.float64), threshold) for kind in CELL_KINDS}
        concat = {kind: tuple(2 + i for i, n in enumerate(cells[kind][1]) if n) for kind in CELL_KINDS}
        return Genotype(cells["normal"][0], concat["normal"], cells["reduce"][0], concat["reduce"],
                        tuple(cells["normal"][1]), tuple(cells["reduce"][1]))

    def state_figures(self, arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
        """Each edge's strongest sigmoid weight as a bar against the threshold: an edge over it can be kept (at most
        two per node, by strength)."""
        threshold, weights = self._threshold(arch), self.op_weights(arch)
        out = []
        for kind in CELL_KINDS:
            best, strength = strongest(weights[kind])
            out.append(StateFigure("bars", f"{kind}: strongest op weight per edge (independent sigmoids)",
                                   "Green edges pass the threshold; a node keeps at most two of them, and may keep "
                                   "none.", strength, edge_rows(len(strength)), value_label="sigmoid weight",
                                   text=tuple(PRIMITIVES[k] for k in best), threshold=threshold))
        return out
