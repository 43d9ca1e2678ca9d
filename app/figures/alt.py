"""Text alternatives of the dashboard's figures, for screen readers (the `alt` of every chart).

A chart's text says what it shows, from the same spec or genotype the chart is drawn from: a cell's text lists
its kept edges, so a reader who cannot see the graph still gets the cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.figures.labels import input_name
from engine.space.cnn.genotype import Genotype

__all__ = ["vega_alt", "plotly_alt", "cell_alt", "recurrent_cell_alt", "weighted_cell_alt"]

_CELL_NAMES = {"normal": "Normal cell", "reduce": "Reduction cell"}
_MARKS = {"rect": "Heatmap", "line": "Line chart", "bar": "Bar chart", "area": "Area chart", "point": "Scatter plot",
          "rule": "Chart"}


def _title_text(title: Any) -> str:
    if isinstance(title, Mapping):
        return ", ".join(str(title[k]) for k in ("text", "subtitle") if title.get(k))
    return str(title or "")


def _mark(spec: Mapping[str, Any]) -> str:
    mark = spec.get("mark")
    if isinstance(mark, Mapping):
        mark = mark.get("type")
    if mark is None:  # a layered chart: its first layer's mark says what it is
        layers = spec.get("layer") or []
        return _mark(layers[0]) if layers else "Chart"
    return _MARKS.get(str(mark), "Chart")


def vega_alt(spec: Mapping[str, Any], fallback: str = "") -> str:
    """'Heatmap: Normal cell' / 'Line chart: Loss, cross-entropy': the kind of chart and its title."""
    title = _title_text(spec.get("title")) or fallback
    return f"{_mark(spec)}: {title}" if title else _mark(spec)


def plotly_alt(fig: Any, fallback: str = "") -> str:
    """The kind of a Plotly figure's first trace and the figure's title."""
    kind = {"heatmap": "Heatmap", "scatter": "Line chart", "bar": "Bar chart"}.get(
        getattr(fig.data[0], "type", "") if getattr(fig, "data", None) else "", "Chart")
    title = getattr(getattr(fig.layout, "title", None), "text", None) or fallback
    return f"{kind}: {title}" if title else kind


def cell_alt(genotype: Genotype, cell: str = "normal") -> str:
    """'Normal cell graph. Node 0: sep_conv_3x3 from c(k-2), skip_connect from c(k-1). ... Output: nodes 0-3.'"""
    pairs = iter(getattr(genotype, cell))
    nodes = []
    for node, fanin in enumerate(genotype.fanin(cell)):
        edges = [next(pairs) for _ in range(fanin)]
        nodes.append(f"Node {node}: " + ", ".join(f"{op} from {input_name(j)}" for op, j in edges))
    concat = getattr(genotype, f"{cell}_concat")
    output = ", ".join(input_name(j) for j in concat)
    return f"{_CELL_NAMES.get(cell, cell)} graph. " + ". ".join(nodes) + f". Output c(k): concatenation of {output}."


def recurrent_cell_alt(genotype: Any) -> str:
    """'Recurrent cell graph. s_0 from x_t and h_{t-1}. Node 1: sigmoid of node 0. ... Output h_t: the mean of
    nodes 1-8.' (states numbered as the genotype numbers them: 0 is s_0)."""
    nodes = [f"Node {k + 1}: {op} of node {j}" for k, (op, j) in enumerate(genotype.recurrent)]
    output = ", ".join(str(c) for c in genotype.concat)
    return ("Recurrent cell graph. Node 0 (s_0) from x_t and h_{t-1}. " + ". ".join(nodes)
            + f". Output h_t: the mean of nodes {output}.")


def weighted_cell_alt(cell: str = "normal") -> str:
    return (f"{_CELL_NAMES.get(cell, cell)} graph with every candidate edge, each labelled with its strongest op, "
            "thicker where that op weighs more")
