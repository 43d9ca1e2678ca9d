"""What the dashboard keeps beyond one script run: the process-wide job registry and cached look-ups.

The registry lives in `st.cache_resource`, so every session (a reload, a second tab) sees the same
searches, and closing a tab does not stop one. The search threads never call Streamlit; pages only
read snapshots and call the controllers' request methods.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import streamlit as st

from engine.jobs.controller import Controller, Registry
from engine.runs import rundir
from engine.runs.follow import Follower
from engine.space.cnn.genotype import Genotype

__all__ = ["registry", "selected_job", "select_run", "param_count", "alphas_records", "metrics_records",
           "num_classes_of", "flash", "show_flash"]

Job = Controller | Follower


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    """The one Registry of this server process (runs root: $DARTBOARD_RUNS or ./runs)."""
    return Registry(rundir.runs_root())


def selected_job(reg: Registry) -> Job | None:
    """The job the Search page shows: this session's pick, else the process's current search, else the
    newest job of this process (so a reload or a second tab finds the same run). Jobs whose run
    directory was deleted are passed over."""
    run_id = st.session_state.get("run_id")
    candidates = [reg.get(run_id) if run_id else None, reg.current(), *reversed(reg.jobs())]
    return next((job for job in candidates if job is not None and _shown(job)), None)


def _shown(job: Job) -> bool:
    """A job whose directory exists, or a search that failed before it began (its error must stay on screen)."""
    return Path(job.run_dir).is_dir() or (isinstance(job, Controller) and job.snapshot().state == "failed")


def select_run(run_id: str) -> None:
    st.session_state["run_id"] = run_id


def num_classes_of(config: dict[str, Any]) -> int:
    """Classes of a run's dataset, for the evaluation network's head (fake: its own; others: the data's)."""
    dataset = config.get("dataset", "")
    if dataset == "fake":
        return int(config.get("num_classes", 10))
    return 100 if dataset == "cifar100" else 10


@st.cache_data(max_entries=256, show_spinner=False)
def param_count(genotype_json: str, num_classes: int = 10) -> int:
    """Parameters (auxiliary head excluded) of NetworkCIFAR(36, num_classes, 20, genotype), summed from cached
    per-op counts (engine.train.compare.network_costs): fast enough for every genotype change. Imported here, so
    only the pages that show a count load torch."""
    from engine.train.compare import network_costs

    return network_costs(Genotype.from_dict(json.loads(genotype_json)), 36, 20, num_classes)[0]


@st.cache_data(max_entries=256, show_spinner=False)
def proxy_scores(genotype_json: str, config_json: str) -> dict[str, float]:
    """synflow, NASWOT and grad-norm of a genotype's untrained network at a training config's size
    (engine.derive.proxies, the scores `compare` prints): a few seconds the first time, cached after."""
    from engine.derive import proxies
    from engine.train.config import TrainConfig

    config = TrainConfig.from_dict(json.loads(config_json))
    scores = proxies.score_genotype(Genotype.from_dict(json.loads(genotype_json)), config=config)
    return {k: scores[k] for k in proxies.PROXIES}


def _file_key(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@st.cache_data(max_entries=8, show_spinner=False)
def _read_cached(kind: str, run_dir: str, key: tuple[int, int]) -> list[dict[str, Any]]:
    reader = {"alphas": rundir.read_alphas, "metrics": rundir.read_metrics, "genotypes": rundir.read_genotypes}
    return reader[kind](run_dir)


def alphas_records(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """alphas.jsonl of a run, re-read only when the file changed."""
    return _read_cached("alphas", str(run_dir), _file_key(Path(run_dir) / rundir.ALPHAS))


def metrics_records(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return _read_cached("metrics", str(run_dir), _file_key(Path(run_dir) / rundir.METRICS))


def flash(kind: str, text: str) -> None:
    """Keep a message (from a callback) to show on the next run of the page."""
    st.session_state.setdefault("flash", []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        {"error": st.error, "warning": st.warning, "success": st.success}.get(kind, st.info)(text)
