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
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, nodes_of
from engine.space.cnn.genotype import Genotype
from engine.variants import register
from engine.variants.base import Variant
from engine.variants.options import Option, Rule
from engine.variants.state import StateFigure, edge_rows

if TYPE_CHECKING:
    import torch

__all__ = ["Gdas", "gumbel_hard", "tau_at"]


def tau_at(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """The official schedule: tau_max - (tau_max - tau_min) * epoch / (epochs - 1)."""
    return tau_max if epochs <= 1 else tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


def gumbel_hard(alpha: torch.Tensor, tau: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hard weights, probs, index) of one hard Gumbel-softmax draw over the last dim of alpha (edges, ops)."""
    import torch

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
    summary = "one op per edge sampled by hard Gumbel-softmax, straight-through gradients (GDAS)"
    paper = ("Dong & Yang, Searching for A Robust Neural Architecture in Four GPU Hours, CVPR 2019 "
             "(D-X-Y/AutoDL-Projects)")
    lesson_title = "GDAS: one op per edge"
    lesson = ("Instead of running all eight ops, each edge samples **one** op per step from softmax(alpha) with the "
              "Gumbel-max trick and runs only it, so a step costs about an eighth. The gradient for the alphas comes "
              "from the soft Gumbel-softmax (straight-through), whose temperature tau anneals from 10 to 0.1: the "
              "heatmap shows the sampling probabilities at the current tau.")
    options = (
        Option("gdas_tau_max", 10.0, label="tau at start", help="Gumbel-softmax temperature of the first epoch",
               allowed="a positive temperature up to 1e4", above=0, maximum=1e4, step=0.5),
        Option("gdas_tau_min", 0.1, label="tau at end", above=0, step=0.05,
               allowed="a positive temperature at most gdas_tau_max={gdas_tau_max} (the temperature anneals down)",
               help="temperature of the last epoch (linear in between; not above the start)",
               rules=(Rule(lambda v: v["gdas_tau_min"] <= v["gdas_tau_max"]),)),
    )
    no_second_order = ("its forward pass samples one op per edge, so the finite-difference Hessian-vector product "
                       "would difference two different samples (GDAS is first order)")
    samples_one_op = True
    space_refusals = {"rnn": "GDAS runs only the sampled convolution of each edge (a branch of the convolutional "
                             "mixed op); the recurrent cell gets every op of an edge from one shared W_n product and "
                             "has no one-op path"}

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        import torch

        out = {"tau": torch.tensor(float(self.config["gdas_tau_max"]))}
        for kind in CELL_KINDS:
            out[f"{kind}_sampled"] = torch.full((edges,), -1, dtype=torch.long)  # -1: nothing sampled yet
        return out

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        import torch

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

    def state_figures(self, arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
        """The sampling probabilities softmax(alpha / tau) of each cell, the op each edge ran in the step's last
        forward pass marked; the temperature in the title."""
        if "tau" not in arch:
            return []
        tau = float(arch["tau"])
        probs = self.op_weights(arch)
        out = []
        for kind in CELL_KINDS:
            sampled = np.asarray(arch.get(f"{kind}_sampled", []), dtype=np.float64).astype(int)
            marked = tuple((r, int(k)) for r, k in enumerate(sampled) if 0 <= k < len(PRIMITIVES))
            out.append(StateFigure("heatmap", f"{kind}: sampling probabilities at tau = {tau:.3g}",
                                   "Only the sampled op of each edge runs (red square); tau anneals towards its "
                                   "minimum.", probs[kind], edge_rows(len(probs[kind])), PRIMITIVES,
                                   value_label="probability", marked=marked, marked_label="sampled this step"))
        return out
