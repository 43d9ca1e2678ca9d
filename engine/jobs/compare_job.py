"""A comparison as one job: the found cell, DARTS_V2 and N random cells trained one after the other with the same
TrainConfig, each an ordinary training of the registry (its own run directory and Controller), from a daemon
thread, so the dashboard can start it with one click and show its table while it runs.

`python -m engine compare` (engine/train/compare.py) trains in the foreground with signal handlers, which only
the main thread may install; this job instead starts each entrant through `Registry.start` and waits for it,
so Stop stops the entrant that is training and starts no more. The rows are those of `compare`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from engine.runs import rundir
from engine.train.compare import entrants, network_costs
from engine.train.config import TrainConfig
from engine.train.source import resolve_genotype

__all__ = ["CompareJob"]


class CompareJob:
    """Train every entrant with `config`, one at a time, through `registry`; `rows()` is the table so far."""

    def __init__(self, registry: Any, config: TrainConfig, search: str | os.PathLike | None = None,
                 random_cells: int = 2, first_seed: int = 0):
        if random_cells < 0:
            raise ValueError(f"random cells: 0 or more, got {random_cells}")
        self.registry, self.config, self.search = registry, config, search
        # every genotype argument is resolved now, so a bad one fails before any training starts
        self.entrants = [(spec, *resolve_genotype(spec)) for spec in entrants(search, random_cells, first_seed)]
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self.current: Any = None
        self.state = "queued"
        self.error: str | None = None
        self.started_at: float | None = None
        self._thread = threading.Thread(target=self._main, name="dartboard-compare", daemon=True)

    def start(self) -> CompareJob:
        self.started_at = time.time()
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop the entrant training now (after its step, with a checkpoint) and start no more."""
        self._stop.set()
        job = self.current
        if job is not None:
            job.stop()

    def rows(self) -> list[dict[str, Any]]:
        """One row per entrant trained or training: name, genotype, run_id, run_dir, state, test_acc, parameters,
        mult_adds, wall_s (the training's, end to end)."""
        with self._lock:
            done = [dict(r) for r in self._rows]
        job = self.current
        if job is not None and (not done or done[-1]["run_id"] != job.run_id):
            snap = job.snapshot()
            i = len(done)
            done.append(self._row(i, job, snap.state, None, None))
        return done

    def _row(self, i: int, job: Any, state: str, wall_s: float | None, costs: tuple | None) -> dict[str, Any]:
        spec, _, source = self.entrants[i]
        tested = [m for m in rundir.read_metrics(job.run_dir) if "test_acc" in m]
        found = self.search is not None and i == 0
        return {"name": "found" if found else source["label"], "genotype": spec, "run_id": job.run_id,
                "run_dir": str(job.run_dir), "state": state, "test_acc": tested[-1]["test_acc"] if tested else None,
                "parameters": None if costs is None else costs[0], "mult_adds": None if costs is None else costs[1],
                "wall_s": wall_s}

    def _costs(self, genotype: Any, run_dir: Any) -> tuple[int, int | None] | None:
        try:
            d = rundir.read_config(run_dir).get("dataset", {})
            return network_costs(genotype, self.config.init_channels, self.config.layers, d["num_classes"],
                                 d["in_channels"], d["image_size"])
        except (rundir.RunDirError, KeyError, TypeError, ValueError):
            return None

    def _main(self) -> None:
        self.state = "running"
        try:
            for i, (_, genotype, source) in enumerate(self.entrants):
                if self._stop.is_set():
                    break
                t0 = time.monotonic()
                job = self.current = self.registry.start(self.config, genotype=genotype, source=source,
                                                         slug=f"compare-{source['label']}-{self.config.dataset}")
                if self._stop.is_set():   # Stop came while it was starting
                    job.stop()
                job.join()
                row = self._row(i, job, job.snapshot().state, time.monotonic() - t0,
                                self._costs(genotype, job.run_dir))
                with self._lock:
                    self._rows.append(row)
            self.state = "stopped" if self._stop.is_set() else "finished"
        except Exception as err:  # any error: the job's end state carries it to the page
            self.error, self.state = f"{type(err).__name__}: {err}", "failed"
        finally:
            self.current = None
