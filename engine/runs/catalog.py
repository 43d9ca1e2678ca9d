"""The runs under a runs root: one summary line each (the Runs page, `python -m engine runs`), and deletion.

Searches and trainings (config.json `kind` "search" or "train"; "rnn_search" and "rnn_train" for the recurrent
space) share the layout; a training's genotype is the one it trains, and its score is the test accuracy of its last
epoch (`test_acc`), or a recurrent training's test perplexity (`test_ppl`)."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.runs import rundir
from engine.runs.liveness import displayed_state, is_interrupted
from engine.runs.snapshot import ACTIVE_STATES

__all__ = ["RunInfo", "UNREADABLE", "run_info", "list_runs", "delete_run"]

UNREADABLE = "unreadable"
_TRAININGS = ("train", "rnn_train")  # config.json kinds of a training (the convolutional and the recurrent one)  # the state listed for a run directory whose files cannot be made sense of


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    state: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    genotype: Any
    valid_acc: float | None
    created: str
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    kind: str = "search"                 # "search" or "train"
    test_acc: float | None = None        # a training's last test accuracy
    space: str = "cnn"                   # the search space of its cells (engine.space.get_space)
    test_ppl: float | None = None        # a recurrent training's test perplexity


def _last_metric(rows: list[dict[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _count(value: Any) -> int:
    """A step, epoch or total from status.json / config.json; 0 for anything that is not a count."""
    return value if type(value) is int and value >= 0 else 0


def run_info(run_dir: str | os.PathLike) -> RunInfo:
    """A run's summary from its files; RunDirError when it has no readable config.json."""
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    status = rundir.read_status(run_dir)
    try:
        config_mtime = (run_dir / rundir.CONFIG).stat().st_mtime
    except OSError as e:  # deleted since it was read
        raise rundir.RunDirError(f"{run_dir} vanished while it was read ({e})") from e
    metrics = rundir.read_metrics(run_dir)
    return RunInfo(
        run_id=run_dir.name, path=run_dir, state=displayed_state(status, config_mtime),
        epoch=_count(status.get("epoch")), epochs=_count(cfg["config"].get("epochs")), step=_count(status.get("step")),
        total_steps=_count(status.get("total_steps")), genotype=rundir.latest_genotype(run_dir),
        valid_acc=_last_metric(metrics, "valid_acc"), created=str(cfg.get("created", "")),
        config=cfg["config"], error=None if status.get("error") is None else str(status["error"]),
        kind="train" if cfg.get("kind") in _TRAININGS else "search", test_acc=_last_metric(metrics, "test_acc"),
        space=rundir.space_name(cfg), test_ppl=_last_metric(metrics, "test_ppl"),
    )


def _unreadable(path: Path, reason: str) -> RunInfo:
    return RunInfo(run_id=path.name, path=path, state=UNREADABLE, epoch=0, epochs=0, step=0, total_steps=0,
                   genotype=None, valid_acc=None, created="", error=reason)


# What a run writes besides config.json: a folder holding one of them was a run even when its config.json is
# gone. A folder with only .run.lock is not listed: that is a run starting (config.json is its first file).
_RUN_FILES = (rundir.CONFIG, rundir.STATUS, rundir.METRICS, rundir.ALPHAS, rundir.GENOTYPES, rundir.CHECKPOINT)


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in _RUN_FILES)


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under the runs root, newest first. A run folder whose config.json is missing or cannot be read
    is listed with state "unreadable" and the reason in `error`, so one damaged run never hides the others."""
    root = rundir.runs_root(root)
    if not root.is_dir():
        return []
    runs = []
    for path in sorted(root.iterdir(), reverse=True):
        if _is_run_dir(path):
            try:
                runs.append(run_info(path))
            except (rundir.RunDirError, OSError, ValueError, TypeError, AttributeError, RecursionError) as e:
                runs.append(_unreadable(path, str(e) if isinstance(e, rundir.RunDirError) else
                                        f"{type(e).__name__}: {e}"[:300]))
    return runs


def delete_run(run_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Delete a finished/stopped/failed/interrupted run; refuses paths outside the root and live runs."""
    root_path = rundir.runs_root(root).resolve()
    path = Path(run_dir).resolve()
    if path.parent != root_path or not _is_run_dir(path):
        raise rundir.RunDirError(f"{run_dir} is not a run directory under {root_path}")
    status = rundir.read_status(path)
    if status.get("state") in ACTIVE_STATES and not is_interrupted(status):
        raise rundir.RunDirError(f"{path.name} is {status['state']}; stop it before deleting it")
    shutil.rmtree(path)
