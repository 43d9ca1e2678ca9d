"""Lifecycle hooks of a search, and the observer that writes the run directory off the training thread.

The loop calls a handful of hooks in a fixed order:

    on_run_start -> (on_step_end ... on_epoch_end)* -> on_run_end      (on_exception before on_run_end)
    on_state whenever the state changes (running, paused, stopping, ...)

An observer overrides what it needs; defaults do nothing. `RunDirWriter` is the observer that owns the
files: it turns events into lines and checkpoints and hands them to a writer thread through a bounded
queue, so the training thread never waits on the disk (unless the queue is full: back-pressure rather
than unbounded memory).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rundir
from .checkpoint import save_checkpoint

__all__ = ["Callback", "CallbackList", "StepEvent", "RunDirWriter"]


@dataclass(frozen=True)
class StepEvent:
    step: int                              # global steps done, this one included
    epoch: int
    status: dict[str, Any]                 # fields for status.json (state, epoch, step, eta_s, ...)
    metrics: dict[str, Any] | None = None  # a metrics.jsonl row when this step is logged
    alphas: dict[str, Any] | None = None   # an alphas.jsonl row when this step is logged
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)  # cloned state when one is due


class Callback:
    def on_run_start(self, info: dict[str, Any]) -> None: ...
    def on_step_end(self, event: StepEvent) -> None: ...
    def on_epoch_end(self, event: StepEvent, genotype_row: dict[str, Any]) -> None: ...
    def on_state(self, status: dict[str, Any]) -> None: ...
    def on_exception(self, exc: BaseException, traceback_text: str) -> None: ...
    def on_run_end(self, status: dict[str, Any]) -> None: ...


class CallbackList(Callback):
    """One dispatcher: calls each observer in order; an observer's own error never kills the search."""

    def __init__(self, callbacks: list[Callback] | None = None):
        self.callbacks = list(callbacks or [])
        self.errors: list[str] = []

    def _call(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            try:
                getattr(cb, name)(*args)
            except Exception as e:  # noqa: BLE001 - an observer must not end the run
                self.errors.append(f"{type(cb).__name__}.{name}: {e!r}")

    def on_run_start(self, info):  # noqa: D102
        self._call("on_run_start", info)

    def on_step_end(self, event):  # noqa: D102
        self._call("on_step_end", event)

    def on_epoch_end(self, event, genotype_row):  # noqa: D102
        self._call("on_epoch_end", event, genotype_row)

    def on_state(self, status):  # noqa: D102
        self._call("on_state", status)

    def on_exception(self, exc, traceback_text):  # noqa: D102
        self._call("on_exception", exc, traceback_text)

    def on_run_end(self, status):  # noqa: D102
        self._call("on_run_end", status)


_STOP = object()


class RunDirWriter(Callback):
    """Writes metrics/alphas/genotypes lines, status.json and checkpoints from a writer thread."""

    def __init__(self, run_dir: str | Path, max_pending: int = 256):
        self.run_dir = Path(run_dir)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._drain, name="dartboard-writer", daemon=True)
        self._closed = False
        self._last_status = 0.0
        self.error: str | None = None
        self._thread.start()

    # -- hooks (training thread): build plain data, enqueue, return
    def on_run_start(self, info: dict[str, Any]) -> None:
        self._put(lambda: rundir.write_status(self.run_dir, **info["status"]))

    def on_step_end(self, event: StepEvent) -> None:
        path = self.run_dir
        if event.metrics is not None:
            row = event.metrics
            self._put(lambda: rundir.append_jsonl(path / rundir.METRICS, [row]))
        if event.alphas is not None:
            arow = event.alphas
            self._put(lambda: rundir.append_jsonl(path / rundir.ALPHAS, [arow]))
        if event.checkpoint is not None:
            state = event.checkpoint
            self._put(lambda: save_checkpoint(path / rundir.CHECKPOINT, state))
        # status.json at most every second: it is a heartbeat and a progress line, not a log
        now = time.monotonic()
        if event.checkpoint is not None or now - self._last_status >= 1.0:
            self._last_status = now
            status = event.status
            self._put(lambda: rundir.write_status(path, **status))

    def on_epoch_end(self, event: StepEvent, genotype_row: dict[str, Any]) -> None:
        self._put(lambda: rundir.append_jsonl(self.run_dir / rundir.GENOTYPES, [genotype_row]))

    def on_state(self, status: dict[str, Any]) -> None:
        self._put(lambda: rundir.write_status(self.run_dir, **status))

    def on_run_end(self, status: dict[str, Any]) -> None:
        self._put(lambda: rundir.write_status(self.run_dir, **status))
        self.close()

    def write_genotype(self, row: dict[str, Any]) -> None:
        """An explicit derive: one more genotypes.jsonl line."""
        self._put(lambda: rundir.append_jsonl(self.run_dir / rundir.GENOTYPES, [row]))

    # -- writer thread
    def _put(self, job: Callable[[], None]) -> None:
        if not self._closed:
            self._queue.put(job)

    def _drain(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            try:
                job()
            except Exception as e:  # noqa: BLE001 - keep writing the rest; the loop reads .error
                self.error = f"writing {self.run_dir}: {e!r}"

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything queued so far is on disk."""
        done = threading.Event()
        self._put(done.set)
        done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Drain the queue and stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
