"""The recurrent search network (torch): every node takes every earlier state through every op, mixed by the
softmax of the op weights (paper section 2.2; quark0/darts rnn/model_search.py).

Node n's single W_n maps each earlier state s_j to a gate c_nj and a value h'_nj; the node is

    s_n = BN( sum_j sum_{op != none} p[e(j, n), op] * (s_j + c_nj * (op(h'_nj) - s_j)) )

with p the row-wise softmax of the alphas (36 x 5); `none` adds nothing but keeps its share of the softmax.
The softmax is the default variant's: any variant whose `spaces` include "rnn" (engine/variants/) turns the alphas
and its buffers into p instead (FairDARTS's sigmoids, DrNAS's Dirichlet sample, SDARTS-RS's noise in the weight
step), and DARTS-'s auxiliary skip adds beta to the `identity` column outside the softmax (docs/variants.md,
"On the recurrent cell").
Batch norm without affine parameters (one module for s_0 and every node, as in the reference) runs during search
only: the paper (Appendix A.1.2) enables it in each node to prevent gradient explosion during the search.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from engine.nn.rnn_network import ACTIVATIONS, LanguageModel, RecurrentCell, check_sizes
from engine.space.rnn.cell import PRIMITIVES, STEPS, num_edges
from engine.space.rnn.genotype import Genotype
from engine.variants import make_variant

__all__ = ["SearchCell", "RNNSearchNetwork"]

_REAL_OPS = [(k, ACTIVATIONS[name]) for k, name in enumerate(PRIMITIVES) if name != "none"]
_IDENTITY = PRIMITIVES.index("identity")  # DARTS-'s auxiliary skip on this cell


class SearchCell(RecurrentCell):
    def __init__(self, ninp: int, nhid: int, nodes: int, dropouth: float, dropoutx: float) -> None:
        super().__init__(ninp, nhid, nodes, dropouth, dropoutx)
        self.bn = nn.BatchNorm1d(nhid, affine=False)
        self.probs: torch.Tensor | None = None  # set by the network before each forward
        self._coefs: list[tuple[torch.Tensor, list[torch.Tensor]]] = []

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        # The op weights are the same at every time step: slice them per node once per sequence, not per step.
        # sum_op p_op (s + c (op(h) - s)) = q s + c (sum_op p_op op(h) - q s), q = sum_op p_op over the real ops:
        # the same sum with one highway per edge instead of one per op (half the tensor ops of a step).
        real = self.probs[:, [k for k, _ in _REAL_OPS]]
        keep, offset, self._coefs = real.sum(1), 0, []
        for i in range(self.nodes):
            rows = slice(offset, offset + i + 1)
            per_op = [real[rows, n].view(-1, 1, 1) for n in range(len(_REAL_OPS))]
            self._coefs.append((keep[rows].view(-1, 1, 1), per_op))
            offset += i + 1
        try:
            return super().forward(inputs, hidden)
        finally:
            self._coefs = []

    def step(self, x, h_prev, x_mask, h_mask):
        s0 = self.bn(self.first_state(x, h_prev, x_mask, h_mask))
        states = s0.unsqueeze(0)  # (i + 1, B, nhid): every state node i may read
        masked = states if h_mask is None else states * h_mask
        for i, (w, (keep, weights)) in enumerate(zip(self.ws, self._coefs, strict=True)):
            c, h = torch.split((masked.reshape(-1, self.nhid) @ w).view(i + 1, -1, 2 * self.nhid), self.nhid, dim=-1)
            mixed = sum(p * fn(h) for p, (_, fn) in zip(weights, _REAL_OPS, strict=True))
            kept = keep * states
            s = self.bn((kept + torch.sigmoid(c) * (mixed - kept)).sum(0)).unsqueeze(0)
            states = torch.cat([states, s])
            masked = states if h_mask is None else torch.cat([masked, s * h_mask])
        return states[1:].mean(0)


class RNNSearchNetwork(LanguageModel):
    """The search network; `alphas` (edges x ops) are its architecture parameters, the rest its weights.
    Defaults are the paper's search (Appendix A.1.2; quark0/darts rnn/train_search.py). `variant` and
    `variant_options` name the relaxation (engine/variants/; one whose `spaces` include "rnn")."""

    def __init__(self, ntoken: int, ninp: int = 300, nhid: int = 300, nodes: int = STEPS, dropout: float = 0.75,
                 dropouth: float = 0.25, dropoutx: float = 0.75, dropouti: float = 0.2, dropoute: float = 0.0,
                 variant: str = "darts", variant_options: dict[str, Any] | None = None) -> None:
        check_sizes(ntoken, ninp, nhid)
        if type(nodes) is not int or not 1 <= nodes <= 32:
            raise ValueError(f"nodes must be an integer in 1..32, got {nodes!r}")
        relaxation = make_variant(variant, variant_options)
        if "rnn" not in relaxation.spaces:  # a config refuses it first, with the variant's reason
            raise ValueError(f"variant {variant!r} does not relax the recurrent cell")
        super().__init__(ntoken, ninp, nhid, SearchCell(ninp, nhid, nodes, dropouth, dropoutx), dropout, dropouti,
                         dropoute)
        self.nodes = nodes
        self.variant = relaxation  # how the architecture parameters become op weights
        # Small random alphas (the reference's 1e-3 * randn): every op starts near 1/5 and symmetry is broken.
        edges = num_edges(nodes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES)))
        # arch key (as in arch_numpy and the variant's `weights`) -> attribute name, as the convolutional supernet
        self._arch_attrs = {"recurrent": "alphas"}
        for name, init in self.variant.extra_parameters(edges, len(PRIMITIVES)).items():
            self.register_parameter(name, nn.Parameter(init))
            self._arch_attrs[name] = name
        # the variant's schedules (beta-DARTS's lambda, SDARTS-RS's epsilon, ...): buffers, so in checkpoints
        self._state_attrs: dict[str, str] = {}
        for name, init in self.variant.buffers(edges, len(PRIMITIVES)).items():
            self.register_buffer(name, init)
            self._state_attrs[name] = name

    def arch(self) -> dict[str, torch.Tensor]:
        """The architecture by arch key, as the variant reads it: "recurrent" (the alphas), the variant's extra
        parameters, then its buffers."""
        return {**{key: getattr(self, attr) for key, attr in self._arch_attrs.items()},
                **{key: getattr(self, attr) for key, attr in self._state_attrs.items()}}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, attr) for attr in self._arch_attrs.values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch_ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch_ids]

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Let the variant set its schedules for `epoch` (before its first step, and on resume)."""
        with torch.no_grad():
            self.variant.start_epoch(self.arch(), epoch, epochs)

    def forward(self, words, hidden, weight_step: bool = False):
        # weight_step: the weight step's forward pass (engine/search/rnn_step.py), which SDARTS-RS perturbs
        arch = self.arch()
        weights = self.variant.weight_step_weights(arch) if weight_step else self.variant.forward_weights(arch)
        probs = weights["recurrent"]
        if "aux_skip" in weights:
            # DARTS-: beta x the identity op's highway on every edge, beside the softmax and outside it; the
            # cell's sum over real ops is linear in the weights, so this is beta added to the identity column.
            probs = probs + weights["aux_skip"] * nn.functional.one_hot(
                torch.tensor(_IDENTITY, device=probs.device), probs.shape[-1]).to(probs.dtype)
        self.cell.probs = probs
        try:
            return super().forward(words, hidden)
        finally:
            self.cell.probs = None  # no graph kept alive between steps

    def arch_numpy(self) -> dict[str, np.ndarray]:
        """`arch()` as numpy copies (safe to hand to another thread)."""
        return {key: p.detach().cpu().numpy().copy() for key, p in self.arch().items()}

    @torch.no_grad()
    def op_weights(self) -> dict[str, np.ndarray]:
        """What readers draw: the variant's `weights` ({"recurrent": (edges, ops)}) in float64, as numpy copies; the
        same numbers `engine.variants.record_weights` gives from an alphas.jsonl line of this network."""
        return self.variant.op_weights(self.arch_numpy())

    def genotype(self) -> Genotype:
        """The cell the variant derives from the architecture now (for DARTS the paper's one input per node)."""
        arch = self.arch_numpy()
        return self.variant.derive(self.variant.op_weights(arch), arch)
