"""Run DARTS-PT from the Runs page: on a finished or stopped search with a checkpoint, a button starts
`engine.jobs.pt_job.PTJob` (what `python -m engine derive RUN --method pt` does, in a daemon thread); while it runs
its progress redraws every few seconds with a Stop, and when it ends the side-by-side view (pt_view.py) reads its
rows. A stopped PT continues from where it stopped with the same options."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import state
from engine.derive.rows import ROWS, decisions, read_rows
from engine.runs import examples, rundir
from engine.runs.catalog import RunInfo
from engine.space import DEFAULT_SPACE

__all__ = ["render", "PROGRESS_S", "RUN_LABEL", "STOP_LABEL", "can_run"]

PROGRESS_S = 2.0   # seconds between redraws of a running PT's progress (a decision takes seconds to minutes)
RUN_LABEL, STOP_LABEL = "Run DARTS-PT", "Stop DARTS-PT"
_DEFAULT_TUNE_STEPS = 10   # engine.derive.pt.DEFAULT_TUNE_STEPS, here without importing torch with the page


def _jobs() -> dict[str, Any]:
    """The PT jobs of this server process, by run id (the registry's: shared by sessions, and where a search with
    derive_method=pt starts its own)."""
    return state.registry().pt_jobs


def can_run(info: RunInfo) -> str | None:
    """Why PT cannot run on this run now (one line), or None when it can."""
    if info.kind != "search" or info.space != DEFAULT_SPACE:
        return "DARTS-PT reads a convolutional search's supernet"
    if examples.is_example(info.path):
        return "a shipped recording has no checkpoint to measure"
    if info.state not in ("finished", "stopped", "interrupted"):
        return f"the search is {info.state}: PT measures the supernet of a search that has ended"
    if not (info.path / rundir.CHECKPOINT).exists():
        return "the run has no checkpoint.pt"
    running = state.registry().running()
    if running is not None:
        return f"a {running.kind} is running ({running.run_id}); PT would share its cores"
    busy = next((k for k, j in _jobs().items() if j.alive), None)
    if busy is not None:
        return f"DARTS-PT is running on {busy}"
    return None


def _start(info: RunInfo, tune_steps: Any, eval_batches: Any, seed: Any) -> None:
    from engine.derive.pt import PTError, PTOptions
    from engine.jobs.controller import JobError

    try:
        options = PTOptions.of(tune_steps=int(tune_steps), eval_batches=int(eval_batches) or None, seed=int(seed))
        state.registry().start_pt(info.path, int(info.config.get("nodes", 4)), options)
    except (PTError, JobError, ValueError, TypeError) as err:
        state.flash("error", f"DARTS-PT cannot start: {err}")


def _progress(info: RunInfo, key: str) -> None:
    @st.fragment(run_every=PROGRESS_S)
    def draw() -> None:
        job = _jobs().get(info.run_id)
        if job is None:
            return
        status, done, total, last = job.status()
        if status != "running" or not job.alive:
            st.rerun()  # the whole page: the side-by-side view reads the new rows
        st.progress(done / max(total, 1), text=f"DARTS-PT: {done} of {total} decisions"
                    + (f" · last: {last['cell']} {last['kind']} {last.get('edge', last.get('node'))}" if last else ""))
        st.button(STOP_LABEL, key=f"{key}.stop", on_click=job.stop,
                  help="after the decision in progress; Run DARTS-PT again continues it")
    draw()


def render(info: RunInfo, key: str = "runs.pt_run") -> None:
    """The button, the progress of a running PT, or why PT cannot run here."""
    job = _jobs().get(info.run_id)
    if job is not None and job.alive:
        _progress(info, key)
        return
    if job is not None and job.state == "failed":
        st.error(f"DARTS-PT failed: {(job.error or '').splitlines()[0] if job.error else 'no reason recorded'}")
    elif job is not None and job.state == "stopped":
        st.info(f"DARTS-PT stopped after {job.status()[1]} of {job.total} decisions; run it again with the same "
                "options to continue.")
    reason = can_run(info)
    nodes = info.config.get("nodes", 4) if isinstance(info.config.get("nodes", 4), int) else 4
    made = len(read_rows(info.path, nodes)) if (info.path / ROWS).exists() else 0
    if reason is not None and reason.startswith("DARTS-PT reads"):
        return  # not a search PT applies to: say nothing
    if made >= decisions(nodes):
        return  # PT finished on this run: the view below shows it
    with st.expander("Derive by perturbation (DARTS-PT)" + (f": {made} decisions made" if made else ""),
                     expanded=bool(made)):
        st.caption("Removes each op in turn and keeps the one whose removal hurts the supernet's validation accuracy "
                   "most, fine-tuning between decisions (Wang et al., ICLR 2021). Minutes on a CPU for the demo "
                   "search; the search's own files are not changed (docs/derivation.md).")
        c = st.columns(3)
        tune = c[0].number_input("Fine-tune steps", 1, 10_000, _DEFAULT_TUNE_STEPS, key=f"{key}.tune",
                                 help="weight steps between two rounds of decisions")
        evals = c[1].number_input("Eval batches (0 = up to 4)", 0, 1_000, 0, key=f"{key}.eval",
                                  help="validation batches each measurement reads")
        seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}.seed", help="the order of the edges")
        if reason is not None:
            st.caption(f"Not now: {reason}.")
        st.button(("Continue DARTS-PT" if made else RUN_LABEL), key=f"{key}.start", type="primary",
                  disabled=reason is not None, on_click=_start, args=(info, tune, evals, seed), width="stretch")
