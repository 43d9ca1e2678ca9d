"""DOT source of a DARTS cell, torch-free: the one builder behind the export (engine/runs/export.py) and the
dashboard's cell pictures (app/figures/cells_dot.py), which differ only in their `DotStyle`.

A cell is drawn as its states (inputs c_{k-2}, c_{k-1}, intermediate nodes 0..n-1, output c_{k}) and its edges:
the kept edges of a genotype (`cell_dot`) or every candidate edge of a search cell by its op weights
(`weighted_cell_dot`). Node ids are always `source_name` (so an edge's SVG title reads "c_{k-2}->0"); what a
reader sees is the style's names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, nodes_of, num_edges, source_name
from engine.space.cnn.genotype import Genotype, select_edges

__all__ = ["EXPORT_HEAD", "DotStyle", "cell_dot", "genotype_dot", "weighted_cell_dot", "candidate_edges",
           "edge_style"]

# The graph attributes of the export: left to right, the fonts Graphviz picks for its default size.
EXPORT_HEAD = ('rankdir=LR;', 'node [style=filled, shape=rect, fontname="Helvetica", penwidth=2];',
               'edge [fontname="Helvetica", fontsize=11];')
_OUTPUT_ID = "c_{k}"


@dataclass(frozen=True)
class DotStyle:
    """How a cell graph looks. `head`: the graph's attribute lines (direction, fonts); `name`: a state's visible
    name from its input index; `output`: the output's visible name; `rows`: the states in fixed rows whatever the
    edges (see _rows); `tooltips`: hover text on every state and edge."""

    head: Sequence[str] = EXPORT_HEAD
    name: Callable[[int], str] = source_name
    output: str = _OUTPUT_ID
    rows: bool = False
    tooltips: bool = False


def _q(text: str) -> str:
    """A DOT identifier or label, quoted (node ids like c_{k-2} hold braces)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attrs(style: DotStyle, attrs: list[str], tooltip: str) -> str:
    return ", ".join([*attrs, f"tooltip={_q(tooltip)}"] if style.tooltips else attrs)


def _rows(ids: Sequence[str], out_id: str) -> list[str]:
    """Inputs c_{k-2} left of c_{k-1} in the first row, node i in row i + 1, the output in the last. Graphviz ranks
    a node after all its inputs, so without the invisible chain c_{k-1} -> 0 -> 1 -> ... -> c_{k} a node moves to
    another row when its inputs change, and a picture redrawn as the search runs jumps; with it only edges change."""
    return [f"{{rank=same; {ids[0]}; {ids[1]};}}", f"{ids[0]} -> {ids[1]} [style=invis];",
            f"{' -> '.join([*ids[1:], out_id])} [style=invis, weight=0];"]


def _states(style: DotStyle, prefix: str, nodes: int, outputs: Iterable[int]) -> list[str]:
    """The states of a cell and the output's gray edges from `outputs` (state indices, 2 = node 0)."""
    ids = [_q(prefix + source_name(j)) for j in range(nodes + 2)]  # c_{k-2}, c_{k-1}, 0, 1, ...
    out_id = _q(prefix + _OUTPUT_ID)
    lines = [f"{ids[j]} [{_attrs(style, [f'label={_q(style.name(j))}'], style.name(j))}, fillcolor=darkseagreen2];"
             for j in (0, 1)]
    lines += [f"{ids[i + 2]} [{_attrs(style, [f'label={_q(str(i))}'], f'node {i}')}, fillcolor=lightblue];"
              for i in range(nodes)]
    lines.append(f"{out_id} [{_attrs(style, [f'label={_q(style.output)}'], style.output)}, fillcolor=palegoldenrod];")
    if style.rows:
        lines += _rows(ids, out_id)
    lines += [f"{ids[s]} -> {out_id} [color=gray];" for s in outputs]
    return lines


def _cell_lines(genotype: Genotype, cell: str, prefix: str, weights: Any, edge_labels: bool,
                style: DotStyle) -> list[str]:
    nodes = genotype.cell_nodes(cell)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)  # (edges, ops)
    if w is not None and w.shape != (num_edges(len(nodes)), len(PRIMITIVES)):
        raise ValueError(f"weights for a {len(nodes)}-node cell must be ({num_edges(len(nodes))}, {len(PRIMITIVES)})"
                         f", got {w.shape}")
    lines = _states(style, prefix, len(nodes), getattr(genotype, f"{cell}_concat"))
    for i, pairs in enumerate(nodes):
        for op, j in pairs:
            attrs = [f"label={_q(op)}"] if edge_labels else []
            if w is not None:  # the kept op's weight on this edge: row of (input j -> node i)
                weight = float(w[num_edges(i) + j, PRIMITIVES.index(op)])
                attrs = [f"label={_q(f'{op} {weight:.2f}' if edge_labels else f'{weight:.2f}')}",
                         f"penwidth={0.5 + 4.5 * weight:.2f}"]
            tooltip = f"{style.name(j)} -> {i}: {op}"
            lines.append(f"{_q(prefix + source_name(j))} -> {_q(prefix + str(i))} [{_attrs(style, attrs, tooltip)}];")
    return lines


def _digraph(name: str, lines: Sequence[str]) -> str:
    return f"digraph {_q(name)} {{\n  " + "\n  ".join(lines) + "\n}\n"


def cell_dot(genotype: Genotype, cell: str = "normal", weights: Any = None, edge_labels: bool = True,
             style: DotStyle = DotStyle()) -> str:
    """DOT source of one cell's DAG: c_{k-2}, c_{k-1} -> nodes 0..n-1 -> c_{k}, op names on the kept edges.

    `weights`, the (edges, ops) op weights of this cell, adds each kept op's weight to its label and pen width."""
    return _digraph(cell, [*style.head, *_cell_lines(genotype, cell, "", weights, edge_labels, style)])


def genotype_dot(genotype: Genotype) -> str:
    """Both cells in one DOT source, side by side as two clusters (the DOT and SVG export)."""
    parts = []
    for cell in CELL_KINDS:
        body = [f"label={_q(cell + ' cell')};", "fontname=Helvetica;"]
        body += _cell_lines(genotype, cell, f"{cell}:", None, True, DotStyle())
        parts.append(f"subgraph {_q('cluster_' + cell)} {{\n    " + "\n    ".join(body) + "\n  }")
    return "digraph genotype {\n  " + "\n  ".join([*EXPORT_HEAD, *parts]) + "\n}\n"


def candidate_edges(weights: Any, primitives: Sequence[str] = PRIMITIVES, keep: int = 2,
                    ) -> list[tuple[int, int, str, float, bool]]:
    """Every candidate edge of a search cell from its (edges, ops) op weights, in edge order: (source state j,
    node i, its strongest non-`none` op, that op's weight clipped to 0..1, whether the derivation rule keeps
    the edge)."""
    w = np.asarray(weights, dtype=np.float64)  # (edges, ops)
    nodes = nodes_of(w.shape[0])
    kept = {r for node in select_edges(w, keep, primitives) for r, _ in node}
    real = [k for k, op in enumerate(primitives) if op != "none"]
    edges = []
    for r, (j, i) in enumerate(edge_endpoints(nodes)):
        k = real[int(w[r, real].argmax())]
        edges.append((j, i, primitives[k], float(np.clip(w[r, k], 0.0, 1.0)), r in kept))
    return edges


def edge_style(strength: float, kept: bool) -> str:
    """DOT attributes of a candidate edge: thickness and opacity by its weight on the fixed 0..1 scale (never
    fully transparent: every edge stays visible), solid where the derivation keeps it, dashed where not."""
    alpha = f"{int(round(40 + 215 * strength)):02x}"
    return (f'penwidth={0.5 + 5.5 * strength:.2f}, color="#1f3b73{alpha}", fontcolor="#1f3b73{alpha}", '
            f"style={'solid' if kept else 'dashed'}")


def weighted_cell_dot(weights: Any, cell: str = "normal", primitives: Sequence[str] = PRIMITIVES, keep: int = 2,
                      style: DotStyle = DotStyle()) -> str:
    """Every candidate edge of a search cell from its (edges, ops) op weights: labelled with its strongest
    non-`none` op, thickness and opacity by that weight on a fixed 0..1 scale (comparable across steps);
    solid where the derivation rule keeps the edge, dashed where it does not."""
    nodes = nodes_of(np.shape(weights)[0])
    lines = _states(style, "", nodes, range(2, 2 + nodes))
    for j, i, op, strength, kept in candidate_edges(weights, primitives, keep):
        attrs = _attrs(style, [f"label={_q(f'{op} {strength:.2f}')}", edge_style(strength, kept)],
                       f"{style.name(j)} -> {i}: {op} {strength:.2f}")
        lines.append(f"{_q(source_name(j))} -> {_q(str(i))} [{attrs}];")
    return _digraph(cell, [*style.head, *lines])
