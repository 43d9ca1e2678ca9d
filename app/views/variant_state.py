"""Each variant's own state, drawn in its own meaning beside the op-weight heatmaps (docs/variants.md).

PC-DARTS: the edge weights (edge normalisation) as a heatmap. GDAS: the sampling probabilities at the current
temperature with the ops sampled this step marked. FairDARTS: each edge's strongest sigmoid weight against the
threshold. DrNAS: the Dirichlet mean of each op weight with its spread. DARTS-, beta-DARTS and SDARTS-RS: a
line on their schedule now (the auxiliary skip weight, the Beta-Decay weight, the noise radius), beta-DARTS on
PC-DARTS also the edge weights. Plain DARTS draws nothing more. The
figures are pure functions of the snapshot's architecture parameters (app/figures.py), so a followed run and
the in-process one look the same.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import figures
from engine.variants import variant_summary

__all__ = ["render"]


def render(snap: Any, key: str = "live") -> None:
    """Draw the state of the snapshot's variant (nothing for DARTS or before the first parameters)."""
    variant = str((snap.config or {}).get("variant", "darts"))
    try:
        shown = figures.variant_state_figures(variant, snap.alphas or {}, snap.weights or None)
    except (ValueError, KeyError) as e:  # a record from another version of a variant: say so, draw the rest
        st.caption(f"The {variant} state of this run cannot be drawn: {e}")
        return
    text = figures.variant_state_text(variant, snap.alphas or {})
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
            st.plotly_chart(fig, key=f"{key}.variant_state.{i}", config={"displayModeBar": False})
            st.caption(caption)
