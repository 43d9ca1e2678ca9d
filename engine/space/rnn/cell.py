"""The shape of the recurrent DARTS cell, torch-free: op names, edges and how they are labelled.

The cell (Liu et al. 2019, section 2.1 and Figure 6; quark0/darts rnn/model_search.py) has one input state s_0,
computed from x_t and h_{t-1}, and `nodes` intermediate nodes (8 in the paper). Node i (0-based) may take any
earlier state as its input: s_0 or an earlier intermediate node, so i + 1 candidate edges and 1 + 2 + ... + 8 = 36
for the paper's cell. A genotype names a node's input by its state index, as the reference does: 0 is s_0, j >= 1
is intermediate node j - 1 (the paper's Figure 6 numbers the same states 0..8).
"""

from __future__ import annotations

__all__ = ["PRIMITIVES", "CELL_KINDS", "STEPS", "num_edges", "nodes_of", "edge_endpoints", "source_name",
           "node_name"]

# The candidate ops, in the column order of the op-weight matrix (the reference's rnn/genotypes.py order).
PRIMITIVES: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
# One recurrent cell, so one op-weight matrix.
CELL_KINDS: tuple[str] = ("recurrent",)
# Intermediate nodes of the paper's cell (the reference's STEPS; its output averages all of them).
STEPS = 8


def num_edges(nodes: int) -> int:
    """Candidate edges of a cell with `nodes` intermediate nodes: 1 + 2 + ... + nodes; 8 -> 36."""
    return nodes * (nodes + 1) // 2


def nodes_of(edges: int) -> int:
    """Inverse of `num_edges`: 36 -> 8; a ValueError for a count no recurrent cell has."""
    nodes = int(round(((1 + 8 * edges) ** 0.5 - 1) / 2))
    if nodes < 1 or num_edges(nodes) != edges:
        raise ValueError(f"{edges} edges is not a recurrent DARTS cell (1 + 2 + ... inputs per node)")
    return nodes


def edge_endpoints(nodes: int) -> list[tuple[int, int]]:
    """(input state, node) of every op-weight row, in row order: [(0, 0), (0, 1), (1, 1), (0, 2), ...]."""
    return [(j, i) for i in range(nodes) for j in range(i + 1)]


def source_name(index: int) -> str:
    """Input state as people read it: its number in the genotype and the drawn cell (0 is s_0, from x_t and
    h_{t-1}; j >= 1 is intermediate node j), so an edge label "0 -> 1" is the genotype's ('op', 0) of node 1."""
    return str(index)


def node_name(index: int) -> str:
    """Intermediate node `index` (0-based, the op-weight rows' order) as the genotype and the drawing number it:
    from 1 (state 0 is s_0)."""
    return str(index + 1)
