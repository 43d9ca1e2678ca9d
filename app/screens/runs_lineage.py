"""The Runs page's table and links: each run's kind and, for a failed or unreadable one, its one-line reason;
which search a training came from (and which trainings a search led to); jobs that failed before they began.

A training's config.json carries `source` (engine.train.source): for a search, its `run_dir` (absolute) and the
`step` whose genotype it trains.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.figures import tables
from engine.runs import rundir
from engine.runs.catalog import RunInfo
from engine.space import DEFAULT_SPACE

__all__ = ["one_line", "runs_table", "record", "read_source", "lineage", "render_lineage", "failed_jobs",
           "render_failed_jobs"]

_REASON_CHARS = 160


def one_line(text: str | None, limit: int = _REASON_CHARS) -> str:
    """The first non-empty line of an error, cut to `limit` characters ('' for none)."""
    line = next((x.strip() for x in str(text or "").splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def runs_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """The Runs page's table: tables.runs_frame plus what kind of run each is and, for a failed or
    unreadable one, the one-line reason."""
    frame = tables.runs_frame(runs)
    frame.insert(1, "kind", [r.kind + ("" if r.space == DEFAULT_SPACE else " (recurrent)") for r in runs])
    frame.insert(3, "reason", [one_line(r.error) if r.state in ("failed", "unreadable") else "" for r in runs])
    frame.insert(list(frame.columns).index("valid acc") + 1, "test acc", [r.test_acc for r in runs])
    if any(r.test_ppl is not None for r in runs):  # a recurrent training's score
        frame.insert(list(frame.columns).index("test acc") + 1, "test ppl", [r.test_ppl for r in runs])
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
