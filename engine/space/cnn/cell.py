"""The shape of the DARTS search space, torch-free: op names, cell kinds, edges and how they are labelled.

A cell has two inputs (c_{k-2}, c_{k-1}) and `nodes` intermediate nodes; node i has one candidate edge from
each of the two inputs and each earlier node, so i + 2 incoming edges. The alpha matrix of a cell kind has
one row per edge, in node order (rows 0-1 feed node 0, rows 2-4 node 1, ...), and one column per op in
`PRIMITIVES` order. docs/darts.md has the whole rule with its sources.
"""

from __future__ import annotations

__all__ = ["PRIMITIVES", "PARAM_FREE", "CELL_KINDS", "num_edges", "nodes_of", "edge_endpoints", "source_name",
           "edge_labels"]

# The candidate ops, in the column order of every alpha matrix (engine/nn/ops.py builds them by these names).
PRIMITIVES: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                               "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
# Ops without weights: the ones that take over a normal cell when DARTS collapses.
PARAM_FREE: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect")
# Every normal cell shares one alpha matrix, every reduction cell the other.
CELL_KINDS: tuple[str, str] = ("normal", "reduce")


def num_edges(nodes: int) -> int:
    """Candidate edges of a cell with `nodes` intermediate nodes: 2 + 3 + ... + (nodes + 1); 4 -> 14."""
    return nodes * (nodes + 3) // 2


def nodes_of(edges: int) -> int:
    """Inverse of `num_edges`: 14 -> 4; a ValueError for a count no cell has."""
    nodes = int(round(((9 + 8 * edges) ** 0.5 - 3) / 2))
    if nodes < 1 or num_edges(nodes) != edges:
        raise ValueError(f"{edges} edges is not a DARTS cell (2 + 3 + ... inputs per node)")
    return nodes


def edge_endpoints(nodes: int) -> list[tuple[int, int]]:
    """(input index, node) of every alpha row, in row order: [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1), ...]."""
    return [(j, i) for i in range(nodes) for j in range(i + 2)]


def source_name(index: int) -> str:
    """Input index as people read it: 0 -> "c_{k-2}", 1 -> "c_{k-1}", j >= 2 -> the node number j-2."""
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)


def edge_labels(nodes: int) -> list[str]:
    """A label per alpha row: ["c_{k-2} -> 0", "c_{k-1} -> 0", "c_{k-2} -> 1", ..., "2 -> 3"]."""
    return [f"{source_name(j)} -> {i}" for j, i in edge_endpoints(nodes)]
