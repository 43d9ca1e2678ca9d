"""Run labels in the pages: a run's name as the pickers show it, and the box that gives a run its label
(kept in the run directory by engine.runs.labels)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import state
from engine.runs import examples
from engine.runs import labels as run_labels

__all__ = ["named", "label_box"]


def named(run_id: str, path: str | Path | None) -> str:
    """`label · run id` where the run has a label, else its id (what the pickers list)."""
    label = run_labels.read_label(path) if path else None
    return f"{label} · {run_id}" if label else run_id


def _save(run_id: str, path: str, key: str) -> None:
    try:
        kept = run_labels.write_label(path, st.session_state.get(key, ""))
    except (run_labels.LabelError, OSError) as err:
        state.flash("error", f"Could not label {run_id}: {err}")
        return
    state.flash("success", f"{run_id} is now named “{kept}”." if kept else f"{run_id} has no label now.")


def label_box(run_id: str, path: str | Path) -> None:
    """A text box with the run's label; Enter keeps it in the run directory (empty removes it)."""
    if examples.is_example(path):
        return
    key = f"runs.{run_id}.label"
    if key not in st.session_state:
        st.session_state[key] = run_labels.read_label(path) or ""
    st.text_input("Label", key=key, max_chars=run_labels.MAX_LABEL, placeholder="a name for this run",
                  on_change=_save, args=(run_id, str(path), key),
                  help="a name people read (kept in the run directory as label.json); Replay and the Stage "
                       "list the run by it")
