"""The live panel of the Search page: seven pieces that redraw only when what they show has changed.

The pieces (status strip with controls and messages, the cell of the last Derive now, architecture weights,
cells, curves, genotype, export) are each a keyed `st.fragment`. While the run is active a ticker (an
`st.components.v2` component with a JavaScript timer, no visible element) fires every `refresh_s` or, after a
tick that found nothing new, at the step's expected end (`next_tick_s`, at most 5 s later); its callback reads
the job's latest snapshot, compares each piece's content key with the key of what the page shows, and reruns
only the pieces whose content changed (`st.rerun([keys])`); when nothing did, only the ticker's own fragment
reruns (one invisible element). A piece that is not rerun is not re-sent, so the browser does not redraw it:
an unchanged heatmap, curve or graph keeps its DOM, and a download button keeps its link. When the run ends
the callback asks for one full rerun, which draws the page without the ticker, so an idle page does not poll.

`panel` draws every piece in one go (no fragments): for tests and bench/dashboard_overhead.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app import state
from app.figures import heatmaps
from app.panels import cells, collapse, controls, curves, exports, genotype, status, variant_state
from engine.runs import rundir
from engine.runs.rundir import RunDirError
from engine.runs.snapshot import Snapshot
from engine.space import DEFAULT_SPACE, get_space

__all__ = ["render", "panel", "messages", "PIECES", "piece_keys", "next_tick_s", "SHOW_ALL_QUANTUM"]

_CSS = Path(__file__).resolve().parents[2] / "assets" / "styles" / "live.css"
PIECES = ("status", "derived", "weights", "cells", "curves", "genotype", "export")
# The all-edges graph is redrawn when an edge's strongest op changes or its weight crosses a step of this size
# (it is drawn from the exact weights of that moment); the kept-edge graph only when the genotype changes.
SHOW_ALL_QUANTUM = 0.05
# After a tick that found nothing new, the next one waits for the step's expected end (next_tick_s), plus this
# margin for the snapshot to be swapped, and at most LONGEST_TICK_S.
TICK_MARGIN_S, LONGEST_TICK_S = 0.1, 5.0

# The ticker: a timer in the page that sets a trigger value every `data.ms` (its callback runs on the server).
# A new call (new data) clears the previous timer; the returned cleanup clears it when the element goes.
_TICKER_JS = """
export default function(component) {
  const { setTriggerValue, data, parentElement } = component;
  const host = parentElement.host || parentElement;
  if (host.__dartboardTick) clearInterval(host.__dartboardTick);
  host.__dartboardTick = setInterval(() => setTriggerValue("tick", Date.now()), data.ms);
  return () => { clearInterval(host.__dartboardTick); host.__dartboardTick = null; };
}
"""


@functools.cache
def _ticker() -> Callable[..., Any]:
    return st.components.v2.component("dartboard_live_ticker", js=_TICKER_JS)


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
    if snap.genotype is None or snap.space != DEFAULT_SPACE:  # the count is of the convolutional network
        return None, classes
    try:
        return state.param_count(json.dumps(snap.genotype.to_dict(), sort_keys=True), classes), classes
    except (ValueError, RuntimeError, KeyError):
        return None, classes


# ---------------------------------------------------------------- what each piece shows (content keys)
def _digest(arrays: Mapping[str, Any] | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays or {}):
        a = np.ascontiguousarray(arrays[name], dtype=np.float64)
        h.update(f"{name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _genotype_key(g: Any) -> str | None:
    return None if g is None else json.dumps(g.to_dict(), sort_keys=True)


def _shown_state(snap: Snapshot) -> str:
    """The state the page shows: "pausing" until the loop has paused, "stepping" during a Step once's step."""
    return controls.shown_state(snap)


def _strongest(weights: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Per edge: the strongest op and its weight in SHOW_ALL_QUANTUM steps (what the all-edges graph shows)."""
    out = {}
    for cell, w in (weights or {}).items():
        w = np.asarray(w, dtype=np.float64)
        if w.ndim == 2:
            out[cell] = np.stack([w.argmax(axis=1), np.round(w.max(axis=1) / SHOW_ALL_QUANTUM)])
    return out


def _metrics_key(metrics: Any) -> Hashable:
    if not metrics:
        return 0
    first, last = (json.dumps(row, sort_keys=True, default=str) for row in (metrics[0], metrics[-1]))
    return len(metrics), first, last


def _has_alphas(snap: Snapshot) -> bool:
    return bool(snap.run_dir) and (Path(snap.run_dir) / rundir.ALPHAS).exists()


def piece_keys(snap: Snapshot, key: str = "live") -> dict[str, Hashable]:
    """What each piece shows, as a hashable key: a piece is redrawn when its key changes. Widget values
    (colour scale, the all-edges toggle) are read from the session state."""
    show_all = bool(st.session_state.get(f"{key}.show_all", False))
    mode = st.session_state.get(f"{key}.mode", next(iter(heatmaps.HEATMAP_MODES)))
    lecture = cells.lecture_on()
    genotype_key = _genotype_key(snap.genotype)
    return {
        "status": (_shown_state(snap), snap.epoch, snap.epochs, snap.step, snap.total_steps, snap.steps_per_s,
                   snap.eta_s, snap.device, snap.message, snap.error),
        "derived": controls.derived_key(snap.run_id),
        "weights": (mode, lecture, _digest(snap.weights),
                    _digest(snap.initial_weights) if mode == "change" else None),
        "cells": (show_all, lecture, genotype_key, _digest(_strongest(snap.weights)) if show_all else None),
        "curves": (lecture, _metrics_key(snap.metrics)),
        "genotype": (genotype_key, _genotype_key(snap.epoch_genotype), state.num_classes_of(snap.config),
                     _untrained(snap)),
        # the figure downloads draw the heatmaps in the page's colour scale and lecture sizes, and the curves once
        # there are metrics: the buttons are made again when one of these changes
        "export": (snap.run_id, snap.run_dir, snap.genotype is not None, _has_alphas(snap), bool(snap.metrics),
                   mode, lecture),
    }


# ---------------------------------------------------------------- the pieces
def _draw_status(job: Any, snap: Snapshot, key: str) -> None:
    shown = _shown_state(snap)
    if shown == snap.state and st.session_state.get(controls.PAUSING_KEY) == snap.run_id:
        st.session_state.pop(controls.PAUSING_KEY, None)  # the loop has answered the pause
    status.render(snap, shown)
    fragments = [f"{key}.status", f"{key}.derived"] if st.session_state.get(f"{key}.fragments") else None
    controls.render(job, shown, rerun=fragments)
    messages(snap)


def _draw_derived(job: Any, snap: Snapshot, key: str) -> None:
    controls.derived(snap.run_id)


def _untrained(snap: Snapshot) -> bool:
    """The genotype on screen comes from the alphas as initialised: no architecture step has been taken."""
    return snap.genotype is not None and snap.step == 0


def _draw_weights(job: Any, snap: Snapshot, key: str) -> None:
    st.subheader("Op weights")
    st.caption("The softmax of each edge's architecture parameters (alphas): how much of each op the edge "
               "mixes in. Not the network weights, which the convolutions learn.")
    mode = cells.mode_picker(key=f"{key}.mode")
    cells.render_heatmaps(snap.weights, snap.initial_weights, mode, key=key, space=get_space(snap.space))
    variant_state.render(snap, key=key)  # the variant's own state (edge weights, temperature, threshold, spread)


def _draw_cells(job: Any, snap: Snapshot, key: str) -> None:
    st.subheader("Cells")
    if snap.space != DEFAULT_SPACE:  # the recurrent cell: its chain of nodes, each with the one input it keeps
        cells.render_dags(snap.genotype, snap.weights, False, kept_weights=False, key=key, space=get_space(snap.space))
        return
    show_all = st.toggle("Show every candidate edge", key=f"{key}.show_all",
                         help="all 14 edges of the relaxed cell, thickness by the strongest op's weight (redrawn "
                              f"when an edge's strongest op changes or its weight moves by {SHOW_ALL_QUANTUM})")
    cells.render_dags(snap.genotype, snap.weights, show_all, kept_weights=False, key=key)


def _draw_curves(job: Any, snap: Snapshot, key: str) -> None:
    st.subheader("Curves")
    curves.render(snap.metrics, key=key, lecture=cells.lecture_on(), space=snap.space)
    collapse.render(snap, key=key)  # entropy, skip counts, Hessian eigenvalue, early-stop warning (docs/collapse.md)


def _draw_genotype(job: Any, snap: Snapshot, key: str) -> None:
    st.subheader("Genotype")
    params, classes = _params(snap)
    genotype.render(snap.genotype, snap.epoch_genotype, params, classes, untrained=_untrained(snap))


def _draw_export(job: Any, snap: Snapshot, key: str) -> None:
    st.subheader("Export")
    exports.render(lambda: job.snapshot().genotype, snap.run_dir or None, snap.run_id or "run", key=key,
                   has_genotype=snap.genotype is not None)


_DRAW = {"status": _draw_status, "derived": _draw_derived, "weights": _draw_weights, "cells": _draw_cells,
         "curves": _draw_curves, "genotype": _draw_genotype, "export": _draw_export}


def _drawn(key: str) -> dict[str, Hashable]:
    """The content key of each piece as the page shows it (this session)."""
    return st.session_state.setdefault(f"{key}.drawn", {})


def _draw(name: str, job: Any, snap: Snapshot, key: str) -> None:
    _DRAW[name](job, snap, key)
    _drawn(key)[name] = piece_keys(snap, key)[name]  # after the draw: its widgets have their values now


def panel(job: Any, snap: Snapshot, key: str = "live") -> None:
    """Every piece of one snapshot, drawn in one go."""
    st.session_state[f"{key}.fragments"] = False  # a click reruns the whole script: no fragment to name
    for name in PIECES:
        _draw(name, job, snap, key)


# ---------------------------------------------------------------- the live page
def _snapshot(job: Any) -> Snapshot | None:
    try:
        return job.snapshot()
    except RunDirError as err:
        st.error(f"Cannot read this run any more: {err}")
        return None


def next_tick_s(snap: Snapshot, refresh_s: float, now: float, longest: float = LONGEST_TICK_S) -> float:
    """How long the ticker waits after a tick that found nothing new. A running search changes once a step, so
    a tick before the step's expected end (its last update plus one step's time, from the measured speed)
    finds nothing and costs a script run and a browser update for nothing: wait for that end instead, never
    less than `refresh_s` nor more than `longest`, so a change made elsewhere (a control from another
    process, a slow step) still shows within a few seconds. Paused or unknown speed: every `refresh_s`."""
    if snap.state != "running" or not snap.steps_per_s or snap.steps_per_s <= 0 or not snap.updated_at:
        return refresh_s
    due = snap.updated_at + 1.0 / snap.steps_per_s + TICK_MARGIN_S - now
    return min(max(refresh_s, due), max(refresh_s, longest))


def _on_tick(job: Any, key: str, refresh_s: float) -> None:
    """The ticker's callback: rerun the pieces whose content changed; a full rerun when the run has ended (the
    page is drawn again without the ticker) or cannot be read. Returning (nothing changed) reruns the ticker's
    fragment alone: one script run, where a rerun of other fragments from a callback takes two."""
    try:
        snap = job.snapshot()
    except RunDirError:
        st.rerun()
    if not snap.active:
        st.rerun()
    drawn, now = _drawn(key), piece_keys(snap, key)
    changed = [f"{key}.{name}" for name in PIECES if now[name] != drawn.get(name)]
    if changed:
        st.rerun(changed)
    st.session_state[f"{key}.tick_ms"] = int(1000 * next_tick_s(snap, refresh_s, time.time()))


def render(job: Any, refresh_s: float, key: str = "live") -> None:
    first = _snapshot(job)
    if first is None:
        return

    def piece(name: str) -> Callable[[], None]:
        @st.fragment(key=f"{key}.{name}")
        def draw() -> None:
            snap = first if st.session_state.get(f"{key}.full_run") else _snapshot(job)
            if snap is not None:
                _draw(name, job, snap, key)
        return draw

    @st.fragment(key=f"{key}.tick")
    def tick() -> None:
        if first.active:
            ms = st.session_state.get(f"{key}.tick_ms", int(refresh_s * 1000))
            _ticker()(key=f"{key}.ticker", data={"ms": ms}, on_tick_change=lambda: _on_tick(job, key, refresh_s))

    st.html(_CSS)  # style only: it goes to the page's event container and takes no room
    cells.lecture_toggle()
    with st.container(key=key):
        st.session_state[f"{key}.fragments"] = True  # each piece is the fragment f"{key}.{name}"
        st.session_state[f"{key}.drawn"] = {}
        st.session_state.pop(f"{key}.tick_ms", None)  # a full run ticks at refresh_s until a tick finds nothing
        st.session_state[f"{key}.full_run"] = True  # a full run draws every piece from one snapshot
        try:
            for name in PIECES:
                piece(name)()
        finally:
            st.session_state[f"{key}.full_run"] = False
        tick()
