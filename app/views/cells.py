"""Architecture weights and cells: per-edge heatmaps and cell DAGs for the normal and reduction cell."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import streamlit as st

from app import figures

__all__ = ["CELLS", "render_heatmaps", "render_dags", "mode_picker"]

CELLS = {"normal": "Normal cell", "reduce": "Reduction cell"}


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
            spec, data = figures.heatmap_vega(weights[cell], title=title, mode=mode, initial=initial.get(cell))
            with st.container(key=f"{key}.heatmap.{cell}"):  # the same spec each step: redrawn in place
                st.vega_lite_chart(data, spec, width="stretch")


def _graph(dot: str, key: str) -> None:
    """A graphviz chart in a container keyed by its DOT source, so a new graph is a fresh mount: redrawn in
    place, d3-graphviz computes path transitions from the old graph, about three times the browser's CPU."""
    with st.container(key=f"{key}.{hashlib.blake2b(dot.encode(), digest_size=6).hexdigest()}"):
        st.graphviz_chart(dot, width="stretch")


def render_dags(genotype, weights: Mapping[str, np.ndarray] | None, show_all: bool, *,
                kept_weights: bool = True, key: str = "cells") -> None:
    """The cells of a genotype as graphs (rendered in the browser); with `show_all`, every candidate edge
    of the relaxed cell, thicker where its strongest op weighs more. `kept_weights`: the kept edges' weights on
    their labels and pen widths (off in the live panel, whose graph then changes only with the genotype)."""
    for col, (cell, title) in zip(st.columns(2), CELLS.items(), strict=True):
        with col:
            st.markdown(f"**{title}**")
            if show_all and weights and cell in weights:
                _graph(figures.weighted_cell_dot(weights[cell], cell=cell), f"{key}.dag.{cell}")
            elif genotype is not None:
                cell_weights = weights.get(cell) if weights and kept_weights else None
                _graph(figures.cell_dot(genotype, cell=cell, weights=cell_weights), f"{key}.dag.{cell}")
            else:
                st.info("No genotype yet: it is derived after the first step.")
