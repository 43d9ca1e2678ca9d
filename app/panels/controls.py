"""Run controls: Pause, Resume, Step once, Stop, Derive now.

Each button only calls the job's request method (idempotent, returns at once) through `on_click`;
the loop honours it between steps. A button is disabled when its request would do nothing.

What a click does shows at once, in the same rerun: Pause turns the state into "pausing" (and the buttons
with it) until the loop has finished its step; Derive now shows the cell derived from the alphas on screen
(its DARTS text and both cells' graphs) and what changed since the previous derivation of that run.
`derived` draws that panel; the live page gives it a fragment of its own, so the status updates of a running
search do not redraw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app.figures import alt, cells_dot, tables
from engine.runs import rundir
from engine.space import DEFAULT_SPACE, get_space
from engine.space.cnn.genotype import Genotype

__all__ = ["LABELS", "PAUSING_KEY", "STEPPING_KEY", "DERIVED_KEY", "shown_state", "request", "render", "derived",
           "derived_key", "enabled",
           "previous_derivation"]

LABELS = {"pause": "Pause", "resume": "Resume", "step_once": "Step once", "stop": "Stop",
          "derive_now": "Derive now"}
# Session key: the run whose Pause was clicked and not answered yet (the page shows "pausing" until then).
PAUSING_KEY = "control.pausing"
# Session key: (run id, step) of a Step once click whose step has not been taken yet: the page shows "stepping"
# until the step counter moves past it, where the loop's own state reads "running" for that one step.
STEPPING_KEY = "control.stepping"
# Session key: the last Derive now of this session (run id, step, genotype, the previous derivation).
DERIVED_KEY = "control.derived"


def enabled(state: str) -> dict[str, bool]:
    """Which requests make sense in a state (the others are shown disabled); "pausing" is a running run whose
    Pause was clicked, "stepping" a paused run taking the one step of a Step once."""
    return {
        "pause": state in ("queued", "running"),
        "resume": state == "paused",
        "step_once": state == "paused",
        "stop": state in ("queued", "running", "pausing", "paused", "stepping"),
        "derive_now": state in ("running", "pausing", "paused"),
    }


def previous_derivation(run_dir: str | None) -> tuple[int, Genotype] | None:
    """(step, genotype) of the run's last Derive now recorded in genotypes.jsonl, or None."""
    if not run_dir or not Path(run_dir).is_dir():
        return None
    space = rundir.run_space(run_dir)
    for row in reversed(rundir.read_genotypes(run_dir)):
        if row.get("kind") == "derive":
            try:
                return int(row["step"]), space.genotype_from_dict(row["genotype"])
            except (KeyError, TypeError, ValueError):
                continue
    return None


def _derive(job: Any) -> None:
    snap = job.snapshot()
    before = previous_derivation(snap.run_dir)  # read before asking: the loop may answer within a tick
    mine = st.session_state.get(DERIVED_KEY)
    if before is None and mine and mine["run_id"] == snap.run_id:  # not on disk (yet): this session's last one
        before = (mine["step"], get_space(mine["space"]).genotype_from_dict(mine["genotype"]))
    job.derive_now()
    if snap.genotype is None:
        st.session_state.pop(DERIVED_KEY, None)
        return
    st.session_state[DERIVED_KEY] = {
        "run_id": snap.run_id, "space": snap.space, "step": snap.step, "genotype": snap.genotype.to_dict(),
        "previous_step": None if before is None else before[0],
        "previous": None if before is None else before[1].to_dict()}


def shown_state(snap: Any) -> str:
    """The state a page shows: "pausing" from the click on Pause until the loop pauses (it finishes its step),
    "stepping" from the click on Step once until its step is counted; else the snapshot's."""
    stepping = st.session_state.get(STEPPING_KEY)
    if stepping and stepping[0] == snap.run_id:
        if snap.step == stepping[1] and snap.state in ("queued", "running", "paused"):
            return "stepping"
        st.session_state.pop(STEPPING_KEY, None)  # the step is taken (or the run ended)
    if snap.state in ("queued", "running") and st.session_state.get(PAUSING_KEY) == snap.run_id:
        return "pausing"
    return snap.state


def request(job: Any, method: str, rerun: list[str] | None = None) -> None:
    """Ask the job for `method` (a key of LABELS) and note what the page shows until it is answered."""
    _request(job, method, rerun)


def _request(job: Any, method: str, rerun: list[str] | None = None) -> None:
    if method == "derive_now":
        _derive(job)
        if rerun:
            st.rerun(rerun)  # the fragments of the buttons and of the derived panel, not the default alone
        return
    if method == "step_once":
        step = job.snapshot().step  # before asking: the loop may take the step at once
        if job.step_once() is not False:
            st.session_state[STEPPING_KEY] = (getattr(job, "run_id", "") or job.snapshot().run_id, step)
        return
    getattr(job, method)()
    if method == "pause":
        st.session_state[PAUSING_KEY] = getattr(job, "run_id", "") or job.snapshot().run_id
    elif method in ("resume", "stop"):
        st.session_state.pop(PAUSING_KEY, None)
        st.session_state.pop(STEPPING_KEY, None)


def derived_key(run_id: str) -> tuple | None:
    """What `derived` shows for this run (its content key): None when it shows nothing."""
    shown = st.session_state.get(DERIVED_KEY)
    if not shown or shown["run_id"] != run_id:
        return None
    return (run_id, shown["step"], repr(shown["genotype"]), shown["previous_step"], repr(shown["previous"]))


def derived(run_id: str) -> None:
    """The last Derive now of this run in this session: the cell, its text, what changed since the previous one."""
    shown = st.session_state.get(DERIVED_KEY)
    if not shown or shown["run_id"] != run_id:
        return
    space = get_space(shown["space"])
    genotype = space.genotype_from_dict(shown["genotype"])
    with st.container(border=True, key="control.derived_cell"):
        head, close = st.columns([5, 1])
        head.markdown(f"**Derived now, at step {shown['step']}** (added to genotypes.jsonl as a `derive` row)")
        close.button("Hide", key="control.derived_hide", on_click=st.session_state.pop, args=(DERIVED_KEY, None))
        st.code(genotype.to_darts(), language="python", wrap_lines=True)
        if space.name != DEFAULT_SPACE:  # the recurrent cell: one graph, as its space draws it
            st.graphviz_chart(space.dot(genotype), width="stretch", alt=alt.recurrent_cell_alt(genotype))
        else:
            for col, cell in zip(st.columns(2), ("normal", "reduce"), strict=True):
                with col:
                    st.caption(f"{cell} cell")
                    st.graphviz_chart(cells_dot.cell_dot(genotype, cell), width="stretch",
                                      alt=alt.cell_alt(genotype, cell))
        if shown["previous"] is None:
            st.caption("The first derivation of this run: nothing to compare with.")
            return
        changes = tables.genotype_changes(space.genotype_from_dict(shown["previous"]), genotype)
        st.markdown(f"**Changes since the previous derivation** (step {shown['previous_step']})")
        if changes:
            st.code("\n".join(changes), language=None)
        else:
            st.caption("None: the same cell.")


def render(job: Any, state: str, rerun: list[str] | None = None) -> None:
    """The buttons. `rerun`: the fragment keys a Derive now click reruns (the buttons' own and the derived
    panel's); None where the page has no fragments and a click reruns it whole."""
    ok = enabled(state)
    cols = st.columns(len(LABELS))
    for col, (method, label) in zip(cols, LABELS.items(), strict=True):
        col.button(label, key=f"control.{method}", disabled=not ok[method], on_click=_request,
                   args=(job, method, rerun), width="stretch")
