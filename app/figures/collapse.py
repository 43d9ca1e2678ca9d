"""Skip-connection collapse in figures: each op's share of the weight, and the normal cell's skip and
parameter-free op counts of several runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.figures.curves import DASHES, RUN_COLOURS
from app.figures.labels import sizes
from app.figures.replay import record_weights
from engine.space.cnn.cell import PARAM_FREE, PRIMITIVES

__all__ = ["op_shares", "op_share_figure", "normal_cell_counts", "collapse_counts_figure"]


def op_shares(records: Sequence[Mapping[str, Any]], cell: str = "normal",
              variant: str | Mapping[str, Any] = "darts") -> np.ndarray:
    """(steps, ops) each real op's share of its edge's non-`none` weight, averaged over the cell's edges; the
    `none` column is 0. This is the competition the derivation rule decides (it never keeps `none`), without
    `none`'s own weight, which only says how little an edge matters."""
    if not records:
        return np.zeros((0, len(PRIMITIVES)))
    real = np.array([op != "none" for op in PRIMITIVES])
    out = []
    for r in records:
        w = np.asarray(record_weights(r, variant)[cell], dtype=np.float64) * real  # (edges, ops), none zeroed
        out.append((w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)).mean(axis=0))
    return np.array(out)  # (steps, ops)


def op_share_figure(records: Sequence[Mapping[str, Any]], cell: str = "normal", variant: str = "darts",
                    height: int = 320) -> go.Figure:
    """Each real op's share of the non-`none` weight (op_shares), against the step: one line per op, `none` left
    out (it is never chosen). skip_connect is the thick red line: skip-connection collapse shows as it climbing
    (with the other parameter-free ops, dotted) while the convolutions fall."""
    steps = [int(r.get("step", i)) for i, r in enumerate(records)]
    shares = op_shares(records, cell, variant)  # (T, ops)
    fig = go.Figure()
    for j, op in enumerate(PRIMITIVES):
        if op == "none":
            continue
        line = dict(dash="dot" if op in PARAM_FREE else "solid")
        if op == "skip_connect":
            line = dict(color="#D62728", width=4)
        fig.add_trace(go.Scatter(x=steps, y=shares[:, j] if len(records) else [], mode="lines", name=op, line=line))
    fig.update_layout(title=f"Share of each op in the {cell} cell (none left out)", height=height,
                      xaxis_title="step", yaxis_title="mean share of the non-none op weight",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def normal_cell_counts(metrics: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int], list[int]]:
    """(steps, skip connections, parameter-free ops) of the normal cell's current genotype, one value per step
    (the last row of a step, as an epoch end logs one more), in step order; rows without the counts are skipped."""
    by_step: dict[int, tuple[int, int]] = {}
    for row in metrics:
        skips, free = row.get("skips_normal"), row.get("param_free_normal")
        if isinstance(skips, (int, float)) and isinstance(free, (int, float)) and "step" in row:
            by_step[int(row["step"])] = (int(skips), int(free))
    steps = sorted(by_step)
    return steps, [by_step[s][0] for s in steps], [by_step[s][1] for s in steps]


def collapse_counts_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], count: str = "skips",
                           lecture: bool = False, ops: int = 8, settled: int | None = None) -> go.Figure:
    """The normal cell's skip connections (`count="skips"`) or parameter-free ops (`"param_free"`) against the
    step for several runs on one plot (run label -> metrics rows), each run its own colour and dash, drawn as
    steps (a count changes when the genotype does). The y axis is fixed at 0..`ops` (the cell's kept ops), so
    two such figures, or two runs, read on the same scale. `settled`: the steps before it are shaded, as those
    where the alphas are still close to uniform and the cell flips between ops almost at random."""
    if count not in ("skips", "param_free"):
        raise ValueError(f"count must be 'skips' or 'param_free', got {count!r}")
    title = ("Skip connections in the normal cell" if count == "skips"
             else "Parameter-free ops (skip, pools) in the normal cell")
    size = sizes(lecture)
    fig = go.Figure()
    for i, (label, metrics) in enumerate(runs.items()):
        steps, skips, free = normal_cell_counts(metrics)
        fig.add_trace(go.Scatter(x=steps, y=skips if count == "skips" else free, mode="lines", name=label,
                                 line=dict(color=RUN_COLOURS[i % len(RUN_COLOURS)], dash=DASHES[i % len(DASHES)],
                                           width=4 if lecture else 3, shape="hv")))
    fig.update_layout(title=dict(text=title, font=dict(size=size["title"])), height=460 if lecture else 320,
                      margin=dict(l=10, r=10, t=50, b=10), xaxis_title="step", yaxis_title=f"of {ops} kept ops",
                      legend=dict(orientation="h", y=-0.25, font=dict(size=size["axis_label"])),
                      font=dict(size=size["axis_label"]))
    fig.update_yaxes(range=[-0.2, ops + 0.2], dtick=1)
    # on the axes themselves: Streamlit's chart theme sets tick and axis-title fonts that layout.font would not win
    axis_font = dict(tickfont=dict(size=size["axis_label"]), title_font=dict(size=size["axis_label"]))
    fig.update_xaxes(**axis_font)
    fig.update_yaxes(**axis_font)
    if settled:
        fig.add_vrect(x0=0, x1=settled, fillcolor="grey", opacity=0.12, line_width=0, annotation_text="noise",
                      annotation_position="top left")
    return fig
