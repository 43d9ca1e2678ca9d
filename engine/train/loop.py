"""Training the network built from a genotype, as an ordinary function: config + genotype + run directory.

The same run machinery as a search (engine/search/loop.py): an exclusive `.run.lock`, the hooks and the writer
thread (engine/runs/hooks.py) for every file, `Control.gate()` between steps with control.json polled
(engine/runs/control_file.py), checkpoints through engine/runs/checkpoint.py, a snapshot in a `SnapshotBox`. One step
is one SGD step on an augmented training batch; each epoch ends with the test-set score, the schedule's
step and a checkpoint. Derive does not apply to a training (it has no architecture parameters).
"""

from __future__ import annotations

import collections
import datetime as _dt
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from engine.core.atomic import write_json_atomic
from engine.core.config import ConfigError
from engine.nn.network import NetworkCIFAR, count_parameters
from engine.runs import control_file, rundir
from engine.runs.checkpoint import CheckpointError, capture_rng, clone_state, restore_rng
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter, StepEvent
from engine.runs.liveness import HEARTBEAT_S
from engine.runs.snapshot import Snapshot, SnapshotBox
from engine.runs.tensorboard import TensorBoardLog
from engine.runtime.device import amp_dtype, select_device
from engine.search.resume import truncate_logs
from engine.space.cnn.genotype import Genotype
from engine.train.config import TrainConfig
from engine.train.data import load_train_data
from engine.train.resume import TRAIN_FORMAT, check_train_resume, load_train_checkpoint, restore_train_state
from engine.train.step import TrainMeters, auxiliary_fits, evaluate, oom_hint, seed_everything, train_step

__all__ = ["run_training"]

_RECENT = 500


def run_training(config: TrainConfig, genotype: Genotype, run_dir: str | Path, *, source: dict[str, Any] | None = None,
                 control: Control | None = None, callbacks: list[Callback] | None = None,
                 box: SnapshotBox | None = None, resume: bool = False) -> str:
    """Train (or resume) writing `run_dir`; returns the final state. A failure never raises: it ends up in
    status.json, the snapshot and `on_exception`. Until setup has checked everything it writes nothing."""
    run_dir, control, box = Path(run_dir), control or Control(), box or SnapshotBox()
    lock = FileLock(run_dir / rundir.RUN_LOCK, blocking=False)
    try:
        lock.acquire()
    except (Timeout, OSError) as e:
        err = rundir.RunDirError(f"{run_dir} is being written by another process; stop that one first"
                                 if isinstance(e, Timeout) else f"cannot lock {run_dir}: {e}")
        box.put(Snapshot(run_id=run_dir.name, run_dir=str(run_dir), state="failed", config=config.to_dict(),
                         error=str(err), updated_at=time.time()))
        others = CallbackList(list(callbacks or []))  # nothing is written: the run belongs to the other process
        others.on_exception(err, ""), others.on_run_end({"state": "failed", "step": 0, "error": str(err)})
        return "failed"
    writer = RunDirWriter(run_dir)
    loop = _TrainLoop(config, genotype, source or {}, run_dir, control,
                      CallbackList([writer, TensorBoardLog(run_dir), *(callbacks or [])]), writer, box)
    try:
        loop.setup(resume)
        loop.run()
    except BaseException as e:  # the one funnel for every error of a run
        loop.fail(e)
        if not isinstance(e, Exception):
            raise
    finally:
        writer.close()
        lock.release()
    if loop.state == "failed" and not resume and not (run_dir / rundir.CONFIG).exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # failed before it began: no run to keep
    return loop.state


class _TrainLoop:
    def __init__(self, config: TrainConfig, genotype: Genotype, source: dict[str, Any], run_dir: Path,
                 control: Control, hooks: CallbackList, writer: RunDirWriter, box: SnapshotBox):
        self.cfg, self.genotype, self.source, self.run_dir = config, genotype, source, run_dir
        self.control, self.hooks, self.writer, self.box = control, hooks, writer, box
        self.state, self.message, self.error = "queued", None, None
        self.step = self.epoch = self.batch = self.steps_per_epoch = self.total_steps = 0
        self.device, self.model, self.started = torch.device("cpu"), None, False
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=_RECENT)
        self.meters, self.step_time_s, self.wall_s = TrainMeters(), None, 0.0
        self._iters = None
        self._last_ckpt = self._last_heartbeat = time.monotonic()
        self._publish()

    def setup(self, resume: bool) -> None:
        cfg = self.cfg
        self.device = select_device(cfg.device)
        if cfg.amp:
            amp_dtype(self.device)
        seed_everything(cfg.seed)
        self.data = load_train_data(cfg)
        if cfg.auxiliary_weight > 0 and not auxiliary_fits(self.data.image_size):
            raise ConfigError("auxiliary_weight", cfg.auxiliary_weight, f"0 at {self.data.image_size}x"
                              f"{self.data.image_size} input: the auxiliary head needs about 32x32 (image_size 29-40)")
        self.steps_per_epoch = self.data.steps_per_epoch(cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.model = NetworkCIFAR(cfg.init_channels, self.data.num_classes, cfg.layers, cfg.auxiliary_weight > 0,
                                  self.genotype, in_channels=self.data.in_channels).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, float(cfg.epochs), cfg.lr_min)
        self._poller = control_file.ControlPoller(self.run_dir, self.control.apply)
        if resume:
            self._load(rundir.read_config(self.run_dir))
        else:
            write_json_atomic(self.run_dir / rundir.CONFIG, self._config_record())
            self.writer.write_genotype({"step": 0, "epoch": 0, "kind": "train", "genotype": self.genotype.to_dict()})
        self.started = True
        self._publish()
        self.hooks.on_run_start({"run_dir": str(self.run_dir), "config": cfg, "status": self._status()})
        if not resume:
            self._checkpoint_now()

    def _config_record(self) -> dict[str, Any]:
        d = self.data
        return {
            "kind": "train", "config": self.cfg.to_dict(), "genotype": self.genotype.to_dict(), "source": self.source,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "torch": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "device": str(self.device),
            "seed": self.cfg.seed, "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "parameters": count_parameters(self.model),
            "dataset": {"name": d.name, "fingerprint": d.fingerprint, "in_channels": d.in_channels,
                        "num_classes": d.num_classes, "image_size": d.image_size, "num_train": d.num_train,
                        "num_test": d.num_test},
        }

    def _load(self, record: dict[str, Any]) -> None:
        ckpt = load_train_checkpoint(self.run_dir / rundir.CHECKPOINT)
        check_train_resume(ckpt, self.cfg, self.genotype, self.data.fingerprint)
        self._restore(ckpt)
        record["config"] = self.cfg.to_dict()
        record.setdefault("resumed", []).append({"step": self.step, "time": time.time()})
        write_json_atomic(self.run_dir / rundir.CONFIG, record)
        truncate_logs(self.run_dir, self.step)
        self.recent.extend(rundir.read_metrics(self.run_dir)[-_RECENT:])

    def _restore(self, ckpt: dict[str, Any]) -> None:
        restore_train_state(ckpt, self.model, self.optimizer, self.scheduler)
        try:
            restore_rng(ckpt["rng"])
            self.step, self.epoch, self.batch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch"])
            self.meters, self.wall_s = TrainMeters(ckpt.get("meters")), float(ckpt.get("wall_s", 0.0))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"the checkpoint's position or RNG state is not readable ({e})"[:400]) from None
        self._iters = None

    def _state_dict(self) -> dict[str, Any]:
        return clone_state({
            "format": TRAIN_FORMAT, "step": self.step, "epoch": self.epoch, "batch": self.batch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": capture_rng(), "config": self.cfg.to_dict(),
            "genotype": self.genotype.to_dict(), "source": self.source, "meters": dict(self.meters.sums),
            "wall_s": self.wall_s, "torch": str(torch.__version__), "data_fingerprint": self.data.fingerprint,
            "num_classes": self.data.num_classes, "in_channels": self.data.in_channels,
            "image_size": self.data.image_size, "mean": list(self.data.mean), "std": list(self.data.std),
        })

    def run(self) -> None:
        self._set_state("running")
        while self.epoch < self.cfg.epochs:
            self._poller.poll()
            if self.control.paused and not self.control.stopping:
                self._set_state("paused", self.message)
            if not self.control.gate(idle=self._idle):
                break
            if self.writer.unwritten and not self.writer.retry():
                self._pause(f"{self.writer.error}. Paused at step {self.step}: free space or fix the run directory, "
                            "then Resume")
                continue
            self._set_state("running")  # a no-op unless it was paused
            self._one_step()
            self.control.take_derive()  # derive is N/A for a training: a request is dropped
            if self.writer.error and not self.control.paused:
                self._pause(f"{self.writer.error}. Paused at step {self.step} with {self.writer.unwritten} write(s) "
                            "held in memory: free space or fix the run directory, then Resume")
            self._publish()
        if self.control.stopping and self.epoch < self.cfg.epochs:
            self._set_state("stopping")
            self._checkpoint_now()
            self._finish("stopped")
        else:
            self._hold_for_disk()
            self._finish("finished")  # `_finish` makes it failed if lines are still missing

    def _hold_for_disk(self) -> None:
        """The last step is taken but some lines are not on disk: pause as mid-run, so a fixed disk and a Resume
        still complete the training; a Stop ends it failed in `_finish`."""
        self.writer.flush()
        while self.writer.unwritten and not self.writer.retry():
            self._pause(f"{self.writer.error}. Paused after the last step ({self.step}) with {self.writer.unwritten} "
                        "write(s) held in memory: free space or fix the run directory, then Resume")
            if not self.control.gate(idle=self._idle):
                return

    def _one_step(self) -> None:
        cfg = self.cfg
        if self._iters is None:
            self._iters = self.data.batches(self.epoch, cfg.batch_size, start=self.batch)
            self.model.drop_path_prob = cfg.drop_path_prob * self.epoch / cfg.epochs  # the reference's linear ramp
            if self.batch == 0:
                self.meters = TrainMeters()
        t0 = time.perf_counter()
        batch = tuple(t.to(self.device, non_blocking=True) for t in next(self._iters))
        out = train_step(self.model, self.optimizer, batch, cfg, self.device)
        if not out.finite:
            return self._non_finite(out.loss)
        self.step, self.batch = self.step + 1, self.batch + 1
        dt = time.perf_counter() - t0
        self.wall_s += dt
        self.step_time_s = dt if self.step_time_s is None else 0.8 * self.step_time_s + 0.2 * dt
        self.meters.update(out)
        end = self.batch == self.steps_per_epoch
        row = None
        if end or self.step % cfg.log_every == 0:
            row = {"step": self.step, "epoch": self.epoch, **self.meters.means(), "lr": out.lr}
        if end:
            row |= evaluate(self.model, self.data.test_batches(cfg.batch_size), self.device, cfg.amp)
            self.scheduler.step()
            self.epoch, self.batch, self._iters = self.epoch + 1, 0, None
        if row is not None:
            row |= {"steps_per_s": 1.0 / self.step_time_s, "wall_s": round(self.wall_s, 3), "time": time.time()}
            self.recent.append(row)
        if due := end or time.monotonic() - self._last_ckpt >= cfg.checkpoint_every_s:
            self._last_ckpt = time.monotonic()
        self.hooks.on_step_end(StepEvent(self.step, self.epoch, self._status(), row, None,
                                         self._state_dict() if due else None))

    def _non_finite(self, loss: float) -> None:
        bad_step = self.step + 1
        self.writer.flush()
        try:
            self._restore(load_train_checkpoint(self.run_dir / rundir.CHECKPOINT))
            self.writer.flush()
            truncate_logs(self.run_dir, self.step)
            self.recent = collections.deque((m for m in self.recent if m["step"] <= self.step), maxlen=_RECENT)
            back = f"rolled back to the checkpoint at step {self.step}"
        except CheckpointError as e:
            back = f"could not roll back ({e})"
        self._pause(f"non-finite loss at step {bad_step} (loss {loss}); {back}. Stop, then resume with a lower lr "
                    f"(e.g. --set lr={self.cfg.lr / 10:g})")

    def _pause(self, message: str) -> None:
        self.control.pause()
        self._set_state("paused", message)

    def _idle(self) -> None:
        self._poller.poll()
        self.control.take_derive()
        if time.monotonic() - self._last_heartbeat >= HEARTBEAT_S:
            self._last_heartbeat = time.monotonic()
            self.hooks.on_state(self._status())

    def _status(self) -> dict[str, Any]:
        sps = None if not self.step_time_s else 1.0 / self.step_time_s
        return {"state": self.state, "epoch": self.epoch, "step": self.step, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "steps_per_s": sps,
                "eta_s": None if sps is None else (self.total_steps - self.step) / sps, "device": str(self.device),
                "message": self.message, "error": self.error}

    def _set_state(self, state: str, message: str | None = None) -> None:
        if state == self.state and message == self.message:
            return
        self.state, self.message, self._last_heartbeat = state, message, time.monotonic()
        self.hooks.on_state(self._status())
        self._publish()

    def _publish(self) -> None:
        s = self._status()
        self.box.put(Snapshot(
            run_id=self.run_dir.name, run_dir=str(self.run_dir), state=self.state, epoch=self.epoch,
            epochs=self.cfg.epochs, step=self.step, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps, steps_per_s=s["steps_per_s"], eta_s=s["eta_s"], device=str(self.device),
            genotype=self.genotype, epoch_genotype=self.genotype, metrics=tuple(self.recent), message=self.message,
            error=self.error, config=self.cfg.to_dict(), updated_at=time.time()))

    def _checkpoint_now(self) -> None:
        self._last_ckpt = time.monotonic()
        self.hooks.on_step_end(StepEvent(self.step, self.epoch, self._status(), None, None, self._state_dict()))

    def _finish(self, state: str) -> None:
        self.writer.flush()
        if self.writer.unwritten and not self.writer.retry():
            state, self.message = "failed", None
            self.error = (f"{self.writer.error}; {self.writer.unwritten} write(s) could not be made, so the run "
                          f"directory is incomplete after step {self.step}")
        self.state = state
        self.hooks.on_run_end(self._status())
        self._publish()

    def fail(self, e: BaseException) -> None:
        tb = traceback.format_exc()
        self.error = oom_hint(e) or (str(e) if isinstance(e, (ConfigError, CheckpointError))
                                      else f"{type(e).__name__}: {e}")
        self.state = "failed"
        if not self.started:
            self.writer.close()
        self.hooks.on_exception(e, tb)
        self.hooks.on_run_end({**self._status(), "error_kind": type(e).__name__, "traceback": tb[-20000:]})
        self._publish()
