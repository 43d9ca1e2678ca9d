"""A sweep's figures: one metric of each group of seeds against the step (the mean, and a band from the lowest
to the highest seed rather than one line per seed), and how often each op won each edge across the seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.figures.curves import DASHES, RUN_COLOURS
from app.figures.heatmaps import heatmap

__all__ = ["band_figure", "win_frequency_figure", "members_by_step"]


def members_by_step(runs: Sequence[Sequence[Mapping[str, Any]]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values): one row per member, NaN where a member has no value at a step (not there yet, or not
    measured at that step)."""
    steps = sorted({int(r["step"]) for rows in runs for r in rows if key in r and "step" in r})
    index = {s: i for i, s in enumerate(steps)}
    values = np.full((len(runs), len(steps)), np.nan)
    for m, rows in enumerate(runs):
        for r in rows:
            v = r.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and "step" in r:
                values[m, index[int(r["step"])]] = float(v)
    return np.asarray(steps), values


def band_figure(groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], key: str, title: str,
                height: int = 360) -> go.Figure:
    """Per group (label -> its members' metrics rows): the mean over the seeds that have a value at each step,
    and the band between the lowest and highest seed."""
    fig = go.Figure()
    for i, (label, runs) in enumerate(groups.items()):
        steps, values = members_by_step(runs, key)
        if not len(steps):
            continue
        colour, dash = RUN_COLOURS[i % len(RUN_COLOURS)], DASHES[i % len(DASHES)]
        seen = ~np.isnan(values)
        keep = seen.any(axis=0)
        steps, values = steps[keep], values[:, keep]
        with np.errstate(all="ignore"):
            mean, lo, hi = np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)
        x = steps.tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=hi.tolist() + lo[::-1].tolist(), fill="toself", opacity=0.18,
                                 line=dict(width=0), fillcolor=colour, hoverinfo="skip", showlegend=False,
                                 name=f"{label} range"))
        fig.add_trace(go.Scatter(x=x, y=mean.tolist(), mode="lines", line=dict(color=colour, dash=dash, width=2),
                                 name=f"{label} (mean of {len(runs)})"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def win_frequency_figure(freq: np.ndarray, title: str, height: int = 430) -> go.Figure:
    """Share of seeds whose op won each edge (0..1), on the op-weight heatmap's axes and colours."""
    fig = heatmap(freq, title=title, height=height)
    fig.update_traces(colorbar=dict(title="share of seeds"),
                      hovertemplate="%{y}<br>%{x}<br>won on %{z:.0%} of the seeds<extra></extra>")
    return fig
