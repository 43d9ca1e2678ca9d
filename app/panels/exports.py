"""Downloads of a run: its genotype (JSON, DARTS text, DOT, SVG), its alphas and metrics histories (CSV), and
its figures (op-weight heatmaps, curves, cells) as PNG or SVG files.

The data is a callable, made when the button is clicked, so a live panel that redraws every second
does not render an SVG or read the alphas file on every refresh.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.figures import cells_dot, curves, heatmaps, saved
from app.panels import cells
from engine.runs import export, rundir
from engine.runs.handle import RunHandle

__all__ = ["LABELS", "FIGURES", "render", "render_figures", "svg_available", "figures_available"]

LABELS = {"json": "Genotype JSON", "darts": "DARTS text", "dot": "DOT", "svg": "SVG", "csv": "Alphas CSV"}
_MIME = {"json": "application/json", "darts": "text/plain", "dot": "text/vnd.graphviz", "svg": "image/svg+xml",
         "csv": "text/csv"}
GRAPHVIZ_HINT = ("SVG export needs Graphviz's `dot` program on the server: `sudo apt-get install graphviz` "
                 "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`. "
                 "The DOT download opens in any Graphviz viewer.")


# The figures a run can be saved as: name -> label (the file is <run>-<name>.png|svg)
FIGURES = {"heatmaps": "Op-weight heatmaps", "curves": "Curves", "normal_cell": "Normal cell",
           "reduce_cell": "Reduction cell"}
VL_CONVERT_HINT = "Figure files need the vl-convert-python package on the server: pip install vl-convert-python."


def svg_available() -> bool:
    return shutil.which("dot") is not None


def figures_available() -> bool:
    """Whether the server can draw figure files (vl-convert draws the charts and turns SVG into PNG)."""
    return importlib.util.find_spec("vl_convert") is not None


def _genotype_data(get_genotype: Callable[[], Any], fmt: str) -> Callable[[], str | bytes]:
    def make() -> str | bytes:
        genotype = get_genotype()
        if fmt == "svg":
            return export.render_svg(export.genotype_dot(genotype))
        return export.genotype_to(fmt, genotype)
    return make


def _alphas_data(run_dir: str) -> Callable[[], str]:
    def make() -> str:
        run = RunHandle(run_dir)  # the weights the run searched with: its variant and that variant's options
        return export.alphas_csv(run.alphas(), run.config)
    return make


def _metrics_data(run_dir: str) -> Callable[[], str]:
    def make() -> str:
        return pd.DataFrame(RunHandle(run_dir).metrics()).to_csv(index=False)
    return make


def _figure_data(figure: str, fmt: str, get_genotype: Callable[[], Any], run_dir: str | None, mode: str,
                 lecture: bool) -> Callable[[], bytes]:
    """The figure as the page draws it (same spec, colour scale and lecture sizes), drawn again as a file."""
    def make() -> bytes:
        if figure in ("normal_cell", "reduce_cell"):
            cell = figure.removesuffix("_cell")
            return saved.dot_file(cells_dot.cell_dot(get_genotype(), cell=cell, lecture=lecture), fmt)
        run, space = RunHandle(run_dir), rundir.run_space(run_dir)
        if figure == "curves":
            metrics = run.metrics()
            return saved.vega_file([curves.curve_vega(metrics, c, lecture=lecture)
                                    for c in curves.SPACE_CURVES[space.name]], fmt)
        records = run.alphas()
        weights, initial = run.weights(records[-1]), run.weights(records[0])
        step = records[-1].get("step", len(records) - 1)
        return saved.vega_file([heatmaps.heatmap_vega(weights[c], title=title, mode=mode, initial=initial.get(c),
                                                      lecture=lecture, ops=space.primitives,
                                                      edges=cells.row_labels(space, len(weights[c])))
                                for c, title in space.cell_titles.items() if c in weights], fmt,
                               title=f"{Path(run_dir).name}: op weights at step {step}")
    return make


def _kind(run_dir: str | None) -> str:
    try:
        return RunHandle(run_dir).kind if run_dir else "search"
    except (rundir.RunDirError, OSError, ValueError):
        return "search"


def _has(run_dir: str | None, name: str) -> bool:
    """The run has this file with something in it (a figure of an empty file would fail at click time, where a
    download can only say that it failed)."""
    try:
        return run_dir is not None and (Path(run_dir) / name).stat().st_size > 0
    except OSError:
        return False


def render_figures(get_genotype: Callable[[], Any], run_dir: str | None, name: str, key: str,
                   has_genotype: bool = True) -> None:
    """Pick a figure and a format, then download it; the metrics as CSV beside them."""
    cnn = _kind(run_dir) != "rnn_search"  # the recurrent cell is saved as the genotype's SVG above
    ready = {"heatmaps": _has(run_dir, rundir.ALPHAS), "curves": _has(run_dir, rundir.METRICS),
             "normal_cell": cnn and has_genotype and svg_available(),
             "reduce_cell": cnn and has_genotype and svg_available()}
    c = st.columns([3, 2, 3, 3])
    figure = c[0].selectbox("Figure", list(FIGURES), format_func=FIGURES.get, key=f"{key}.figure",
                            label_visibility="collapsed", help="the figure as the page draws it, as a file")
    fmt = c[1].segmented_control("Figure format", saved.FORMATS, default="png", format_func=str.upper,
                                 key=f"{key}.figure_format", label_visibility="collapsed") or "png"
    # the colour scale of this page's heatmaps (its picker's, else the URL's), as the page draws them
    mode = st.session_state.get(f"{key}.mode") or st.query_params.get(cells.SCALE_PARAM)
    mode = mode if mode in heatmaps.HEATMAP_MODES else next(iter(heatmaps.HEATMAP_MODES))
    can = figures_available() and ready[figure]
    c[2].download_button(f"{FIGURES[figure]} ({fmt.upper()})",
                         _figure_data(figure, fmt, get_genotype, run_dir, mode, cells.lecture_on()) if can else b"",
                         file_name=f"{name}-{figure}.{fmt}", mime=saved.MIME[fmt], key=f"{key}.download.figure",
                         on_click="ignore", disabled=not can, width="stretch")
    c[3].download_button("Metrics CSV", _metrics_data(run_dir) if ready["curves"] else "",
                         file_name=f"{name}-metrics.csv", mime="text/csv", key=f"{key}.download.metrics",
                         on_click="ignore", disabled=not ready["curves"], width="stretch")
    if not figures_available():
        st.info(VL_CONVERT_HINT)


def render(get_genotype: Callable[[], Any], run_dir: str | None, name: str, key: str,
           has_genotype: bool = True) -> None:
    """Download buttons; `get_genotype` is called at click time (the genotype of that moment)."""
    cols = st.columns(len(LABELS))
    for col, (fmt, label) in zip(cols, LABELS.items(), strict=True):
        file_name = f"{name}-{export.FORMATS[fmt]}"
        if fmt == "csv":
            has_alphas = run_dir is not None and (Path(run_dir) / rundir.ALPHAS).exists()
            col.download_button(label, _alphas_data(run_dir) if has_alphas else "", file_name=file_name,
                                mime=_MIME[fmt], key=f"{key}.download.{fmt}", on_click="ignore",
                                disabled=not has_alphas, width="stretch")
            continue
        disabled = not has_genotype or (fmt == "svg" and not svg_available())
        col.download_button(label, _genotype_data(get_genotype, fmt), file_name=file_name, mime=_MIME[fmt],
                            key=f"{key}.download.{fmt}", on_click="ignore", disabled=disabled, width="stretch")
    render_figures(get_genotype, run_dir, name, key, has_genotype)
    if not svg_available():
        st.info(GRAPHVIZ_HINT)
