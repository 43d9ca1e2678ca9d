"""The immutable picture of a search that the dashboard draws.

The search loop builds a new `Snapshot` after each step and swaps one reference under a lock
(`SnapshotBox`); readers take the reference and draw from it without holding the lock. Everything in
it is plain data (numpy copies, tuples, dicts that nobody mutates afterwards), never a live tensor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Snapshot", "SnapshotBox", "STATES", "ACTIVE_STATES"]

STATES = ("queued", "running", "paused", "stopping", "stopped", "finished", "failed", "interrupted")
# States in which the loop is alive (the live panel keeps polling).
ACTIVE_STATES = ("queued", "running", "paused", "stopping")


@dataclass(frozen=True)
class Snapshot:
    run_id: str = ""
    run_dir: str = ""
    state: str = "queued"
    epoch: int = 0                    # 0-based epoch the next step belongs to
    epochs: int = 0
    step: int = 0                     # global steps done
    steps_per_epoch: int = 0
    total_steps: int = 0
    steps_per_s: float | None = None
    eta_s: float | None = None
    device: str = ""
    space: str = "cnn"                # the search space of the run's cells (engine.space.get_space)
    # raw (pre-softmax) architecture state: one (edges, ops) matrix per cell kind of the space ("normal" and
    # "reduce"; "recurrent"), extras beside them
    alphas: dict[str, np.ndarray] = field(default_factory=dict)
    # op weights as the search uses them (softmax rows for DARTS): (edges, ops) per cell type
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    # op weights at step 0, so a view can show the change since the start
    initial_weights: dict[str, np.ndarray] = field(default_factory=dict)
    genotype: Any = None              # the space's Genotype of the current alphas
    epoch_genotype: Any = None        # the genotype at the end of the previous epoch (for "what changed")
    metrics: tuple[dict[str, Any], ...] = ()   # recent metric rows (same keys as metrics.jsonl)
    message: str | None = None        # a note for the user (e.g. why the run paused)
    error: str | None = None          # error text when state == "failed"
    config: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0           # time.time() of the swap

    @property
    def progress(self) -> float:
        return 0.0 if self.total_steps <= 0 else min(1.0, self.step / self.total_steps)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class SnapshotBox:
    """One reference swapped under a lock: writers `put`, readers `get` a whole snapshot."""

    def __init__(self, initial: Snapshot | None = None):
        self._lock = threading.Lock()
        self._snap = initial if initial is not None else Snapshot()

    def put(self, snap: Snapshot) -> None:
        with self._lock:
            self._snap = snap

    def get(self) -> Snapshot:
        with self._lock:
            return self._snap
