"""Figures people keep: the dashboard's Vega-Lite charts and cell graphs as PNG or SVG files.

The browser draws the charts, and Streamlit's Vega-Lite charts have no save menu, so a figure is drawn again on
the server from the very spec the page shows: vl-convert (the Vega project's converter, no browser needed) for
the heatmaps and curves, Graphviz's `dot` for the cells (whose own PNG has its text; an SVG turned into PNG
by another renderer would need Graphviz's fonts). Each is made when its download button is clicked.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["FORMATS", "MIME", "FigureError", "standalone", "vega_file", "dot_file"]

FORMATS = ("png", "svg")
MIME = {"png": "image/png", "svg": "image/svg+xml"}
_WIDTH_PX = 520     # a chart's width in the file (the page's charts take their column's width)
_PNG_SCALE = 2      # PNG pixels per SVG unit: sharp on a slide or a high-density screen


class FigureError(RuntimeError):
    """A figure could not be drawn, and why. A download button's data is made outside the page's script, so the
    server logs the reason and the browser says the download failed: the panel disables the buttons whose figure
    it knows cannot be drawn (no vl-convert, no dot, no records yet) instead."""


def _records(data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = data.to_dict("records") if isinstance(data, pd.DataFrame) else [dict(r) for r in data]
    # JSON has no NaN: a missing value (a curve with no validation yet) is null, which Vega-Lite leaves out
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def standalone(spec: Mapping[str, Any], data: pd.DataFrame | Sequence[Mapping[str, Any]],
               width: int = _WIDTH_PX) -> dict[str, Any]:
    """A spec the page draws with its data passed beside it, made whole: the data inline, and a fixed width
    where the page's is the container's (a file has no container)."""
    whole = copy.deepcopy(dict(spec))
    whole["data"] = {"values": _records(data)}
    if whole.get("width") in (None, "container"):
        whole["width"] = width
    whole.pop("autosize", None)
    return whole


def vega_file(charts: Sequence[tuple[Mapping[str, Any], Any]], fmt: str, title: str = "") -> bytes:
    """One file holding `charts` ((spec, data) pairs, as the page draws them) side by side."""
    if fmt not in FORMATS:
        raise FigureError(f"unknown figure format {fmt!r}: one of {', '.join(FORMATS)}")
    if not charts:
        raise FigureError("there is nothing to draw yet")
    try:
        import vl_convert
    except ImportError:
        raise FigureError("figure files need the vl-convert-python package: pip install vl-convert-python") from None
    parts = [standalone(spec, data) for spec, data in charts]
    whole: dict[str, Any] = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                             "hconcat": parts, "resolve": {"scale": {"color": "independent"}},
                             "config": {"background": "white"}}
    for part in parts:  # per-view settings cannot stay inside a concatenated view
        part.pop("$schema", None)
        whole["config"].update(part.pop("config", {}) or {})
    if title:
        whole["title"] = title
    try:
        if fmt == "svg":
            return vl_convert.vegalite_to_svg(whole).encode()
        return bytes(vl_convert.vegalite_to_png(whole, scale=_PNG_SCALE))
    except ValueError as err:  # vl-convert reports a spec it cannot draw as ValueError
        raise FigureError(f"the figure could not be drawn: {err}") from None


def dot_file(dot_source: str, fmt: str) -> bytes:
    """A cell graph (DOT source) drawn by Graphviz's `dot`, as SVG or as a PNG at twice the default resolution."""
    if fmt not in FORMATS:
        raise FigureError(f"unknown figure format {fmt!r}: one of {', '.join(FORMATS)}")
    from engine.runs.export import GraphvizMissingError, render_image

    if fmt == "png":  # a graph attribute, as `dot -Gdpi=` would set it: the first line opens the graph
        head, sep, rest = dot_source.partition("{")
        dot_source = f"{head}{sep}\n  dpi={72 * _PNG_SCALE};{rest}" if sep else dot_source
    try:
        return render_image(dot_source, fmt)
    except (GraphvizMissingError, ValueError) as err:
        raise FigureError(str(err)) from None
