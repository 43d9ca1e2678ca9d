"""Downloads of a genotype and of a run's alphas history: JSON, DARTS text, DOT, SVG, CSV.

The data is a callable, made when the button is clicked, so a live panel that redraws every second
does not render an SVG or read the alphas file on every refresh.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from engine.runs import export, rundir
from engine.runs.handle import RunHandle

__all__ = ["LABELS", "render", "svg_available"]

LABELS = {"json": "Genotype JSON", "darts": "DARTS text", "dot": "DOT", "svg": "SVG", "csv": "Alphas CSV"}
_MIME = {"json": "application/json", "darts": "text/plain", "dot": "text/vnd.graphviz", "svg": "image/svg+xml",
         "csv": "text/csv"}
GRAPHVIZ_HINT = ("SVG export needs Graphviz's `dot` program on the server: `sudo apt-get install graphviz` "
                 "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`. "
                 "The DOT download opens in any Graphviz viewer.")


def svg_available() -> bool:
    return shutil.which("dot") is not None


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
    if not svg_available():
        st.info(GRAPHVIZ_HINT)
