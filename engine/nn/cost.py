"""Cost-aware search: the expected parameters and mult-adds of the relaxed cells, and a penalty on them.

Each edge of a search cell mixes the candidate ops with the op weights of its cell kind. Weighting each op's
cost by its op weight gives the expected cost of the relaxed cell; summed over the search network's cells it
is differentiable in the architecture parameters, so it can be added to the architecture objective (for any
variant: it reads the variant's deterministic op weights, the probabilities of a sampling variant). Each op
is costed as the network built from a genotype builds it (`engine/nn/ops.py` with affine BatchNorm, as
`engine/nn/network.py` does), at the width, stride and input size it has in this search network; mult-adds
are those of its convolutions, as `network.count_multiply_adds` (FlopCounterMode) counts them (pools,
BatchNorm and additions are free).

When the op weights are one-hot (a single op per edge, `none` on the edges a node does not keep), the
expected cost is exactly the cost of the derived genotype's ops in a network of the search network's size:
`genotype_cost` computes that real cost from the same tables, and tests/test_cost.py checks both against
networks built from the genotype. Preprocessing, stem and classifier are left out: no architecture choice
changes them.

The penalty (docs/collapse.md, "Cost-aware search"): `cost_weight` x expected cost in millions of the chosen
`cost_kind`; with a `cost_budget`, only the part above the budget is penalised.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.nn.ops import OPS
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES
from engine.space.cnn.genotype import Genotype

__all__ = ["CostTables", "cost_tables", "expected_cost", "genotype_cost", "penalty", "row"]

_UNIT = 1e6  # the penalty counts millions of parameters or mult-adds


def _conv_madds(module: nn.Module, inputs: Any, output: torch.Tensor, total: list[int]) -> None:
    if isinstance(module, nn.Conv2d):  # the only ops with mult-adds in engine/nn/ops.py (no Linear in a cell)
        out_ch, in_per_group, kh, kw = module.weight.shape
        total[0] += out_ch * in_per_group * kh * kw * output.shape[-2] * output.shape[-1]


@functools.cache
def op_cost(name: str, C: int, stride: int, size: int) -> tuple[int, int, int]:
    """(parameters, mult-adds for one sample, output size) of op `name` on a (C, size, size) input, built as
    a genotype's network builds it. Mult-adds are counted by forward hooks on its convolutions, which is what
    FlopCounterMode counts for these ops (tests/test_cost.py checks the tables against it). It runs one zero
    sample on the CPU: on the meta device the first use in a process took seconds, which every search start
    would pay."""
    total = [0]
    with torch.random.fork_rng(devices=[]):  # the ops' random init must not move the search's seeded RNG
        op = OPS[name](C, stride, True).eval()
    for m in op.modules():
        m.register_forward_hook(functools.partial(_conv_madds, total=total))
    with torch.no_grad():
        y = op(torch.zeros(1, C, size, size))
    return sum(p.numel() for p in op.parameters()), total[0], int(y.shape[-1])


@dataclass(frozen=True)
class CostTables:
    """For each cell kind, the cost of every (edge, op) summed over the network's cells of that kind:
    params[kind] and madds[kind] are (edges, ops) arrays in the alpha order."""

    params: Mapping[str, np.ndarray]
    madds: Mapping[str, np.ndarray]

    def of(self, kind: str) -> Mapping[str, np.ndarray]:
        return self.params if kind == "params" else self.madds


@functools.cache
def cost_tables(C: int, layers: int, nodes: int, image_size: int) -> CostTables:
    """The tables of a search network with `C` initial channels, `layers` cells of `nodes` nodes, on
    image_size x image_size inputs (the stem keeps the size; reductions at layers//3 and 2*layers//3)."""
    edges = [(i, j) for i in range(nodes) for j in range(2 + i)]
    params = {k: np.zeros((len(edges), len(PRIMITIVES))) for k in CELL_KINDS}
    madds = {k: np.zeros((len(edges), len(PRIMITIVES))) for k in CELL_KINDS}
    size, C_curr = image_size, C
    for layer in range(layers):
        reduction = layer in (layers // 3, 2 * layers // 3)
        if reduction:
            C_curr *= 2
        kind = "reduce" if reduction else "normal"
        out_size = size
        for e, (_, j) in enumerate(edges):
            stride = 2 if reduction and j < 2 else 1
            # the edges from the cell's inputs see `size`; those from its nodes see the nodes' size
            inp = size if j < 2 or not reduction else out_size
            for o, name in enumerate(PRIMITIVES):
                p, m, out = op_cost(name, C_curr, stride, inp)
                params[kind][e, o] += p
                madds[kind][e, o] += m
                if j < 2:
                    out_size = out
        size = out_size
    for table in (*params.values(), *madds.values()):
        table.setflags(write=False)
    return CostTables(params, madds)


def expected_cost(weights: Mapping[str, Any], table: Mapping[str, np.ndarray]) -> Any:
    """Sum over cell kinds of op weights x costs: a tensor (differentiable) for tensors, a float for arrays."""
    total = 0.0
    for kind in CELL_KINDS:
        w = weights[kind]
        if isinstance(w, torch.Tensor):
            total = total + (w * torch.tensor(table[kind], dtype=w.dtype, device=w.device)).sum()
        else:
            total += float((np.asarray(w, dtype=np.float64) * table[kind]).sum())
    return total


def genotype_cost(genotype: Genotype, table: Mapping[str, np.ndarray]) -> int:
    """The real cost of the genotype's ops in the search network's cells: each kept (op, input) of node i is
    the edge offset(i) + input of the alpha order."""
    total = 0
    for kind in CELL_KINDS:
        offset = 0
        for i, pairs in enumerate(genotype.cell_nodes(kind)):
            for name, j in pairs:
                total += int(table[kind][offset + j, PRIMITIVES.index(name)])
            offset += 2 + i
    return total


def penalty(weights: Mapping[str, torch.Tensor], table: Mapping[str, np.ndarray], weight: float,
            budget: float | None) -> torch.Tensor:
    """cost_weight x expected cost in millions; with a budget, only the part above it."""
    cost = expected_cost(weights, table)
    if budget is not None:
        cost = torch.relu(cost - budget)
    return weight * cost / _UNIT


def row(weights: Mapping[str, Any], genotype: Genotype | None, tables: CostTables) -> dict[str, float]:
    """The cost columns of a metrics row: expected and derived parameters and mult-adds of the cells."""
    out = {"expected_params": round(expected_cost(weights, tables.params), 1),
           "expected_madds": round(expected_cost(weights, tables.madds), 1)}
    if genotype is not None:
        out |= {"cell_params": genotype_cost(genotype, tables.params),
                "cell_madds": genotype_cost(genotype, tables.madds)}
    return out
