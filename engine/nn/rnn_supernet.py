"""The recurrent search network (torch): every node takes every earlier state through every op, mixed by the
softmax of the op weights (paper section 2.2; quark0/darts rnn/model_search.py).

Node n's single W_n maps each earlier state s_j to a gate c_nj and a value h'_nj; the node is

    s_n = BN( sum_j sum_{op != none} p[e(j, n), op] * (s_j + c_nj * (op(h'_nj) - s_j)) )

with p the row-wise softmax of the alphas (36 x 5); `none` adds nothing but keeps its share of the softmax.
Batch norm without affine parameters (one module for s_0 and every node, as in the reference) runs during search
only: the paper (Appendix A.1.2) enables it in each node to prevent gradient explosion during the search.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.nn.rnn_network import ACTIVATIONS, LanguageModel, RecurrentCell, check_sizes
from engine.space.rnn.cell import PRIMITIVES, STEPS, num_edges
from engine.space.rnn.genotype import Genotype, derive_genotype
from engine.variants.darts import op_weights

__all__ = ["SearchCell", "RNNSearchNetwork"]

_REAL_OPS = [(k, ACTIVATIONS[name]) for k, name in enumerate(PRIMITIVES) if name != "none"]


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
    Defaults are the paper's search (Appendix A.1.2; quark0/darts rnn/train_search.py)."""

    def __init__(self, ntoken: int, ninp: int = 300, nhid: int = 300, nodes: int = STEPS, dropout: float = 0.75,
                 dropouth: float = 0.25, dropoutx: float = 0.75, dropouti: float = 0.2, dropoute: float = 0.0) -> None:
        check_sizes(ntoken, ninp, nhid)
        if type(nodes) is not int or not 1 <= nodes <= 32:
            raise ValueError(f"nodes must be an integer in 1..32, got {nodes!r}")
        super().__init__(ntoken, ninp, nhid, SearchCell(ninp, nhid, nodes, dropouth, dropoutx), dropout, dropouti,
                         dropoute)
        self.nodes = nodes
        # Small random alphas (the reference's 1e-3 * randn): every op starts near 1/5 and symmetry is broken.
        self.alphas = nn.Parameter(1e-3 * torch.randn(num_edges(nodes), len(PRIMITIVES)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def forward(self, words, hidden):
        self.cell.probs = op_weights(self.alphas)
        try:
            return super().forward(words, hidden)
        finally:
            self.cell.probs = None  # no graph kept alive between steps

    def genotype(self) -> Genotype:
        return derive_genotype(self.alphas)
