"""The Runs page's comparisons: training runs compared ("was the search worth it?") and 2 to 4 searches side by
side. The chart builders here are pure (plain rows in, a plotly figure or a DataFrame out); the render functions
draw them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import state
from app.figures import alt, cells_dot, curves, glossary, heatmaps, labels, replay, tables
from app.panels import cells, proxies_view
from app.screens.runs_lineage import record
from engine.runs.catalog import RunInfo
from engine.space import DEFAULT_SPACE
from engine.space.cnn.genotype import Genotype

__all__ = ["training_frame", "scores_figure", "render_trainings", "skip_count", "extra_metric_keys", "searches_frame",
           "render_searches", "BASE_METRICS", "MAX_SEARCHES", "SEARCHES_PARAM", "TRAININGS_PARAM"]

MAX_SEARCHES = 4
# The compared runs, kept in the URL so a link opens the same comparison: ?compare=<id>,<id>&trainings=<id>,<id>
SEARCHES_PARAM, TRAININGS_PARAM = "compare", "trainings"
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


# ---------------------------------------------------------------- training runs compared
@st.cache_data(max_entries=256, show_spinner="Counting multiply-adds (once per network)...")
def _mult_adds(genotype_json: str, init_channels: int, layers: int, num_classes: int, in_channels: int,
               image_size: int) -> int | None:
    """Multiply-adds of one image through the trained network, as `python -m engine compare` counts them (torch
    is imported here, when a comparison of trainings is shown)."""
    from engine.train.compare import network_costs

    _, madds = network_costs(Genotype.from_dict(json.loads(genotype_json)), init_channels, layers, num_classes,
                           in_channels, image_size)
    return madds


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
    return f"{seconds:.1f} s" if seconds is not None and 0 <= seconds < 60 else labels.format_duration(seconds)


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


def _whole_ticks(fig: go.Figure) -> None:
    """Steps and epochs are whole numbers: on a short x range, a tick at each one instead of 1.2, 1.4, ..."""
    xs = [x for trace in fig.data for x in (trace.x or ())]
    if xs and max(xs) - min(xs) <= 10:
        fig.update_xaxes(dtick=1)


def scores_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], height: int = 340) -> go.Figure:
    """Test accuracy (left) and test loss (right) against the epoch, one colour per run in both panels."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Test accuracy", "Test loss"), horizontal_spacing=0.1)
    for i, (label, rows) in enumerate(runs.items()):
        colour = curves.RUN_COLOURS[i % len(curves.RUN_COLOURS)]
        tested = [r for r in rows if "test_acc" in r or "test_loss" in r]
        for col, key in ((1, "test_acc"), (2, "test_loss")):
            pts = [(int(r["epoch"]) + 1 if type(r.get("epoch")) is int else r["step"], r[key])
                   for r in tested if isinstance(r.get(key), (int, float))]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=label,
                                     legendgroup=label, showlegend=col == 1,
                                     line=dict(color=colour, dash=curves.DASHES[i % len(curves.DASHES)])),
                          row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    _whole_ticks(fig)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def _from_url(key: str, param: str, ids: Sequence[str], most: int | None = None) -> None:
    """Start the picker `key` from the URL's ?param=a,b (a shared link, a reload): the ids it names that exist,
    in its order; ids that no longer exist are left out. Once the picker has a value, the picker leads."""
    if key in st.session_state:
        return
    named = [x for x in dict.fromkeys(st.query_params.get(param, "").split(",")) if x in ids]
    if named:
        st.session_state[key] = named[:most] if most else named


def _to_url(param: str, picked: Sequence[str]) -> None:
    """The picked ids into the URL; none picked: no parameter (a link then opens on the page's default)."""
    if picked:
        st.query_params[param] = ",".join(picked)
    else:
        st.query_params.pop(param, None)


def render_trainings(runs: Sequence[RunInfo]) -> None:
    """Pick 2+ training runs: their table and their test curves."""
    # the table's costs and accuracy curves are the convolutional network's; a recurrent training's test
    # perplexity is in the runs table above
    trainings = [r for r in runs if r.kind == "train" and r.space == DEFAULT_SPACE]
    if len(trainings) < 2:
        st.info("Comparing trainings needs two training runs: `python -m engine compare runs/<search>` trains the "
                "found cell, DARTS_V2 and random cells on the same budget.")
        st.query_params.pop(TRAININGS_PARAM, None)
        return
    ids = [t.run_id for t in trainings]
    _from_url("runs.compare_trainings", TRAININGS_PARAM, ids)
    picked = st.multiselect("Training runs", ids, default=ids[:min(4, len(ids))], key="runs.compare_trainings")
    _to_url(TRAININGS_PARAM, picked)
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
    if st.toggle("Zero-cost proxies of these cells", key="runs.train_proxies",
                 help="synflow, NASWOT and grad-norm of each cell's untrained network at its training's size: "
                      "seconds to compute, never an accuracy (docs/derivation.md)"):
        proxies_view.render(chosen, frame)
    figure = scores_figure(metrics)
    st.plotly_chart(figure, key="runs.train_curves", alt=alt.plotly_alt(figure, "test accuracy of each training"))


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


def steps_note(searches: Sequence[RunInfo]) -> str:
    """Under the table: how many steps each run took, and what its accuracy column is not."""
    steps = [s.step for s in searches]
    counts = ", ".join(f"{s.run_id}: {s.step}" for s in searches)
    lengths = (f"These runs took different numbers of steps ({counts}), so their numbers are at different points "
               "of a search. " if len(set(steps)) > 1 else f"Each run took {steps[0]} steps. ")
    return (lengths + "The accuracy is the supernet's (every edge mixing all its ops), not the accuracy of the cell "
            "it derives, which is trained again from scratch (Train page): a higher number here does not make a "
            "better cell.")


def _final_weights(info: RunInfo) -> tuple[int, dict[str, np.ndarray]] | None:
    records = state.alphas_records(info.path)
    if not records:
        return None
    return records[-1]["step"], replay.record_weights(records[-1], dict(info.config or {"variant": "darts"}))


def _overlay(metrics: Mapping[str, Sequence[Mapping[str, Any]]], key: str, title: str) -> go.Figure:
    """curves.overlay_figure, with a run of a single point drawn as a marker (a line of one point is invisible)."""
    fig = curves.overlay_figure(metrics, key, title=title)
    for trace in fig.data:
        if len(trace.x or ()) == 1:
            trace.mode = "lines+markers"
    _whole_ticks(fig)
    return fig


def render_searches(runs: Sequence[RunInfo]) -> None:
    """2 to 4 searches: a table (skip connections per cell, last valid accuracy), per run its final op-weight
    heatmap, cell and genotype, then validation accuracy (and any extra per-step metric) against the step."""
    # side by side reads the convolutional cells (skip connections per cell, two heatmaps); a recurrent search is
    # read on its own
    searches = [r for r in runs if r.kind == "search" and r.state != "unreadable" and r.space == DEFAULT_SPACE]
    if any(r.space != DEFAULT_SPACE for r in runs):
        st.caption("Recurrent searches are not compared side by side: pick one above to read it.")
    if len(searches) < 2:
        st.info("Comparing searches needs two search runs.")
        st.query_params.pop(SEARCHES_PARAM, None)
        return
    ids = [s.run_id for s in searches]
    with_genotype = [s.run_id for s in searches if s.genotype is not None]
    _from_url("runs.compare_searches", SEARCHES_PARAM, ids, MAX_SEARCHES)
    picked = st.multiselect("Search runs", ids, default=(with_genotype if len(with_genotype) >= 2 else ids)[:2],
                            max_selections=MAX_SEARCHES,
                            key="runs.compare_searches", help=f"2 to {MAX_SEARCHES} searches")
    _to_url(SEARCHES_PARAM, picked)
    if len(picked) < 2:
        st.info("Pick two search runs or more.")
        return
    chosen = [next(s for s in searches if s.run_id == x) for x in picked]
    metrics = {s.run_id: state.metrics_records(s.path) for s in chosen}
    st.dataframe(searches_frame(chosen, metrics), hide_index=True, width="stretch",
                 column_config={"valid acc": st.column_config.NumberColumn(
                     "supernet valid acc", format="%.4f", help=glossary.explain("Supernet accuracy")),
                     "steps": st.column_config.NumberColumn("steps", help="architecture steps each run took")})
    st.caption(steps_note(chosen))
    cell = st.radio("Cell", list(cells.CELLS), format_func=cells.CELLS.get, horizontal=True, key="runs.sxs.cell")
    for i, (col, s) in enumerate(zip(st.columns(len(chosen)), chosen, strict=True)):
        with col:
            st.markdown(f"**{s.run_id}**")
            final = _final_weights(s)
            if final is None:
                st.info("No architecture weights recorded.")
            else:
                step, weights = final
                spec, data = heatmaps.heatmap_vega(weights[cell], title=f"step {step}")
                with st.container(key=f"runs.sxs.{i}.heatmap.{cell}"):
                    st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))
            if s.genotype is None:
                st.info("No genotype recorded yet.")
            else:
                st.graphviz_chart(cells_dot.cell_dot(s.genotype, cell=cell), width="stretch",
                                  alt=alt.cell_alt(s.genotype, cell))
                st.code(s.genotype.to_darts(), language="python", wrap_lines=True)
    if len(chosen) == 2 and all(s.genotype is not None for s in chosen):
        frame = tables.compare_genotypes_frame(chosen[0].genotype, chosen[1].genotype,
                                                names=(chosen[0].run_id, chosen[1].run_id))
        st.dataframe(frame, hide_index=True, width="stretch")
        st.caption(f"{(frame['same'] == 'yes').sum()} of {len(frame)} edges are the same.")
    labelled = {s.run_id: metrics[s.run_id] for s in chosen}
    overlay = _overlay(labelled, "valid_acc", "Validation accuracy (mean over the epoch so far)")
    st.plotly_chart(overlay, key="runs.sxs.valid_acc", alt=alt.plotly_alt(overlay))
    extras = extra_metric_keys(labelled)
    for i, key in enumerate(extras):
        if i % 2 == 0:
            row = st.columns(2)
        overlay = _overlay(labelled, key, _TITLES.get(key, key))
        row[i % 2].plotly_chart(overlay, key=f"runs.sxs.extra.{key}", alt=alt.plotly_alt(overlay))
