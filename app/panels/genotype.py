"""The genotype panel: the current genotype, what changed since the previous epoch, its size."""

from __future__ import annotations

import streamlit as st

from app.figures import tables

__all__ = ["render", "UNTRAINED_NOTE"]

UNTRAINED_NOTE = ("Derived from the initial, untrained alphas: not a result yet. Before the first architecture "
                  "step the op weights are near uniform, so this cell (and its size) is close to a random pick.")


def render(genotype, previous, params: int | None, num_classes: int, previous_label: str = "previous epoch",
           untrained: bool = False) -> None:
    """`untrained`: the genotype comes from the alphas as initialised (step 0), and the panel says so."""
    if genotype is None:
        st.info("No genotype yet: it is derived from the alphas after the first step.")
        return
    if untrained:
        st.warning(UNTRAINED_NOTE, icon=":material/hourglass_empty:")
    left, right = st.columns([3, 2])
    with left:
        st.code(genotype.to_darts(), language="python", wrap_lines=True)
        st.dataframe(tables.genotype_frame(genotype), hide_index=True, height=250)
    with right:
        if params is not None:
            st.metric(f"Parameters (C=36, 20 cells, {num_classes} classes)", f"{params / 1e6:.2f}M",
                      help=f"{params:,} parameters of NetworkCIFAR(36, {num_classes}, 20) built from this "
                           "genotype, auxiliary head excluded (DARTS_V2: 3.35M on CIFAR-10)"
                           + (". Of the untrained cell: not a result yet." if untrained else ""))
            if untrained:
                st.caption("Size of the cell derived from the initial alphas (not a result yet).")
        st.markdown(f"**Changes since the {previous_label}**")
        if previous is None:
            st.caption("Nothing to compare with yet.")
        else:
            changes = tables.genotype_changes(previous, genotype)
            if changes:
                st.code("\n".join(changes), language=None)
            else:
                st.caption("None: the same cell.")
