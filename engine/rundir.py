"""The run directory: the one place a search writes, and the only thing the dashboard reads.

Layout (docs/run_directory.md has the full format):

    config.json  status.json  metrics.jsonl  alphas.jsonl  genotypes.jsonl  checkpoint.pt  control.json  exports/

JSON files are replaced atomically (temp file in the same directory, then `os.replace`); JSONL files
are append-only and readers skip a torn line, so a crash loses at most the line being written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .snapshot import ACTIVE_STATES, Snapshot

__all__ = [
    "RunInfo", "RunDirError", "runs_root", "new_run_dir", "write_json_atomic", "write_bytes_atomic", "read_json",
    "read_jsonl", "append_jsonl", "read_status", "write_status", "read_config", "read_metrics", "read_alphas",
    "read_genotypes", "list_runs", "delete_run", "snapshot_from_dir", "weights_of", "request_control",
    "read_control", "is_interrupted", "HEARTBEAT_S",
]

CONFIG, STATUS, METRICS, ALPHAS, GENOTYPES, CHECKPOINT, CONTROL = (
    "config.json", "status.json", "metrics.jsonl", "alphas.jsonl", "genotypes.jsonl", "checkpoint.pt", "control.json")
# A live loop refreshes status.json at least this often (also while paused); a run whose status is
# older than STALE_S and whose process cannot be seen is listed as interrupted.
HEARTBEAT_S = 5.0
STALE_S = 60.0


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
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{_slug(slug)}"
    for n in range(1000):
        path = root / (base if n == 0 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"could not create a run directory under {root}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename over it: readers see old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def append_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All whole lines of a JSONL file; a torn or corrupt line (a crash mid-write) is skipped."""
    return list(_iter_jsonl(Path(path)))


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return
    with f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn last line: the writer died mid-line (or is writing it now)
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    data = read_json(Path(run_dir) / CONFIG)
    if not isinstance(data, dict) or "config" not in data:
        raise RunDirError(f"{run_dir} is not a dartboard run directory (no readable {CONFIG})")
    return data


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    data = read_json(Path(run_dir) / STATUS, default={})
    return data if isinstance(data, dict) else {}


def write_status(run_dir: str | os.PathLike, **fields_: Any) -> dict[str, Any]:
    status = {"pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(), **fields_}
    write_json_atomic(Path(run_dir) / STATUS, status)
    return status


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / METRICS)


def read_alphas(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / ALPHAS)


def read_genotypes(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / GENOTYPES)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_interrupted(status: dict[str, Any], now: float | None = None) -> bool:
    """An active state whose writer is gone: same host and the pid is dead, or no heartbeat for STALE_S."""
    if status.get("state") not in ACTIVE_STATES:
        return False
    if status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
        return not _pid_alive(status["pid"])  # same host: the pid says it all (a long step is not a death)
    return (now or time.time()) - float(status.get("updated", 0)) > STALE_S


def weights_of(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Softmax rows of the raw alphas in an alphas.jsonl record: {"normal", "reduce"} -> (edges, ops)."""
    out = {}
    for cell in ("normal", "reduce"):
        a = np.asarray(record[cell], dtype=np.float64)  # (edges, ops)
        e = np.exp(a - a.max(axis=1, keepdims=True))
        out[cell] = e / e.sum(axis=1, keepdims=True)
    return out


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


def _last_genotype(run_dir: Path) -> Any:
    from .genotype import Genotype

    rows = read_genotypes(run_dir)
    for row in reversed(rows):
        try:
            return Genotype.from_dict(row["genotype"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _last_metric(rows: list[dict[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        if isinstance(row.get(key), (int, float)):
            return float(row[key])
    return None


def run_info(run_dir: str | os.PathLike) -> RunInfo:
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    status = read_status(run_dir)
    state = status.get("state", "queued")
    if is_interrupted(status):
        state = "interrupted"
    elif not status and time.time() - (run_dir / CONFIG).stat().st_mtime > STALE_S:
        state = "interrupted"  # killed between writing config.json and its first status line
    return RunInfo(
        run_id=run_dir.name, path=run_dir, state=state, epoch=int(status.get("epoch", 0)),
        epochs=int(cfg["config"].get("epochs", 0)), step=int(status.get("step", 0)),
        total_steps=int(status.get("total_steps", 0)), genotype=_last_genotype(run_dir),
        valid_acc=_last_metric(read_metrics(run_dir), "valid_acc"), created=str(cfg.get("created", "")),
        config=cfg["config"], error=status.get("error"),
    )


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every readable run under the runs root, newest first; unreadable folders are left out."""
    root = runs_root(root)
    if not root.is_dir():
        return []
    runs = []
    for path in sorted(root.iterdir(), reverse=True):
        if path.is_dir() and (path / CONFIG).exists():
            try:
                runs.append(run_info(path))
            except RunDirError:
                continue
    return runs


def delete_run(run_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Delete a finished/stopped/failed/interrupted run; refuses paths outside the root and live runs."""
    root_path = runs_root(root).resolve()
    path = Path(run_dir).resolve()
    if path.parent != root_path or not (path / CONFIG).exists():
        raise RunDirError(f"{run_dir} is not a run directory under {root_path}")
    status = read_status(path)
    if status.get("state") in ACTIVE_STATES and not is_interrupted(status):
        raise RunDirError(f"{path.name} is {status['state']}; stop it before deleting it")
    shutil.rmtree(path)


def request_control(run_dir: str | os.PathLike, command: str) -> int:
    """Append a request (pause, resume, step, stop, derive) to control.json; the loop polls it."""
    if command not in ("pause", "resume", "step", "stop", "derive"):
        raise ValueError(f"unknown control command {command!r}")
    path = Path(run_dir) / CONTROL
    data = read_json(path, default={}) or {}
    requests = list(data.get("requests", []))[-49:]
    seq = int(data.get("seq", 0)) + 1
    requests.append({"seq": seq, "command": command, "time": time.time()})
    write_json_atomic(path, {"seq": seq, "requests": requests})
    return seq


def read_control(run_dir: str | os.PathLike, after: int) -> list[dict[str, Any]]:
    """Requests in control.json with a sequence number above `after`, oldest first."""
    data = read_json(Path(run_dir) / CONTROL, default={}) or {}
    return [r for r in data.get("requests", []) if isinstance(r, dict) and int(r.get("seq", 0)) > after]


def snapshot_from_dir(run_dir: str | os.PathLike, recent: int = 500) -> Snapshot:
    """The same picture the in-process loop publishes, rebuilt from the files (follow mode)."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    status = read_status(run_dir)
    alphas_rows = read_alphas(run_dir)
    metrics = read_metrics(run_dir)
    alphas, weights, initial = {}, {}, {}
    if alphas_rows:
        last = alphas_rows[-1]
        alphas = {k: np.asarray(last[k], dtype=np.float32) for k in ("normal", "reduce")}
        weights, initial = weights_of(last), weights_of(alphas_rows[0])
    genos = read_genotypes(run_dir)
    epoch_geno = None
    if len(genos) >= 2:
        from .genotype import Genotype

        try:
            epoch_geno = Genotype.from_dict(genos[-2]["genotype"])
        except (KeyError, TypeError, ValueError):
            epoch_geno = None
    return Snapshot(
        run_id=info.run_id, run_dir=str(run_dir), state=info.state, epoch=info.epoch, epochs=info.epochs,
        step=info.step, steps_per_epoch=int(status.get("steps_per_epoch", 0)), total_steps=info.total_steps,
        steps_per_s=status.get("steps_per_s"), eta_s=status.get("eta_s"), device=str(status.get("device", "")),
        alphas=alphas, weights=weights, initial_weights=initial, genotype=info.genotype, epoch_genotype=epoch_geno,
        metrics=tuple(metrics[-recent:]), message=status.get("message"), error=status.get("error"),
        config=info.config, updated_at=float(status.get("updated", 0.0)),
    )
