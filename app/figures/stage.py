"""The stage view's figures (a projector, read from the back of a room): the heatmaps, cell graphs and curves of
the other pages at the stage's sizes, with short op names so that a heatmap with 24 px numbers still fits a third
of a 1920 px screen."""

from __future__ import annotations

import copy
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.figures import curves, heatmaps
from app.figures.labels import OUTPUT_NAME, input_name
from engine.space.cnn import dot
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import Genotype

__all__ = ["STAGE", "SHORT_OPS", "short_op", "heatmap_spec", "cell_dot", "curve_spec", "STAGE_CURVES",
           "compare_table_html", "compare_curve_spec"]

# Sizes in px: heatmap numbers and every label at least 24 px on a 1920x1080 screen (the floor for a
# hall); `row_px` is a heatmap row, `dag_*` the graphs' text before the browser scales the graph to its box.
STAGE = {"cell_text": 24, "axis_label": 24, "title": 28, "row_px": 31, "dag_label": 30, "dag_node": 30,
         "curve_px": 400}
# Streamlit fits a Vega-Lite chart's whole box (title and axes included) into its height: what they take is
# added, so that a heatmap row keeps row_px.
_HEATMAP_EXTRA_PX = 80
# The op names as the stage writes them: the same words, without the underscores and the `_conv`/`_pool`
# that make sep_conv_3x3 twice as wide as its column at 24 px.
SHORT_OPS = {"none": "none", "max_pool_3x3": "max", "avg_pool_3x3": "avg", "skip_connect": "skip",
             "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5"}
STAGE_CURVES = ("loss", "accuracy")


def short_op(op: str) -> str:
    return SHORT_OPS.get(op, op)


def heatmap_spec(weights: np.ndarray, title: str, initial: np.ndarray | None = None,
                 mode: str = "softmax") -> tuple[dict[str, Any], pd.DataFrame]:
    """heatmaps.heatmap_vega at the stage's sizes: short op names, no legend (the colour scale is fixed, and the
    number is written in each cell), two decimals, horizontal op names above the columns."""
    spec, data = heatmaps.heatmap_vega(weights, title=title, mode=mode, initial=initial,
                                       ops=[short_op(op) for op in PRIMITIVES], lecture=True)
    spec = copy.deepcopy(spec)
    spec["title"] = {"text": title, "fontSize": STAGE["title"], "anchor": "start"}
    spec["height"] = STAGE["row_px"] * weights.shape[0] + _HEATMAP_EXTRA_PX
    for axis in ("x", "y"):
        spec["encoding"][axis]["axis"].update(labelFontSize=STAGE["axis_label"], labelPadding=4, ticks=False,
                                                labelFlush=False)
    spec["encoding"]["x"]["axis"]["labelAngle"] = 0
    rect, text = spec["layer"]
    rect["encoding"]["color"]["legend"] = None
    text["mark"]["fontSize"] = STAGE["cell_text"]
    if mode == "softmax":  # ".13" reads as well as "0.13" and is a quarter narrower
        text["encoding"]["text"] = {"field": "shown", "type": "nominal"}
        data = data.assign(shown=[f"{v:.2f}".lstrip("0") if v < 1 else "1" for v in data["value"]])
    return spec, data


def cell_dot(genotype: Genotype, cell: str) -> str:
    """A cell drawn left to right (the stage's graphs sit in a wide, low band under the heatmaps), short op
    names on the edges, the stage's fonts."""
    head = ("rankdir=LR;", "newrank=true;", "ranksep=0.35;", "nodesep=0.12;", "pad=0.05;",
            f'node [style=filled, shape=rect, fontname="Helvetica", fontsize={STAGE["dag_node"]}, penwidth=2, '
            'margin="0.06,0.02"];',
            f'edge [fontname="Helvetica", fontsize={STAGE["dag_label"]}];')
    style = dot.DotStyle(head=head, name=input_name, output=OUTPUT_NAME, rows=True, tooltips=True)
    source = dot.cell_dot(genotype, cell, None, style=style)
    for op, short in SHORT_OPS.items():
        source = source.replace(f'[label="{op}"', f'[label="{short}"')
    return source


def curve_spec(metrics: Sequence[Mapping[str, Any]], curve: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """curves.curve_vega at the stage's sizes: the axis numbers and legend at 24 px, a short title, no subtitle
    (the Search page says what the running means are)."""
    spec, data = curves.curve_vega(metrics, curve, height=STAGE["curve_px"], lecture=True)
    spec = copy.deepcopy(spec)
    spec["title"] = {"text": spec["title"]["text"], "fontSize": STAGE["title"], "anchor": "start"}
    line = spec["layer"][0]["encoding"]
    for axis in ("x", "y"):
        line[axis]["axis"] = {"labelFontSize": STAGE["axis_label"], "titleFontSize": STAGE["axis_label"],
                              "tickCount": 4, "labelFlush": True}
    line["x"]["title"] = None
    line["color"]["legend"] = {"orient": "top-right", "title": None, "labelFontSize": STAGE["axis_label"],
                               "symbolSize": 300, "fillColor": "white"}
    return spec, data



def compare_table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """A comparison's table in the stage's type: cell, test accuracy, parameters; the best accuracy in bold."""
    best = max((r["test_acc"] for r in rows if isinstance(r.get("test_acc"), (int, float))), default=None)

    def acc(value: Any) -> str:
        if not isinstance(value, (int, float)):
            return "—"
        return f"<b>{value:.4f}</b>" if value == best else f"{value:.4f}"

    def count(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else "—"

    body = "".join(f"<tr><td>{html.escape(str(r.get('name', '')))}</td><td class='num'>{acc(r.get('test_acc'))}"
                   f"</td><td class='num'>{count(r.get('parameters'))}</td></tr>" for r in rows)
    return ("<table class='stage-compare'><thead><tr><th>cell</th><th>test accuracy</th><th>parameters</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


def compare_curve_spec(tested: Mapping[str, Sequence[tuple[int, float]]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """Each compared cell's test accuracy against the training step (`tested`: cell -> (step, accuracy) pairs),
    one colour a cell, in the stage's type."""
    data = pd.DataFrame([{"cell": name, "step": step, "test accuracy": acc}
                         for name, points in tested.items() for step, acc in points],
                        columns=["cell", "step", "test accuracy"])
    axis = {"labelFontSize": STAGE["axis_label"], "titleFontSize": STAGE["axis_label"], "tickCount": 4}
    spec = {
        "title": {"text": "Test accuracy while training", "fontSize": STAGE["title"], "anchor": "start"},
        "width": "container", "height": STAGE["curve_px"],
        "mark": {"type": "line", "point": True, "strokeWidth": 3},
        "encoding": {
            "x": {"field": "step", "type": "quantitative", "title": "step", "axis": axis},
            "y": {"field": "test accuracy", "type": "quantitative", "title": None, "scale": {"zero": False},
                  "axis": axis},
            "color": {"field": "cell", "type": "nominal", "sort": list(tested),
                      "legend": {"orient": "bottom-right", "title": None, "labelFontSize": STAGE["axis_label"],
                                 "symbolSize": 300, "fillColor": "white"}},
            "strokeDash": {"field": "cell", "type": "nominal", "sort": list(tested), "legend": None},
        },
    }
    return spec, data
