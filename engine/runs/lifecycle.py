"""One run's lifecycle, whatever the job: the machinery a search and a training share.

A `RunLoop` owns what does not depend on what is stepped: the states (queued, running, paused, stopping, then
stopped, finished, failed or interrupted) published to the hooks (engine/runs/hooks.py) and as a `Snapshot`, the
heartbeat, the cooperative control gate with control.json polled between steps, the pause when the disk refuses a
write (lines wait in memory, in order), the checkpoint cadence, resume and rollback (lifecycle_resume.py), finish
and fail. lifecycle_launch.py starts it under the run directory's lock. A job (the search in engine/search/loop.py,
the training in engine/train/loop.py) subclasses it and fills in how to build its parts, take one step and
describe itself. The dependencies run one way: jobs import this, never the reverse.
"""

from __future__ import annotations

import collections
import datetime as _dt
import platform
import sys
import time
import traceback
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch

from engine.core.atomic import write_json_atomic
from engine.core.config import ConfigError
from engine.runs import control_file, rundir
from engine.runs.checkpoint import CheckpointError
from engine.runs.control import Control
from engine.runs.hooks import CallbackList, RunDirWriter, StepEvent
from engine.runs.lifecycle_resume import RECENT, Resumable, seed_everything
from engine.runs.liveness import HEARTBEAT_S
from engine.runs.snapshot import Snapshot, SnapshotBox
from engine.runtime.device import amp_dtype, select_device
from engine.runtime.distributed import SINGLE, PeerLost, World, agree
from engine.version import version_record

__all__ = ["RunLoop"]


class RunLoop(Resumable):
    """The shared run machinery; a job subclass sets KIND, OOM_ADVICE, SPLITS and Meters and implements the
    abstract methods. `setup` checks and builds everything before it writes; `run` steps until the end or a stop."""

    KIND: str                # "search" or "train": config.json's kind, and the command that resumes the run
    SPACE = "cnn"            # the search space of the job's cells (the snapshot's `space`)
    OOM_ADVICE: str          # what to lower when the job runs out of memory
    SPLITS: tuple[str, ...]  # the data's split sizes that config.json records
    scheduler: Any           # the weights' learning-rate schedule, stepped once an epoch

    def __init__(self, config: Any, run_dir: Path, control: Control, hooks: CallbackList, writer: RunDirWriter,
                 box: SnapshotBox, world: World = SINGLE):
        self.cfg, self.run_dir, self.control, self.hooks, self.writer, self.box = (
            config, run_dir, control, hooks, writer, box)
        self.world = world
        self.state, self.message, self.error = "queued", None, None
        self.step = self.epoch = self.batch = 0
        self.steps_per_epoch = self.total_steps = 0
        self.device = torch.device("cpu")
        self.model: Any = None
        self.data: Any = None
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self.meters = self.Meters()
        self.step_time_s: float | None = None
        self.wall_s = 0.0
        self._iters: Any = None
        self._last_ckpt = time.monotonic()
        self._last_heartbeat = 0.0
        self._poller: control_file.ControlPoller | None = None
        self.started = False  # setup checked everything; from here on a failure is recorded in the run directory
        self._publish()

    # ---------------------------------------------------------------- what a job fills in
    @abstractmethod
    def _build(self) -> None:
        """Load the data, set `steps_per_epoch`, build the model and its optimisers; refuse a config that cannot
        run (ConfigError). Nothing is written yet."""

    @abstractmethod
    def _begin(self) -> None:
        """A new run (not a resume): after config.json, before the first checkpoint."""

    @abstractmethod
    def _open_epoch(self) -> Any:
        """The iterators of the epoch from the current position (a new epoch, or a resume mid-epoch)."""

    @abstractmethod
    def _one_step(self) -> None:
        """One step; it ends with `_end_step` and `_after_step`, or with `_non_finite`."""

    def _record_extra(self) -> dict[str, Any]:
        """What config.json records beside the config, the environment and the data: nothing more by default."""
        return {}

    @abstractmethod
    def _picture(self) -> dict[str, Any]:
        """The snapshot's job-specific fields (genotype, architecture weights)."""

    def _derive(self) -> None:
        """A derive request (Derive now): a job without architecture parameters drops it."""

    def _stopping(self) -> None:
        """A stop before the end, before its checkpoint: a job may record where it stopped."""

    # ---------------------------------------------------------------- setup
    def setup(self, resume: bool) -> None:
        cfg = self.cfg
        self.device = select_device(cfg.device)
        if cfg.amp:
            amp_dtype(self.device)  # refuses a device without a usable autocast dtype before any work
        seed_everything(cfg.seed)
        self._build()
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if self.world.main:  # rank 0 listens to control.json and tells the others (distributed.agree)
            self._poller = control_file.ControlPoller(self.run_dir, self.control.apply)
        if resume:
            self._load(rundir.read_config(self.run_dir))
        else:
            if self.world.main:
                write_json_atomic(self.run_dir / rundir.CONFIG, self._config_record())
            self._begin()
        self.started = True
        self._publish()
        self.hooks.on_run_start({"run_dir": str(self.run_dir), "config": cfg, "status": self._status()})
        if not resume:
            self._checkpoint_now()  # step 0: a rollback point for a NaN before the first periodic one

    def _config_record(self) -> dict[str, Any]:
        d = self.data
        return {
            "kind": self.KIND, "config": self.cfg.to_dict(), **self._record_extra(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "dartboard": version_record(),  # {"version", "git_commit"}: which code wrote this run
            "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "device": str(self.device), "seed": self.cfg.seed, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "dataset": {"name": d.name, "fingerprint": d.fingerprint, "in_channels": d.in_channels,
                        "num_classes": d.num_classes, "image_size": d.image_size,
                        **{k: getattr(d, k) for k in self.SPLITS}},
        }

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        self._set_state("running")
        while self.epoch < self.cfg.epochs:
            go = self._wait_for_go() if self.world.main else True
            if not agree(go, self.world):  # rank 0's decision, at the same step on every rank
                self.control.stop()
                break
            self._set_state("running")  # a no-op unless it was paused
            self._one_step()
        if self.control.stopping and self.epoch < self.cfg.epochs:
            self._set_state("stopping")
            self._stopping()
            self._checkpoint_now()
            self._finish("stopped")
        else:
            self._hold_for_disk()
            self._finish("finished")  # `_finish` makes it failed if lines are still missing

    def _wait_for_go(self) -> bool:
        """Between steps: follow control.json, wait while paused; True = take the next step, False = stop."""
        while True:
            self._poll_control()
            if self.control.paused and not self.control.stopping:
                self._set_state("paused", self.message)
            if not self.control.gate(idle=self._idle):
                return False
            if self.writer.unwritten and not self.writer.retry():
                self._pause_for_disk()  # resumed, but the disk still refuses: no step runs before its lines are out
                continue
            return True

    def _epoch_batches(self) -> Any:
        """The epoch's iterators, opened when an epoch (or a resume) starts; the running means restart at batch 0."""
        if self._iters is None:
            self._iters = self._open_epoch()
            if self.batch == 0:
                self.meters = self.Meters()
        return self._iters

    def _count_step(self, t0: float) -> None:
        """A step that began at `t0` (perf_counter) is done: advance the position and the timing."""
        self.step += 1
        self.batch += 1
        dt = time.perf_counter() - t0
        self.wall_s += dt
        self.step_time_s = dt if self.step_time_s is None else 0.8 * self.step_time_s + 0.2 * dt

    def _pace(self) -> dict[str, Any]:
        """The timing fields that end a metrics row."""
        return {"steps_per_s": 1.0 / self.step_time_s, "wall_s": round(self.wall_s, 3), "time": time.time()}

    def _next_epoch(self) -> None:
        self.scheduler.step()
        self.epoch += 1
        self.batch = 0
        self._iters = None

    def _end_step(self, metrics: dict[str, Any] | None, alphas: dict[str, Any] | None = None, *,
                  epoch: int | None = None, checkpoint: bool = False) -> StepEvent:
        """`on_step_end` with the step's rows, and a checkpoint when asked or `checkpoint_every_s` has passed."""
        due = checkpoint or time.monotonic() - self._last_ckpt >= self.cfg.checkpoint_every_s
        event = StepEvent(self.step, self.epoch if epoch is None else epoch, self._status(), metrics, alphas,
                          self._state_dict() if due else None)
        if due:
            self._last_ckpt = time.monotonic()
        self.hooks.on_step_end(event)
        return event

    def _after_step(self) -> None:
        if self.control.take_derive():
            self._derive()
        if self.writer.error and not self.control.paused:
            self._pause_for_disk()
        self._publish()

    def _checkpoint_now(self) -> None:
        self._end_step(None, checkpoint=True)

    def _hold_for_disk(self) -> None:
        """The last step is taken but some lines are not on disk (the writer may notice a failure only now): pause
        as mid-run, so a fixed disk and a Resume still complete the run; a Stop ends it failed in `_finish`."""
        self.writer.flush()
        while self.writer.unwritten and not self.writer.retry():
            self._pause_for_disk()
            if not self.control.gate(idle=self._idle):
                return

    def _pause_for_disk(self) -> None:
        """A write failed: pause before more steps outrun the disk; the unwritten lines wait in memory, in order."""
        self._pause(f"{self.writer.error}. Paused at step {self.step} with {self.writer.unwritten} write(s) held in "
                    "memory: free space or fix the run directory, then Resume (they are written first). Stopping "
                    "now ends the run as failed, without them.")

    def _non_finite(self, losses: str, advice: str) -> None:
        """A loss was NaN or inf and no weight step was taken: roll back to the last checkpoint and pause."""
        bad_step = self.step + 1
        back = self._roll_back()
        self._pause(f"non-finite loss at step {bad_step} ({losses}); {back}. {advice}")

    def _pause(self, message: str) -> None:
        self.control.pause()
        self._set_state("paused", message)

    # ---------------------------------------------------------------- control, status, snapshot
    def _poll_control(self) -> None:
        if self._poller is not None:
            self._poller.poll()

    def _idle(self) -> None:
        """While paused: follow control.json, answer derive requests, keep the heartbeat fresh."""
        self._poll_control()
        if self.control.take_derive():
            self._derive()
            self._publish()
        if time.monotonic() - self._last_heartbeat >= HEARTBEAT_S:
            self._last_heartbeat = time.monotonic()
            self.hooks.on_state(self._status())

    def _status(self) -> dict[str, Any]:
        sps = None if not self.step_time_s else 1.0 / self.step_time_s
        eta = None if sps is None else (self.total_steps - self.step) / sps
        return {"state": self.state, "epoch": self.epoch, "step": self.step, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "steps_per_s": sps, "eta_s": eta,
                "device": str(self.device), "message": self.message, "error": self.error}

    def _set_state(self, state: str, message: str | None = None) -> None:
        if state == self.state and message == self.message:
            return
        self.state, self.message = state, message
        self._last_heartbeat = time.monotonic()
        self.hooks.on_state(self._status())
        self._publish()

    def _publish(self) -> None:
        status = self._status()
        self.box.put(Snapshot(
            run_id=self.run_dir.name, run_dir=str(self.run_dir), state=self.state, epoch=self.epoch,
            epochs=self.cfg.epochs, step=self.step, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps, steps_per_s=status["steps_per_s"], eta_s=status["eta_s"],
            device=str(self.device), space=self.SPACE, metrics=tuple(self.recent), message=self.message,
            error=self.error,
            config=self.cfg.to_dict(), updated_at=time.time(), **self._picture()))

    # ---------------------------------------------------------------- the end
    def _finish(self, state: str) -> None:
        self.writer.flush()
        if self.writer.unwritten and not self.writer.retry():
            state = "failed"  # the run directory misses lines: it must not read as finished or stopped cleanly
            self.error = (f"{self.writer.error}; {self.writer.unwritten} write(s) could not be made, so the run "
                          f"directory is incomplete after step {self.step}")
            self.message = None
        self.state = state
        self.hooks.on_run_end(self._status())
        self._publish()

    def fail(self, e: BaseException) -> None:
        """The error funnel: the run ends failed with the error (an OOM with what to lower) and the traceback in
        status.json and the snapshot; another rank's death ends it interrupted, resumable."""
        tb = traceback.format_exc()
        if isinstance(e, PeerLost) and self.started:  # another rank died: nothing wrong here, resume it
            self.state, self.error = "interrupted", None
            self.message = (f"{e}; resume it with: torchrun --nproc_per_node {self.world.size} -m engine {self.KIND} "
                            f"--resume {self.run_dir}")
            self.hooks.on_run_end(self._status())
            self._publish()
            return
        oom = isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()
        self.error = (f"out of memory: {self.OOM_ADVICE}" if oom else str(e)
                      if isinstance(e, (ConfigError, CheckpointError)) else f"{type(e).__name__}: {e}")
        self.state = "failed"
        if not self.started:  # refused before it began (a resume that does not fit): the run stays as it was
            self.writer.close()
        self.hooks.on_exception(e, tb)
        self.hooks.on_run_end({**self._status(), "error_kind": type(e).__name__, "traceback": tb[-20000:]})
        self._publish()
