"""What makes a run continue exactly: seeding, the checkpoint's shared state, resume, rollback and log truncation.

A checkpoint holds, beside the job's own parts (its model's optimisers and schedule), the position in the data
(step, epoch, batch), every RNG state, the epoch's running sums and the wall time. A resume or a rollback after a
non-finite loss restores them all and drops the lines written after the checkpoint's step, since those steps are
redone. `Resumable` is the part of `RunLoop` (engine/runs/lifecycle.py) that does this; the job says how its
checkpoint is read, checked against the config and loaded into its parts.
"""

from __future__ import annotations

import collections
import json
import random
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.core.atomic import read_jsonl, write_bytes_atomic, write_json_atomic
from engine.runs import rundir
from engine.runs.checkpoint import CheckpointError, capture_rng, clone_state, restore_rng
from engine.runs.hooks import RunDirWriter
from engine.runtime.distributed import World, agree

__all__ = ["RECENT", "RunningMeans", "Resumable", "seed_everything", "truncate_logs"]

RECENT = 500  # metrics rows the snapshot keeps for the live curves


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RunningMeans:
    """Running means over the current epoch (what the curves show); `sums` goes into checkpoints for an exact
    resume. A job's meter names its KEYS and says how a step's outcome adds to them."""

    KEYS: tuple[str, ...] = ()

    def __init__(self, state: dict[str, float] | None = None):
        self.sums = dict(state) if state else {**dict.fromkeys(self.KEYS, 0.0), "n": 0.0}

    def add(self, amounts: dict[str, float], n: float = 1.0) -> None:
        """Add a step's amounts to the sums, and `n` (its weight: 1 a step, or its samples) to the count."""
        self.sums["n"] += n
        for k, v in amounts.items():
            self.sums[k] += v

    def means(self) -> dict[str, float]:
        n = max(self.sums["n"], 1.0)
        return {k: self.sums[k] / n for k in self.KEYS}


def _step_of(row: dict[str, Any]) -> int | None:
    step = row.get("step")
    return step if type(step) is int else None


def truncate_logs(run_dir: Path, step: int) -> None:
    """Lines written after the checkpoint's `step` belong to steps that will be redone: drop them. A line
    without an integer step is corrupt and is dropped too (it cannot be placed)."""
    for name in (rundir.METRICS, rundir.ALPHAS, rundir.GENOTYPES):
        path = run_dir / name
        rows = read_jsonl(path)
        kept = [r for r in rows if (s := _step_of(r)) is not None and s <= step]
        if path.exists():
            write_bytes_atomic(path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept).encode())


class Resumable(ABC):
    """Checkpoint state, resume and rollback for `RunLoop`; the job implements the four abstract methods."""

    Meters: type[RunningMeans]
    cfg: Any
    run_dir: Path
    writer: RunDirWriter
    world: World
    model: Any
    data: Any
    meters: RunningMeans
    recent: collections.deque[dict[str, Any]]
    step: int
    epoch: int
    batch: int
    wall_s: float
    _iters: Any

    @abstractmethod
    def _read_checkpoint(self) -> dict[str, Any]:
        """The run's checkpoint.pt, checked for the job's format and keys (a CheckpointError otherwise)."""

    @abstractmethod
    def _check_resume(self, ckpt: dict[str, Any], record: dict[str, Any]) -> None:
        """Refuse (ConfigError naming the field) a resume that would run something else than the checkpoint did;
        `record` is config.json."""

    @abstractmethod
    def _restore_parts(self, ckpt: dict[str, Any]) -> None:
        """Load the checkpoint into the model, optimisers and schedule (a CheckpointError if they do not fit)."""

    @abstractmethod
    def _parts_state(self) -> dict[str, Any]:
        """The job's entries of a checkpoint beside the model and the shared ones."""

    def _state_dict(self) -> dict[str, Any]:
        return clone_state({
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "model": self.model.state_dict(),
            **self._parts_state(), "rng": capture_rng(), "config": self.cfg.to_dict(),
            "meters": dict(self.meters.sums), "wall_s": self.wall_s, "torch": str(torch.__version__),
            "data_fingerprint": self.data.fingerprint,
        })

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self._restore_parts(ckpt)
        try:
            restore_rng(ckpt["rng"])
            self.step, self.epoch, self.batch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch"])
            self.meters = self.Meters(ckpt.get("meters"))
            self.wall_s = float(ckpt.get("wall_s", 0.0))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"the checkpoint's position or RNG state is not readable ({type(e).__name__}: "
                                  f"{e})"[:400]) from None
        self._iters = None

    def _load(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Resume: check the config against the checkpoint, restore, then (only then) touch the files. Returns
        the metrics rows up to the checkpoint."""
        ckpt = self._read_checkpoint()
        self._check_resume(ckpt, record)
        self._restore(ckpt)
        record["config"] = self.cfg.to_dict()
        record.setdefault("resumed", []).append({"step": self.step, "time": time.time()})
        if self.world.main:
            write_json_atomic(self.run_dir / rundir.CONFIG, record)
        self._truncate_logs()
        # rows up to the checkpoint only: on ranks other than 0 the files are read before rank 0 trims them
        metrics = [m for m in rundir.read_metrics(self.run_dir) if m.get("step", 0) <= self.step]
        self.recent.extend(metrics[-RECENT:])
        return metrics

    def _truncate_logs(self) -> None:
        if self.world.main:
            truncate_logs(self.run_dir, self.step)
        self.recent = collections.deque((m for m in self.recent if m["step"] <= self.step), maxlen=RECENT)

    def _roll_back(self) -> str:
        """After a non-finite loss (the step may already have spoilt the weights): back to the last checkpoint and
        its lines. Returns what happened, for the pause message."""
        self.writer.flush()
        agree(True, self.world)  # rank 0's checkpoint is on disk before any rank reads it
        try:
            self._restore(self._read_checkpoint())
            self.writer.flush()
            self._truncate_logs()
        except CheckpointError as e:
            return f"could not roll back ({e})"
        return f"rolled back to the checkpoint at step {self.step}"
