"""Training curves: loss, accuracy and the weight learning rate against the step."""

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
        col.plotly_chart(figures.curve_figure(metrics, curve), key=f"{key}.curve.{curve}",
                         config={"displaylogo": False})
