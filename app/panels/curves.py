"""Training curves: loss, accuracy and the network-weight learning rate against the step (Vega-Lite, redrawn in
place)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from app.figures import alt, curves

__all__ = ["render"]


def render(metrics: Sequence[Mapping[str, Any]], key: str, lecture: bool = False, space: str = "cnn") -> None:
    """The three curves of the run's search space side by side (loss, accuracy or perplexity, lr); in lecture mode
    one above the other, full width, in large type."""
    if not metrics:
        st.info("No metrics yet: the first line is logged after the first step.")
        return
    shown = curves.SPACE_CURVES.get(space, curves.SPACE_CURVES["cnn"])
    places = [st.container() for _ in shown] if lecture else list(st.columns(len(shown)))
    for place, curve in zip(places, shown, strict=True):
        spec, data = curves.curve_vega(metrics, curve, lecture=lecture)
        with place.container(key=f"{key}.curve.{curve}"):  # the same spec each step: new rows are drawn in place
            st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))
