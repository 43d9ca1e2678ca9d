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
from typing import Any

import numpy as np
import torch

from engine.space.cnn.cell import CELL_KINDS, nodes_of
from engine.space.cnn.genotype import Genotype, genotype_from_weights
from engine.variants import _BUILTIN, register
from engine.variants.base import Variant

__all__ = ["PCDarts", "edge_weights"]


def edge_weights(betas: Any) -> Any:
    """Per-edge weights: softmax of the betas over each node's incoming edges (torch or numpy, (edges,))."""
    nodes = nodes_of(betas.shape[-1])
    parts, start = [], 0
    for i in range(nodes):
        part = betas[start:start + i + 2]
        if isinstance(part, torch.Tensor):
            parts.append(torch.softmax(part, dim=-1))
        else:
            e = np.exp(part - part.max())
            parts.append(e / e.sum())
        start += i + 2
    return torch.cat(parts) if isinstance(betas, torch.Tensor) else np.concatenate(parts)


@register
class PCDarts(Variant):
    name = "pc_darts"
    summary = _BUILTIN["pc_darts"]["summary"]
    options = ("pc_k",)
    defaults = {"pc_k": 4}

    @property
    def partial_channels(self) -> int:  # type: ignore[override]
        return int(self.config["pc_k"])

    def extra_parameters(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        return {f"betas_{kind}": 1e-3 * torch.randn(edges) for kind in CELL_KINDS}  # (edges,) as the reference

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {kind: torch.softmax(arch[kind], dim=-1) for kind in CELL_KINDS}

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.weights(arch)
        for kind in CELL_KINDS:
            out[f"{kind}_edge"] = edge_weights(arch[f"betas_{kind}"])  # (edges,)
        return out

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        scaled = {kind: np.asarray(weights[kind], np.float64)
                  * edge_weights(np.asarray(arch[f"betas_{kind}"], np.float64))[:, None] for kind in CELL_KINDS}
        return genotype_from_weights(scaled["normal"], scaled["reduce"])
