"""The Replay page: a slider (and Play, at a chosen speed) over a run's recorded alphas that redraws the
heatmaps, the cells derived at that step and the curves up to it; for showing how a cell emerged."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from app import state
from app.figures import labels, replay
from app.panels import cells, curves, genotype, run_labels
from engine.runs import catalog, examples, rundir
from engine.space import DEFAULT_SPACE, get_space, space_of_kinds

__all__ = ["page", "render", "PLAY_LABEL", "STOP_LABEL", "TICK_S", "SPEEDS", "stride", "RUN_PARAM", "STEP_PARAM",
           "open_run"]

RUN_PARAM = "run"     # the run shown, kept in the URL (?run=<run id>)
# Session key: run directories another page sent here that neither list holds (a sweep's members, which live in
# their sweep's folder), offered for the rest of the session.
_EXTRA = "replay.extra"
STEP_PARAM = "step"   # the step shown, kept in the URL (?step=<step>) while not playing

PLAY_LABEL, STOP_LABEL = "Play", "Stop replay"
TICK_S = 0.5          # seconds between frames while playing
_FRAMES = 60          # at 1x a replay plays in about _FRAMES ticks (30 s), whatever the run's length
# speed -> how many times more (or fewer) records a tick advances than at 1x
SPEEDS = {"0.25x": 0.25, "0.5x": 0.5, "1x": 1.0, "2x": 2.0, "4x": 4.0}


def stride(records: int, speed: str) -> int:
    """Records a tick advances: at 1x the replay takes about _FRAMES ticks; never less than one record."""
    return max(1, math.ceil(records * SPEEDS.get(speed, 1.0) / _FRAMES))


def _frame(records: Sequence[Mapping[str, Any]], step: int, key: str, variant: str | Mapping[str, Any],
           metrics: Sequence[Mapping[str, Any]] | None = None) -> None:
    i = replay.replay_index(records, step)
    record = records[i]
    weights = replay.record_weights(record, variant)
    st.caption(f"Record {i + 1} of {len(records)} · step {record.get('step', i)} · epoch "
               f"{int(record.get('epoch', 0)) + 1}")
    space = space_of_kinds(weights) or get_space()
    mode = cells.mode_picker(key=f"{key}.mode")
    cells.render_heatmaps(weights, replay.record_weights(records[0], variant), mode, key=key, space=space)
    # the convolutional cells can be drawn with every candidate edge; a recurrent cell is drawn as derived
    show_all = space.name == DEFAULT_SPACE and st.toggle("Show every candidate edge", key=f"{key}.show_all")
    if int(record.get("step", i)) == 0:
        st.caption(genotype.UNTRAINED_NOTE)
    cells.render_dags(replay.record_genotype(record, variant), weights, show_all, space=space)
    if metrics:  # the curves as they stood at this step
        shown = int(record.get("step", i))
        curves.render([m for m in metrics if int(m.get("step", 0)) <= shown] or metrics[:1], key=key,
                      lecture=cells.lecture_on(), space=space.name)


def _step_from_url(steps: Sequence[int]) -> int | None:
    """The URL's ?step=N as a recorded step: the last one at or before N (None when absent or not a number)."""
    try:
        wanted = int(st.query_params.get(STEP_PARAM, ""))
    except ValueError:
        return None
    return max([s for s in steps if s <= wanted], default=steps[0])


def render(records: Sequence[Mapping[str, Any]], key: str = "replay", variant: str | Mapping[str, Any] = "darts",
           metrics: Sequence[Mapping[str, Any]] | None = None, url: bool = False) -> None:
    """Slider over the recorded steps; Play advances it on a timer until the last record, `SPEEDS` records
    faster or slower. `variant` is the run's (its config): it turns each record's architecture parameters
    into the weights and cell shown; `metrics` (its metrics rows) are drawn up to the step shown. With `url`,
    the step shown (when not playing) is kept in the URL, ?step=N, and a URL's step is where the slider starts."""
    if not records:
        st.info("This run has no recorded alphas yet.")
        return
    steps = replay.replay_steps(records)
    # While playing, the frame's position lives in `pos_key`, not in the slider's key: a tick's rerun request
    # carries the browser's last slider value, which can be the one from before Play and would jump the
    # replay to the end. The playing slider is a new, disabled widget each frame; Stop hands the position
    # back to the keyed slider.
    slider_key, playing_key, pos_key = f"{key}.step", f"{key}.playing", f"{key}.pos"
    if url and slider_key not in st.session_state and (linked := _step_from_url(steps)) is not None:
        st.session_state[slider_key] = linked
    playing = bool(st.session_state.get(playing_key)) and len(records) > 1
    play, stop, speed_box, _ = st.columns([1, 1, 2, 2])
    speed = speed_box.segmented_control("Speed", list(SPEEDS), default="1x", key=f"{key}.speed",
                                        label_visibility="collapsed") or "1x"
    if play.button(PLAY_LABEL, key=f"{key}.play", disabled=playing or len(records) < 2, width="stretch"):
        current = st.session_state.get(slider_key, steps[-1])
        st.session_state[pos_key] = steps[0] if current >= steps[-1] else current  # from the start at the end
        st.session_state[playing_key] = True
        st.rerun()
    if stop.button(STOP_LABEL, key=f"{key}.stop", disabled=not playing, width="stretch"):
        st.session_state[playing_key] = False
        st.session_state[slider_key] = st.session_state.get(pos_key, steps[-1])
        st.rerun()

    @st.fragment(run_every=TICK_S if playing else None)
    def frame() -> None:
        if len(records) == 1:
            _frame(records, steps[0], key, variant, metrics)
            return
        if playing and st.session_state.get(playing_key):
            i = replay.replay_index(records, st.session_state.get(pos_key, steps[0]))
            step = st.session_state[pos_key] = steps[min(len(records) - 1, i + stride(len(records), speed))]
            st.slider("Step", min_value=steps[0], max_value=steps[-1], value=step, disabled=True)
            _frame(records, step, key, variant, metrics)
            if step >= steps[-1]:
                st.session_state[playing_key] = False
                st.session_state[slider_key] = step
                st.rerun()  # the end: a full rerun recreates this fragment without run_every
            return
        current = st.session_state.get(slider_key, steps[-1])
        st.session_state[slider_key] = min(max(current, steps[0]), steps[-1])
        step = st.slider("Step", min_value=steps[0], max_value=steps[-1], key=slider_key)
        if url:
            st.query_params[STEP_PARAM] = str(step)
        _frame(records, step, key, variant, metrics)

    frame()


def _default_id(ids: Sequence[str]) -> str:
    demo = examples.example(examples.DEFAULT_EXAMPLE)
    return demo.run_id if demo is not None and demo.run_id in ids else ids[0]


def open_run(run_dir: str | Path) -> None:
    """Show the search in `run_dir` on the Replay page next (call from a callback or before switching pages)."""
    extra = st.session_state.setdefault(_EXTRA, [])
    if str(run_dir) not in extra:
        extra.append(str(run_dir))
    st.session_state["replay.run"] = Path(run_dir).name


def _extra_runs(known: set[str]) -> list[catalog.RunInfo]:
    out = []
    for path in st.session_state.get(_EXTRA, []):
        try:
            info = catalog.run_info(path)
        except (rundir.RunDirError, OSError):  # deleted since: it is simply no longer offered
            continue
        if info.run_id not in known and info.kind != "train":
            out.append(info)
    return out


def page() -> None:
    reg = state.registry()
    cells.lecture_toggle()
    st.title("Replay")
    # this machine's searches, then the recordings shipped with the app: there is always one to replay
    runs = [r for r in catalog.list_runs(reg.runs_dir) if r.kind != "train"] + examples.example_runs()
    runs += _extra_runs({r.run_id for r in runs})
    if not runs:
        st.info("No runs to replay yet. Start one on the Search page.")
        return
    ids = [r.run_id for r in runs]
    # Which run: one another page sent here (Runs, Learn), else the URL's ?run= (a bookmark, a reload), else the
    # shipped demo recording: never the newest run, which after a rehearsal is a stopped test run.
    wanted = st.session_state.pop("replay.run", None)
    if wanted is None and "replay.selected" not in st.session_state:
        wanted = st.query_params.get(RUN_PARAM) or _default_id(ids)
    if wanted in ids:
        st.session_state["replay.selected"] = wanted
    elif st.session_state.get("replay.selected") not in ids:
        st.session_state["replay.selected"] = _default_id(ids)
    paths = {r.run_id: r.path for r in runs}
    run_id = st.selectbox("Run", ids, key="replay.selected", format_func=lambda rid: run_labels.named(rid, paths[rid]))
    if st.query_params.get(RUN_PARAM) != run_id:
        st.query_params.pop(STEP_PARAM, None)  # a step of the run shown before: the new run starts at its end
    st.query_params[RUN_PARAM] = run_id
    info = next(r for r in runs if r.run_id == run_id)
    shipped = " · a recording shipped with dartboard" if examples.is_example(info.path) else ""
    st.caption(f"{info.state} · {labels.progress_text(info.epoch, info.epochs, info.step, info.total_steps)}{shipped}")
    # the run's config, not just its variant's name: its options (beta-DARTS on PC-DARTS) and skip cap count
    render(state.alphas_records(info.path), key=f"replay.{run_id}", variant=dict(info.config or {}),
           metrics=state.metrics_records(info.path), url=True)
