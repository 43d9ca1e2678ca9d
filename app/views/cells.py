"""Architecture weights and cells: per-edge heatmaps and cell DAGs for the normal and reduction cell."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import streamlit as st

from app import figures

__all__ = ["CELLS", "render_heatmaps", "render_dags", "mode_picker"]

CELLS = {"normal": "Normal cell", "reduce": "Reduction cell"}
_PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def mode_picker(key: str) -> str:
    """The heatmap colouring (see figures.HEATMAP_MODES); returns its key."""
    return st.radio("Colour scale", list(figures.HEATMAP_MODES), format_func=figures.HEATMAP_MODES.get,
                    horizontal=True, key=key,
                    help="Weights start at 1/8 and move slowly at first: the centred and change views "
                         "stretch the colours so early moves are visible.")


def render_heatmaps(weights: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray] | None, mode: str,
                    key: str) -> None:
    """Two heatmaps side by side: rows are edges `source -> node`, columns ops, values on hover."""
    initial = initial or {}
    for col, (cell, title) in zip(st.columns(2), CELLS.items(), strict=True):
        with col:
            if cell not in weights:
                st.info(f"{title}: no architecture weights yet.")
                continue
            fig = figures.heatmap(weights[cell], title=title, mode=mode, initial=initial.get(cell))
            st.plotly_chart(fig, key=f"{key}.heatmap.{cell}", config=_PLOT_CONFIG)


def render_dags(genotype, weights: Mapping[str, np.ndarray] | None, show_all: bool) -> None:
    """The cells of a genotype as graphs (rendered in the browser); with `show_all`, every candidate edge
    of the relaxed cell, thicker where its strongest op weighs more."""
    for col, (cell, title) in zip(st.columns(2), CELLS.items(), strict=True):
        with col:
            st.markdown(f"**{title}**")
            if show_all and weights and cell in weights:
                st.graphviz_chart(figures.weighted_cell_dot(weights[cell], cell=cell), width="stretch")
            elif genotype is not None:
                cell_weights = weights.get(cell) if weights else None
                st.graphviz_chart(figures.cell_dot(genotype, cell=cell, weights=cell_weights), width="stretch")
            else:
                st.info("No genotype yet: it is derived after the first step.")
