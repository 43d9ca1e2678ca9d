"""The search loop as an ordinary function: config + run directory + control + observers.

One step = an architecture step on a batch of the architecture half, then a weight step on a batch of
the weight half (docs/darts.md, section 3). The loop runs in the foreground (command line) or in a
controller thread (dashboard); it never calls Streamlit, and it tells the world what it does only
through hooks (engine/hooks.py) and the snapshot it swaps into a `SnapshotBox`.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import math
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
import torch.nn.functional as F

from . import control_file, rundir
from .architect import Architect
from .atomic import read_jsonl, write_bytes_atomic, write_json_atomic
from .checkpoint import CheckpointError, capture_rng, clone_state, load_checkpoint, restore_rng
from .config import ConfigError, SearchConfig
from .control import Control
from .data import load_search_data
from .device import amp_dtype, autocast, select_device
from .hooks import Callback, CallbackList, RunDirWriter, StepEvent
from .liveness import HEARTBEAT_S
from .snapshot import Snapshot, SnapshotBox
from .supernet import SearchNetwork
from .variants import record_weights

__all__ = ["run_search", "RESUMABLE_FIELDS"]

# Fields a resumed search may change (how it optimises); the rest fix what is searched and must match.
RESUMABLE_FIELDS = frozenset({"w_lr", "w_lr_min", "w_grad_clip", "a_lr", "a_weight_decay", "order", "amp",
                              "device", "log_every", "checkpoint_every_s", "fast"})
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


class _Meters:
    """Running means over the current epoch (what the curves show), kept in checkpoints for exact resume."""

    KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")

    def __init__(self, state: dict[str, float] | None = None):
        self.sums = dict(state) if state else {**{k: 0.0 for k in self.KEYS}, "n": 0.0}

    def update(self, **values: float | None) -> None:
        self.sums["n"] += 1
        for k, v in values.items():
            self.sums[k] += float(v) if v is not None else 0.0

    def means(self) -> dict[str, float]:
        n = max(self.sums["n"], 1.0)
        return {k: self.sums[k] / n for k in self.KEYS}


def _check_resume_config(saved: dict[str, Any], config: SearchConfig) -> None:
    for key, value in config.to_dict().items():
        if key not in RESUMABLE_FIELDS and key in saved and saved[key] != value:
            raise ConfigError(key, value, f"a resumed search keeps {key}={saved[key]!r}; only "
                                          f"{', '.join(sorted(RESUMABLE_FIELDS))} may change on resume")


def run_search(config: SearchConfig, run_dir: str | Path, *, control: Control | None = None,
               callbacks: list[Callback] | None = None, box: SnapshotBox | None = None,
               resume: bool = False) -> str:
    """Run (or resume) a search writing `run_dir`; returns the final state. Never raises for a failed
    run: the error ends up in status.json, the snapshot and `on_exception`."""
    run_dir = Path(run_dir)
    control = control or Control()
    box = box or SnapshotBox()
    writer = RunDirWriter(run_dir)
    hooks = CallbackList([writer, *(callbacks or [])])
    loop = _Loop(config, run_dir, control, hooks, writer, box)
    try:
        loop.setup(resume)
        loop.run()
    except BaseException as e:  # the one funnel for every error of a run
        loop.fail(e)
        if not isinstance(e, Exception):
            raise
    finally:
        writer.close()
    if loop.state == "failed" and not resume and not (run_dir / rundir.CONFIG).exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # failed before it began (bad data, bad device): no run to keep
    return loop.state


class _Loop:
    def __init__(self, config: SearchConfig, run_dir: Path, control: Control, hooks: CallbackList,
                 writer: RunDirWriter, box: SnapshotBox):
        self.cfg, self.run_dir, self.control, self.hooks, self.writer, self.box = (
            config, run_dir, control, hooks, writer, box)
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
        self._ctl_seq = 0
        self._ctl_mtime = 0.0
        self._last_heartbeat = 0.0
        self.meters = _Meters()
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
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.model = SearchNetwork(cfg.init_channels, self.data.num_classes, cfg.layers,
                                   in_channels=self.data.in_channels, nodes=cfg.nodes, variant=cfg.variant,
                                   fast=cfg.fast).to(self.device)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                                     weight_decay=cfg.w_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, float(cfg.epochs),
                                                                    eta_min=cfg.w_lr_min)
        self.architect = Architect(self.model, cfg.a_lr, cfg.a_betas, cfg.a_weight_decay, order=cfg.order)
        self._ctl_seq = control_file.read_control(self.run_dir, 0).seq  # requests from before this start are stale
        if resume:
            self._load(rundir.read_config(self.run_dir))
        else:
            write_json_atomic(self.run_dir / rundir.CONFIG, self._config_record())
            self.initial_weights = self.model.op_weights()
        self.genotype = self.model.genotype()  # the cell the search starts from
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
        _check_resume_config(record["config"], self.cfg)
        ckpt = load_checkpoint(self.run_dir / rundir.CHECKPOINT)
        self._restore(ckpt)
        # a resume may lower the learning rates (e.g. after a NaN): re-anchor the schedules on the new ones
        self.scheduler.base_lrs = [self.cfg.w_lr]
        self.scheduler.eta_min = self.cfg.w_lr_min
        t, T = self.scheduler.last_epoch, self.scheduler.T_max
        lr = self.cfg.w_lr_min + (self.cfg.w_lr - self.cfg.w_lr_min) * (1 + math.cos(math.pi * t / T)) / 2
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        for group in self.architect.optimizer.param_groups:
            group["lr"], group["weight_decay"] = self.cfg.a_lr, self.cfg.a_weight_decay
        record["config"] = self.cfg.to_dict()
        record.setdefault("resumed", []).append({"step": self.step, "time": time.time()})
        write_json_atomic(self.run_dir / rundir.CONFIG, record)
        self._truncate_logs()
        first = rundir.read_alphas(self.run_dir)[:1]
        self.initial_weights = record_weights(first[0], self.model.variant) if first else self.model.op_weights()
        self.recent.extend(rundir.read_metrics(self.run_dir)[-_RECENT_METRICS:])

    def _truncate_logs(self) -> None:
        """Lines written after the restored checkpoint belong to steps that will be redone: drop them."""
        for name in (rundir.METRICS, rundir.ALPHAS, rundir.GENOTYPES):
            rows = [r for r in read_jsonl(self.run_dir / name) if int(r.get("step", 0)) <= self.step]
            write_bytes_atomic(self.run_dir / name, "".join(
                json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode())
        self.recent = collections.deque((m for m in self.recent if m["step"] <= self.step), maxlen=_RECENT_METRICS)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.w_opt.load_state_dict(ckpt["w_optimizer"])
        self.architect.optimizer.load_state_dict(ckpt["a_optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng(ckpt["rng"])
        self.step, self.epoch, self.batch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch"])
        self.meters = _Meters(ckpt.get("meters"))
        self.wall_s = float(ckpt.get("wall_s", 0.0))
        self._iters = None

    def _state_dict(self) -> dict[str, Any]:
        return clone_state({
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "model": self.model.state_dict(),
            "w_optimizer": self.w_opt.state_dict(), "a_optimizer": self.architect.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": capture_rng(), "config": self.cfg.to_dict(),
            "meters": dict(self.meters.sums), "wall_s": self.wall_s, "torch": str(torch.__version__),
        })

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        self._iters = None
        self._set_state("running")
        while self.epoch < self.cfg.epochs:
            self._poll_control()
            if self.control.paused and not self.control.stopping:
                self._set_state("paused", self.message)
            if not self.control.gate(idle=self._idle):
                break
            if self.state != "running":
                self._set_state("running")
            self._one_step()
        if self.control.stopping and self.epoch < self.cfg.epochs:
            self._set_state("stopping")
            if self.genotype is not None:  # the genotype after the last step, for the run's listing and exports
                self.writer.write_genotype({"step": self.step, "epoch": self.epoch, "kind": "stopped",
                                            "genotype": self.genotype.to_dict()})
            self._checkpoint_now()
            self._finish("stopped")
        else:
            self._finish("finished")

    def _one_step(self) -> None:
        cfg, dev = self.cfg, self.device
        if self._iters is None:
            self._iters = (self.data.batches("train", self.epoch, cfg.batch_size, start=self.batch),
                           self.data.batches("valid", self.epoch, cfg.batch_size, start=self.batch))
            if self.batch == 0:
                self.meters = _Meters()
        t0 = time.perf_counter()
        x, y = (t.to(dev, non_blocking=True) for t in next(self._iters[0]))     # (B, C, H, W), (B,)
        xv, yv = (t.to(dev, non_blocking=True) for t in next(self._iters[1]))
        w_lr = self.w_opt.param_groups[0]["lr"]
        arch = self.architect.step(x, y, xv, yv, w_lr, self.w_opt, amp=cfg.amp, device=dev)
        self.w_opt.zero_grad(set_to_none=True)
        with autocast(dev, cfg.amp):
            logits = self.model(x)                                               # (B, classes)
        loss = F.cross_entropy(logits.float(), y)
        valid_loss = float(arch["valid_loss"])
        if not (torch.isfinite(loss) and math.isfinite(valid_loss)):
            self._non_finite(float(loss.detach()), valid_loss)
            return
        # the weight step needs no alpha gradients (the reference computes and discards them)
        loss.backward(inputs=self.model.weight_parameters() if self.model.fast else None)
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), cfg.w_grad_clip)
        self.w_opt.step()
        self.step += 1
        self.batch += 1
        dt = time.perf_counter() - t0
        self.wall_s += dt
        self.step_time_s = dt if self.step_time_s is None else 0.8 * self.step_time_s + 0.2 * dt
        acc = float((logits.detach().argmax(1) == y).float().mean())
        self.meters.update(train_loss=float(loss.detach()), train_acc=acc, valid_loss=valid_loss,
                           valid_acc=arch.get("valid_acc"))
        end_of_epoch = self.batch == self.steps_per_epoch
        logged = self.step % cfg.log_every == 0 or end_of_epoch
        alphas = self.model.arch_state()
        metrics = alphas_row = None
        if logged:
            metrics = {"step": self.step, "epoch": self.epoch, **self.meters.means(), "w_lr": w_lr,
                       "a_lr": self.architect.optimizer.param_groups[0]["lr"],
                       "steps_per_s": 1.0 / self.step_time_s, "wall_s": round(self.wall_s, 3), "time": time.time()}
            self.recent.append(metrics)
            alphas_row = {"step": self.step, "epoch": self.epoch, **{k: _round_rows(v) for k, v in alphas.items()}}
        self.genotype = self.model.genotype()
        if end_of_epoch:
            self._end_epoch(metrics, alphas_row)
            return
        due = time.monotonic() - self._last_ckpt >= cfg.checkpoint_every_s
        self.hooks.on_step_end(StepEvent(self.step, self.epoch, self._status(), metrics, alphas_row,
                                         self._state_dict() if due else None))
        if due:
            self._last_ckpt = time.monotonic()
        self._after_step()

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
        self._publish()

    def _derive(self) -> None:
        if self.genotype is None:
            self.genotype = self.model.genotype()
        self.writer.write_genotype({"step": self.step, "epoch": self.epoch, "kind": "derive",
                                    "genotype": self.genotype.to_dict()})

    def _non_finite(self, train_loss: float, valid_loss: float) -> None:
        """Roll back to the last checkpoint (the arch step may already have spoilt the alphas) and pause."""
        bad_step = self.step + 1
        self.writer.flush()
        try:
            self._restore(load_checkpoint(self.run_dir / rundir.CHECKPOINT))
            self.writer.flush()
            self._truncate_logs()
            self.genotype = self.model.genotype()
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
        stamp = control_file.control_stamp(self.run_dir)
        if stamp is None or stamp == self._ctl_mtime:
            return
        self._ctl_mtime = stamp
        pending = control_file.read_control(self.run_dir, self._ctl_seq)  # malformed entries: skipped, logged
        for req in pending.requests:
            self._ctl_seq = req["seq"]
            self.control.apply(req["command"])
        if pending.applied < self._ctl_seq:  # let writers trim what is applied (and what setup skipped)
            try:
                control_file.ack_control(self.run_dir, self._ctl_seq)
            except (OSError, rundir.RunDirError):
                return  # acknowledged on a later poll; the requests were applied once and will not be again
            self._ctl_mtime = None  # read again: our own write freed an inode a writer's next file may reuse

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
        if self.writer.error:
            self.message = self.writer.error
        self.state = state
        self.hooks.on_run_end(self._status())
        self._publish()

    def fail(self, e: BaseException) -> None:
        tb = traceback.format_exc()
        hint = _oom_hint(e)
        self.error = hint or (str(e) if isinstance(e, (ConfigError, CheckpointError)) else f"{type(e).__name__}: {e}")
        self.state = "failed"
        self.hooks.on_exception(e, tb)
        self.hooks.on_run_end({**self._status(), "error_kind": type(e).__name__, "traceback": tb[-20000:]})
        self._publish()
