"""The search loop as an ordinary function: config + run directory + control + observers.

One step = an architecture step on a batch of the architecture half, then a weight step on a batch of
the weight half (docs/darts.md, section 3). The loop runs in the foreground (command line) or in a
controller thread (dashboard); it never calls Streamlit, and it tells the world what it does only
through hooks (engine/runs/hooks.py) and the snapshot it swaps into a `SnapshotBox`.
"""

from __future__ import annotations

import collections
import datetime as _dt
import functools
import platform
import random
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from engine.core.atomic import write_json_atomic
from engine.core.config import ConfigError
from engine.nn import cost
from engine.nn.supernet import SearchNetwork, variant_options_of
from engine.runs import control_file, rundir
from engine.runs.checkpoint import CheckpointError, capture_rng, clone_state, load_checkpoint, restore_rng
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter, StepEvent
from engine.runs.liveness import HEARTBEAT_S
from engine.runs.snapshot import Snapshot, SnapshotBox
from engine.runs.tensorboard import TensorBoardLog
from engine.runtime.device import amp_dtype, select_device
from engine.runtime.distributed import SINGLE, PeerLost, World, agree
from engine.search.architect import Architect
from engine.search.collapse import CollapseMonitor, cap_skips
from engine.search.config import SearchConfig
from engine.search.data import load_search_data
from engine.search.resume import check_resume, reanchor_learning_rates, restore_state, truncate_logs
from engine.search.step import EpochMeters, bilevel_step
from engine.variants import record_weights

__all__ = ["run_search"]

_RECENT_METRICS = 500


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _round_rows(a: np.ndarray) -> list[list[float]]:
    return np.round(a.astype(np.float64), 7).tolist()


def _oom_hint(e: BaseException) -> str | None:
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return ("out of memory: lower batch_size or init_channels, use order=first (second order needs about "
                "twice the memory), or a smaller image_size")
    return None


def run_search(config: SearchConfig, run_dir: str | Path, *, control: Control | None = None,
               callbacks: list[Callback] | None = None, box: SnapshotBox | None = None,
               resume: bool = False, world: World = SINGLE) -> str:
    """Run (or resume) a search writing `run_dir`; returns the final state. Never raises for a failed
    run: the error ends up in status.json, the snapshot and `on_exception`.

    The process holds an exclusive lock on the run directory (`.run.lock`) for the whole run, so a second
    process cannot write the same run (a second `--resume` is refused). Until setup has checked
    everything, a failure writes nothing: a refused resume leaves the run as it was.

    Under torchrun every rank calls this with its `world` (engine/runtime/distributed.py); rank 0 alone holds the
    lock, writes the run directory and reads control.json."""
    run_dir = Path(run_dir)
    control = control or Control()
    box = box or SnapshotBox()
    lock = FileLock(run_dir / rundir.RUN_LOCK, blocking=False)
    try:
        if world.main:
            lock.acquire()
    except (Timeout, OSError) as e:
        err = rundir.RunDirError(f"{run_dir} is being written by another process; stop that one first"
                                 if isinstance(e, Timeout) else f"cannot lock {run_dir}: {e}")
        status = {"state": "failed", "step": 0, "error": str(err)}
        box.put(Snapshot(run_id=run_dir.name, run_dir=str(run_dir), state="failed", config=config.to_dict(),
                         error=str(err), updated_at=time.time()))
        others = CallbackList(list(callbacks or []))  # nothing is written: the run belongs to the other process
        others.on_exception(err, "")
        others.on_run_end(status)
        return "failed"
    writer = RunDirWriter(run_dir, dry=not world.main)
    observers = [writer, TensorBoardLog(run_dir, config.variant)] if world.main else [writer]
    hooks = CallbackList([*observers, *(callbacks or [])])
    loop = _Loop(config, run_dir, control, hooks, writer, box, world)
    try:
        loop.setup(resume)
        loop.run()
    except BaseException as e:  # the one funnel for every error of a run
        loop.fail(e)
        if not isinstance(e, Exception):
            raise
    finally:
        writer.close()
        if lock.is_locked:
            lock.release()
    if loop.state == "failed" and world.main and not resume and not (run_dir / rundir.CONFIG).exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # failed before it began (bad data, bad device): no run to keep
    return loop.state


class _Loop:
    def __init__(self, config: SearchConfig, run_dir: Path, control: Control, hooks: CallbackList,
                 writer: RunDirWriter, box: SnapshotBox, world: World = SINGLE):
        self.cfg, self.run_dir, self.control, self.hooks, self.writer, self.box = (
            config, run_dir, control, hooks, writer, box)
        self.world = world
        self.state, self.message, self.error = "queued", None, None
        self.step = self.epoch = self.batch = 0
        self.steps_per_epoch = self.total_steps = 0
        self.device = torch.device("cpu")
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=_RECENT_METRICS)
        self.genotype = self.epoch_genotype = None
        self.initial_weights: dict[str, np.ndarray] = {}
        self.step_time_s: float | None = None
        self.wall_s = 0.0
        self._last_ckpt = time.monotonic()
        self._poller: control_file.ControlPoller | None = None
        self._last_heartbeat = 0.0
        self.started = False  # setup checked everything; from here on a failure is recorded in the run directory
        self.meters = EpochMeters()
        self.collapse = CollapseMonitor(config.hessian_every, world)  # engine/search/collapse.py, docs/collapse.md
        self._publish()

    # ---------------------------------------------------------------- setup
    def setup(self, resume: bool) -> None:
        cfg = self.cfg
        self.device = select_device(cfg.device)
        if cfg.amp:
            amp_dtype(self.device)  # refuses a device without a usable autocast dtype before any work
        _seed_everything(cfg.seed)
        self.data = load_search_data(cfg)
        self.steps_per_epoch = self.data.steps_per_epoch(cfg.batch_size)
        if self.steps_per_epoch == 0:
            raise ConfigError("batch_size", cfg.batch_size, f"at most {min(self.data.num_train, self.data.num_valid)} "
                              "(the size of each half of the search split); lower it or raise subset")
        if cfg.batch_size % self.world.size:
            raise ConfigError("batch_size", cfg.batch_size, f"a multiple of the {self.world.size} processes: it is the "
                                                            "global batch, split evenly between them")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.model = SearchNetwork(cfg.init_channels, self.data.num_classes, cfg.layers,
                                   in_channels=self.data.in_channels, nodes=cfg.nodes, variant=cfg.variant,
                                   fast=cfg.fast, variant_options=variant_options_of(cfg)).to(self.device)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                                     weight_decay=cfg.w_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, float(cfg.epochs),
                                                                    eta_min=cfg.w_lr_min)
        # the cells' expected cost under the op weights, logged every row and, with cost_weight, penalised
        self.costs = cost.cost_tables(cfg.init_channels, cfg.layers, cfg.nodes, self.data.image_size)
        penalty = None
        if cfg.cost_weight > 0:
            table = self.costs.of(cfg.cost_kind)
            penalty = functools.partial(cost.penalty, table=table, weight=cfg.cost_weight, budget=cfg.cost_budget)
        self.architect = Architect(self.model, cfg.a_lr, cfg.a_betas, cfg.a_weight_decay, order=cfg.order,
                                   world=self.world, cost=penalty)
        if self.world.main:  # rank 0 listens to control.json and tells the others (distributed.agree)
            self._poller = control_file.ControlPoller(self.run_dir, self.control.apply)
        if resume:
            self._load(rundir.read_config(self.run_dir))
        else:
            if self.world.main:
                write_json_atomic(self.run_dir / rundir.CONFIG, self._config_record())
            self.initial_weights = self.model.op_weights()
        self.started = True
        self.genotype = self._genotype()  # the cell the search starts from
        self._publish()
        self.hooks.on_run_start({"run_dir": str(self.run_dir), "config": cfg, "status": self._status()})
        if not resume:
            self._checkpoint_now()  # step 0: a rollback point for a NaN before the first periodic one

    def _config_record(self) -> dict[str, Any]:
        d = self.data
        return {
            "kind": "search", "config": self.cfg.to_dict(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "device": str(self.device), "seed": self.cfg.seed, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "dataset": {"name": d.name, "fingerprint": d.fingerprint, "in_channels": d.in_channels,
                        "num_classes": d.num_classes, "image_size": d.image_size, "num_train": d.num_train,
                        "num_valid": d.num_valid},
        }

    def _load(self, record: dict[str, Any]) -> None:
        """Resume: check the config against the checkpoint, restore, then (only then) touch the files."""
        ckpt = load_checkpoint(self.run_dir / rundir.CHECKPOINT)
        saved_fp = ckpt.get("data_fingerprint") or (record.get("dataset") or {}).get("fingerprint")
        check_resume(ckpt, self.cfg, self.data.fingerprint, saved_fp)
        saved_world = ckpt.get("world_size", 1)
        if saved_world != self.world.size:  # each rank's slice of the batches, hence the BN statistics, would change
            raise ConfigError("world_size", self.world.size, f"the run was searched by {saved_world} process(es); "
                              f"resume it with the same number (torchrun --nproc_per_node {saved_world})")
        self._restore(ckpt)
        reanchor_learning_rates(self.cfg, self.w_opt, self.architect.optimizer, self.scheduler)
        record["config"] = self.cfg.to_dict()
        record.setdefault("resumed", []).append({"step": self.step, "time": time.time()})
        if self.world.main:
            write_json_atomic(self.run_dir / rundir.CONFIG, record)
        self._truncate_logs()
        first = rundir.read_alphas(self.run_dir)[:1]
        self.initial_weights = record_weights(first[0], self.model.variant) if first else self.model.op_weights()
        # rows up to the checkpoint only: on ranks other than 0 the files are read before rank 0 trims them
        metrics = [m for m in rundir.read_metrics(self.run_dir) if m.get("step", 0) <= self.step]
        alphas = [a for a in rundir.read_alphas(self.run_dir) if a.get("step", 0) <= self.step]
        self.recent.extend(metrics[-_RECENT_METRICS:])
        self.collapse.restore(metrics, alphas, self.model.variant, self.cfg.max_skip)

    def _truncate_logs(self) -> None:
        if self.world.main:
            truncate_logs(self.run_dir, self.step)
        self.collapse.truncate(self.step)
        self.recent = collections.deque((m for m in self.recent if m["step"] <= self.step), maxlen=_RECENT_METRICS)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        restore_state(ckpt, self.model, self.w_opt, self.architect.optimizer, self.scheduler)
        try:
            restore_rng(ckpt["rng"])
            self.step, self.epoch, self.batch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch"])
            self.meters = EpochMeters(ckpt.get("meters"))
            self.wall_s = float(ckpt.get("wall_s", 0.0))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"the checkpoint's position or RNG state is not readable ({type(e).__name__}: "
                                  f"{e})"[:400]) from None
        self._iters = None

    def _state_dict(self) -> dict[str, Any]:
        return clone_state({
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "model": self.model.state_dict(),
            "w_optimizer": self.w_opt.state_dict(), "a_optimizer": self.architect.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": capture_rng(), "config": self.cfg.to_dict(),
            "meters": dict(self.meters.sums), "wall_s": self.wall_s, "torch": str(torch.__version__),
            "data_fingerprint": self.data.fingerprint, "world_size": self.world.size,
        })

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        self._iters = None
        self._set_state("running")
        while self.epoch < self.cfg.epochs:
            go = self._wait_for_go() if self.world.main else True
            if not agree(go, self.world):  # rank 0's decision, at the same step on every rank
                self.control.stop()
                break
            if self.state != "running":
                self._set_state("running")
            self._one_step()
        if self.control.stopping and self.epoch < self.cfg.epochs:
            self._set_state("stopping")
            if self.genotype is not None:  # the genotype after the last step, for the run's listing and exports
                self.writer.write_genotype({"step": self.step, "epoch": self._last_step_epoch(), "kind": "stopped",
                                            "genotype": self.genotype.to_dict()})
            self._checkpoint_now()
            self._finish("stopped")
        else:
            self._hold_for_disk()
            self._finish("finished")  # `_finish` makes it failed if lines are still missing

    def _last_step_epoch(self) -> int:
        """The epoch of the last step taken: at an epoch's end the position has moved on to the next one."""
        return self.epoch - 1 if self.batch == 0 and self.step > 0 else self.epoch

    def _hold_for_disk(self) -> None:
        """The last step is taken but some lines are not on disk (the writer may notice a failure only now): pause
        as mid-run, so a fixed disk and a Resume still complete the run; a Stop ends it failed in `_finish`."""
        self.writer.flush()
        while self.writer.unwritten and not self.writer.retry():
            self._pause_for_disk()
            if not self.control.gate(idle=self._idle):
                return

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

    def _one_step(self) -> None:
        cfg, dev = self.cfg, self.device
        if self._iters is None:
            shard = (self.world.rank, self.world.size)  # this rank's slice of every global batch
            self._iters = (self.data.batches("train", self.epoch, cfg.batch_size, start=self.batch, shard=shard),
                           self.data.batches("valid", self.epoch, cfg.batch_size, start=self.batch, shard=shard))
            if self.batch == 0:
                self.meters = EpochMeters()
            self.model.start_epoch(self.epoch, cfg.epochs)  # the variant's schedules (GDAS's temperature)
        t0 = time.perf_counter()
        train = tuple(t.to(dev, non_blocking=True) for t in next(self._iters[0]))  # (B, C, H, W), (B,)
        valid = tuple(t.to(dev, non_blocking=True) for t in next(self._iters[1]))
        out = bilevel_step(self.model, self.architect, self.w_opt, train, valid, cfg, dev, epoch=self.epoch,
                           world=self.world)
        if not out.finite:
            self._non_finite(out.train_loss, out.valid_loss)
            return
        self.step += 1
        self.batch += 1
        dt = time.perf_counter() - t0
        self.wall_s += dt
        self.step_time_s = dt if self.step_time_s is None else 0.8 * self.step_time_s + 0.2 * dt
        self.meters.update(out)
        end_of_epoch = self.batch == self.steps_per_epoch
        logged = self.step % cfg.log_every == 0 or end_of_epoch or self.collapse.due(self.step)
        alphas = self.model.arch_state()
        metrics = alphas_row = None
        if logged:
            metrics = {"step": self.step, "epoch": self.epoch, **self.meters.means(), "w_lr": out.w_lr,
                       "a_lr": self.architect.optimizer.param_groups[0]["lr"],
                       "steps_per_s": 1.0 / self.step_time_s, "wall_s": round(self.wall_s, 3), "time": time.time()}
            self.recent.append(metrics)
            alphas_row = {"step": self.step, "epoch": self.epoch, **{k: _round_rows(v) for k, v in alphas.items()}}
        self.genotype = self._genotype()
        if metrics is not None:  # entropy, skip counts, and every hessian_every steps the eigenvalue
            metrics.update(self.collapse.measure(self.model, self.genotype, valid, self.step))
            metrics.update(cost.row(self.model.op_weights(), self.genotype, self.costs))  # expected, derived
        early_stop = None if metrics is None else metrics.get("early_stop_step")
        if end_of_epoch:
            # The epoch's row holds the epoch's own cell; an early stop firing now writes its row after it, so
            # the run's latest genotype row is the stop's.
            self._end_epoch(metrics, alphas_row)
            if early_stop is not None and self._early_stop(early_stop):
                self._publish()
            return
        if early_stop is not None:
            self._early_stop(early_stop)
        due = time.monotonic() - self._last_ckpt >= cfg.checkpoint_every_s
        self.hooks.on_step_end(StepEvent(self.step, self.epoch, self._status(), metrics, alphas_row,
                                         self._state_dict() if due else None))
        if due:
            self._last_ckpt = time.monotonic()
        self._after_step()

    def _genotype(self) -> Any:
        """The variant's genotype of the architecture now, with the config's skip cap (max_skip)."""
        if self.cfg.max_skip is None:
            return self.model.genotype()
        return cap_skips(self.model.variant, self.model.arch_state(), self.cfg.max_skip)

    def _early_stop(self, from_step: int) -> bool:
        """RobustDARTS's rule fired (the metrics row says so either way). With `early_stop`, the search stops on
        the genotype of `from_step`, before the eigenvalue rose; not at the last step, where it ends anyway.
        True when it stopped."""
        genotype = self.collapse.stop_genotype()
        if not self.cfg.early_stop or genotype is None or self.step >= self.total_steps:
            return False
        self.genotype = genotype
        self.writer.write_genotype({"step": self.step, "epoch": self._last_step_epoch(), "kind": "early_stop",
                                    "from_step": from_step, "genotype": genotype.to_dict()})
        self.control.stop()
        return True

    def _end_epoch(self, metrics: dict[str, Any] | None, alphas_row: dict[str, Any] | None) -> None:
        self.scheduler.step()
        self.epoch += 1
        self.batch = 0
        self._iters = None
        final = self.epoch == self.cfg.epochs
        row = {"step": self.step, "epoch": self.epoch - 1, "kind": "final" if final else "epoch_end",
               "genotype": self.genotype.to_dict()}
        event = StepEvent(self.step, self.epoch - 1, self._status(), metrics, alphas_row, self._state_dict())
        self._last_ckpt = time.monotonic()
        self.hooks.on_step_end(event)
        self.hooks.on_epoch_end(event, row)
        self.epoch_genotype = self.genotype
        self._after_step()

    def _after_step(self) -> None:
        if self.control.take_derive():
            self._derive()
        if self.writer.error and not self.control.paused:
            self._pause_for_disk()
        self._publish()

    def _pause_for_disk(self) -> None:
        """A write failed: pause before more steps outrun the disk; the unwritten lines wait in memory, in order."""
        self.control.pause()
        self.message = (f"{self.writer.error}. Paused at step {self.step} with {self.writer.unwritten} write(s) "
                        "held in memory: free space or fix the run directory, then Resume (they are written first). "
                        "Stopping now ends the run as failed, without them.")
        self._set_state("paused", self.message)

    def _derive(self) -> None:
        if self.genotype is None:
            self.genotype = self._genotype()
        self.writer.write_genotype({"step": self.step, "epoch": self._last_step_epoch(), "kind": "derive",
                                    "genotype": self.genotype.to_dict()})

    def _non_finite(self, train_loss: float, valid_loss: float) -> None:
        """Roll back to the last checkpoint (the arch step may already have spoilt the alphas) and pause."""
        bad_step = self.step + 1
        self.writer.flush()
        agree(True, self.world)  # rank 0's checkpoint is on disk before any rank reads it
        try:
            self._restore(load_checkpoint(self.run_dir / rundir.CHECKPOINT))
            self.writer.flush()
            self._truncate_logs()
            self.genotype = self._genotype()
            back = f"rolled back to the checkpoint at step {self.step}"
        except CheckpointError as e:
            back = f"could not roll back ({e})"
        self.control.pause()
        self.message = (f"non-finite loss at step {bad_step} (train loss {train_loss}, valid loss {valid_loss}); "
                        f"{back}. Stop, then resume with a lower w_lr or a_lr "
                        f"(e.g. --set w_lr={self.cfg.w_lr / 10:g}).")
        self._set_state("paused", self.message)

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
                "device": str(self.device), "message": self.message, "error": self.error,
                "world_size": self.world.size}

    def _set_state(self, state: str, message: str | None = None) -> None:
        if state == self.state and message == self.message:
            return
        self.state, self.message = state, message
        self._last_heartbeat = time.monotonic()
        self.hooks.on_state(self._status())
        self._publish()

    def _publish(self) -> None:
        model = getattr(self, "model", None)
        alphas = model.arch_state() if model is not None else {}
        weights = model.op_weights() if model is not None else {}
        status = self._status()
        self.box.put(Snapshot(
            run_id=self.run_dir.name, run_dir=str(self.run_dir), state=self.state, epoch=self.epoch,
            epochs=self.cfg.epochs, step=self.step, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps, steps_per_s=status["steps_per_s"], eta_s=status["eta_s"],
            device=str(self.device), alphas=alphas, weights=weights, initial_weights=self.initial_weights,
            genotype=self.genotype, epoch_genotype=self.epoch_genotype, metrics=tuple(self.recent),
            message=self.message, error=self.error, config=self.cfg.to_dict(), updated_at=time.time()))

    def _checkpoint_now(self) -> None:
        self._last_ckpt = time.monotonic()
        self.hooks.on_step_end(StepEvent(self.step, self.epoch, self._status(), None, None, self._state_dict()))

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
        tb = traceback.format_exc()
        hint = _oom_hint(e)
        if isinstance(e, PeerLost) and self.started:  # another rank died: nothing wrong here, resume it
            self.state, self.error = "interrupted", None
            self.message = (f"{e}; resume it with: torchrun --nproc_per_node {self.world.size} -m engine search "
                            f"--resume {self.run_dir}")
            self.hooks.on_run_end(self._status())
            self._publish()
            return
        self.error = hint or (str(e) if isinstance(e, (ConfigError, CheckpointError)) else f"{type(e).__name__}: {e}")
        self.state = "failed"
        if not self.started:  # refused before it began (a resume that does not fit): the run stays as it was
            self.writer.close()
        self.hooks.on_exception(e, tb)
        self.hooks.on_run_end({**self._status(), "error_kind": type(e).__name__, "traceback": tb[-20000:]})
        self._publish()
