"""Two ways to read one supernet, side by side: the op weights (the alpha-argmax rule) beside what PT measured
(the supernet's accuracy with each op removed), and one sentence per edge where the two rules disagree.

Pure: PT's decision rows (engine/derive/rows.py) in, arrays, Vega-Lite specs and text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.figures.labels import edge_names, input_name, sizes
from engine.space.cnn.cell import PRIMITIVES, edge_endpoints

__all__ = ["masked_accuracy", "kept_ops", "row_weights", "masked_vega", "disagreements"]


def _op_rows(rows: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("kind") == "op" and r.get("cell") == kind]


def masked_accuracy(rows: Sequence[Mapping[str, Any]], kind: str, nodes: int) -> np.ndarray:
    """(edges, ops): the supernet's accuracy with that op's weight zeroed, as PT measured it on the edge's turn;
    NaN for `none` (never a candidate) and for edges PT has not reached."""
    out = np.full((len(edge_endpoints(nodes)), len(PRIMITIVES)), np.nan)
    for row in _op_rows(rows, kind):
        for op, measured in row.get("masked", {}).items():
            if op in PRIMITIVES:
                out[int(row["edge"]), PRIMITIVES.index(op)] = float(measured["acc"])
    return out


def row_weights(rows: Sequence[Mapping[str, Any]], kind: str, fallback: np.ndarray) -> np.ndarray:
    """(edges, ops): the op weights PT saw on each decided edge (the search's, since PT never moves the alphas),
    `fallback` (the run's last recorded weights) on the edges it has not reached."""
    out = np.array(fallback, dtype=np.float64, copy=True)
    for row in _op_rows(rows, kind):
        out[int(row["edge"])] = [float(row["weights"].get(op, 0.0)) for op in PRIMITIVES]
    return out


def kept_ops(rows: Sequence[Mapping[str, Any]], kind: str, nodes: int) -> np.ndarray:
    """(edges, ops) booleans: the op PT kept on each edge it decided."""
    out = np.zeros((len(edge_endpoints(nodes)), len(PRIMITIVES)), dtype=bool)
    for row in _op_rows(rows, kind):
        out[int(row["edge"]), PRIMITIVES.index(row["chosen"])] = True
    return out


def masked_vega(acc: np.ndarray, kept: np.ndarray | None = None, *, title: str = "",
                lecture: bool = False) -> tuple[dict[str, Any], pd.DataFrame]:
    """A heatmap of `masked_accuracy`, laid out as the op-weight heatmap (edges down, ops across) so the two read
    side by side. The darker a cell, the lower the accuracy without that op: the more the supernet needs it.
    The op PT kept (`kept_ops`) is outlined; cells without a measurement are left blank."""
    size = sizes(lecture)
    edges = edge_names(_nodes_of(acc.shape[0]))
    kept = np.zeros(acc.shape, dtype=bool) if kept is None else kept
    frame = pd.DataFrame({"edge": np.repeat(edges, acc.shape[1]), "op": np.tile(PRIMITIVES, acc.shape[0]),
                          "value": acc.ravel(), "kept": kept.ravel()})
    frame = frame[np.isfinite(frame["value"])].reset_index(drop=True)
    frame["label"] = [f"{e}, {o}: accuracy without it {v:.4f}" + (", kept by PT" if k else "") for e, o, v, k in
                      zip(frame["edge"], frame["op"], frame["value"], frame["kept"], strict=True)]
    axis = {"labelOverlap": False, "labelLimit": 300, "labelFontSize": size["axis_label"]}
    tooltip = [{"field": "edge"}, {"field": "op"},
               {"field": "value", "type": "quantitative", "format": ".4f", "title": "accuracy without the op"}]
    spec = {
        "title": title, "width": "container", "height": size["row_px"] * len(edges),
        "encoding": {
            "x": {"field": "op", "type": "nominal", "sort": list(PRIMITIVES), "scale": {"domain": list(PRIMITIVES)},
                  "title": None, "axis": {"orient": "top", "labelAngle": -30, **axis}},
            "y": {"field": "edge", "type": "nominal", "sort": edges, "scale": {"domain": edges}, "title": None,
                  "axis": axis},
        },
        "layer": [
            {"mark": {"type": "rect", "strokeWidth": 3}, "encoding": {
                "color": {"field": "value", "type": "quantitative", "title": "accuracy without the op",
                          "scale": {"domain": [0.0, 1.0], "scheme": "viridis"}},
                "stroke": {"condition": {"test": "datum.kept", "value": "#e4572e"}, "value": None},
                "tooltip": tooltip, "description": {"field": "label", "type": "nominal"}}},
            {"mark": {"type": "text", "fontSize": size["cell_text"], "aria": False},
             "encoding": {"text": {"field": "value", "type": "quantitative", "format": ".2f"},
                          "color": {"condition": {"test": "datum.value > 0.6", "value": "black"}, "value": "white"},
                          "tooltip": tooltip}},
        ],
    }
    return spec, frame


def _nodes_of(edges: int) -> int:
    nodes = 0
    while len(edge_endpoints(nodes)) < edges:
        nodes += 1
    return nodes


def disagreements(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per edge where PT kept another op than the largest op weight, in PT's order."""
    out = []
    for row in rows:
        if row.get("kind") != "op" or row.get("chosen") == row.get("argmax"):
            continue
        masked = row.get("masked", {})
        chosen, argmax = row["chosen"], row["argmax"]
        cell = "normal" if row["cell"] == "normal" else "reduction"
        edge = f"{input_name(int(row['input']))} -> {int(row['node'])}"
        weights = row.get("weights", {})
        a, b = masked[chosen], masked[argmax]
        line = (f"{cell} cell, edge {edge}: the largest op weight is {argmax} ({weights.get(argmax, 0):.2f}), "
                f"PT keeps {chosen} ({weights.get(chosen, 0):.2f}): without {chosen} the supernet's accuracy "
                f"is {a['acc']:.3f}, without {argmax} {b['acc']:.3f}")
        if a["acc"] == b["acc"]:  # PT's tie-break: the removal that leaves the higher loss hurts more
            line += f" (a tie: the loss without it is the higher, {a['loss']:.3f} against {b['loss']:.3f})"
        out.append(line)
    return out
