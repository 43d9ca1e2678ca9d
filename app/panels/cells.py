"""Architecture weights and cells: per-edge heatmaps and cell DAGs for the normal and reduction cell, and the two
view settings they share: lecture (projector) mode and the heatmaps' colour scale, both kept in the page's URL
(st.query_params) so a reload keeps them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import streamlit as st

from app.figures import alt, cells_dot, heatmaps, labels
from engine.space import DEFAULT_SPACE, SearchSpace, get_space, space_of_genotype, space_of_kinds
from engine.space.cnn.cell import PRIMITIVES

__all__ = ["CELLS", "row_labels", "render_heatmaps", "render_dags", "mode_picker", "lecture_toggle", "lecture_on",
           "LECTURE_KEY", "SCALE_PARAM", "LECTURE_SCREEN_PX", "graph_css"]

CELLS = {"normal": "Normal cell", "reduce": "Reduction cell"}

# Lecture mode: its toggle's key and query parameter (?lecture=1); the colour scale's query parameter (?scale=...).
LECTURE_KEY = "lecture"
SCALE_PARAM = "scale"
_LECTURE_STICKY = "lecture.on"   # not a widget key: survives pages that do not draw the toggle
# The width lecture mode is sized for: a 1280 px projector, sidebar closed, less the page's margins.
LECTURE_SCREEN_PX = 1100
_LECTURE_CSS = Path(__file__).resolve().parents[2] / "assets" / "styles" / "lecture.css"


def graph_css(lecture: bool) -> str:
    """A style that makes the browser draw the cell graphs' text at the sizes their DOT asks for (labels.NORMAL
    or LECTURE). Streamlit's graphviz chart sets every element's font to 0.8 x its small font (9.6 px, in the
    graph's own units, then scaled with the graph to its column): the DOT's fontsize only reserved the room,
    and labels came out at 4-14 px on screen whatever the mode."""
    size = labels.LECTURE if lecture else labels.NORMAL
    chart = '[data-testid="stGraphVizChart"]'
    return (f"<style>\n{chart} svg g.node text {{ font-size: {size['dag_node']}px !important; }}\n"
            f"{chart} svg g.edge text {{ font-size: {size['dag_label']}px !important; }}\n</style>")


def _lecture_from_url() -> bool:
    return st.query_params.get(LECTURE_KEY) == "1"


def lecture_on() -> bool:
    """Whether lecture mode is on in this session (the toggle's value; before the toggle is drawn, the URL's)."""
    if LECTURE_KEY in st.session_state:
        return bool(st.session_state[LECTURE_KEY])
    return bool(st.session_state.get(_LECTURE_STICKY, _lecture_from_url()))


def _lecture_changed() -> None:
    on = bool(st.session_state[LECTURE_KEY])
    st.session_state[_LECTURE_STICKY] = on
    if on:
        st.query_params[LECTURE_KEY] = "1"
    else:
        st.query_params.pop(LECTURE_KEY, None)


def lecture_toggle() -> bool:
    """The sidebar's `Lecture mode` toggle (call it outside fragments): large fonts, one cell per screen width,
    numbers and labels readable from the back of a room. Its value lives in the URL (?lecture=1), so a reload
    or a shared link keeps it. Returns whether it is on. The page gets graph_css (both modes) and, when on,
    assets/styles/lecture.css."""
    if LECTURE_KEY not in st.session_state:
        st.session_state[LECTURE_KEY] = lecture_on()
    on = st.sidebar.toggle("Lecture mode", key=LECTURE_KEY, on_change=_lecture_changed,
                           help="For a projector: large text, each cell full width one above the other, "
                                "heatmap numbers and graph labels readable from the back of the room. "
                                "Kept in the page address (?lecture=1).")
    st.session_state[_LECTURE_STICKY] = on
    st.html(graph_css(on))  # style only: it takes no room
    if on:
        st.query_params[LECTURE_KEY] = "1"   # back in the URL after a page switch cleared it
        st.html(_LECTURE_CSS)
    return on


def _scale_changed(key: str) -> None:
    st.query_params[SCALE_PARAM] = st.session_state[key]


def mode_picker(key: str) -> str:
    """The heatmap colouring (see heatmaps.HEATMAP_MODES); returns its key. The choice is kept in the URL
    (?scale=<mode>): a reload, or the same picker on another page, starts from it."""
    modes = list(heatmaps.HEATMAP_MODES)
    if key not in st.session_state and st.query_params.get(SCALE_PARAM) in modes:
        st.session_state[key] = st.query_params[SCALE_PARAM]
    return st.radio("Colour scale", modes, format_func=heatmaps.HEATMAP_MODES.get, horizontal=True, key=key,
                    on_change=_scale_changed, args=(key,),
                    help="Every colour scale is fixed: the same colour is the same value in both cells and at "
                         f"every step. Op weights start at 1/ops ({len(PRIMITIVES)} ops in the convolutional cell, "
                         "5 in the recurrent one) and move slowly at first: "
                         "the centred and change scales are symmetric-log, so a move of 0.01 is already visible.")


def _places(lecture: bool, cells: int = 2) -> list:
    """Where the cells go (the normal and the reduction cell): side by side, or in lecture mode (or for a single
    cell) one above the other, full width."""
    return [st.container() for _ in range(cells)] if lecture or cells == 1 else list(st.columns(cells))


def row_labels(space: SearchSpace, rows: int) -> list[str] | None:
    """Row labels of a cell's heatmap: the convolutional cell keeps the dashboard's "c(k-2) -> 0" (labels.py)."""
    return None if space.name == DEFAULT_SPACE else space.row_labels(rows)


def render_heatmaps(weights: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray] | None, mode: str,
                    key: str, lecture: bool | None = None, space: SearchSpace | None = None) -> None:
    """A heatmap per cell kind of the space (side by side; in lecture mode one above the other, full width): rows
    are edges `source -> node`, columns ops, values on hover."""
    initial = initial or {}
    lecture = lecture_on() if lecture is None else lecture
    space = space or space_of_kinds(weights) or get_space()
    if space.rows_note:
        st.caption(space.rows_note)
    for place, (cell, title) in zip(_places(lecture, len(space.cell_titles)), space.cell_titles.items(), strict=True):
        with place:
            if cell not in weights:
                st.info(f"{title}: no op weights yet.")
                continue
            spec, data = heatmaps.heatmap_vega(weights[cell], title=title, mode=mode, initial=initial.get(cell),
                                              lecture=lecture, ops=space.primitives,
                                              edges=row_labels(space, len(weights[cell])))
            with st.container(key=f"{key}.heatmap.{cell}"):  # the same spec each step: redrawn in place
                st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))


def _graph(dot: str, key: str, text: str) -> None:
    """A graphviz chart in a container keyed by its DOT source, so a new graph is a fresh mount: redrawn in
    place, d3-graphviz computes path transitions from the old graph, about three times the browser's CPU."""
    with st.container(key=f"{key}.{hashlib.blake2b(dot.encode(), digest_size=6).hexdigest()}"):
        st.graphviz_chart(dot, width="stretch", alt=text)


def render_dags(genotype, weights: Mapping[str, np.ndarray] | None, show_all: bool, *,
                kept_weights: bool = True, key: str = "cells", lecture: bool | None = None,
                space: SearchSpace | None = None) -> None:
    """The cells of a genotype as graphs (rendered in the browser); with `show_all`, every candidate edge
    of the relaxed cell, thicker where its strongest op weighs more. `kept_weights`: the kept edges' weights on
    their labels and pen widths (off in the live panel, whose graph then changes only with the genotype).
    Lecture mode: one cell above the other, full width, drawn top to bottom in large type."""
    lecture = lecture_on() if lecture is None else lecture
    space = space or (space_of_genotype(genotype) if genotype is not None else get_space())
    if space.name != DEFAULT_SPACE:  # one cell, drawn by its space (the chain of a recurrent cell)
        st.markdown(f"**{', '.join(space.cell_titles.values())}**")
        if genotype is None:
            st.info("No genotype yet: it is derived after the first step.")
        else:
            _graph(space.dot(genotype), f"{key}.dag.{space.name}", alt.recurrent_cell_alt(genotype))
        return
    for place, (cell, title) in zip(_places(lecture), CELLS.items(), strict=True):
        with place:
            st.markdown(f"**{title}**")
            if show_all and weights and cell in weights:
                _graph(cells_dot.weighted_cell_dot(weights[cell], cell=cell, lecture=lecture), f"{key}.dag.{cell}",
                       alt.weighted_cell_alt(cell))
            elif genotype is not None:
                cell_weights = weights.get(cell) if weights and kept_weights else None
                _graph(cells_dot.cell_dot(genotype, cell=cell, weights=cell_weights, lecture=lecture),
                       f"{key}.dag.{cell}", alt.cell_alt(genotype, cell))
            else:
                st.info("No genotype yet: it is derived after the first step.")
