"""PT's decision rows (pt.jsonl) read without torch: the cell they describe and how far PT got. engine/derive/pt.py
writes them; the dashboard and the command line read them here (docs/derivation.md has the rows' format)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.core.atomic import read_jsonl
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints
from engine.space.cnn.genotype import Genotype

__all__ = ["ROWS", "read_rows", "decisions", "genotype_of_rows"]

ROWS = "pt.jsonl"


def _measured(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), (int, float)) for k in ("acc", "loss"))


def _well_formed(row: Any, nodes: int | None) -> bool:
    """A row as PT writes it (docs/derivation.md), with its edge or node inside a cell of `nodes` nodes."""
    if not isinstance(row, dict) or row.get("cell") not in CELL_KINDS:
        return False
    edges = len(edge_endpoints(nodes)) if nodes is not None else None
    if row.get("kind") == "op":
        edge, masked = row.get("edge"), row.get("masked")
        return (isinstance(edge, int) and 0 <= edge < (edges or edge + 1) and row.get("chosen") in PRIMITIVES
                and row.get("argmax") in PRIMITIVES and isinstance(row.get("weights"), dict)
                and isinstance(row.get("input"), int) and isinstance(row.get("node"), int)
                and isinstance(masked, dict)
                and all(_measured(masked.get(op)) for op in (row["chosen"], row["argmax"])))
    if row.get("kind") == "node":
        removed = row.get("removed")
        return (isinstance(row.get("node"), int) and isinstance(removed, list)
                and all(isinstance(r, dict) and isinstance(r.get("edge"), int)
                        and 0 <= r["edge"] < (edges or r["edge"] + 1) for r in removed))
    return False


def read_rows(run_dir: str | os.PathLike, nodes: int | None = None) -> list[dict[str, Any]]:
    """The decision rows PT has appended so far ([] when it never ran here). A line that is not JSON, or not a row
    as PT writes it (an edge outside a cell of `nodes` nodes, an op that is no primitive, ...), is skipped."""
    return [r for r in read_jsonl(Path(run_dir) / ROWS) if _well_formed(r, nodes)]


def decisions(nodes: int) -> int:
    """How many rows a complete PT writes: one op decision per edge and one input decision per node with more
    than two candidate inputs (node i has i + 2), in each of the two cells."""
    return len(CELL_KINDS) * (len(edge_endpoints(nodes)) + sum(1 for i in range(nodes) if i + 2 > 2))


def genotype_of_rows(rows: list[dict[str, Any]], nodes: int) -> Genotype | None:
    """The cell the rows describe: on each node, the inputs not removed, each with its edge's chosen op. None
    while the rows are not complete (PT still running, or stopped part way)."""
    endpoints = edge_endpoints(nodes)
    chosen: dict[str, dict[int, str]] = {k: {} for k in CELL_KINDS}
    pruned: dict[str, set[int]] = {k: set() for k in CELL_KINDS}
    for row in rows:
        if row.get("kind") == "op":
            chosen[row["cell"]][int(row["edge"])] = row["chosen"]
        elif row.get("kind") == "node":
            pruned[row["cell"]].update(int(r["edge"]) for r in row.get("removed", []))
    cells = {}
    for kind in CELL_KINDS:
        pairs = []
        for node in range(nodes):
            kept = [e for e, (_, i) in enumerate(endpoints) if i == node and e not in pruned[kind]]
            if len(kept) > 2 or any(e not in chosen[kind] for e in kept):
                return None
            pairs += [(chosen[kind][e], endpoints[e][0]) for e in kept]
        cells[kind] = pairs
    concat = list(range(2, 2 + nodes))
    return Genotype(cells["normal"], concat, cells["reduce"], concat)
