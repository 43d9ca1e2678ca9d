"""The convolutional DARTS cell (Liu et al. 2019, section 2.1; docs/darts.md): 8 ops on each of 14 edges of a
4-node cell, a normal and a reduction kind, two inputs kept per node; learnt on images (CIFAR-10 in the paper,
the embedded Fashion-MNIST subset here).

cell.py holds the cell's shape, genotype.py the derived cell and its text forms, dot.py its drawing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.space.base import SearchSpace
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, nodes_of, num_edges, source_name
from engine.space.cnn.dot import genotype_dot
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype, genotype_from_weights

__all__ = ["SPACE"]


def _derive(weights: Mapping[str, Any]) -> Genotype:
    return genotype_from_weights(weights["normal"], weights["reduce"])


SPACE = SearchSpace(
    name="cnn", title="convolutional cell (DARTS, CIFAR-10)", primitives=PRIMITIVES, cell_kinds=CELL_KINDS,
    cell_titles={"normal": "Normal cell", "reduce": "Reduction cell"},
    inputs_per_node=2, num_edges=num_edges, nodes_of=nodes_of, edge_endpoints=edge_endpoints,
    source_name=source_name, derive=_derive, genotype_type=Genotype,
    parse_genotype=Genotype.parse, genotype_from_dict=Genotype.from_dict, dot=genotype_dot,
    known_genotypes=KNOWN_GENOTYPES, data_kind="image", network="engine.nn.network:NetworkCIFAR",
)
