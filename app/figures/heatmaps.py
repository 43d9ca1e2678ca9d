"""Op-weight heatmaps of a cell: plotly (`heatmap`) and Vega-Lite (`heatmap_vega`), each colour mode on its fixed
colour domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.figures.labels import edge_names, sizes
from engine.space.cnn.cell import PRIMITIVES, nodes_of

__all__ = ["HEATMAP_MODES", "SYMLOG_CONSTANT", "colour_domain", "weights_frame", "heatmap", "heatmap_vega"]


# How a heatmap colours the op weights (key -> label shown in the page). Every mode has one fixed colour domain,
# the same for both cells and every step (colour_domain), so a colour means the same value wherever it is seen.
HEATMAP_MODES = {
    "softmax": "Op weights (0 to 1)",
    "uniform": "Op weight minus uniform (centred)",
    "change": "Change since the start",
}
# The diverging modes colour on a symmetric-log scale (Vega-Lite "symlog": sign(v) log(1 + |v| / c)): fixed ends,
# yet a move of 0.01 away from the centre already takes 15 % of the way to the end of the colour scale.
SYMLOG_CONSTANT = 0.01


def colour_domain(mode: str, ops: int = len(PRIMITIVES)) -> tuple[float, float]:
    """The fixed colour domain of a heatmap mode, from what its value can be (K ops):
    "softmax": a weight, 0 to 1; "uniform": weight - 1/K lies in [-1/K, 1 - 1/K], drawn on the symmetric
    [-(1 - 1/K), 1 - 1/K] so that 0 (uniform) is the middle colour; "change": weight - its start, in [-1, 1]."""
    if mode == "softmax":
        return 0.0, 1.0
    if mode == "uniform":
        return -(1.0 - 1.0 / ops), 1.0 - 1.0 / ops
    if mode == "change":
        return -1.0, 1.0
    raise ValueError(f"mode={mode!r}: one of {', '.join(HEATMAP_MODES)}")


def _symlog(v: np.ndarray, end: float) -> np.ndarray:
    """Values on the symmetric-log scale of the diverging modes, -1..1 between -end and end (plotly's colours)."""
    return np.sign(v) * np.log1p(np.abs(v) / SYMLOG_CONSTANT) / np.log1p(end / SYMLOG_CONSTANT)


def weights_frame(weights: np.ndarray, ops: Sequence[str] = PRIMITIVES,
                  edges: Sequence[str] | None = None) -> pd.DataFrame:
    """(edges, ops) weights as a frame: one row per edge labelled `source -> node` (`edges`; by default the
    convolutional cell's labels), one column per op."""
    w = np.asarray(weights, dtype=np.float64)  # (edges, ops)
    return pd.DataFrame(w, index=list(edges) if edges is not None else edge_names(nodes_of(w.shape[0])),
                        columns=list(ops))


def heatmap(weights: np.ndarray, *, title: str = "", mode: str = "softmax", initial: np.ndarray | None = None,
            ops: Sequence[str] = PRIMITIVES, height: int = 430) -> go.Figure:
    """Per-edge op weights of one cell as a heatmap, each mode on its fixed colour domain (colour_domain).

    mode "softmax": the weights on 0..1.
    mode "uniform": weight - 1/ops on a diverging symmetric-log scale centred on 0 (uniform).
    mode "change": weights minus `initial` (the weights at step 0) on a diverging symmetric-log scale.
    z holds the value shown (and written in each cell); in the diverging modes the colours follow _symlog(z),
    whose colour bar is labelled in values."""
    lo, hi = colour_domain(mode)
    frame = weights_frame(weights, ops)
    w = frame.to_numpy()  # (edges, ops)
    uniform = 1.0 / w.shape[1]
    hover = ("%{y}<br>%{x}<br>op weight %{customdata[0]:.4f}<br>change since start %{customdata[1]:+.4f}"
             "<extra></extra>")
    start = np.full_like(w, uniform) if initial is None else np.asarray(initial, dtype=np.float64)
    custom = np.stack([w, w - start], axis=-1)  # (edges, ops, 2)
    common = dict(x=list(frame.columns), y=list(frame.index), customdata=custom, hovertemplate=hover)
    if mode == "softmax":
        trace = go.Heatmap(z=w, zmin=lo, zmax=hi, colorscale="Viridis", texttemplate="%{z:.2f}",
                           colorbar=dict(title="op weight"), **common)
    else:
        value = w - uniform if mode == "uniform" else w - start
        ticks = np.array([-hi, -0.1, -0.01, 0.0, 0.01, 0.1, hi])
        trace = go.Heatmap(z=_symlog(value, hi), zmin=-1.0, zmax=1.0, zmid=0.0, colorscale="RdBu_r",
                           text=np.char.mod("%+.3f", value), texttemplate="%{text}",
                           colorbar=dict(title=f"op weight - 1/{w.shape[1]}" if mode == "uniform" else "change",
                                         tickvals=_symlog(ticks, hi).tolist(), ticktext=[f"{t:+.2g}" for t in ticks]),
                           **common)
    fig = go.Figure(trace)
    # the op names stand slanted above the matrix: the title goes above them, in a margin tall enough for both
    fig.update_layout(title=dict(text=title, y=0.99, yref="container", yanchor="top"), height=height + 60,
                      margin=dict(l=10, r=10, t=120 if title else 90, b=10))
    fig.update_yaxes(autorange="reversed", title=None)  # edge 0 at the top, as in the alpha matrix
    fig.update_xaxes(side="top", tickangle=-30, title=None)
    return fig


# st.vega_lite_chart keeps a chart whose spec did not change and swaps its data in place, where a plotly figure
# with new numbers is a new element (its spec is its identity) that the browser builds from scratch: for the
# live heatmaps that is about a fifth of the browser's CPU. So the spec holds only the chart's kind and options
# and every number is in the data frame.

def heatmap_vega(weights: np.ndarray, *, title: str = "", mode: str = "softmax", initial: np.ndarray | None = None,
                 ops: Sequence[str] = PRIMITIVES, height: int | None = None, lecture: bool = False,
                 edges: Sequence[str] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """heatmap() as a Vega-Lite spec and its data: one row per (edge, op), edges in order, ops in order within
    an edge, with the op weight, its change since the start (`initial`, else uniform 1/ops) and `value`, what the
    colour and the cell's text show: the op weight; in mode "uniform" the op weight minus 1/ops; in mode
    "change" the change. Each mode's colour domain is fixed (colour_domain): the spec does not depend on the
    data, so both cells and every step share one colour scale. `lecture`: lecture mode's sizes (LECTURE); the
    height defaults to a row height per edge. `ops` and `edges` name the columns and rows (weights_frame)."""
    lo, hi = colour_domain(mode, len(ops))
    size = sizes(lecture)
    frame = weights_frame(weights, ops, edges)
    w = frame.to_numpy()  # (edges, ops)
    start = np.full_like(w, 1.0 / w.shape[1]) if initial is None else np.asarray(initial, dtype=np.float64)
    data = pd.DataFrame({"edge": np.repeat(frame.index.to_numpy(), w.shape[1]),
                         "op": np.tile(frame.columns.to_numpy(), w.shape[0]),
                         "weight": w.ravel(), "change": (w - start).ravel()})
    data["value"] = {"softmax": data["weight"], "uniform": data["weight"] - 1.0 / w.shape[1],
                     "change": data["change"]}[mode]
    # each cell's ARIA label (SVG): the exact numbers, for screen readers and for tests that read the page
    data["label"] = [f"{e}, {o}: weight {v:.6f}, change since start {c:+.6f}"
                     for e, o, v, c in zip(data["edge"], data["op"], data["weight"], data["change"], strict=True)]
    if mode == "softmax":
        scale, fmt, legend = {"domain": [lo, hi], "scheme": "viridis"}, ".2f", "op weight"
        text_colour = {"condition": {"test": "datum.value > 0.6", "value": "black"}, "value": "white"}
    else:
        scale = {"type": "symlog", "constant": SYMLOG_CONSTANT, "domain": [lo, hi], "domainMid": 0.0,
                 "clamp": True, "scheme": "redblue", "reverse": True}
        fmt = "+.3f"
        legend = f"op weight - 1/{w.shape[1]}" if mode == "uniform" else "change since start"
        text_colour = {"condition": {"test": "abs(datum.value) > 0.2", "value": "white"}, "value": "black"}
    tooltip = [{"field": "edge", "title": "edge"}, {"field": "op", "title": "op"},
               {"field": "weight", "type": "quantitative", "format": ".4f", "title": "op weight"},
               {"field": "change", "type": "quantitative", "format": "+.4f", "title": "change since start"}]
    axis = {"labelOverlap": False, "labelLimit": 300, "labelFontSize": size["axis_label"]}
    spec = {
        "title": {"text": title, "fontSize": size["title"]} if lecture else title,
        "width": "container", "height": height or size["row_px"] * len(frame.index),
        "encoding": {
            "x": {"field": "op", "type": "nominal", "sort": list(frame.columns), "title": None,
                  "axis": {"orient": "top", "labelAngle": -30, **axis}},
            "y": {"field": "edge", "type": "nominal", "sort": list(frame.index), "title": None, "axis": axis},
        },
        "layer": [
            {"mark": "rect", "encoding": {"color": {"field": "value", "type": "quantitative", "scale": scale,
                                                    "title": legend,
                                                    "legend": {"labelFontSize": size["axis_label"],
                                                               "titleFontSize": size["axis_label"]}},
                                          "tooltip": tooltip, "description": {"field": "label", "type": "nominal"}}},
            {"mark": {"type": "text", "fontSize": size["cell_text"], "aria": False},
             "encoding": {"text": {"field": "value", "type": "quantitative", "format": fmt}, "color": text_colour,
                          "tooltip": tooltip}},
        ],
    }
    return spec, data
