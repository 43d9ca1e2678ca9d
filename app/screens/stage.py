"""The Stage page (/stage): one run on one projector screen. The run's state and step in large type, both cells'
op-weight heatmaps, the cells derived from them and the loss and accuracy curves, all on one 1920x1080 screen
without scrolling, every number and label at least 24 px (app/figures/stage.py); at 1280x800 the curves move
under the heatmaps. The keyboard drives it: Space pauses and resumes (plays and stops a replay), S takes one step
(one record), D derives the cell now (live runs).

`?view=compare` shows the comparison of trained cells shipped with dartboard instead (Compare cells in the footer).

Which run: the URL's `?run=<run id>`, else the shipped demo recording (engine.runs.examples.DEFAULT_EXAMPLE), so
the stage opens at once on any machine and a rehearsal's test run never greets the class. A run of this process
is shown live; a running or paused run of another process is followed through its files; any other run, and
every shipped recording, is replayed from its alphas.jsonl.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import streamlit as st

from app import nav, state
from app.figures import alt, replay, stage
from app.panels import cells, controls, live, run_labels, stage_compare
from app.panels.stage_compare import COMPARE_VIEW, VIEW_PARAM
from app.screens.search import DEFAULT_REFRESH_S as REFRESH_S
from engine.runs import catalog, examples
from engine.runs.rundir import RunDirError
from engine.space import DEFAULT_SPACE

__all__ = ["page", "RUN_PARAM", "KEYS", "TICK_S", "PIECES", "default_run_id",
           "runs_for_stage", "piece_keys"]

RUN_PARAM = "run"
KEYS = {"pause_resume": "Space", "step": "S", "derive": "D"}   # st.button shortcuts (docs/dashboard.md)
TICK_S = 0.5          # seconds between frames while a replay plays
_FRAMES = 60          # a replay at the stage plays in about _FRAMES ticks, as on the Replay page at 1x
_CSS = Path(__file__).resolve().parents[1] / "styles" / "stage.css"
_ACTIVE = ("queued", "running", "paused")


def _graph_css() -> str:
    chart = '[data-testid="stGraphVizChart"]'
    return (f"<style>\n{chart} svg g.node text {{ font-size: {stage.STAGE['dag_node']}px !important; }}\n"
            f"{chart} svg g.edge text {{ font-size: {stage.STAGE['dag_label']}px !important; }}\n</style>")


def runs_for_stage(runs_dir: str | Path) -> list[catalog.RunInfo]:
    """The searches the stage can show: the shipped recordings first (the demo one leading), then this machine's
    searches, newest first."""
    # the stage's layout is the convolutional cell's (two heatmaps, two graphs): recurrent searches are watched on
    # the Search page
    runs = examples.example_runs() + [r for r in catalog.list_runs(runs_dir) if r.kind != "train"]
    return [r for r in runs if r.space == DEFAULT_SPACE]


def default_run_id(runs: list[catalog.RunInfo]) -> str | None:
    demo = examples.example(examples.DEFAULT_EXAMPLE)
    if demo is not None and any(r.run_id == demo.run_id for r in runs):
        return demo.run_id
    return runs[0].run_id if runs else None


def _chosen(runs: list[catalog.RunInfo]) -> str | None:
    ids = [r.run_id for r in runs]
    wanted = st.query_params.get(RUN_PARAM)
    if wanted in ids:
        return wanted
    if wanted:
        st.warning(f"No search named {wanted!r} here: showing the shipped recording instead.")
    return default_run_id(runs)


def _pick(run_id: str) -> None:
    st.query_params[RUN_PARAM] = run_id


def _live_job(reg: Any, info: catalog.RunInfo) -> Any | None:
    """The job to watch live: this process's, or a follower of another process's run that is still active."""
    job = reg.get(info.run_id)
    if job is not None:
        return job
    if not examples.is_example(info.path) and info.state in _ACTIVE:
        try:
            return reg.follow(info.path)
        except (RunDirError, OSError):
            return None
    return None


def _bar(items: list[tuple[str, str]], run: str) -> None:
    """The status line in large type: label / value pairs, then the run's name."""
    spans = "".join(f'<span class="stage-item" data-stage="{name.lower()}"><span class="stage-label">{name}</span>'
                    f'<span class="stage-value">{value}</span></span>' for name, value in items)
    st.html(f'<div class="stage-bar">{spans}<span class="stage-run">{run}</span></div>')


def _graph(dot: str, key: str, text: str) -> None:
    with st.container(key=f"{key}.{hashlib.blake2b(dot.encode(), digest_size=6).hexdigest()}"):
        st.graphviz_chart(dot, width="stretch", alt=text)


def _heatmap(weights: dict, initial: dict | None, cell: str, key: str) -> None:
    title = cells.CELLS[cell]
    if cell not in weights:
        st.info(f"{title}: no op weights yet.")
        return
    spec, data = stage.heatmap_spec(weights[cell], title, (initial or {}).get(cell))
    with st.container(key=f"{key}.heatmap.{cell}"):   # the same spec each step: the browser swaps the data
        st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))


def _dag(genotype: Any, cell: str, key: str) -> None:
    if genotype is not None:
        _graph(stage.cell_dot(genotype, cell), f"{key}.dag.{cell}", alt.cell_alt(genotype, cell))


def _curves(metrics: list, key: str) -> None:
    if not metrics:
        st.info("No metrics yet: the first line is logged after the first step.")
        return
    with st.container(key=f"{key}.curves"):
        for curve in stage.STAGE_CURVES:
            spec, data = stage.curve_spec(metrics, curve)
            with st.container(key=f"{key}.curve.{curve}"):
                st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))


def _layout(key: str) -> dict[str, Any]:
    """The stage's places: per cell kind its heatmap over its graph, the curves in the third column."""
    with st.container(key=f"{key}.top"):
        columns = st.columns([1.1, 1.1, 0.8], gap="medium")
    places: dict[str, Any] = {}
    for column, cell in zip(columns, cells.CELLS, strict=False):
        places[f"heatmap.{cell}"] = column.container()
        places[f"dag.{cell}"] = column.container()
    places["curves"] = columns[2].container()
    return places


def _figures(weights: dict, initial: dict | None, genotype: Any, metrics: list, key: str) -> None:
    places = _layout(key)
    for cell in cells.CELLS:
        with places[f"heatmap.{cell}"]:
            _heatmap(weights, initial, cell, key)
        with places[f"dag.{cell}"]:
            _dag(genotype, cell, key)
    with places["curves"]:
        _curves(metrics, key)


def _valid_acc(metrics: list) -> str:
    value = next((m.get("valid_acc") for m in reversed(metrics) if m.get("valid_acc") is not None), None)
    return "—" if value is None else f"{value:.0%}"


# ---------------------------------------------------------------- a live (or followed) run
# The live stage is pieces, each a keyed fragment redrawn only when what it shows changed (as the Search page's
# live panel, app/panels/live.py): a step redraws the status and the heatmaps (data swapped in place), the
# curves when a metrics row came, a graph only when the genotype changed.
PIECES = ("status", "heatmap.normal", "heatmap.reduce", "dag.normal", "dag.reduce", "curves")


def _digest(array: Any) -> str:
    import numpy as np

    if array is None:
        return ""
    return hashlib.blake2b(np.ascontiguousarray(array, dtype=np.float64).tobytes(), digest_size=12).hexdigest()


def piece_keys(snap: Any) -> dict[str, Any]:
    """What each piece of the live stage shows, as a hashable key."""
    genotype = None if snap.genotype is None else json.dumps(snap.genotype.to_dict(), sort_keys=True)
    metrics = snap.metrics or ()
    weights = snap.weights or {}
    last = json.dumps(metrics[-1], sort_keys=True, default=str) if metrics else ""
    return {"status": (controls.shown_state(snap), snap.step, snap.epoch, snap.epochs, snap.total_steps, last,
                       snap.message, snap.error),
            **{f"heatmap.{cell}": _digest(weights.get(cell)) for cell in cells.CELLS},
            **{f"dag.{cell}": genotype for cell in cells.CELLS},
            "curves": (len(metrics), last)}


def _on_tick(job: Any) -> None:
    """The ticker's callback: rerun the pieces whose content changed; a full rerun when the run has ended. When
    nothing changed, the next tick waits for the step's expected end (live.next_tick_s), so a slow step is
    not polled every second."""
    try:
        snap = job.snapshot()
    except RunDirError:
        st.rerun()
    if not snap.active:
        st.rerun()
    drawn, now = st.session_state.get("stage.drawn", {}), piece_keys(snap)
    changed = [f"stage.piece.{name}" for name in PIECES if now[name] != drawn.get(name)]
    if changed:
        st.rerun(changed)
    st.session_state["stage.tick_ms"] = int(1000 * live.next_tick_s(snap, REFRESH_S, time.time()))


def _derive(job: Any) -> None:
    controls.request(job, "derive_now")
    shown = st.session_state.get(controls.DERIVED_KEY)
    if shown:
        st.session_state["stage.derived"] = shown["step"]


def _status(job: Any, snap: Any, name: str) -> None:
    shown = controls.shown_state(snap)
    if shown == snap.state and st.session_state.get(controls.PAUSING_KEY) == snap.run_id:
        st.session_state.pop(controls.PAUSING_KEY, None)
    _bar([("State", shown), ("Step", f"{snap.step}/{snap.total_steps or '?'}"),
          ("Epoch", f"{min(snap.epoch + 1, snap.epochs or snap.epoch + 1)}/{snap.epochs or '?'}"),
          ("Valid acc.", _valid_acc(list(snap.metrics or [])))], name)
    live.messages(snap)
    ok = controls.enabled(shown)
    with st.container(key="stage.keys", horizontal=True):
        paused = shown == "paused"
        st.button(f"{'Resume' if paused else 'Pause'} (Space)", key="stage.pause_resume",
                  shortcut=KEYS["pause_resume"], disabled=not (ok["resume"] if paused else ok["pause"]),
                  on_click=controls.request, args=(job, "resume" if paused else "pause"))
        st.button("Step once (S)", key="stage.step", shortcut=KEYS["step"], disabled=not ok["step_once"],
                  on_click=controls.request, args=(job, "step_once"))
        st.button("Derive now (D)", key="stage.derive", shortcut=KEYS["derive"], disabled=not ok["derive_now"],
                  on_click=_derive, args=(job,))
    derived = st.session_state.pop("stage.derived", None)
    if derived is not None:
        st.toast(f"Derived at step {derived}: the cells below are this derivation (added to genotypes.jsonl).")


def _live(job: Any, info: catalog.RunInfo, name: str) -> None:
    try:
        first = job.snapshot()
    except RunDirError as err:
        st.error(f"Cannot read this run any more: {err}")
        return
    draw = {"status": lambda snap: _status(job, snap, name),
            **{f"heatmap.{c}": (lambda snap, c=c: _heatmap(snap.weights or {}, snap.initial_weights, c, "stage"))
               for c in cells.CELLS},
            **{f"dag.{c}": (lambda snap, c=c: _dag(snap.genotype, c, "stage")) for c in cells.CELLS},
            "curves": lambda snap: _curves(list(snap.metrics or []), "stage")}
    st.session_state["stage.drawn"] = {}
    full = {"run": True}   # a full run draws every piece from one snapshot

    def piece(piece_name: str):
        @st.fragment(key=f"stage.piece.{piece_name}")
        def fragment() -> None:
            try:
                snap = first if full["run"] else job.snapshot()
            except RunDirError as err:
                st.error(f"Cannot read this run any more: {err}")
                return
            draw[piece_name](snap)
            st.session_state.setdefault("stage.drawn", {})[piece_name] = piece_keys(snap)[piece_name]
        return fragment

    @st.fragment(key="stage.tick")
    def tick() -> None:
        if first.active:
            ms = st.session_state.get("stage.tick_ms", int(REFRESH_S * 1000))
            live._ticker()(key="stage.ticker", data={"ms": ms}, on_tick_change=lambda: _on_tick(job))

    st.session_state.pop("stage.tick_ms", None)   # a full run ticks every REFRESH_S until a tick finds nothing
    piece("status")()
    places = _layout("stage")
    for piece_name in PIECES[1:]:
        with places[piece_name]:
            piece(piece_name)()
    full["run"] = False
    tick()


# ---------------------------------------------------------------- a replay
def _replay(info: catalog.RunInfo, name: str) -> None:
    records = state.alphas_records(info.path)
    metrics = state.metrics_records(info.path)
    if not records:
        st.info("This run has no recorded alphas yet.")
        return
    steps = replay.replay_steps(records)
    pos_key, playing_key = f"stage.{info.run_id}.pos", f"stage.{info.run_id}.playing"
    stride = max(1, -(-len(records) // _FRAMES))

    def toggle() -> None:
        playing = not st.session_state.get(playing_key, False)
        if playing and st.session_state.get(pos_key, len(records) - 1) >= len(records) - 1:
            st.session_state[pos_key] = 0   # Play at the end starts from the beginning
        st.session_state[playing_key] = playing

    def step_one() -> None:
        st.session_state[playing_key] = False
        st.session_state[pos_key] = min(len(records) - 1, st.session_state.get(pos_key, len(records) - 1) + 1)

    playing = bool(st.session_state.get(playing_key))

    @st.fragment(run_every=TICK_S if playing else None)
    def body() -> None:
        i = st.session_state.setdefault(pos_key, len(records) - 1)
        if st.session_state.get(playing_key):
            i = st.session_state[pos_key] = min(len(records) - 1, i + stride)
        record = records[i]
        step = steps[i]
        shown = [m for m in metrics if int(m.get("step", 0)) <= step] or metrics[:1]
        now_playing = bool(st.session_state.get(playing_key))
        _bar([("State", "replaying" if now_playing else "replay"), ("Step", f"{step}/{steps[-1]}"),
              ("Epoch", f"{int(record.get('epoch', 0)) + 1}/{info.epochs or '?'}"),
              ("Valid acc.", _valid_acc(shown))], name)
        with st.container(key="stage.keys", horizontal=True):
            st.button(f"{'Pause' if now_playing else 'Play'} (Space)", key="stage.pause_resume",
                      shortcut=KEYS["pause_resume"], on_click=toggle)
            st.button("Step (S)", key="stage.step", shortcut=KEYS["step"], on_click=step_one,
                      disabled=i >= len(records) - 1)
            st.button("Derive now (D)", key="stage.derive", shortcut=KEYS["derive"], disabled=True,
                      help="A replay shows the cell derived at every step already; Derive now asks a live run.")
        variant = dict(info.config or {})
        _figures(replay.record_weights(record, variant), replay.record_weights(records[0], variant),
                 replay.record_genotype(record, variant), shown, "stage")
        if now_playing and i >= len(records) - 1:
            st.session_state[playing_key] = False
            st.rerun()   # the end: a full rerun draws the stage again without the timer

    body()


# ---------------------------------------------------------------- the page
@functools.cache
def _css() -> str:
    return _CSS.read_text()


def _name(info: catalog.RunInfo) -> str:
    shipped = " · shipped recording" if examples.is_example(info.path) else ""
    return run_labels.named(info.run_id, info.path) + shipped


def page() -> None:
    st.html(f"<style>{_css()}</style>")
    st.html(_graph_css())
    shipped = examples.shipped_comparison()
    if st.query_params.get(VIEW_PARAM) == COMPARE_VIEW and shipped is not None:
        stage_compare.render(shipped)
        with st.container(key="stage.footer", horizontal=True):
            st.button("Back to the run", key="stage.compare.back", on_click=stage_compare.show, args=(None,))
        return
    reg = state.registry()
    runs = runs_for_stage(reg.runs_dir)
    run_id = _chosen(runs)
    if run_id is None:
        st.info("Nothing to show: no shipped recording and no search yet. Start one on the Search page.")
        return
    info = next(r for r in runs if r.run_id == run_id)
    job = _live_job(reg, info)
    if job is not None:
        _live(job, info, _name(info))
    else:
        _replay(info, _name(info))
    with st.container(key="stage.footer", horizontal=True):
        ids = [r.run_id for r in runs]
        st.selectbox("Run on stage", ids, index=ids.index(run_id), key="stage.selected",
                     format_func=lambda rid: _name(next(r for r in runs if r.run_id == rid)),
                     on_change=lambda: _pick(st.session_state["stage.selected"]), width=620,
                     label_visibility="collapsed")
        if shipped is not None:
            st.button("Compare cells", key="stage.compare.open", on_click=stage_compare.show, args=(COMPARE_VIEW,),
                      help="the found cell beside DARTS_V2 and a random cell, trained already (shipped)")
        if nav.page("search") is not None:   # None where the page runs alone (AppTest)
            st.page_link(nav.page("search"), label="Leave the stage")
    st.query_params[RUN_PARAM] = run_id
