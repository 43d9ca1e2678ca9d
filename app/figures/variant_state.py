"""Each variant's own state beside the alphas, drawn as the variant describes it (app/panels/variant_state.py shows
them). The variant computes its figures with its own maths (engine.variants.state_figures: plain data, a heatmap
or bars); this module only draws them, so a new variant's state needs no code here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.figures.labels import plain
from engine import variants
from engine.variants import StateFigure

__all__ = ["state_figure", "variant_state_figures"]

_KEPT, _LEFT = "#2a9d8f", "#b0b0b0"  # bars that reach the threshold, and the others


def _heatmap(fig: StateFigure, rows: list[str]) -> go.Figure:
    z = np.asarray(fig.values, dtype=np.float64)
    text = None if fig.text is None else np.asarray(fig.text, dtype=object).reshape(z.shape)
    out = go.Figure(go.Heatmap(z=z, x=list(fig.columns), y=rows, zmin=fig.value_range[0], zmax=fig.value_range[1],
                               colorscale="Viridis", text=text,
                               texttemplate="%{z:.2f}" if text is None else "%{text}",
                               colorbar=dict(title=fig.value_label),
                               hovertemplate=f"%{{y}}<br>%{{x}}<br>{fig.value_label} %{{z:.4f}}<extra></extra>"))
    if fig.marked:
        out.add_trace(go.Scatter(x=[fig.columns[c] for _, c in fig.marked], y=[rows[r] for r, _ in fig.marked],
                                 mode="markers", name=fig.marked_label, showlegend=False,
                                 marker=dict(symbol="square-open", size=22, color="red", line=dict(width=3)),
                                 hovertemplate=f"%{{y}}: %{{x}}<extra>{fig.marked_label}</extra>"))
    out.update_xaxes(side="top", tickangle=-30 if len(fig.columns) > 2 else 0, title=None)
    return out


def _bars(fig: StateFigure, rows: list[str]) -> go.Figure:
    x = np.asarray(fig.values, dtype=np.float64)
    colours = [_KEPT if fig.threshold is None or v >= fig.threshold else _LEFT for v in x]
    out = go.Figure(go.Bar(x=x, y=rows, orientation="h", marker_color=colours,
                           text=None if fig.text is None else list(fig.text), textposition="inside",
                           hovertemplate=f"%{{y}}<br>%{{text}}: {fig.value_label} %{{x:.4f}}<extra></extra>"))
    if fig.threshold is not None:
        out.add_vline(x=fig.threshold, line_dash="dash", line_color="red",
                      annotation_text=f"threshold {fig.threshold:g}")
    out.update_layout(xaxis=dict(range=list(fig.value_range), title=fig.value_label))
    return out


def state_figure(fig: StateFigure, height: int = 430) -> go.Figure:
    """A variant's state figure as a plotly chart, rows in the op-weight heatmaps' order and words."""
    rows = [plain(r) for r in fig.rows]
    out = _heatmap(fig, rows) if fig.kind == "heatmap" else _bars(fig, rows)
    out.update_layout(title=fig.title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    out.update_yaxes(autorange="reversed", title=None)
    return out


def variant_state_figures(variant: str | Mapping[str, Any], arch: Mapping[str, Any]) -> list[tuple[str, go.Figure]]:
    """(caption, chart) of each state figure of the run's variant (its name, or the run's config: then its options
    too) in these architecture parameters; [] for plain DARTS or before the first parameters."""
    return [(fig.caption, state_figure(fig)) for fig in variants.state_figures(arch, variant)]
