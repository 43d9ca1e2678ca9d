"""The collapse lesson as a film: the three collapse recordings (DARTS, DARTS-, beta-DARTS) replayed in sync on one
timeline. One Play (or the slider) moves all three to the same step: the skip-connection count of each run up to
that step on one chart, and each run's normal cell at that step side by side.

Equal counts stay apart: each run's line is drawn a few pixels above or below its value (a visual offset only: the
data, the tooltips and the captions are the exact counts), in its own colour, dash and point shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from app.figures import alt, cells_dot, replay
from app.figures.collapse import normal_cell_counts
from app.figures.curves import RUN_COLOURS
from engine.search.collapse import count_ops

__all__ = ["render", "film_steps", "frame_at", "counts_spec", "KEY", "TICK_S", "OFFSET_PX", "SHAPES", "DASHES"]

KEY = "learn.film"
TICK_S = 0.5
_FRAMES = 50            # the film plays in about _FRAMES ticks
OFFSET_PX = 4           # pixels between the lines of runs with the same count
SHAPES = ("circle", "square", "triangle-up", "diamond")
DASHES = ([1, 0], [10, 5], [2, 3], [6, 2, 2, 2])   # solid, dashed, dotted, dash-dot: apart in grey print too


def film_steps(records_by_run: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]:
    """The steps of the film: every step some run recorded its alphas at, in order."""
    return sorted({int(r.get("step", i)) for records in records_by_run for i, r in enumerate(records)})


def frame_at(records: Sequence[Mapping[str, Any]], config: Mapping[str, Any], step: int) -> tuple[int, Any]:
    """(the recorded step shown, the genotype derived there) of one run at the film's `step`: its last record
    at or before it."""
    record = records[replay.replay_index(records, step)]
    return int(record.get("step", 0)), replay.record_genotype(record, dict(config))


def counts_spec(metrics_by_label: Mapping[str, Sequence[Mapping[str, Any]]], step: int,
                ops: int = 8) -> tuple[dict[str, Any], pd.DataFrame]:
    """Skip connections in the normal cell against the step, each run up to `step`, and a rule at `step`."""
    labels = list(metrics_by_label)
    rows = []
    for label, metrics in metrics_by_label.items():
        steps, skips, _ = normal_cell_counts(metrics)
        rows += [{"run": label, "step": s, "skips": k} for s, k in zip(steps, skips, strict=True) if s <= step]
    data = pd.DataFrame(rows, columns=["run", "step", "skips"])
    last = max((s for m in metrics_by_label.values() for s in normal_cell_counts(m)[0]), default=step)
    x = {"field": "step", "type": "quantitative", "scale": {"domain": [0, last]}, "title": "step",
         "axis": {"tickCount": 10}}
    y = {"field": "skips", "type": "quantitative", "scale": {"domain": [0, ops]}, "title": f"of {ops} kept ops",
         "axis": {"tickCount": ops + 1}}
    layers: list[dict[str, Any]] = []
    for i, label in enumerate(labels):
        offset = (i - (len(labels) - 1) / 2) * -OFFSET_PX   # the first run drawn highest
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        only = [{"filter": {"field": "run", "equal": label}}]
        tooltip = [{"field": "run"}, {"field": "step"}, {"field": "skips", "title": "skip connections"}]
        layers.append({"transform": only, "mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 3,
                                                   "yOffset": offset, "color": colour,
                                                   "strokeDash": DASHES[i % len(DASHES)]},
                       "encoding": {"x": x, "y": y, "tooltip": tooltip}})
        layers.append({"transform": only + [{"filter": "datum.step % 25 == 0"}],
                       "mark": {"type": "point", "filled": True, "size": 70, "yOffset": offset, "color": colour,
                                "shape": SHAPES[i % len(SHAPES)]},
                       "encoding": {"x": x, "y": y, "tooltip": tooltip}})
    layers.append({"data": {"values": [{"step": step}]}, "mark": {"type": "rule", "color": "grey",
                                                                   "strokeWidth": 2},
                   "encoding": {"x": {"field": "step", "type": "quantitative"}}})
    # the legend: one entry per run, in its colour and shape
    layers.append({"data": {"values": [{"run": label} for label in labels]}, "mark": {"type": "point", "opacity": 0},
                   "encoding": {"color": {"field": "run", "type": "nominal",
                                          "scale": {"domain": labels, "range": list(RUN_COLOURS[:len(labels)])},
                                          "legend": {"orient": "top", "title": None, "symbolOpacity": 1}},
                                "shape": {"field": "run", "type": "nominal",
                                          "scale": {"domain": labels, "range": list(SHAPES[:len(labels)])}}}})
    spec = {"title": {"text": "Skip connections in the normal cell", "subtitle":
                      f"each run's line drawn {OFFSET_PX} px apart where the counts are equal"},
            "width": "container", "height": 400, "layer": layers}
    return spec, data


def render(runs: Sequence[Any], lecture: bool = False) -> None:
    """`runs`: the lesson's runs (label, info, metrics, genotype). A Play / Stop button, a step slider, and the
    frame: the counts chart up to the step and each run's normal cell at that step."""
    records = {r.label: _records(r) for r in runs}
    steps = film_steps(list(records.values()))
    if len(steps) < 2:
        return
    pos_key, playing_key, slider_key = f"{KEY}.pos", f"{KEY}.playing", f"{KEY}.step"
    playing = bool(st.session_state.get(playing_key))
    stride = max(1, -(-len(steps) // _FRAMES))

    def toggle() -> None:
        now = not st.session_state.get(playing_key, False)
        if now:
            at = st.session_state.get(slider_key, steps[0])
            st.session_state[pos_key] = steps[0] if at >= steps[-1] else at
        else:
            st.session_state[slider_key] = st.session_state.get(pos_key, steps[0])
        st.session_state[playing_key] = now

    st.markdown("**The three runs in sync**: one timeline, each run's skip connections and normal cell at the "
                "same step.")
    st.button("Stop the film" if playing else "Play the three together", key=f"{KEY}.play", on_click=toggle,
              type="primary", icon=":material/pause:" if playing else ":material/play_arrow:")

    @st.fragment(run_every=TICK_S if playing else None)
    def frame() -> None:
        if st.session_state.get(playing_key):
            i = min(len(steps) - 1, steps.index(_snap(steps, st.session_state.get(pos_key, steps[0]))) + stride)
            step = st.session_state[pos_key] = steps[i]
            st.slider("Step", steps[0], steps[-1], value=step, disabled=True, key=f"{KEY}.playing_slider.{step}")
        else:
            st.session_state.setdefault(slider_key, steps[0])
            step = st.slider("Step", steps[0], steps[-1], key=slider_key)
        spec, data = counts_spec({r.label: r.metrics for r in runs}, step)
        with st.container(key=f"{KEY}.skips"):
            st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))
        places = [st.container() for _ in runs] if lecture else list(st.columns(len(runs)))
        for place, run in zip(places, runs, strict=True):
            shown, genotype = frame_at(records[run.label], run.info.config or {}, step)
            with place, st.container(key=f"{KEY}.cell.{run.info.run_id}"):
                counts = count_ops(genotype, "normal")
                st.markdown(f"**{run.label}** · step {shown}")
                st.graphviz_chart(cells_dot.cell_dot(genotype, cell="normal", lecture=lecture), width="stretch",
                                  alt=alt.cell_alt(genotype, "normal"))
                st.caption(f"{counts['skips']} skip connection(s), {counts['param_free']} parameter-free of "
                           f"{len(genotype.normal)}")
        if st.session_state.get(playing_key) and step >= steps[-1]:
            st.session_state[playing_key] = False
            st.session_state[slider_key] = step
            st.rerun()   # the end: a full rerun draws the film again without the timer

    frame()


def _snap(steps: list[int], step: int) -> int:
    return max((s for s in steps if s <= step), default=steps[0])


def _records(run: Any) -> list[dict[str, Any]]:
    from app import state

    return state.alphas_records(run.info.path)
