"""A variant's own state, as plain data the dashboard draws: a heatmap or a bar chart, and a line of text.

A variant computes these from a snapshot's architecture parameters with its own maths (`Variant.state_figures`,
`Variant.state_text`); app/figures/variant_state.py turns them into charts. No plotting here, and no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engine.space.cnn.cell import edge_labels, nodes_of

__all__ = ["StateFigure", "edge_rows"]


def edge_rows(edges: int) -> tuple[str, ...]:
    """One label per alpha row of a cell with `edges` rows ("c_{k-2} -> 0", ...), as the op-weight heatmaps."""
    return tuple(edge_labels(nodes_of(edges)))


@dataclass(frozen=True)
class StateFigure:
    """One chart of a variant's state.

    "heatmap": `values` is (rows, columns), coloured on `value_range`, each cell showing its `text` (None: the
    value to two decimals); `marked` cells (row, column) are outlined, `marked_label` says what they are.
    "bars": `values` is (rows,), one horizontal bar per row on `value_range`, each showing its `text`; with a
    `threshold`, a line there and the bars that reach it highlighted."""

    kind: Literal["heatmap", "bars"]
    title: str
    caption: str                          # one sentence under the chart: how to read it
    values: np.ndarray
    rows: tuple[str, ...]
    columns: tuple[str, ...] = ()
    value_range: tuple[float, float] = (0.0, 1.0)
    value_label: str = "weight"           # the colour bar's or the value axis's title
    text: tuple[str, ...] | None = None   # row-major, one per cell or bar
    marked: tuple[tuple[int, int], ...] = field(default=())
    marked_label: str = ""
    threshold: float | None = None

    def __post_init__(self) -> None:
        shape = (len(self.rows), len(self.columns)) if self.kind == "heatmap" else (len(self.rows),)
        if self.kind not in ("heatmap", "bars") or np.shape(self.values) != shape:
            raise ValueError(f"a {self.kind} of {len(self.rows)} rows needs values of shape {shape}, "
                             f"got {np.shape(self.values)}")
        if self.text is not None and len(self.text) != int(np.prod(shape)):
            raise ValueError(f"a {self.kind} of shape {shape} needs one text per value")
