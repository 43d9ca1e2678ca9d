"""Run controls: Pause, Resume, Step once, Stop, Derive now.

Each button only calls the job's request method (idempotent, returns at once) through `on_click`;
the loop honours it between steps. A button is disabled when its request would do nothing.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["LABELS", "PAUSING_KEY", "render", "enabled"]

LABELS = {"pause": "Pause", "resume": "Resume", "step_once": "Step once", "stop": "Stop",
          "derive_now": "Derive now"}
# Session key: the run whose Pause was clicked and not answered yet (the page shows "pausing" until then).
PAUSING_KEY = "control.pausing"


def enabled(state: str) -> dict[str, bool]:
    """Which requests make sense in a state (the others are shown disabled); "pausing" is a running run whose
    Pause was clicked."""
    return {
        "pause": state in ("queued", "running"),
        "resume": state == "paused",
        "step_once": state == "paused",
        "stop": state in ("queued", "running", "pausing", "paused"),
        "derive_now": state in ("running", "pausing", "paused"),
    }


def _request(job: Any, method: str) -> None:
    getattr(job, method)()
    if method == "pause":
        st.session_state[PAUSING_KEY] = getattr(job, "run_id", "")
    elif method in ("resume", "stop"):
        st.session_state.pop(PAUSING_KEY, None)
    if method == "derive_now":
        st.toast("Derive requested: the genotype of the current alphas is added to genotypes.jsonl.")
    elif method == "pause":
        st.toast("Pausing after the current step.")


def render(job: Any, state: str) -> None:
    ok = enabled(state)
    cols = st.columns(len(LABELS))
    for col, (method, label) in zip(cols, LABELS.items(), strict=True):
        col.button(label, key=f"control.{method}", disabled=not ok[method], on_click=_request,
                   args=(job, method), width="stretch")
