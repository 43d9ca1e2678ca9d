"""DARTS-PT as a job of the dashboard: `engine.derive.pt.run_pt` on a finished or stopped search, in a daemon thread,
with its progress readable at any time and a Stop that ends it after the decision in progress.

PT saves its state after every round of decisions and before it reports them (engine/derive/pt.py), so a Stop
raised from its progress callback loses nothing: the same options on the same run continue where it stopped, from
the dashboard or from `python -m engine derive RUN --method pt`.
"""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.derive.rows import decisions

if TYPE_CHECKING:  # PT itself (torch) loads in the job's thread: engine.jobs imports without torch
    from engine.derive.pt import PTOptions

__all__ = ["PTJob", "STATES"]

STATES = ("running", "finished", "stopped", "failed")


class _Stopped(Exception):
    """Raised from PT's progress callback to end it between decisions."""


class PTJob:
    """PT on `run_dir` with `options`; `status()` is (state, decisions done, decisions in all, the last decision)."""

    def __init__(self, run_dir: str | Path, options: PTOptions, nodes: int):
        self.run_dir, self.options = Path(run_dir), options
        self.total = decisions(nodes)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.state, self.done, self.last, self.error = "running", 0, None, None
        self.genotype: Any = None
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._main, name=f"dartboard-pt-{self.run_dir.name}", daemon=True)

    def start(self) -> PTJob:
        self._thread.start()
        return self

    def _progress(self, done: int, total: int, row: dict[str, Any]) -> None:
        with self._lock:
            self.done, self.total, self.last = done, total, row
        if self._stop.is_set():
            raise _Stopped

    def _main(self) -> None:
        try:
            from engine.derive.pt import PTError, run_pt
        except Exception as e:  # the dashboard says why and stays up
            self._end("failed", f"cannot load DARTS-PT: {type(e).__name__}: {e}")
            return
        try:
            result = run_pt(self.run_dir, self.options, progress=self._progress)
        except _Stopped:
            self._end("stopped")
        except PTError as e:  # bad input: one line, as the command line says it
            self._end("failed", str(e))
        except Exception as e:  # the dashboard shows any failure and stays up
            self._end("failed", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
        else:
            with self._lock:
                self.genotype, self.done = result.genotype, self.total
            self._end("finished")

    def _end(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self.state, self.error = state, error

    def status(self) -> tuple[str, int, int, dict[str, Any] | None]:
        with self._lock:
            return self.state, self.done, self.total, self.last

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """End PT after the decision in progress (its state is saved: the same options continue it)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
