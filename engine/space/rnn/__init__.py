"""The recurrent DARTS cell (Liu et al. 2019, section 2.1 and Appendix A.1.2; docs/darts.md): 5 ops on each of 36
edges of an 8-node cell, one cell kind, one input kept per node; learnt on text (Penn Treebank in the paper, the
embedded corpus here).

cell.py holds the cell's shape, genotype.py the derived cell, its rule and text forms, dot.py its drawing,
config.py a search's settings and presets. The tensor modules (network_search.py, network.py, step.py) and the
search job (search.py) import torch and are never loaded from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.space.base import SearchSpace
from engine.space.rnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, num_edges, source_name
from engine.space.rnn.dot import genotype_dot
from engine.space.rnn.genotype import KNOWN_GENOTYPES, Genotype, genotype_from_weights

__all__ = ["SPACE"]


def _derive(weights: Mapping[str, Any]) -> Genotype:
    return genotype_from_weights(weights["recurrent"])


SPACE = SearchSpace(
    name="rnn", title="recurrent cell (DARTS, language modelling)", primitives=PRIMITIVES, cell_kinds=CELL_KINDS,
    inputs_per_node=1, num_edges=num_edges, edge_endpoints=edge_endpoints, source_name=source_name,
    derive=_derive, parse_genotype=Genotype.parse, genotype_from_dict=Genotype.from_dict, dot=genotype_dot,
    known_genotypes=KNOWN_GENOTYPES, data_kind="text", network="engine.nn.rnn_network:RNNModel",
)
