"""The Train page: train the network built from a genotype (known, random, or a search's final) and watch it.

The sidebar picks the genotype and a training preset and starts the job through the same Registry as a
search (one job at a time); the main panel shows the selected training's status, its controls (Pause,
Resume, Step once, Stop; Derive does not apply) and its curves: training loss, training and test accuracy.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.panels import controls, status
from engine.jobs.controller import Controller, JobError
from engine.runs.catalog import list_runs
from engine.runs.rundir import RunDirError
from engine.runtime.threads import apply_threads
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from engine.train.config import TRAIN_PRESETS, from_train_preset
from engine.train.source import GenotypeSourceError, resolve_genotype

__all__ = ["page", "genotype_choices", "curves_frame"]

_TRAIN_KEY = "train.run_id"


def genotype_choices(runs: list[Any]) -> dict[str, str]:
    """label -> GENOTYPE argument: the known cells, a random cell, and each search run's final genotype."""
    choices = {f"known: {name}": name for name in KNOWN_GENOTYPES}
    choices["random cell (seed below)"] = "random"
    for r in runs:
        if r.kind == "search" and r.genotype is not None:
            choices[f"search: {r.run_id} ({r.state})"] = str(r.path)
    return choices


def curves_frame(metrics: list[dict[str, Any]], keys: tuple[str, ...]) -> pd.DataFrame:
    """The rows that have any of `keys`, indexed by step (test scores exist at epoch ends only)."""
    rows = [{"step": m["step"], **{k: m.get(k) for k in keys}} for m in metrics if any(k in m for k in keys)]
    return pd.DataFrame(rows, columns=["step", *keys]).set_index("step")


def _start(spec: str, preset: str) -> None:
    try:
        genotype, source = resolve_genotype(spec)
        apply_threads(0)  # a training has no threads field: the auto rule, as `python -m engine train`
        job = state.registry().start(from_train_preset(preset), genotype=genotype, source=source)
    except (GenotypeSourceError, JobError, RunDirError, ValueError, OSError) as err:
        state.flash("error", f"Could not start the training: {err}")
        return
    st.session_state[_TRAIN_KEY] = job.run_id


def _sidebar() -> None:
    choices = genotype_choices(list_runs(state.registry().runs_dir))
    label = st.selectbox("Genotype", list(choices), key="train.genotype")
    spec = choices[label]
    if spec == "random":
        spec = f"random:{st.number_input('Random seed', 0, 2**31 - 1, 0, key='train.seed')}"
    preset = st.selectbox("Preset", list(TRAIN_PRESETS), index=list(TRAIN_PRESETS).index("train-demo"),
                          key="train.preset", help="train-demo: the embedded data on a laptop CPU (about ten "
                                                   "minutes); darts-cifar10-eval: the paper's recipe (a GPU job)")
    busy = state.registry().running() is not None
    st.button("Start training", type="primary", disabled=busy, on_click=_start, args=(spec, preset),
              help="one job runs at a time" if busy else None, width="stretch")


def _selected() -> Controller | None:
    reg = state.registry()
    job = reg.get(st.session_state.get(_TRAIN_KEY, ""))
    if job is None:
        job = next((j for j in reversed(reg.jobs()) if getattr(j, "kind", "") == "train"), None)
    return job


def page() -> None:
    with st.sidebar:
        _sidebar()
    st.title("Train a genotype")
    state.show_flash()
    job = _selected()
    if job is None:
        st.info("Pick a genotype and a preset in the sidebar and press **Start training**. The command line "
                "does the same: `python -m engine train DARTS_V2 --preset train-demo`.")
        return
    _panel(job)


@st.fragment(run_every=2.0)
def _panel(job: Controller) -> None:
    snap = job.snapshot()
    st.caption(f"Run `{job.run_id}` · `{job.run_dir}` · {getattr(job, 'source', None) or {}}")
    status.render(snap)
    if snap.error:
        st.error(snap.error)
    elif snap.message:
        st.warning(snap.message)
    ok = controls.enabled(snap.state)
    cols = st.columns(4)
    for col, method in zip(cols, ("pause", "resume", "step_once", "stop"), strict=True):
        col.button(controls.LABELS[method], key=f"train.{method}", disabled=not ok[method],
                   on_click=getattr(job, method), width="stretch")
    metrics = list(snap.metrics)
    if not metrics:
        st.info("No metrics yet: the first line is logged after the first steps.")
        return
    left, right = st.columns(2)
    left.line_chart(curves_frame(metrics, ("train_loss", "test_loss")), height=260)
    right.line_chart(curves_frame(metrics, ("train_acc", "test_acc")), height=260)
    tested = [m for m in metrics if "test_acc" in m]
    if tested:
        st.metric("Test accuracy (last epoch)", f"{tested[-1]['test_acc']:.4f}")
