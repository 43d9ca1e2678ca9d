"""The stage's compare view (/stage?view=compare): the comparison of trained cells shipped with dartboard on one
projector screen, in the stage's type (app/figures/stage.py), beside the run views of app/screens/stage.py."""

from __future__ import annotations

import html
from typing import Any

import streamlit as st

from app import state
from app.figures import alt, stage

__all__ = ["VIEW_PARAM", "COMPARE_VIEW", "render", "show"]

VIEW_PARAM, COMPARE_VIEW = "view", "compare"   # /stage?view=compare: the shipped comparison instead of a run


def render(record: dict[str, Any]) -> None:
    """The comparison shipped with dartboard on one screen: was the search worth it? The found cell, DARTS_V2
    and random cells trained alike, their test accuracies in large type and their curves."""
    st.html("<div class='stage-bar'><span class='stage-item'><span class='stage-value'>Compare cells</span></span>"
            f"<span class='stage-run'>trained with {html.escape(str(record.get('preset')))}, one seed each, "
            "scored on 2,000 held-out images</span></div>")
    left, right = st.columns([2, 3])
    left.html(stage.compare_table_html(record["rows"]))
    tested = {r["name"]: [(m["step"], m["test_acc"]) for m in state.metrics_records(r["run_dir"]) if "test_acc" in m]
              for r in record["rows"]}
    spec, data = stage.compare_curve_spec(tested)
    with right.container(key="stage.compare.curves"):
        st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))


def show(name: str | None) -> None:
    """Switch the stage to view `name` (None: the run on stage)."""
    if name is None:
        st.query_params.pop(VIEW_PARAM, None)
    else:
        st.query_params[VIEW_PARAM] = name
