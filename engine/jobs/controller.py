"""Jobs: a search or a training in a background thread (`Controller`), and the process-wide `Registry` the
dashboard holds, which also hands out `Follower`s (engine.runs.follow) for runs of other processes.

The dashboard and the engine meet here: buttons call `pause()`, `resume()`, `step_once()`, `stop()`,
`derive_now()` (all idempotent, all return at once; derive does nothing for a training), and the live panel
calls `snapshot()`. A Controller runs a search for a SearchConfig and a training (engine/train/loop.py) for a
TrainConfig with its genotype.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.jobs.pt_job import PTJob
from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.follow import Follower
from engine.runs.hooks import Callback
from engine.runs.liveness import is_interrupted
from engine.runs.snapshot import ACTIVE_STATES, Snapshot, SnapshotBox
from engine.search.config import SearchConfig
from engine.search.rnn_config import RNNSearchConfig
from engine.space.cnn.genotype import Genotype
from engine.space.rnn.train_config import RNNTrainConfig
from engine.train.config import TrainConfig

__all__ = ["JobError", "Controller", "Registry", "resume_config"]


class JobError(RuntimeError):
    """A control request that cannot be honoured (e.g. a second search while one runs)."""


def resume_config(run_dir: str | os.PathLike, overrides: dict | None = None) -> SearchConfig | RNNSearchConfig:
    """The config a search was started with (a recurrent search's for one), with the (resumable) overrides applied."""
    record = rundir.read_config(run_dir)
    config_type = RNNSearchConfig if rundir.space_name(record) == "rnn" else SearchConfig
    return config_type.from_dict({**record["config"], **(overrides or {})})


def _run_name(config: SearchConfig | RNNSearchConfig) -> str:
    """The readable part of a new search's run directory name."""
    if isinstance(config, RNNSearchConfig):
        corpus = "embedded" if config.corpus == "embedded" else Path(config.corpus).name or "corpus"
        return f"rnn-{corpus}-{config.order}"
    return f"{config.dataset}-{config.variant}-{config.order}"


class Controller:
    """One search (a SearchConfig, or an RNNSearchConfig for the recurrent space) or training (a TrainConfig or an
    RNNTrainConfig, and its genotype) in a daemon thread."""

    def __init__(self, config: SearchConfig | RNNSearchConfig | TrainConfig | RNNTrainConfig, run_dir: Path,
                 resume: bool = False, callbacks: list[Callback] | None = None, genotype: Genotype | None = None,
                 source: dict | None = None):
        self.config, self.run_dir, self.resume_run = config, Path(run_dir), resume
        self.kind = "train" if isinstance(config, (TrainConfig, RNNTrainConfig)) else "search"
        if self.kind == "train" and genotype is None:
            raise JobError("a training needs the genotype it trains")
        self.genotype, self.source = genotype, source
        self.run_id = self.run_dir.name
        self.control = Control()
        self.box = SnapshotBox(Snapshot(run_id=self.run_id, run_dir=str(self.run_dir), state="queued",
                                        epochs=config.epochs, config=config.to_dict(), updated_at=time.time()))
        self._callbacks = callbacks
        self.after_finish: Callable[[], None] | None = None  # run in this thread once the job has finished
        self._thread = threading.Thread(target=self._main, name=f"dartboard-search-{self.run_id}", daemon=True)

    def start(self) -> Controller:
        self._thread.start()
        return self

    def _main(self) -> None:  # the final state is in the snapshot and status.json
        # The loops (and torch) load with the first job, not with the dashboard's first page; a failed import
        # ends the job failed with the reason rather than leaving it queued forever.
        try:
            if isinstance(self.config, RNNTrainConfig):
                from engine.train.rnn_loop import run_rnn_training as run_training
            elif self.kind == "train":
                from engine.train.loop import run_training
            elif isinstance(self.config, RNNSearchConfig):
                from engine.search.rnn_loop import run_rnn_search as run_search
            else:
                from engine.search.loop import run_search
        except Exception as e:
            self.box.put(dataclasses.replace(self.box.get(), state="failed", updated_at=time.time(),
                                             error=f"cannot load the {self.kind} engine: {type(e).__name__}: {e}"))
            return
        if self.kind == "train":
            run_training(self.config, self.genotype, self.run_dir, source=self.source, control=self.control,
                         callbacks=self._callbacks, box=self.box, resume=self.resume_run)
        else:
            state = run_search(self.config, self.run_dir, control=self.control, callbacks=self._callbacks,
                               box=self.box, resume=self.resume_run)
            if state == "finished" and self.after_finish is not None:
                self.after_finish()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        return self.box.get()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def step_once(self) -> bool:
        return self.control.step_once()

    def stop(self) -> None:
        self.control.stop()

    def derive_now(self) -> None:
        if self.kind == "search":  # a training has no architecture to derive from
            self.control.derive_now()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


class Registry:
    """Every job of this process, by run id. One search or training runs at a time (they would share the cores)."""

    def __init__(self, runs_dir: str | os.PathLike | None = None):
        self.runs_dir = rundir.runs_root(runs_dir)
        self._lock = threading.Lock()
        self._jobs: dict[str, Controller | Follower] = {}
        self._current: str | None = None
        self.pt_jobs: dict[str, PTJob] = {}  # DARTS-PT on ended searches, by run id (engine/jobs/pt_job.py)

    def _running(self) -> Controller | None:
        return next((j for j in self._jobs.values() if isinstance(j, Controller) and j.alive), None)

    def running(self) -> Controller | None:
        """The search this process is running, if any."""
        with self._lock:
            return self._running()

    def start(self, config: SearchConfig | RNNSearchConfig | TrainConfig | None = None,
              resume: str | os.PathLike | None = None, overrides: dict | None = None, slug: str | None = None,
              genotype: Genotype | None = None, source: dict | None = None) -> Controller:
        """Start a new search (a SearchConfig or an RNNSearchConfig), a new training (a TrainConfig, its genotype
        and where it came from), or resume a run directory of either kind (resume, optional overrides)."""
        with self._lock:
            running = self._running()
            if running is not None:
                raise JobError(f"a {running.kind} is already running ({running.run_id}); stop it before starting "
                               "another")
            if resume is not None:
                run_dir = Path(resume)
                status = rundir.read_status(run_dir)
                if status.get("state") in ACTIVE_STATES and not is_interrupted(status):
                    raise JobError(f"{run_dir.name} is still {status['state']} in another process; "
                                   "stop it there (or wait) before resuming it here")
                if rundir.read_config(run_dir).get("kind") in ("train", "rnn_train"):
                    from engine.train.run import resume_train_config

                    cfg, geno, src = resume_train_config(run_dir, overrides)
                    job = Controller(cfg, run_dir, resume=True, genotype=geno, source=src)
                else:
                    job = Controller(resume_config(run_dir, overrides), run_dir, resume=True)
            elif isinstance(config, (TrainConfig, RNNTrainConfig)):
                label = (source or {}).get("label", "genotype")
                data = getattr(config, "dataset", None) or "text"
                job = Controller(config, rundir.new_run_dir(self.runs_dir, slug or f"train-{label}-{data}"),
                                 genotype=genotype, source=source)
            else:
                if config is None:
                    raise JobError("nothing to start: give a config or a run directory to resume")
                job = Controller(config, rundir.new_run_dir(self.runs_dir, slug or _run_name(config)))
                if getattr(config, "derive_method", "argmax") == "pt":  # DARTS-PT once the search has finished
                    job.after_finish = lambda: self._pt_after(job, config.nodes)
            self._jobs[job.run_id] = job
            if job.kind == "search":  # the Search page's run; the Train page finds trainings by kind
                self._current = job.run_id
            return job.start()

    def start_pt(self, run_dir: str | os.PathLike, nodes: int, options: Any = None) -> PTJob:
        """DARTS-PT on an ended search (default options unless `options`, an engine.derive.pt.PTOptions), as a job
        of its own whose progress pages read; the search's own files are not touched."""
        if options is None:
            from engine.derive.pt import PTOptions

            options = PTOptions()
        with self._lock:
            busy = next((k for k, j in self.pt_jobs.items() if j.alive), None)
            if busy is not None:
                raise JobError(f"DARTS-PT is running on {busy}; one at a time")
            job = PTJob(run_dir, options, nodes)
            self.pt_jobs[Path(run_dir).name] = job
        return job.start()

    def _pt_after(self, job: Controller, nodes: int) -> None:
        """derive_method=pt: PT on the search `job` just finished, waited for in its thread (one job at a time);
        a PT that cannot start says why in the run's snapshot."""
        try:
            self.start_pt(job.run_dir, nodes).join()
        except (JobError, ValueError, OSError) as e:
            job.box.put(dataclasses.replace(job.box.get(), message=f"derive_method=pt: DARTS-PT did not start: {e}",
                                            updated_at=time.time()))

    def follow(self, run_dir: str | os.PathLike) -> Controller | Follower:
        run_dir = Path(run_dir)
        with self._lock:
            job = self._jobs.get(run_dir.name)
            if isinstance(job, Controller) and job.alive:
                return job
            job = Follower(run_dir)
            self._jobs[job.run_id] = job
            return job

    def get(self, run_id: str) -> Controller | Follower | None:
        with self._lock:
            return self._jobs.get(run_id)

    def jobs(self) -> list[Controller | Follower]:
        with self._lock:
            return list(self._jobs.values())

    def current(self) -> Controller | Follower | None:
        with self._lock:
            return self._jobs.get(self._current) if self._current else None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every search of this process and wait for it (tests, server shutdown)."""
        for job in self.jobs():
            if isinstance(job, Controller):
                job.stop()
        deadline = time.monotonic() + timeout
        for job in self.jobs():
            if isinstance(job, Controller):
                job.join(max(0.0, deadline - time.monotonic()))
