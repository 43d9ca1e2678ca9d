"""The Learn page's section on the recurrent search space: what a node computes, why one input per node, the
paper's cell drawn, and a recurrent run's op weights and cell where one exists."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app import state
from app.figures import alt, replay
from app.panels import cells
from engine.runs.catalog import RunInfo
from engine.space import get_space

__all__ = ["render", "PAPER_CELL"]

PAPER_CELL = "DARTS_RNN"
_TEXT = "recurrent"


def render(runs: Sequence[RunInfo], prose, key: str = "learn.rnn") -> None:
    """`runs`: the searches the page knows; the newest recurrent one with recorded alphas is drawn. `prose` draws
    a learn_text passage (app/screens/learn.py)."""
    space = get_space("rnn")
    st.header("7. The second search space: a recurrent cell")
    prose(_TEXT)
    paper = space.known_genotypes[PAPER_CELL]
    st.markdown(f"**{PAPER_CELL}**: the recurrent cell of the paper's second-order search (its Figure 6)")
    st.graphviz_chart(space.dot(paper), width="stretch", alt=alt.recurrent_cell_alt(paper))
    st.code(paper.to_darts(), language="python", wrap_lines=True)
    recurrent = [r for r in runs if r.space == space.name]
    records = []
    for info in recurrent:
        records = state.alphas_records(info.path)
        if records:
            break
    if not records:
        st.info("No recurrent search has run here yet: pick a recurrent preset (rnn-demo) on the Search page, or "
                "run `python -m engine search --preset rnn-demo`; its op weights and cell then appear here.")
        return
    weights = replay.record_weights(records[-1], "darts")
    st.markdown(f"**{info.run_id}**, step {records[-1]['step']}: its op weights and the cell they derive")
    cells.render_heatmaps(weights, replay.record_weights(records[0], "darts"), "softmax", key=key, space=space)
    cells.render_dags(space.derive(weights), weights, False, key=key, space=space)
