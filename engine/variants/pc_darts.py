"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalisation.

- Partial channels: each mixed op sees the first 1/K of its input's channels; the rest bypass it (2x2
  max-pooled on a stride-2 edge), the two parts are concatenated and channel-shuffled in K groups
  (engine/nn/supernet.py, MixedOp). The op weights are DARTS's softmax rows.
- Edge normalisation: one weight per edge (`betas_normal`, `betas_reduce`, architecture parameters beside the
  alphas), softmaxed over the incoming edges of each node, multiplies the whole edge's output.
- Derivation: each row of softmax(alpha) times its edge's weight, then the DARTS rule (as the official code's
  `genotype`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.space.cnn.cell import CELL_KINDS, nodes_of
from engine.space.cnn.genotype import Genotype, genotype_from_weights
from engine.variants import register
from engine.variants.base import Variant
from engine.variants.darts import softmax_weights
from engine.variants.options import Option, Rule
from engine.variants.state import StateFigure, edge_rows

if TYPE_CHECKING:
    import torch

__all__ = ["PCDarts", "PC_K", "edge_weights"]

PC_K = Option("pc_k", 4, label="K (partial channels)", allowed="an integer from 1 to 64", minimum=1, maximum=64,
              help="1/K of each edge's channels go through the mixed op; must divide C",
              # a config without channels (the recurrent space's, where beta_darts keeps pc_k at its default) has
              # nothing for K to divide
              rules=(Rule(lambda v: "init_channels" not in v or v["init_channels"] % v["pc_k"] == 0,
                          "a divisor of init_channels={init_channels} (each edge sends 1/K of its channels through "
                          "the ops)"),))


def edge_weights(betas: Any) -> Any:
    """Per-edge weights: softmax of the betas over each node's incoming edges (torch or numpy, (edges,))."""
    if isinstance(betas, np.ndarray):
        parts, start = [], 0
        for i in range(nodes_of(len(betas))):
            e = np.exp(betas[start:start + i + 2] - betas[start:start + i + 2].max())
            parts.append(e / e.sum())
            start += i + 2
        return np.concatenate(parts)
    import torch

    parts, start = [], 0
    for i in range(nodes_of(betas.shape[-1])):
        parts.append(torch.softmax(betas[start:start + i + 2], dim=-1))
        start += i + 2
    return torch.cat(parts)


@register
class PCDarts(Variant):
    name = "pc_darts"
    summary = "1/K of the channels through the mixed op, edge weights beside the alphas (PC-DARTS)"
    paper = ("Xu et al., PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search, ICLR 2020 "
             "(yuhuixu1993/PC-DARTS)")
    lesson_title = "PC-DARTS: partial channels"
    lesson = ("Each edge sends only 1/K of its channels (K=4) through the eight ops; the rest skip them and are "
              "shuffled back in. That cuts the supernet's memory about K-fold, so batches can be larger. Sampling "
              "channels makes the op choice noisier, so each edge also gets an **edge weight** (a softmax over the "
              "node's inputs) and the genotype ranks edges by op weight times edge weight. The alphas are frozen "
              "for the first 15 epochs while the network weights warm up.")
    options = (PC_K,)
    space_refusals = {"rnn": "PC-DARTS sends 1/K of a convolutional edge's channels through the ops, and a recurrent "
                             "edge has no channels to sample (its W_n maps the whole state)"}

    @property
    def partial_channels(self) -> int:  # type: ignore[override]
        return int(self.config["pc_k"])

    def extra_parameters(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        import torch

        return {f"betas_{kind}": 1e-3 * torch.randn(edges) for kind in CELL_KINDS}  # (edges,) as the reference

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return softmax_weights(arch)

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.weights(arch)
        for kind in CELL_KINDS:
            out[f"{kind}_edge"] = edge_weights(arch[f"betas_{kind}"])  # (edges,)
        return out

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        scaled = {kind: np.asarray(weights[kind], np.float64)
                  * edge_weights(np.asarray(arch[f"betas_{kind}"], np.float64))[:, None] for kind in CELL_KINDS}
        return genotype_from_weights(scaled["normal"], scaled["reduce"])

    def state_figures(self, arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
        return edge_weight_figures(arch)


def edge_weight_figures(arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
    """Each edge's weight, normal and reduction side by side, one row per edge as the op-weight heatmaps;
    1/(inputs of the node) is an even split. [] without edge weights (beta-DARTS on plain DARTS)."""
    cols = tuple(kind for kind in CELL_KINDS if f"betas_{kind}" in arch)
    if not cols:
        return []
    w = np.stack([edge_weights(arch[f"betas_{kind}"]) for kind in cols], axis=1)  # (edges, cells)
    return [StateFigure("heatmap", "Edge weights (edge normalisation)",
                        "Each edge's output is multiplied by its edge weight; the genotype ranks edges by op weight "
                        "times edge weight.", w, edge_rows(len(w)), cols, value_label="edge weight")]
