"""GDAS (Dong & Yang, CVPR 2019): one op per edge, sampled by a hard Gumbel-softmax.

Each forward pass draws Gumbel noise g (global torch RNG), forms probs = softmax((log_softmax(alpha) + g) / tau),
takes the one-hot of its argmax and passes gradients straight through: hard = one_hot - probs.detach() + probs
(value one-hot, gradient that of probs). Only the sampled op of each edge runs, multiplied by its hard weight
(engine/nn/supernet.py, MixedOp). The temperature tau anneals linearly from `gdas_tau_max` to `gdas_tau_min` over
the epochs, as the official code's `set_tau` does.

State beside the alphas (buffers, so in checkpoints, snapshots and every alphas.jsonl line): `tau`, and
`normal_sampled` / `reduce_sampled`, the op index each edge ran in the last forward pass of a weight step.
Readers draw softmax(alpha / tau), the noise-free probabilities at the current temperature. Derivation
follows the official code: per node, the two strongest (op, input) pairs of softmax(alpha) over all its
incoming edges and non-`none` ops (so two ops of one edge may both be kept).
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

__all__ = ["Gdas", "gumbel_hard", "tau_at"]


def tau_at(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """The official schedule: tau_max - (tau_max - tau_min) * epoch / (epochs - 1)."""
    return tau_max if epochs <= 1 else tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


def gumbel_hard(alpha: torch.Tensor, tau: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hard weights, probs, index) of one hard Gumbel-softmax draw over the last dim of alpha (edges, ops)."""
    for _ in range(100):  # the official code redraws a sample with an infinite Gumbel or a NaN probability
        gumbels = -torch.empty_like(alpha).exponential_().log()
        probs = torch.softmax((alpha.log_softmax(dim=-1) + gumbels) / tau, dim=-1)
        if torch.isfinite(gumbels).all() and torch.isfinite(probs).all():
            break
    index = probs.argmax(dim=-1)  # (edges,)
    one_hot = torch.zeros_like(probs).scatter_(-1, index[:, None], 1.0)
    return one_hot - probs.detach() + probs, probs, index


@register
class Gdas(Variant):
    name = "gdas"
    summary = _BUILTIN["gdas"]["summary"]
    options = ("gdas_tau_max", "gdas_tau_min")
    defaults = {"gdas_tau_max": 10.0, "gdas_tau_min": 0.1}
    no_second_order = _BUILTIN["gdas"]["no_second_order"]
    samples_one_op = True

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        out = {"tau": torch.tensor(float(self.config["gdas_tau_max"]))}
        for kind in CELL_KINDS:
            out[f"{kind}_sampled"] = torch.full((edges,), -1, dtype=torch.long)  # -1: nothing sampled yet
        return out

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tau = arch["tau"]
        return {kind: torch.softmax(arch[kind] / tau, dim=-1) for kind in CELL_KINDS}

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for kind in CELL_KINDS:
            hard, _, index = gumbel_hard(arch[kind], arch["tau"])
            out[kind], out[f"{kind}_index"] = hard, index
            if f"{kind}_sampled" in arch:
                arch[f"{kind}_sampled"].copy_(index)
        return out

    def start_epoch(self, state: Mapping[str, torch.Tensor], epoch: int, epochs: int) -> None:
        state["tau"].fill_(tau_at(epoch, epochs, float(self.config["gdas_tau_max"]),
                                  float(self.config["gdas_tau_min"])))

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        cells = {}
        for kind in CELL_KINDS:
            a = np.asarray(arch[kind], np.float64)
            p = np.exp(a - a.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)  # softmax(alpha): the official genotype() ignores tau
            nodes = nodes_of(len(p))
            pairs = []
            for i in range(nodes):
                cands = [(-p[r, k], r, k) for r, (j, node) in enumerate(edge_endpoints(nodes)) if node == i
                         for k, op in enumerate(PRIMITIVES) if op != "none"]
                for _, r, k in sorted(cands)[:2]:  # stable: ties go to the lower edge, then the lower op
                    pairs.append((PRIMITIVES[k], edge_endpoints(nodes)[r][0]))
            cells[kind] = (pairs, nodes)
        concat = tuple(range(2, 2 + cells["normal"][1]))
        return Genotype(cells["normal"][0], concat, cells["reduce"][0], concat)
