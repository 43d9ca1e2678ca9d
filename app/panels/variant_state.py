"""Each variant's own state, drawn in its own meaning beside the op-weight heatmaps (docs/variants.md).

What a variant draws is its own declaration (`Variant.state_figures`, `Variant.state_text` in engine/variants/):
PC-DARTS its edge weights, GDAS its sampling probabilities at the current temperature with the ops sampled this
step marked, FairDARTS each edge's strongest sigmoid weight against the threshold, DrNAS the Dirichlet mean of
each op weight with its spread; DARTS-, beta-DARTS and SDARTS-RS a line on their schedule now. Plain DARTS draws
nothing more. The figures are functions of the snapshot's architecture parameters and the run's config, so a
followed run and the in-process one look the same.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.figures import alt, variant_state
from engine.variants import state_text, variant_summary

__all__ = ["render"]


def render(snap: Any, key: str = "live") -> None:
    """Draw the state of the snapshot's variant (nothing for DARTS or before the first parameters)."""
    config = snap.config or {"variant": "darts"}  # the run's variant with its options
    variant = str(config.get("variant", "darts"))
    try:
        shown = variant_state.variant_state_figures(config, snap.alphas or {})
        text = state_text(snap.alphas or {}, config)
    except (ValueError, KeyError) as e:  # a record from another version of a variant: say so, draw the rest
        st.caption(f"The {variant} state of this run cannot be drawn: {e}")
        return
    if not shown and not text:
        return
    st.markdown(f"**{variant}**: {variant_summary(variant)}")
    if text:
        st.caption(text)
    if not shown:
        return
    cols = st.columns(len(shown))
    for i, (col, (caption, fig)) in enumerate(zip(cols, shown, strict=True)):
        with col:
            st.plotly_chart(fig, key=f"{key}.variant_state.{i}", config={"displayModeBar": False},
                            alt=alt.plotly_alt(fig, caption))
            st.caption(caption)
