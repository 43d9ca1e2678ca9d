"""What a search space is, torch-free: the one description every other part of the engine asks.

A search space fixes the candidate ops of an edge, the edges of a cell, the shape of each cell kind's op
weights, how a discrete cell (its genotype) is derived from them, that genotype's text forms and drawing,
the kind of data it learns from, and which network the engine builds from a genotype. The convolutional
DARTS cell (engine/space/cnn/) is one; a space for recurrent cells is another package beside it, described
the same way, so the loop, the run directory and the dashboard need no `if space == ...` of their own.

The network is named by module path and class (`"engine.nn.network:NetworkCIFAR"`): the space stays
torch-free, and `engine.nn` resolves the name when a network is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SearchSpace"]


@dataclass(frozen=True)
class SearchSpace:
    name: str                              # what a config names (`space=cnn`)
    title: str                             # how people call it ("convolutional cell (DARTS, CIFAR-10)")
    primitives: tuple[str, ...]            # the candidate ops, in the column order of every op-weight matrix
    cell_kinds: tuple[str, ...]            # one op-weight matrix per kind, shared by every cell of that kind
    cell_titles: Mapping[str, str]         # kind -> how a page titles it ("Normal cell", "Recurrent cell")
    inputs_per_node: int                   # inputs a derived node keeps (2 for DARTS's CNN cell, 1 for its RNN cell)
    num_edges: Callable[[int], int]        # nodes -> candidate edges of a cell (rows of its op weights)
    nodes_of: Callable[[int], int]         # the inverse: rows of op weights -> nodes (a ValueError for a bad count)
    edge_endpoints: Callable[[int], list[tuple[int, int]]]  # nodes -> (input index, node) of every row
    source_name: Callable[[int], str]      # input index -> how people read it ("c_{k-2}", "0", ...)
    # op weights {kind: (edges, ops)} -> the genotype (the space's derivation rule)
    derive: Callable[[Mapping[str, Any]], Any]
    genotype_type: type                    # the space's Genotype class
    parse_genotype: Callable[[str], Any]   # JSON or the reference's text -> genotype; never evaluated
    genotype_from_dict: Callable[[Any], Any]  # a genotypes.jsonl row's genotype -> genotype
    dot: Callable[[Any], str]              # genotype -> a DOT drawing of its cells (exports, the dashboard)
    known_genotypes: Mapping[str, Any]     # published cells, by name
    data_kind: str                         # "image" or "text": which datasets can feed it
    network: str                           # "module:Class" of the network a genotype builds (engine/nn/)
    node_name: Callable[[int], str] = str  # node index (0-based) -> how people read it in an edge label
    rows_note: str = ""                    # how to read the edge labels, where the numbering needs saying

    @property
    def num_ops(self) -> int:
        return len(self.primitives)

    def weights_shape(self, nodes: int) -> tuple[int, int]:
        """(edges, ops) of one cell kind's op weights for a cell of `nodes` intermediate nodes."""
        return self.num_edges(nodes), self.num_ops

    def row_labels(self, rows: int) -> list[str]:
        """`edge_labels` of a cell whose op weights have `rows` rows (a ValueError for a count no cell has)."""
        return self.edge_labels(self.nodes_of(rows))

    def edge_labels(self, nodes: int) -> list[str]:
        """A label per op-weight row, in row order: "c_{k-2} -> 0", ..."""
        return [f"{self.source_name(j)} -> {self.node_name(i)}" for j, i in self.edge_endpoints(nodes)]

