"""The Search page: in the sidebar the settings of the run on screen (read-only) and the setup of a new search,
then the live panel of the selected run."""

from __future__ import annotations

import streamlit as st

from app import nav, state
from app.panels import live, setup
from engine.jobs.controller import JobError
from engine.runs import examples
from engine.runs.rundir import RunDirError
from engine.runtime.threads import apply_threads
from engine.search.config import SearchConfig, from_preset

__all__ = ["page", "REFRESH_CHOICES"]

REFRESH_CHOICES = (1.0, 2.0, 5.0, 10.0, 30.0)   # seconds between live checks while a run is active
# The one default (the e2e tests and bench/dashboard_overhead.py read it here). A check that finds nothing new
# re-sends nothing; only the pieces whose data changed are redrawn (app/panels/live.py).
DEFAULT_REFRESH_S = 1.0


def _start(config: SearchConfig | None) -> None:
    if config is None:
        return
    try:
        # torch's thread count is process-wide: set it before the search thread starts (docs/threads.md)
        apply_threads(config.threads)
        job = state.registry().start(config)
    except (JobError, RunDirError, OSError) as err:
        state.flash("error", f"Could not start the search: {err}")
        return
    state.select_run(job.run_id)


def _config_of(job) -> dict:
    """The config the job's run searches with (its snapshot's; a followed run's comes from its config.json)."""
    config = getattr(job, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return config.to_dict()
    try:
        return dict(job.snapshot().config or {})
    except (RunDirError, OSError):
        return {}


def _first_screen() -> None:
    """What can be shown at once, before any search: the shipped recording (Replay, or the Stage for a
    projector), and a demo search started with one click (the sidebar's Start with every field at its preset)."""
    demo = examples.example(examples.DEFAULT_EXAMPLE)
    replay_col, stage_col, start_col = st.columns(3)
    if demo is not None:
        if replay_col.button("Replay a recorded search now", key="search.replay_now", type="primary",
                             width="stretch", help="the shipped 10-epoch demo search, replayed step by step: "
                                                   "no training on this machine"):
            nav.switch_to("replay", {"run": demo.run_id})
        if stage_col.button("Show it on the stage (projector)", key="search.stage_now", width="stretch",
                            help="one screen for a room: state, both heatmaps, the cells and the curves; "
                                 "Space plays and pauses, S steps"):
            nav.switch_to("stage", {"run": demo.run_id})
    start_col.button("Start a demo search", key="search.start_demo", disabled=_busy(), width="stretch",
                     on_click=lambda: _start(from_preset("demo")),
                     help="the `demo` preset as it is (embedded data, about a minute an epoch on a laptop CPU); "
                          "the sidebar sets every field first")


def _busy() -> bool:
    return state.registry().running() is not None


def page() -> None:
    reg = state.registry()
    job = state.selected_job(reg)
    with st.sidebar:
        if job is not None:  # what the run on screen searches with; the fields below are for a new search
            setup.run_settings(job.run_id, _config_of(job))
        setup.render(on_start=_start, busy=_busy(), title="Run setup" if job is None else "New search")
        st.divider()
        refresh = st.selectbox("Live refresh (seconds)", REFRESH_CHOICES,
                               index=REFRESH_CHOICES.index(DEFAULT_REFRESH_S), key="search.refresh",
                               format_func=lambda s: f"{s:g} s",
                               help="how often the live panel looks for new data while a search runs (it "
                                    "redraws only what changed)")
        setup.glossary_box()
    st.title("DARTS search")
    state.show_flash()
    if job is None:
        st.info("No search yet. Pick a preset in the sidebar (the `demo` preset runs on a laptop CPU, about a "
                "minute an epoch) and press **Start search**. Runs started from the command line are on the "
                "**Runs** page; the **Learn** page explains what you will see.")
        _first_screen()
        return
    st.caption(f"Run `{job.run_id}` · `{job.run_dir}`")
    live.render(job, refresh)
    measuring = reg.pt_jobs.get(job.run_id)
    if measuring is not None and measuring.alive:  # derive_method=pt: the search has finished, PT reads it now
        _, done, total, _ = measuring.status()
        st.info(f"derive_method=pt: DARTS-PT is measuring this search's supernet ({done} of {total} decisions when "
                "this page was drawn). The Runs page shows its progress and, once it ends, both cells.")
