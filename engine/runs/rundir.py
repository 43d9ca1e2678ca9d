"""The run directory: the one place a search writes, and the only thing the dashboard reads.

Layout (docs/run_directory.md has the full format):

    config.json  status.json  metrics.jsonl  alphas.jsonl  genotypes.jsonl  checkpoint.pt  control.json
    .control.lock  exports/

This module names the files and reads and writes each of them; the IO rules (atomic JSON, append-only
JSONL) are in `atomic`, liveness in `liveness`, listing in `catalog`, control.json in `control_file`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from engine.core.atomic import loads_json, read_json, read_jsonl, write_json_atomic
from engine.space import SearchSpace, get_space, space_of_kinds

__all__ = [
    "CONFIG", "STATUS", "METRICS", "ALPHAS", "GENOTYPES", "CHECKPOINT", "CONTROL", "CONTROL_LOCK", "RUN_LOCK",
    "RunDirError",
    "runs_root", "new_run_dir", "read_config", "read_status", "write_status", "read_metrics", "read_alphas",
    "read_genotypes", "latest_genotype", "space_name", "run_space",
]

CONFIG, STATUS, METRICS, ALPHAS, GENOTYPES, CHECKPOINT, CONTROL = (
    "config.json", "status.json", "metrics.jsonl", "alphas.jsonl", "genotypes.jsonl", "checkpoint.pt", "control.json")
CONTROL_LOCK = ".control.lock"  # the inter-process lock around changes of control.json (engine.runs.control_file)
RUN_LOCK = ".run.lock"  # held by the one process that runs (writes) this search, for its whole life


class RunDirError(RuntimeError):
    """A run directory is missing, foreign or unreadable; the message names the path."""


def runs_root(explicit: str | os.PathLike | None = None) -> Path:
    """`--runs-dir` if given, else $DARTBOARD_RUNS, else ./runs."""
    return Path(explicit or os.environ.get("DARTBOARD_RUNS") or "runs")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def new_run_dir(root: str | os.PathLike, slug: str) -> Path:
    """Create `root/<UTC timestamp>-<slug>/`, unique even when two runs start in the same second."""
    root = Path(root)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{_slug(slug)}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        for n in range(1000):
            path = root / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:  # a file where the root should be, a path under a file, a read-only or full disk
        raise RunDirError(f"cannot create a run directory under the runs root {root}: "
                          f"{e.strerror or e}; pass --runs-dir (or set DARTBOARD_RUNS) to a writable folder") from None
    raise RunDirError(f"could not create a run directory under {root}")


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json's record; a RunDirError naming the path and what is wrong (missing, not JSON, no config)."""
    path = Path(run_dir) / CONFIG
    try:
        data = loads_json(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not a dartboard run directory (no {CONFIG})") from None
    except OSError as e:  # a directory where the file should be, no permission
        raise RunDirError(f"{path} cannot be read: {e.strerror or e}") from None
    except ValueError as e:
        raise RunDirError(f"{path} is damaged: not JSON ({str(e)[:120]})") from None
    if not isinstance(data, dict) or "config" not in data:
        raise RunDirError(f"{run_dir} is not a dartboard run directory (no readable {CONFIG})")
    if not isinstance(data["config"], dict):
        raise RunDirError(f"{run_dir}/{CONFIG} is damaged: its \"config\" is {type(data['config']).__name__}, "
                          "not an object of fields")
    return data


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    data = read_json(Path(run_dir) / STATUS, default={})
    return data if isinstance(data, dict) else {}


def write_status(run_dir: str | os.PathLike, **fields_: Any) -> dict[str, Any]:
    status = {"pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(), **fields_}
    write_json_atomic(Path(run_dir) / STATUS, status)
    return status


def _has_step(row: dict[str, Any]) -> bool:
    return type(row.get("step")) is int and row["step"] >= 0


def _is_matrix(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, list) for r in value)


# config.json's kind -> the search space of the run's cells; a kind not named here is the default space's
_SPACE_OF_KIND = {"rnn_search": "rnn", "rnn_train": "rnn"}


def space_name(record: dict[str, Any]) -> str:
    """The search space of a run, from its config.json record: "cnn" for the convolutional searches and
    trainings, "rnn" for the recurrent ones."""
    return _SPACE_OF_KIND.get(record.get("kind"), get_space().name) if isinstance(record, dict) else get_space().name


def run_space(run_dir: str | os.PathLike) -> SearchSpace:
    """The search space of a run directory's cells; the default space when its config.json cannot be read
    (what reads the rest of the run then reports that damage itself)."""
    try:
        return get_space(space_name(read_config(run_dir)))
    except (RunDirError, OSError, ValueError):
        return get_space()


def _is_alphas_row(row: dict[str, Any]) -> bool:
    """An integer step and an op-weight matrix of every cell kind of one search space."""
    space = space_of_kinds(row) if _has_step(row) else None
    return space is not None and all(_is_matrix(row[kind]) for kind in space.cell_kinds)


# The readers below return the lines a reader can place: a line without an integer step (or an alphas line
# without the matrices of its cell kinds) is damage, skipped like a torn line, so one bad line cannot break a page.
def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(Path(run_dir) / METRICS) if _has_step(r)]


def read_alphas(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(Path(run_dir) / ALPHAS) if _is_alphas_row(r)]


def read_genotypes(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(Path(run_dir) / GENOTYPES) if _has_step(r)]


def latest_genotype(run_dir: str | os.PathLike) -> Any:
    """The last well-formed genotype of genotypes.jsonl (of the run's search space), or None; a row without one
    (or a broken one) is skipped."""
    space = run_space(run_dir)
    for row in reversed(read_genotypes(run_dir)):
        try:
            return space.genotype_from_dict(row["genotype"])
        except (KeyError, TypeError, ValueError):
            continue
    return None
