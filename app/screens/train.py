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
from app.figures import labels
from app.panels import cell_scores, controls, status
from engine.jobs.compare_job import CompareJob
from engine.jobs.controller import Controller, JobError
from engine.runs import examples
from engine.runs.catalog import list_runs
from engine.runs.rundir import RunDirError
from engine.runtime.threads import apply_threads
from engine.space import DEFAULT_SPACE, get_space
from engine.space.rnn.train_config import ONE_THREAD_NHID, RNN_TRAIN_PRESETS, RNNTrainConfig, from_rnn_train_preset
from engine.train.config import TRAIN_PRESETS, from_train_preset
from engine.train.source import GenotypeSourceError, resolve_genotype

__all__ = ["page", "genotype_choices", "curves_frame", "SHIPPED_LABEL"]

_TRAIN_KEY = "train.run_id"


def genotype_choices(runs: list[Any], space: str = DEFAULT_SPACE) -> dict[str, str]:
    """label -> GENOTYPE argument: the space's known cells, a random cell, and each search run's final genotype
    (the searches of that space)."""
    choices = {f"known: {name}": name for name in get_space(space).known_genotypes}
    choices["random cell (seed below)"] = "random"
    for r in runs:
        if r.kind == "search" and r.genotype is not None and r.space == space:
            choices[f"search: {r.run_id} ({r.state})"] = str(r.path)
    return choices


def _space_of_preset(preset: str) -> str:
    return "rnn" if preset in RNN_TRAIN_PRESETS else DEFAULT_SPACE


def _config(preset: str) -> Any:
    return from_rnn_train_preset(preset) if preset in RNN_TRAIN_PRESETS else from_train_preset(preset)


def curves_frame(metrics: list[dict[str, Any]], keys: tuple[str, ...]) -> pd.DataFrame:
    """The rows that have any of `keys`, indexed by step (test scores exist at epoch ends only)."""
    rows = [{"step": m["step"], **{k: m.get(k) for k in keys}} for m in metrics if any(k in m for k in keys)]
    return pd.DataFrame(rows, columns=["step", *keys]).set_index("step")


def _start(spec: str, preset: str) -> None:
    try:
        genotype, source = resolve_genotype(spec, _space_of_preset(preset))
        config = _config(preset)
        # a training has no threads field: the auto rule, as `python -m engine train`; a small recurrent network one
        # thread (its small matrix products run many times slower on two of a busy machine)
        apply_threads(1 if preset in RNN_TRAIN_PRESETS and config.nhid <= ONE_THREAD_NHID else 0)
        job = state.registry().start(config, genotype=genotype, source=source)
    except (GenotypeSourceError, JobError, RunDirError, ValueError, OSError) as err:
        state.flash("error", f"Could not start the training: {err}")
        return
    st.session_state[_TRAIN_KEY] = job.run_id


def _sidebar() -> None:
    runs = list_runs(state.registry().runs_dir)
    presets = [*TRAIN_PRESETS, *RNN_TRAIN_PRESETS]
    preset = st.selectbox("Preset", presets, index=presets.index("train-demo"), key="train.preset",
                          format_func=lambda p: f"{p} (recurrent)" if p in RNN_TRAIN_PRESETS else p,
                          help="train-demo: the embedded data on a laptop CPU (about ten minutes); "
                               "darts-cifar10-eval: the paper's recipe (a GPU job); the recurrent presets train "
                               "a recurrent cell on text (rnn-train-demo: about two minutes)")
    space = _space_of_preset(preset)
    choices = genotype_choices(runs, space)
    # one box a space: the known cells differ, and a value of one list must not meet the other
    label = st.selectbox("Genotype", list(choices),
                         key="train.genotype" if space == DEFAULT_SPACE else f"train.genotype.{space}")
    spec = choices[label]
    if spec == "random":
        spec = f"random:{st.number_input('Random seed', 0, 2**31 - 1, 0, key='train.seed')}"
    busy = state.registry().running() is not None
    st.button("Start training", type="primary", disabled=busy, on_click=_start, args=(spec, preset),
              help="one job runs at a time" if busy else None, width="stretch")
    st.session_state["train.chosen"] = (spec, label, preset, space)  # the cell the page can score (cell_scores)
    if space == DEFAULT_SPACE:
        _compare_sidebar(runs, preset)
    else:
        st.caption("Comparing recurrent cells (found vs DARTS_RNN vs random): `python -m engine compare "
                   "runs/<rnn search>`; the trainings appear on the Runs page.")


# What a train-demo training of one cell took on the 2-core machine (issue 26: 10 to 26 minutes, with the
# machine shared or not): the time a comparison announces before it starts, per cell.
DEMO_MINUTES_PER_CELL = (10, 26)
_COMPARE_KEY = "train.compare"


@st.cache_resource(show_spinner=False)
def _comparisons() -> dict[str, CompareJob]:
    """The comparisons of this server process, by the run id of their first training (shared by sessions)."""
    return {}


def compare_time_text(cells: int, preset: str) -> str:
    """What a comparison of `cells` trainings will take, said before it starts."""
    if preset == "train-demo":
        lo, hi = DEMO_MINUTES_PER_CELL
        return (f"{cells} trainings one after another: about {cells * lo} to {cells * hi} minutes on a 2-core CPU "
                f"(train-demo took {lo} to {hi} minutes a cell there).")
    if preset == "train-smoke":
        return f"{cells} trainings one after another on random data: seconds, and they show nothing about cells."
    return f"{cells} trainings one after another with the {preset} preset (a GPU job for the paper's recipe)."


def _start_compare(search: str | None, random_cells: int, preset: str) -> None:
    try:
        apply_threads(0)
        job = CompareJob(state.registry(), from_train_preset(preset), search=search, random_cells=random_cells)
        if state.registry().running() is not None:
            raise JobError("a job is already running: stop it before starting a comparison")
        job.start()
    except (GenotypeSourceError, JobError, RunDirError, ValueError, OSError) as err:
        state.flash("error", f"Could not start the comparison: {err}")
        return
    key = f"compare-{int(job.started_at * 1000)}"
    _comparisons()[key] = job
    st.session_state[_COMPARE_KEY] = key


def _compare_sidebar(runs: list[Any], preset: str) -> None:
    st.divider()
    st.subheader("Compare cells")
    st.caption("Was the search worth it? A search's found cell against the paper's DARTS_V2 and random cells, "
               "trained alike, as one job.")
    searches = {f"{r.run_id} ({r.state})": str(r.path) for r in runs
                if r.kind == "search" and r.genotype is not None and r.space == DEFAULT_SPACE}
    found = st.selectbox("Found cell of", ["(none: DARTS_V2 and random cells only)", *searches],
                         key="train.compare.search")
    random_cells = st.number_input("Random cells", 0, 8, 2, key="train.compare.random")
    cells = (found in searches) + 1 + int(random_cells)
    st.caption(compare_time_text(cells, preset))
    busy = state.registry().running() is not None
    st.button("Start comparison", key="train.compare.start", disabled=busy, width="stretch",
              on_click=_start_compare, args=(searches.get(found), int(random_cells), preset))
    st.button(SHIPPED_LABEL, key="train.compare.shipped_show", width="stretch",
              disabled=examples.shipped_comparison() is None,
              help="a comparison trained on the embedded data and shipped with the app: no training here",
              on_click=st.session_state.__setitem__, args=(_SHIPPED_KEY, True))


@st.fragment(run_every=2.0)
def _compare_panel(job: CompareJob) -> None:
    rows = job.rows()
    st.subheader("Comparison")
    st.caption(f"{job.state} · {len(rows)} of {len(job.entrants)} trainings started · each row is an ordinary "
               "training run (Runs page). The test accuracy is the trained network's, on the held-out test split; "
               "see docs/training.md for what this budget can and cannot show.")
    if job.error:
        st.error(job.error)
    if job.alive:
        st.button("Stop comparison", key="train.compare.stop", on_click=job.stop)
    if not rows:
        return
    _comparison_body(rows)


def _comparison_body(rows: list[dict[str, Any]]) -> None:
    """A comparison's table and its cells' test accuracy against the step, from each training's metrics."""
    table = pd.DataFrame([{"cell": r["name"], "state": r["state"], "test acc": r["test_acc"],
                           "parameters": r["parameters"], "mult-adds": r["mult_adds"],
                           "wall time (s)": None if r["wall_s"] is None else round(r["wall_s"]),
                           "run": r["run_id"]} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"test acc": st.column_config.NumberColumn(format="%.4f")})
    curves = {}
    for r in rows:
        tested = [(m["step"], m["test_acc"]) for m in state.metrics_records(r["run_dir"]) if "test_acc" in m]
        curves.update({(r["name"], step): acc for step, acc in tested})
    if curves:
        frame = pd.DataFrame([{"step": step, "cell": name, "test acc": acc} for (name, step), acc in curves.items()])
        st.line_chart(frame, x="step", y="test acc", color="cell", height=280,
                      alt="Line chart: test accuracy of each compared cell against the training step")


def _selected() -> Controller | None:
    reg = state.registry()
    job = reg.get(st.session_state.get(_TRAIN_KEY, ""))
    if job is None:
        job = next((j for j in reversed(reg.jobs()) if getattr(j, "kind", "") == "train"), None)
    return job


SHIPPED_LABEL = "Show the comparison shipped with dartboard"
_SHIPPED_KEY = "train.compare.shipped"   # session state: the shipped comparison stays open until hidden


def _shipped_panel(record: dict[str, Any]) -> None:
    """The comparison recorded with the app (scripts/record_comparison.py): no training on this machine."""
    st.subheader("Compare cells: a comparison shipped with dartboard")
    seconds = sum(r["wall_s"] or 0 for r in record["rows"])
    st.caption(f"Recorded with the `{record.get('preset')}` preset on {record.get('machine', 'an unknown machine')} "
               f"({record.get('recorded', '')[:10]}; {labels.format_duration(seconds)} of training): the cell the "
               f"shipped demo search found (`{record.get('search')}`), the paper's DARTS_V2 and random cells, each "
               "trained from scratch on the embedded data and scored on its 2,000 held-out test images. One "
               "training seed each: differences of a few test images are within what another seed changes "
               "(docs/training.md).")
    _comparison_body(record["rows"])
    st.button("Hide the shipped comparison", key="train.compare.shipped_hide",
              on_click=st.session_state.pop, args=(_SHIPPED_KEY, None))


def page() -> None:
    with st.sidebar:
        _sidebar()
    st.title("Train a genotype")
    state.show_flash()
    shipped = examples.shipped_comparison()
    if st.session_state.get(_SHIPPED_KEY) and shipped is not None:
        _shipped_panel(shipped)
        st.divider()
    comparison = _comparisons().get(st.session_state.get(_COMPARE_KEY, ""))
    if comparison is not None:
        _compare_panel(comparison)
        st.divider()
    spec, label, preset, space = st.session_state.get("train.chosen", (None, None, None, None))
    if spec is not None and space == DEFAULT_SPACE:  # the proxies are the convolutional network's
        cell_scores.render(spec, label, preset)
    job = _selected()
    if job is None:
        st.info("Pick a genotype and a preset in the sidebar and press **Start training**. The command line "
                "does the same: `python -m engine train DARTS_V2 --preset train-demo`.")
        if shipped is not None and not st.session_state.get(_SHIPPED_KEY):
            st.button(SHIPPED_LABEL, key="train.compare.shipped_open", type="primary",
                      help="found cell vs DARTS_V2 vs a random cell, trained already: opens at once",
                      on_click=st.session_state.__setitem__, args=(_SHIPPED_KEY, True))
        return
    _panel(job)


@st.fragment(run_every=2.0)
def _panel(job: Controller) -> None:
    snap = job.snapshot()
    st.caption(f"Training {labels.source_text(getattr(job, 'source', None))} · run `{job.run_id}` · "
               f"`{job.run_dir}`")
    shown = controls.shown_state(snap)   # "pausing" and "stepping" until the loop has answered
    status.render(snap, shown)
    if snap.error:
        st.error(snap.error)
    elif snap.message:
        st.warning(snap.message)
    ok = controls.enabled(shown)
    cols = st.columns(4)
    for col, method in zip(cols, ("pause", "resume", "step_once", "stop"), strict=True):
        col.button(controls.LABELS[method], key=f"train.{method}", disabled=not ok[method],
                   on_click=controls.request, args=(job, method), width="stretch")
    metrics = list(snap.metrics)
    if not metrics:
        st.info("No metrics yet: the first line is logged after the first steps.")
        return
    left, right = st.columns(2)
    if isinstance(job.config, RNNTrainConfig):  # a language model: perplexities, lower is better
        left.line_chart(curves_frame(metrics, ("train_loss", "valid_loss", "test_loss")), height=260,
                        alt="Line chart: training, validation and test loss against the step")
        right.line_chart(curves_frame(metrics, ("valid_ppl", "test_ppl")), height=260,
                         alt="Line chart: validation and test perplexity against the step")
        tested = [m for m in metrics if "test_ppl" in m]
        if tested:
            st.metric("Test perplexity", f"{tested[-1]['test_ppl']:.2f}")
        return
    left.line_chart(curves_frame(metrics, ("train_loss", "test_loss")), height=260,
                    alt="Line chart: training and test loss against the step")
    top5 = any("test_top5" in m for m in metrics)  # an ImageNet training scores the 5 highest classes too
    keys = ("train_acc", "test_acc", "test_top5") if top5 else ("train_acc", "test_acc")
    right.line_chart(curves_frame(metrics, keys), height=260,
                     alt=f"Line chart: training and test accuracy{' and test top-5 accuracy' if top5 else ''} "
                         "against the step")
    tested = [m for m in metrics if "test_acc" in m]
    if tested:
        c = st.columns(2) if top5 else [st]
        c[0].metric("Test accuracy (last epoch)", f"{tested[-1]['test_acc']:.4f}")
        if top5 and "test_top5" in tested[-1]:
            c[1].metric("Test top-5 accuracy (last epoch)", f"{tested[-1]['test_top5']:.4f}")
