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
from engine.space.rnn.cell import (
    CELL_KINDS,
    PRIMITIVES,
    edge_endpoints,
    node_name,
    nodes_of,
    num_edges,
    source_name,
)
from engine.space.rnn.dot import genotype_dot
from engine.space.rnn.genotype import KNOWN_GENOTYPES, Genotype, genotype_from_weights

__all__ = ["SPACE"]


def _derive(weights: Mapping[str, Any]) -> Genotype:
    return genotype_from_weights(weights["recurrent"])


SPACE = SearchSpace(
    name="rnn", title="recurrent cell (DARTS, language modelling)", primitives=PRIMITIVES, cell_kinds=CELL_KINDS,
    cell_titles={"recurrent": "Recurrent cell"},
    inputs_per_node=1, num_edges=num_edges, nodes_of=nodes_of, edge_endpoints=edge_endpoints,
    source_name=source_name, derive=_derive, genotype_type=Genotype,
    parse_genotype=Genotype.parse, genotype_from_dict=Genotype.from_dict, dot=genotype_dot,
    known_genotypes=KNOWN_GENOTYPES, data_kind="text", network="engine.nn.rnn_network:RNNModel",
    node_name=node_name,
    rows_note="States are numbered as in the genotype and the drawn cell: 0 is s_0, made from x_t and h_{t-1}; "
              "1 to 8 are the cell's nodes. Each node keeps one input: its strongest op other than none.",
)
