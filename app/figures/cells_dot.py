"""The dashboard's pictures of a cell: engine.space.cnn.dot's DOT source in the dashboard's style, the states in
plain names, fixed rows, tooltips, and the fonts of the normal view or of lecture mode."""

from __future__ import annotations

import numpy as np

from app.figures.labels import OUTPUT_NAME, input_name, sizes
from engine.space.cnn import dot
from engine.space.cnn.genotype import Genotype

__all__ = ["style", "cell_dot", "weighted_cell_dot"]


def style(lecture: bool) -> dot.DotStyle:
    """Top to bottom, not left to right: a graph is scaled to its column's width, and a cell is taller than wide
    only this way round, so its labels come out about twice as large (tests/test_lecture.py measures them). The
    states keep their rows whatever the edges, so a picture redrawn at each step does not jump."""
    size = sizes(lecture)
    head = ("rankdir=TB;", "newrank=true;", "ranksep=0.3;", "nodesep=0.15;",
            f'node [style=filled, shape=rect, fontname="Helvetica", fontsize={size["dag_node"]}, penwidth=2, '
            'margin="0.08,0.04"];',
            f'edge [fontname="Helvetica", fontsize={size["dag_label"]}];')
    return dot.DotStyle(head=head, name=input_name, output=OUTPUT_NAME, rows=True, tooltips=True)


def cell_dot(genotype: Genotype, cell: str = "normal", weights: np.ndarray | None = None,
             lecture: bool = False) -> str:
    """DOT source of one cell of a genotype: op names on the kept edges; with `weights`, the (edges, ops) op weights
    of that cell, each kept op's weight is on its label and sets the pen width. `lecture`: lecture mode's fonts."""
    return dot.cell_dot(genotype, cell, weights, style=style(lecture))


def weighted_cell_dot(weights: np.ndarray, cell: str = "normal", lecture: bool = False) -> str:
    """DOT source drawing every candidate edge of a cell from its (edges, ops) op weights: labelled with its
    strongest non-`none` op, pen width and opacity by that weight on a fixed 0..1 scale; solid where the
    derivation rule keeps the edge, dashed where it does not (the export draws the same edges)."""
    return dot.weighted_cell_dot(weights, cell, style=style(lecture))
