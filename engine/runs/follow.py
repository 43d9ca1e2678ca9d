"""Following a run written by another process (command line, another machine on a shared disk): its
snapshot rebuilt from the run directory, and its controls sent through control.json."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.runs import rundir
from engine.runs.catalog import run_info
from engine.runs.control_file import request_control
from engine.runs.snapshot import ACTIVE_STATES, Snapshot
from engine.variants import arch_of, record_weights

__all__ = ["snapshot_from_dir", "Follower"]


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _real(value: Any) -> float | None:
    """A finite number from status.json, else None: anyone can write that file, and a page must still draw."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def snapshot_from_dir(run_dir: str | os.PathLike, recent: int = 500) -> Snapshot:
    """The same picture the in-process loop publishes, rebuilt from the files (follow mode)."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    status = rundir.read_status(run_dir)
    alphas_rows = rundir.read_alphas(run_dir)
    metrics = rundir.read_metrics(run_dir)
    alphas, weights, initial = {}, {}, {}
    if alphas_rows:
        variant = info.config  # the run's own relaxation, with its options, turns alphas into weights
        alphas = {k: a.astype(np.float32) for k, a in arch_of(alphas_rows[-1]).items()}
        weights = record_weights(alphas_rows[-1], variant)
        initial = record_weights(alphas_rows[0], variant)
    genos = rundir.read_genotypes(run_dir)
    space = rundir.run_space(run_dir)
    epoch_geno = None
    if len(genos) >= 2:
        try:
            epoch_geno = space.genotype_from_dict(genos[-2]["genotype"])
        except (KeyError, TypeError, ValueError):
            epoch_geno = None
    return Snapshot(
        run_id=info.run_id, run_dir=str(run_dir), state=info.state, epoch=info.epoch, epochs=info.epochs,
        step=info.step, steps_per_epoch=_count(status.get("steps_per_epoch")), total_steps=info.total_steps,
        steps_per_s=_real(status.get("steps_per_s")), eta_s=_real(status.get("eta_s")),
        device=str(status.get("device", "")), space=space.name,
        alphas=alphas, weights=weights, initial_weights=initial, genotype=info.genotype, epoch_genotype=epoch_geno,
        metrics=tuple(metrics[-recent:]), message=_text(status.get("message")), error=_text(status.get("error")),
        config=info.config, updated_at=_real(status.get("updated")) or 0.0,
    )


class Follower:
    """A run written by another process: the snapshot is rebuilt from its files (at most every
    `min_interval_s`, and only when they changed or the run is active), and controls go through its
    control.json."""

    def __init__(self, run_dir: str | os.PathLike, min_interval_s: float = 0.5):
        self.run_dir = Path(run_dir)
        rundir.read_config(self.run_dir)  # a clear RunDirError now rather than later
        self.run_id = self.run_dir.name
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._key: tuple | None = None
        self._min_interval_s = min_interval_s
        self._checked = 0.0

    def _file_key(self) -> tuple:
        key = []
        for name in (rundir.STATUS, rundir.ALPHAS, rundir.METRICS, rundir.GENOTYPES):
            try:
                st = (self.run_dir / name).stat()
                key.append((st.st_mtime_ns, st.st_size))
            except OSError:
                key.append(None)
        return tuple(key)

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if self._snap is None or now - self._checked >= self._min_interval_s:
                self._checked = now
                key = self._file_key()
                if key != self._key or self._snap.active:  # re-read while active: "interrupted" needs a clock
                    self._snap, self._key = snapshot_from_dir(self.run_dir), key
            return self._snap

    @property
    def alive(self) -> bool:
        return self.snapshot().state in ACTIVE_STATES

    def _request(self, command: str) -> None:
        if self.alive:
            request_control(self.run_dir, command)

    def pause(self) -> None:
        self._request("pause")

    def resume(self) -> None:
        self._request("resume")

    def step_once(self) -> bool:
        if self.snapshot().state != "paused":
            return False
        self._request("step")
        return True

    def stop(self) -> None:
        self._request("stop")

    def derive_now(self) -> None:
        self._request("derive")
