"""The live panel of the Search page: a fragment that redraws from the job's latest snapshot.

It polls (`run_every`) only while the run is active; when the run ends it asks for one full rerun,
which recreates the fragment without `run_every`, so an idle page costs the server nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from app import state
from app.views import cells, controls, curves, exports, genotype, status
from engine.rundir import RunDirError
from engine.snapshot import Snapshot

__all__ = ["render", "panel", "messages"]

_CSS = Path(__file__).resolve().parents[2] / "assets" / "styles" / "live.css"


def messages(snap: Snapshot) -> None:
    """What the engine says: a failure (with its error text), a note such as why a run paused."""
    if snap.state == "failed":
        st.error(f"The search failed: {snap.error or 'no error text was recorded'}")
    elif snap.state == "interrupted":
        st.warning("This run ended without a final state (its process is gone). Resume it from the Runs page.")
    if snap.message:
        (st.warning if snap.state in ("paused", "failed") else st.info)(snap.message)


def _params(snap: Snapshot) -> tuple[int | None, int]:
    classes = state.num_classes_of(snap.config)
    if snap.genotype is None:
        return None, classes
    try:
        return state.param_count(json.dumps(snap.genotype.to_dict(), sort_keys=True), classes), classes
    except (ValueError, RuntimeError, KeyError):
        return None, classes


def panel(job: Any, snap: Snapshot, key: str = "live") -> None:
    """Status, controls and every live figure of one snapshot."""
    status.render(snap)
    controls.render(job, snap.state)
    messages(snap)

    st.subheader("Architecture weights")
    mode = cells.mode_picker(key=f"{key}.mode")
    cells.render_heatmaps(snap.weights, snap.initial_weights, mode, key=key)

    st.subheader("Cells")
    show_all = st.toggle("Show every candidate edge", key=f"{key}.show_all",
                         help="all 14 edges of the relaxed cell, thickness by the strongest op's weight")
    cells.render_dags(snap.genotype, snap.weights, show_all)

    st.subheader("Curves")
    curves.render(snap.metrics, key=key)

    st.subheader("Genotype")
    params, classes = _params(snap)
    genotype.render(snap.genotype, snap.epoch_genotype, params, classes)

    st.subheader("Export")
    exports.render(lambda: job.snapshot().genotype, snap.run_dir or None, snap.run_id or "run", key=key,
                   has_genotype=snap.genotype is not None)


def _snapshot(job: Any) -> Snapshot | None:
    try:
        return job.snapshot()
    except RunDirError as err:
        st.error(f"Cannot read this run any more: {err}")
        return None


def render(job: Any, refresh_s: float) -> None:
    first = _snapshot(job)
    if first is None:
        return
    polling = first.active

    @st.fragment(run_every=refresh_s if polling else None)
    def live() -> None:
        snap = _snapshot(job)
        if snap is None:
            return
        panel(job, snap)
        if polling and not snap.active:
            st.rerun()  # the run ended: a full rerun recreates this fragment without run_every

    st.html(_CSS)  # style only: it goes to the page's event container and takes no room
    with st.container(key="live"):
        live()
