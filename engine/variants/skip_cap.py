"""P-DARTS's skip-connection cap (Chen et al., ICCV 2019; chenxin061/pdarts), a rule of derivation.

While the normal cell has more than K skip connections, the weakest one is struck out of its edge and the cell
is derived again. The search loop (`max_skip`), the dashboard and exports derive through it alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.space.cnn.cell import PRIMITIVES, edge_endpoints
from engine.variants.base import Variant
from engine.variants.registry import as_variant

__all__ = ["SKIP", "cap_skips", "check_max_skip"]

SKIP = "skip_connect"


def check_max_skip(value: Any) -> int | None:
    """None or an integer from 0 to 64 (a ValueError with one line otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
        raise ValueError(f"max_skip must be an integer from 0 to 64 (skip connections kept per normal cell), "
                         f"or none; got {value!r}")
    return value


def _rows_of(genotype: Any, cell: str, nodes: int) -> list[tuple[int, str]]:
    """(alpha row, op) of every kept pair of `cell`."""
    ends = edge_endpoints(nodes)
    return [(ends.index((j, i)), op) for i, pairs in enumerate(genotype.cell_nodes(cell)) for op, j in pairs]


def cap_skips(variant: str | Variant | Mapping[str, Any], arch: Mapping[str, Any], max_skip: int | None) -> Any:
    """The genotype `variant` derives from `arch`, with at most `max_skip` skip connections in the normal cell.

    P-DARTS's rule: while there are too many, the kept skip connection with the smallest skip weight is struck
    out of its edge (its parameter set far below the others, so every relaxation gives it ~0 weight) and the
    cell is derived again; that edge then offers its next best op, or loses its place to a stronger edge."""
    v = as_variant(variant)
    check_max_skip(max_skip)
    arch = {k: np.array(a, dtype=np.float64) for k, a in arch.items()}
    genotype = v.derive(v.op_weights(arch), arch)
    if max_skip is None:
        return genotype
    skip = PRIMITIVES.index(SKIP)
    nodes = len(genotype.fanin("normal"))
    for _ in range(arch["normal"].shape[0] + 1):
        kept = [r for r, op in _rows_of(genotype, "normal", nodes) if op == SKIP]
        if len(kept) <= max_skip:
            return genotype
        weights = v.op_weights(arch)["normal"]
        weakest = min(kept, key=lambda r: (weights[r, skip], -r))  # ties: the later edge goes first
        arch["normal"][weakest, skip] = arch["normal"][weakest].min() - 1e3
        genotype = v.derive(v.op_weights(arch), arch)
    return genotype
