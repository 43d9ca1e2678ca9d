"""Lifecycle hooks of a search, and the observer that writes the run directory off the training thread.

The loop calls a handful of hooks in a fixed order:

    on_run_start -> (on_step_end ... on_epoch_end)* -> on_run_end      (on_exception before on_run_end)
    on_state whenever the state changes (running, paused, stopping, ...)

An observer overrides what it needs; defaults do nothing. `RunDirWriter` is the observer that owns the
files: it turns events into lines and checkpoints and hands them to a writer thread through a bounded
queue, so the training thread never waits on the disk (unless the queue is full: back-pressure rather
than unbounded memory).

A write that fails (disk full, a read-only or vanished directory) is not dropped: it and every write
queued after it wait in order in a backlog, retried before each later write and by `retry()`, and
`error` says what failed until the backlog is empty. The loop reads `error` after every step and pauses
the search, so no more steps run than the disk has recorded.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.atomic import append_jsonl
from engine.runs import rundir

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
            except Exception as e:  # an observer must not end the run
                self.errors.append(f"{type(cb).__name__}.{name}: {e!r}")

    def on_run_start(self, info):
        self._call("on_run_start", info)

    def on_step_end(self, event):
        self._call("on_step_end", event)

    def on_epoch_end(self, event, genotype_row):
        self._call("on_epoch_end", event, genotype_row)

    def on_state(self, status):
        self._call("on_state", status)

    def on_exception(self, exc, traceback_text):
        self._call("on_exception", exc, traceback_text)

    def on_run_end(self, status):
        self._call("on_run_end", status)


_STOP = object()


class RunDirWriter(Callback):
    """Writes metrics/alphas/genotypes lines, status.json and checkpoints from a writer thread."""

    def __init__(self, run_dir: str | Path, max_pending: int = 256, dry: bool = False):
        self.run_dir = Path(run_dir)
        self.dry = dry  # a rank other than 0 under torchrun: it takes part in the search, rank 0 writes
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._drain, name="dartboard-writer", daemon=True)
        self._closed = False
        self._last_status = 0.0
        self._backlog: collections.deque[Callable[[], None]] = collections.deque()  # writes not yet on disk
        self._lock = threading.Lock()
        self.error: str | None = None  # what the oldest unwritten write failed with; None when all are on disk
        self._thread.start()

    # -- hooks (training thread): build plain data, enqueue, return
    def on_run_start(self, info: dict[str, Any]) -> None:
        self._put(lambda: rundir.write_status(self.run_dir, **info["status"]))

    def on_step_end(self, event: StepEvent) -> None:
        path = self.run_dir
        if event.metrics is not None:
            row = event.metrics
            self._put(lambda: append_jsonl(path / rundir.METRICS, [row]))
        if event.alphas is not None:
            arow = event.alphas
            self._put(lambda: append_jsonl(path / rundir.ALPHAS, [arow]))
        if event.checkpoint is not None:
            state = event.checkpoint
            from engine.runs.checkpoint import save_checkpoint  # torch: only once a job writes one

            self._put(lambda: save_checkpoint(path / rundir.CHECKPOINT, state))
        # status.json at most every second: it is a heartbeat and a progress line, not a log
        now = time.monotonic()
        if event.checkpoint is not None or now - self._last_status >= 1.0:
            self._last_status = now
            status = event.status
            self._put(lambda: rundir.write_status(path, **status))

    def on_epoch_end(self, event: StepEvent, genotype_row: dict[str, Any]) -> None:
        self._put(lambda: append_jsonl(self.run_dir / rundir.GENOTYPES, [genotype_row]))

    def on_state(self, status: dict[str, Any]) -> None:
        self._put(lambda: rundir.write_status(self.run_dir, **status))

    def on_run_end(self, status: dict[str, Any]) -> None:
        self._put(lambda: rundir.write_status(self.run_dir, **status))
        self.close()

    def write_genotype(self, row: dict[str, Any]) -> None:
        """An explicit derive: one more genotypes.jsonl line."""
        self._put(lambda: append_jsonl(self.run_dir / rundir.GENOTYPES, [row]))

    # -- writer thread
    def _put(self, job: Callable[[], None]) -> None:
        if not self._closed and not self.dry:
            self._queue.put(job)

    def _drain(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            if isinstance(job, threading.Event):  # a flush marker: everything before it was taken
                job.set()
                continue
            with self._lock:
                self._backlog.append(job)
                self._write_backlog()

    def _write_backlog(self) -> None:
        """Write the backlog oldest first; stop at the first failure, keeping it and the rest for a retry."""
        while self._backlog:
            try:
                self._backlog[0]()
            except Exception as e:  # the loop reads .error and pauses; nothing is dropped
                self.error = f"cannot write to {self.run_dir}: {e.strerror if isinstance(e, OSError) else e!r}"
                return
            self._backlog.popleft()
        self.error = None

    @property
    def unwritten(self) -> int:
        """Writes waiting in the backlog after a failure."""
        return len(self._backlog)

    def retry(self) -> bool:
        """Try the backlog again now (from any thread); True when everything queued so far is on disk."""
        self.flush()
        with self._lock:
            self._write_backlog()
            return not self._backlog

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until the writer thread has taken everything queued so far (written, or kept in the backlog)."""
        done = threading.Event()
        if self._closed:
            return
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Drain the queue and stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        with self._lock:  # one last try; whatever is still unwritten stays counted in `unwritten` and `error`
            self._write_backlog()
