"""The Runs page's links and comparisons: which search a training came from (and which trainings a search
led to), failed and unreadable runs with their one-line reason, training runs compared ("was the search
worth it?") and 2 to 4 searches side by side.

The chart builders here are pure (plain rows in, a plotly figure or a DataFrame out); the render functions
draw them. A training's config.json carries `source` (engine.train.source): for a search, its `run_dir`
(absolute) and the `step` whose genotype it trains.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import figures, state
from app.views import cells
from engine.runs import rundir
from engine.runs.catalog import RunInfo

__all__ = ["one_line", "runs_table", "read_source", "lineage", "render_lineage", "training_frame",
           "scores_figure", "render_trainings", "skip_count", "extra_metric_keys", "searches_frame",
           "render_searches", "failed_jobs", "render_failed_jobs", "BASE_METRICS", "MAX_SEARCHES"]

MAX_SEARCHES = 4
# Keys of a search's metrics rows that are not curves to compare (or have their own chart); `early_stop_step`
# is a step number on the one row where RobustDARTS's rule fires. Any other numeric key the rows carry (the
# collapse indicators of engine/search/collapse.py, `hessian_eig`, a future `expected_params`) gets a chart of its own,
# one line a run.
BASE_METRICS = frozenset({"step", "epoch", "time", "wall_s", "steps_per_s", "train_loss", "train_acc", "valid_loss",
                          "valid_acc", "w_lr", "a_lr", "lr", "early_stop_step"})
_TITLES = {"hessian_eig": "Hessian's dominant eigenvalue (architecture)",
           "entropy_normal": "Op-weight entropy, normal cell (nats)",
           "entropy_reduce": "Op-weight entropy, reduction cell (nats)",
           "skips_normal": "Skip connections, normal cell", "skips_reduce": "Skip connections, reduction cell",
           "param_free_normal": "Parameter-free ops, normal cell",
           "param_free_reduce": "Parameter-free ops, reduction cell"}
_REASON_CHARS = 160


def one_line(text: str | None, limit: int = _REASON_CHARS) -> str:
    """The first non-empty line of an error, cut to `limit` characters ('' for none)."""
    line = next((x.strip() for x in str(text or "").splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def runs_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """The Runs page's table: figures.runs_frame plus what kind of run each is and, for a failed or
    unreadable one, the one-line reason."""
    frame = figures.runs_frame(runs)
    frame.insert(1, "kind", [r.kind for r in runs])
    frame.insert(3, "reason", [one_line(r.error) if r.state in ("failed", "unreadable") else "" for r in runs])
    frame.insert(list(frame.columns).index("valid acc") + 1, "test acc", [r.test_acc for r in runs])
    return frame


# ---------------------------------------------------------------- lineage: training <-> search
def _mtime(path: Path) -> int:
    try:
        return (path / rundir.CONFIG).stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(max_entries=512, show_spinner=False)
def _record(run_dir: str, mtime_ns: int) -> dict[str, Any]:
    try:
        return rundir.read_config(run_dir)
    except (rundir.RunDirError, OSError, ValueError):
        return {}


def record(info: RunInfo) -> dict[str, Any]:
    """A run's whole config.json (cached until the file changes); {} when it cannot be read."""
    return _record(str(info.path), _mtime(info.path))


def read_source(info: RunInfo) -> dict[str, Any] | None:
    """A training's `source` record, or None (a search, or a training whose config.json has none)."""
    if info.kind != "train":
        return None
    source = record(info).get("source")
    return source if isinstance(source, dict) else None


def _resolved(path: str | os.PathLike) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):
        return str(path)


def lineage(runs: Sequence[RunInfo]) -> tuple[dict[str, tuple[dict[str, Any], RunInfo | None]],
                                               dict[str, list[tuple[RunInfo, Any]]]]:
    """(parents, children): for each training trained from a search, its source record and the search's
    RunInfo when that search is among `runs` (found by its path, else by its name: the runs directory may have
    moved or be mounted elsewhere, as in Docker; None when it is gone); for each search
    of `runs`, the trainings made from it with the step each one trains, newest first."""
    by_path = {_resolved(r.path): r for r in runs if r.kind == "search"}
    by_name = {r.run_id: r for r in runs if r.kind == "search"}  # a runs directory moved or mounted elsewhere
    parents: dict[str, tuple[dict[str, Any], RunInfo | None]] = {}
    children: dict[str, list[tuple[RunInfo, Any]]] = {}
    for info in runs:
        source = read_source(info)
        if source is None or source.get("kind") != "search" or not isinstance(source.get("run_dir"), str):
            continue
        search = by_path.get(_resolved(source["run_dir"])) or by_name.get(Path(source["run_dir"]).name)
        parents[info.run_id] = (source, search)
        if search is not None:
            children.setdefault(search.run_id, []).append((info, source.get("step")))
    return parents, children


def _select(run_id: str) -> None:
    st.session_state["runs.selected"] = run_id


def render_lineage(info: RunInfo, runs: Sequence[RunInfo]) -> None:
    """Under a run's title: a training's search ("trained from <search> @ step k", with a button that picks
    that search), or a search's trainings (each with a button that picks it)."""
    parents, children = lineage(runs)
    if info.run_id in parents:
        source, search = parents[info.run_id]
        name = Path(source["run_dir"]).name
        st.markdown(f"Trained from search **{name}** @ step {source.get('step', '?')}")
        if search is not None:
            st.button(f"Show search {search.run_id}", key="runs.source", on_click=_select, args=(search.run_id,),
                      help="pick the search this training came from")
        else:
            st.caption(f"That search is not in this runs directory (`{source['run_dir']}`).")
    elif info.kind == "train":
        source = read_source(info) or {}
        if source.get("label"):
            st.markdown(f"Trained genotype: **{source['label']}** ({source.get('kind', '?')})")
    made = children.get(info.run_id, [])
    if made:
        st.markdown(f"**Trainings of this search** ({len(made)})")
        st.dataframe(pd.DataFrame([{"training": t.run_id, "step": step, "state": t.state, "test acc": t.test_acc}
                                   for t, step in made]), hide_index=True, width="stretch",
                     column_config={"test acc": st.column_config.NumberColumn(format="%.4f")})
        cols = st.columns(min(len(made), 4))
        for i, (t, _) in enumerate(made):
            cols[i % len(cols)].button(f"Show {t.run_id}", key=f"runs.trained.{t.run_id}", on_click=_select,
                                       args=(t.run_id,), width="stretch")


# ---------------------------------------------------------------- failed runs
def failed_jobs(runs: Sequence[RunInfo]) -> list[tuple[str, str]]:
    """(run id, one-line reason) of this server's searches and trainings that failed before they began: the
    engine removes their empty run directory, so the catalog cannot list them."""
    listed = {r.run_id for r in runs}
    out = []
    for job in state.registry().jobs():
        snap = job.snapshot()
        if snap.state == "failed" and job.run_id not in listed and not Path(job.run_dir).exists():
            out.append((job.run_id, one_line(snap.error) or "no error text was recorded"))
    return out


def render_failed_jobs(runs: Sequence[RunInfo]) -> None:
    failed = failed_jobs(runs)
    if failed:
        st.markdown("**Failed before they began** (started here; no run directory was kept)")
        for run_id, reason in failed:
            st.error(f"{run_id}: {reason}")


# ---------------------------------------------------------------- training runs compared
@st.cache_data(max_entries=256, show_spinner="Counting multiply-adds (once per network)...")
def _mult_adds(genotype_json: str, init_channels: int, layers: int, num_classes: int, in_channels: int,
               image_size: int) -> int:
    """Multiply-adds of one image through the trained network, as `python -m engine compare` counts them."""
    from engine.nn.network import NetworkCIFAR, count_multiply_adds
    from engine.space.cnn.genotype import Genotype

    net = NetworkCIFAR(init_channels, num_classes, layers, False, Genotype.from_dict(json.loads(genotype_json)),
                       in_channels=in_channels)
    return count_multiply_adds(net, (1, in_channels, image_size, image_size))


def _costs(rec: Mapping[str, Any]) -> tuple[int | None, int | None]:
    params = rec.get("parameters")
    params = params if type(params) is int else None
    try:
        cfg, data = rec["config"], rec["dataset"]
        madds = _mult_adds(json.dumps(rec["genotype"], sort_keys=True), int(cfg["init_channels"]), int(cfg["layers"]),
                           int(data["num_classes"]), int(data["in_channels"]), int(data["image_size"]))
    except (KeyError, TypeError, ValueError, RuntimeError):
        madds = None
    return params, madds


def _last(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def _duration(seconds: float | None) -> str:
    return f"{seconds:.1f} s" if seconds is not None and 0 <= seconds < 60 else figures.format_duration(seconds)


def training_frame(trainings: Sequence[RunInfo], metrics: Mapping[str, Sequence[Mapping[str, Any]]],
                   records: Mapping[str, Mapping[str, Any]],
                   costs: Callable[[Mapping[str, Any]], tuple[int | None, int | None]]) -> pd.DataFrame:
    """One row per training: the genotype it trained (its source's label), state, last test accuracy,
    parameters (auxiliary head excluded), mult-adds for one image, and wall time (the last metrics row's
    `wall_s`: the training steps' time, without setup, test scoring and checkpoints)."""
    rows = []
    for t in trainings:
        rec = records.get(t.run_id, {})
        source = rec.get("source") if isinstance(rec.get("source"), dict) else {}
        params, madds = costs(rec)
        rows.append({"run": t.run_id, "genotype": str(source.get("label", "?")), "state": t.state,
                     "test acc": _last(metrics.get(t.run_id, ()), "test_acc"), "parameters": params,
                     "mult-adds": madds, "wall time": _duration(_last(metrics.get(t.run_id, ()), "wall_s"))})
    return pd.DataFrame(rows, columns=["run", "genotype", "state", "test acc", "parameters", "mult-adds", "wall time"])


_DASHES = ("solid", "dash", "dot", "dashdot")  # as figures.overlay_figure: runs that coincide stay apart


def _whole_ticks(fig: go.Figure) -> None:
    """Steps and epochs are whole numbers: on a short x range, a tick at each one instead of 1.2, 1.4, ..."""
    xs = [x for trace in fig.data for x in (trace.x or ())]
    if xs and max(xs) - min(xs) <= 10:
        fig.update_xaxes(dtick=1)


def scores_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], height: int = 340) -> go.Figure:
    """Test accuracy (left) and test loss (right) against the epoch, one colour per run in both panels."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Test accuracy", "Test loss"), horizontal_spacing=0.1)
    for i, (label, rows) in enumerate(runs.items()):
        colour = figures.RUN_COLOURS[i % len(figures.RUN_COLOURS)]
        tested = [r for r in rows if "test_acc" in r or "test_loss" in r]
        for col, key in ((1, "test_acc"), (2, "test_loss")):
            pts = [(int(r["epoch"]) + 1 if type(r.get("epoch")) is int else r["step"], r[key])
                   for r in tested if isinstance(r.get(key), (int, float))]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=label,
                                     legendgroup=label, showlegend=col == 1,
                                     line=dict(color=colour, dash=_DASHES[i % len(_DASHES)])), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    _whole_ticks(fig)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def render_trainings(runs: Sequence[RunInfo]) -> None:
    """Pick 2+ training runs: their table and their test curves."""
    trainings = [r for r in runs if r.kind == "train"]
    if len(trainings) < 2:
        st.info("Comparing trainings needs two training runs: `python -m engine compare runs/<search>` trains the "
                "found cell, DARTS_V2 and random cells on the same budget.")
        return
    ids = [t.run_id for t in trainings]
    picked = st.multiselect("Training runs", ids, default=ids[:min(4, len(ids))], key="runs.compare_trainings")
    if len(picked) < 2:
        st.info("Pick two training runs or more.")
        return
    chosen = [next(t for t in trainings if t.run_id == x) for x in picked]
    metrics = {t.run_id: state.metrics_records(t.path) for t in chosen}
    frame = training_frame(chosen, metrics, {t.run_id: record(t) for t in chosen}, _costs)
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"test acc": st.column_config.NumberColumn(format="%.4f"),
                                "parameters": st.column_config.NumberColumn(format="localized"),
                                "mult-adds": st.column_config.NumberColumn(format="localized")})
    st.plotly_chart(scores_figure(metrics), key="runs.train_curves")


# ---------------------------------------------------------------- searches side by side
def skip_count(genotype, cell: str = "normal") -> int:
    """skip_connect edges kept in one cell of a genotype (the sign of DARTS's collapse when it grows)."""
    return sum(op == "skip_connect" for node in genotype.cell_nodes(cell) for op, _ in node)


def extra_metric_keys(metrics: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Numeric keys of the metrics rows beyond BASE_METRICS (per-step extras such as `hessian_eig`), in order of
    first appearance."""
    keys: dict[str, None] = {}
    for rows in metrics.values():
        for row in rows:
            for k, v in row.items():
                if k not in BASE_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys.setdefault(k)
    return list(keys)


def searches_frame(searches: Sequence[RunInfo], metrics: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    rows = []
    for s in searches:
        g = s.genotype
        rows.append({"run": s.run_id, "variant": str(s.config.get("variant", "darts")), "state": s.state,
                     "steps": s.step, "valid acc": _last(metrics.get(s.run_id, ()), "valid_acc"),
                     "skip_connect (normal)": None if g is None else skip_count(g, "normal"),
                     "skip_connect (reduce)": None if g is None else skip_count(g, "reduce")})
    return pd.DataFrame(rows, columns=["run", "variant", "state", "steps", "valid acc", "skip_connect (normal)",
                                       "skip_connect (reduce)"])


def _final_weights(info: RunInfo) -> tuple[int, dict[str, np.ndarray]] | None:
    records = state.alphas_records(info.path)
    if not records:
        return None
    return records[-1]["step"], figures.record_weights(records[-1], dict(info.config or {"variant": "darts"}))


def _overlay(metrics: Mapping[str, Sequence[Mapping[str, Any]]], key: str, title: str) -> go.Figure:
    """figures.overlay_figure, with a run of a single point drawn as a marker (a line of one point is invisible)."""
    fig = figures.overlay_figure(metrics, key, title=title)
    for trace in fig.data:
        if len(trace.x or ()) == 1:
            trace.mode = "lines+markers"
    _whole_ticks(fig)
    return fig


def render_searches(runs: Sequence[RunInfo]) -> None:
    """2 to 4 searches: a table (skip connections per cell, last valid accuracy), per run its final op-weight
    heatmap, cell and genotype, then validation accuracy (and any extra per-step metric) against the step."""
    searches = [r for r in runs if r.kind == "search" and r.state != "unreadable"]
    if len(searches) < 2:
        st.info("Comparing searches needs two search runs.")
        return
    ids = [s.run_id for s in searches]
    with_genotype = [s.run_id for s in searches if s.genotype is not None]
    picked = st.multiselect("Search runs", ids, default=(with_genotype if len(with_genotype) >= 2 else ids)[:2],
                            max_selections=MAX_SEARCHES,
                            key="runs.compare_searches", help=f"2 to {MAX_SEARCHES} searches")
    if len(picked) < 2:
        st.info("Pick two search runs or more.")
        return
    chosen = [next(s for s in searches if s.run_id == x) for x in picked]
    metrics = {s.run_id: state.metrics_records(s.path) for s in chosen}
    st.dataframe(searches_frame(chosen, metrics), hide_index=True, width="stretch",
                 column_config={"valid acc": st.column_config.NumberColumn(format="%.4f")})
    cell = st.radio("Cell", list(cells.CELLS), format_func=cells.CELLS.get, horizontal=True, key="runs.sxs.cell")
    for i, (col, s) in enumerate(zip(st.columns(len(chosen)), chosen, strict=True)):
        with col:
            st.markdown(f"**{s.run_id}**")
            final = _final_weights(s)
            if final is None:
                st.info("No architecture weights recorded.")
            else:
                step, weights = final
                spec, data = figures.heatmap_vega(weights[cell], title=f"step {step}")
                with st.container(key=f"runs.sxs.{i}.heatmap.{cell}"):
                    st.vega_lite_chart(data, spec, width="stretch")
            if s.genotype is None:
                st.info("No genotype recorded yet.")
            else:
                st.graphviz_chart(figures.cell_dot(s.genotype, cell=cell), width="stretch")
                st.code(s.genotype.to_darts(), language="python", wrap_lines=True)
    if len(chosen) == 2 and all(s.genotype is not None for s in chosen):
        frame = figures.compare_genotypes_frame(chosen[0].genotype, chosen[1].genotype,
                                                names=(chosen[0].run_id, chosen[1].run_id))
        st.dataframe(frame, hide_index=True, width="stretch")
        st.caption(f"{(frame['same'] == 'yes').sum()} of {len(frame)} edges are the same.")
    labelled = {s.run_id: metrics[s.run_id] for s in chosen}
    st.plotly_chart(_overlay(labelled, "valid_acc", "Validation accuracy (mean over the epoch so far)"),
                    key="runs.sxs.valid_acc")
    extras = extra_metric_keys(labelled)
    for i, key in enumerate(extras):
        if i % 2 == 0:
            row = st.columns(2)
        row[i % 2].plotly_chart(_overlay(labelled, key, _TITLES.get(key, key)), key=f"runs.sxs.extra.{key}")
