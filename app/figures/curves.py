"""Metric curves against the step: the live panel's loss, accuracy and lr (plotly and Vega-Lite) and one metric of
several runs on one plot."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from app.figures.labels import sizes

__all__ = ["CURVES", "SPACE_CURVES", "RUN_COLOURS", "DASHES", "curve_figure", "overlay_figure", "curve_vega"]


# The curves of the live panel: key -> (title, y axis, [(metric key, trace name), ...]).
CURVES = {
    "loss": ("Loss", "cross-entropy", [("train_loss", "train"), ("valid_loss", "valid")]),
    "accuracy": ("Accuracy", "accuracy", [("train_acc", "train"), ("valid_acc", "valid")]),
    "lr": ("Network-weight learning rate", "lr", [("w_lr", "w_lr")]),
    # exp of the running mean loss with the search's dropouts on (in the thousands early on), and the whole
    # validation split measured with dropout off at each epoch's end: a log axis shows both
    "perplexity": ("Perplexity", "log scale; dots: the whole valid split, dropout off",
                   [("train_ppl", "train"), ("valid_ppl", "valid"), ("epoch_valid_ppl", "valid, epoch end")]),
}
# Curves drawn on a log axis, and keys measured once an epoch (a point each, joined across epochs, where the
# running means break their line at each epoch's start).
LOG_CURVES = ("perplexity",)
# The curves a run of each search space shows: a language model is scored by perplexity, not accuracy.
SPACE_CURVES = {"cnn": ("loss", "accuracy", "lr"), "rnn": ("loss", "perplexity", "lr")}


def _series(metrics: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for row in metrics:
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and "step" in row:
            xs.append(int(row["step"]))
            ys.append(float(v))
    return xs, ys


def _per_epoch(key: str) -> bool:
    """A metric measured once an epoch (`epoch_valid_ppl`), not a running mean."""
    return key.startswith("epoch_")


def _epoch_starts(metrics: Sequence[Mapping[str, Any]]) -> list[int]:
    """The step before the first row of each epoch after the first: where the running means start afresh."""
    starts, last_epoch, last_step = [], None, None
    for row in metrics:
        epoch, step = row.get("epoch"), row.get("step")
        if last_epoch is not None and epoch != last_epoch and isinstance(last_step, int):
            starts.append(last_step)
        last_epoch, last_step = epoch, step
    return starts


def _by_epoch(metrics: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int | None], list[float | None]]:
    """A series with a gap (None) between epochs, so a reset running mean is not drawn as a jump."""
    xs: list[int | None] = []
    ys: list[float | None] = []
    last_epoch = None
    for row in metrics:
        x, y = _series([row], key)
        if not x:
            continue
        if last_epoch is not None and row.get("epoch") != last_epoch:
            xs.append(None)
            ys.append(None)
        xs.append(x[0])
        ys.append(y[0])
        last_epoch = row.get("epoch")
    return xs, ys


# Distinct colours for runs side by side (Okabe-Ito, readable by colour-blind viewers); dashes tell them apart
# in grey print too.
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DASHES = ("solid", "dash", "dot", "dashdot")


def curve_figure(metrics: Sequence[Mapping[str, Any]], curve: str, height: int = 280) -> go.Figure:
    """One of CURVES (loss, accuracy, lr) against the global step; rows missing a value are skipped.

    Losses and accuracies are running means over the epoch so far, which start afresh at each epoch: each
    epoch is its own segment, and a dotted line marks where a new one starts. The lr axis starts at zero,
    so a constant learning rate reads as constant, not as a line in an arbitrary band."""
    title, y_title, keys = CURVES[curve]
    fig = go.Figure()
    for i, (key, name) in enumerate(keys):
        xs, ys = _by_epoch(metrics, key) if curve != "lr" and not _per_epoch(key) else _series(metrics, key)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if _per_epoch(key) else "lines", name=name,
                                 connectgaps=False,
                                 line=dict(color=RUN_COLOURS[i])))
    if curve != "lr":
        for x in _epoch_starts(metrics):
            fig.add_vline(x=x + 0.5, line=dict(color="grey", width=1, dash="dot"))
        y_title = f"{y_title}; lines: mean over the epoch so far" if curve in LOG_CURVES else \
            f"{y_title} (mean over the epoch so far)"
    else:
        fig.update_yaxes(rangemode="tozero")
    if curve in LOG_CURVES:
        fig.update_yaxes(type="log")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="step", yaxis_title=y_title, legend=dict(orientation="h", y=-0.25))
    return fig


def overlay_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], key: str, title: str = "",
                   height: int = 300) -> go.Figure:
    """One metric of several runs on one plot (run label -> metric rows), each run its own colour and dash."""
    fig = go.Figure()
    for i, (label, metrics) in enumerate(runs.items()):
        xs, ys = _series(metrics, key)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label,
                                 line=dict(color=RUN_COLOURS[i % len(RUN_COLOURS)], dash=DASHES[i % len(DASHES)])))
    fig.update_layout(title=title or key, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="step", yaxis_title=key, legend=dict(orientation="h", y=-0.25))
    if key.endswith("lr"):
        fig.update_yaxes(rangemode="tozero")
    return fig


def curve_vega(metrics: Sequence[Mapping[str, Any]], curve: str, height: int = 280,
               lecture: bool = False) -> tuple[dict[str, Any], pd.DataFrame]:
    """curve_figure() as a Vega-Lite spec and its data, built without plotly (add_vline costs ~10 ms a line, and
    a live panel redraws the curves at every step): one row per point (kind "line") with its series and segment
    (losses and accuracies break their line where an epoch starts, as curve_figure does), one row per epoch
    marker (kind "rule"), and for a metric measured once an epoch a dot on each of its points (kind "dot"). The
    spec depends on `curve` (and `lecture`: lecture mode's sizes) only."""
    size = sizes(lecture)
    title, y_title, keys = CURVES[curve]
    rows: list[dict[str, Any]] = []
    for key, series in keys:
        xs, ys = _by_epoch(metrics, key) if curve != "lr" and not _per_epoch(key) else _series(metrics, key)
        segment = 0
        for x, y in zip(xs, ys, strict=True):
            if x is None or y is None:
                segment += 1
                continue
            rows.append({"kind": "line", "series": series, "segment": f"{series}/{segment}", "x": float(x),
                         "y": float(y)})
            if _per_epoch(key):  # one measurement an epoch: a dot on its line, which is too short to see at first
                rows.append({**rows[-1], "kind": "dot"})
    if curve != "lr":
        rows += [{"kind": "rule", "series": "", "segment": "", "x": x + 0.5, "y": float("nan")}
                 for x in _epoch_starts(metrics)]
        y_title = f"{y_title}; lines: mean over the epoch so far" if curve in LOG_CURVES else \
            f"{y_title} (mean over the epoch so far)"
    data = pd.DataFrame(rows, columns=["kind", "series", "segment", "x", "y"])
    names = [series for _, series in keys]
    axis = {"axis": {"labelFontSize": size["axis_label"], "titleFontSize": size["axis_label"]}} if lecture else {}
    spec = {  # the y axis's title under the chart's title: upright, it would take the height of the plot
        "title": {"text": title, "subtitle": y_title, **({"fontSize": size["title"],
                                                          "subtitleFontSize": size["axis_label"]} if lecture else {})},
        "width": "container", "height": height,
        "layer": [
            {"transform": [{"filter": "datum.kind === 'line'"}], "mark": {"type": "line", "clip": True},
             "encoding": {
                 "x": {"field": "x", "type": "quantitative", "title": "step", "scale": {"zero": False},
                       **axis},
                 "y": {"field": "y", "type": "quantitative", "title": None,
                       "scale": {"type": "log"} if curve in LOG_CURVES else {"zero": curve == "lr"}, **axis},
                 "color": {"field": "series", "type": "nominal",
                           "scale": {"domain": names, "range": list(RUN_COLOURS[:len(names)])},
                           "legend": {"orient": "bottom", "title": None, "labelFontSize": size["axis_label"]}},
                 "detail": {"field": "segment", "type": "nominal"}}},
            {"transform": [{"filter": "datum.kind === 'dot'"}], "mark": {"type": "point", "filled": True, "clip": True},
             "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"},
                          "color": {"field": "series", "type": "nominal",
                                    "scale": {"domain": names, "range": list(RUN_COLOURS[:len(names)])},
                                    "legend": None}}},
            {"transform": [{"filter": "datum.kind === 'rule'"}],
             "mark": {"type": "rule", "color": "grey", "strokeDash": [2, 3], "strokeWidth": 1},
             "encoding": {"x": {"field": "x", "type": "quantitative"}}},
        ],
    }
    return spec, data
