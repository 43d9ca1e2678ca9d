"""Training curves: loss, accuracy and the weight learning rate against the step (Vega-Lite, redrawn in place)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from app import figures

__all__ = ["render"]


def render(metrics: Sequence[Mapping[str, Any]], key: str) -> None:
    if not metrics:
        st.info("No metrics yet: the first line is logged after the first step.")
        return
    for col, curve in zip(st.columns(len(figures.CURVES)), figures.CURVES, strict=True):
        spec, data = figures.curve_vega(metrics, curve)
        with col.container(key=f"{key}.curve.{curve}"):  # the same spec each step: new rows are drawn in place
            st.vega_lite_chart(data, spec, width="stretch")
