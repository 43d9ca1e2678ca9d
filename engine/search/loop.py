"""The search loop as an ordinary function: config + run directory + control + observers.

One step = an architecture step on a batch of the architecture half, then a weight step on a batch of
the weight half (docs/darts.md, section 3). The loop runs in the foreground (command line) or in a
controller thread (dashboard); it never calls Streamlit, and it tells the world what it does only
through hooks (engine/runs/hooks.py) and the snapshot it swaps into a `SnapshotBox`. The run's lifecycle
(lock, states, control, pausing on a full disk, checkpoints, resume, failure) is engine/runs/lifecycle.py's;
this module is what a search adds: the supernet and its two optimisers, genotype rows, collapse and early stop.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.core.config import ConfigError
from engine.nn import cost
from engine.nn.supernet import SearchNetwork
from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter
from engine.runs.lifecycle import RunLoop
from engine.runs.lifecycle_launch import launch
from engine.runs.snapshot import SnapshotBox
from engine.runs.tensorboard import TensorBoardLog
from engine.runtime.distributed import SINGLE, World
from engine.search.architect import Architect
from engine.search.build import build_network
from engine.search.collapse import CollapseMonitor, cap_skips
from engine.search.config import SearchConfig
from engine.search.data import load_search_data
from engine.search.resume import check_resume, reanchor_learning_rates, restore_state
from engine.search.step import EpochMeters, bilevel_step
from engine.variants import record_weights

__all__ = ["run_search"]


def _round_rows(a: np.ndarray) -> list[list[float]]:
    return np.round(a.astype(np.float64), 7).tolist()


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
    observers: list[Callback] = [TensorBoardLog(run_dir, config.variant)] if world.main else []
    return launch(_Loop, config, run_dir, control=control, callbacks=callbacks, box=box, resume=resume, world=world,
                  observers=observers)


class _Loop(RunLoop):
    KIND = "search"
    OOM_ADVICE = ("lower batch_size or init_channels, use order=first (second order needs about twice the memory), "
                  "or a smaller image_size")
    SPLITS = ("num_train", "num_valid")
    Meters = EpochMeters
    cfg: SearchConfig
    model: SearchNetwork

    def __init__(self, config: SearchConfig, run_dir: Path, control: Control, hooks: CallbackList,
                 writer: RunDirWriter, box: SnapshotBox, world: World = SINGLE):
        self.genotype = self.epoch_genotype = None
        self.initial_weights: dict[str, np.ndarray] = {}
        self.collapse = CollapseMonitor(config.hessian_every, world)  # engine/search/collapse.py, docs/collapse.md
        super().__init__(config, run_dir, control, hooks, writer, box, world)

    # ---------------------------------------------------------------- setup, checkpoint, resume
    def _build(self) -> None:
        cfg = self.cfg
        self.data = load_search_data(cfg)
        self.steps_per_epoch = self.data.steps_per_epoch(cfg.batch_size)
        if self.steps_per_epoch == 0:
            raise ConfigError("batch_size", cfg.batch_size, f"at most {min(self.data.num_train, self.data.num_valid)} "
                              "(the size of each half of the search split); lower it or raise subset")
        if cfg.batch_size % self.world.size:
            raise ConfigError("batch_size", cfg.batch_size, f"a multiple of the {self.world.size} processes: it is the "
                                                            "global batch, split evenly between them")
        self.model = build_network(cfg, self.data.in_channels, self.data.num_classes).to(self.device)
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

    def _begin(self) -> None:
        self.initial_weights = self.model.op_weights()
        self.genotype = self._genotype()  # the cell the search starts from

    def _read_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.run_dir / rundir.CHECKPOINT)

    def _check_resume(self, ckpt: dict[str, Any], record: dict[str, Any]) -> None:
        saved_fp = ckpt.get("data_fingerprint") or (record.get("dataset") or {}).get("fingerprint")
        check_resume(ckpt, self.cfg, self.data.fingerprint, saved_fp)
        saved_world = ckpt.get("world_size", 1)
        if saved_world != self.world.size:  # each rank's slice of the batches, hence the BN statistics, would change
            raise ConfigError("world_size", self.world.size, f"the run was searched by {saved_world} process(es); "
                              f"resume it with the same number (torchrun --nproc_per_node {saved_world})")

    def _restore_parts(self, ckpt: dict[str, Any]) -> None:
        restore_state(ckpt, self.model, self.w_opt, self.architect.optimizer, self.scheduler)
        self.genotype = self._genotype()

    def _parts_state(self) -> dict[str, Any]:
        return {"w_optimizer": self.w_opt.state_dict(), "a_optimizer": self.architect.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "world_size": self.world.size}

    def _load(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        metrics = super()._load(record)
        reanchor_learning_rates(self.cfg, self.w_opt, self.architect.optimizer, self.scheduler)
        first = rundir.read_alphas(self.run_dir)[:1]
        self.initial_weights = record_weights(first[0], self.model.variant) if first else self.model.op_weights()
        alphas = [a for a in rundir.read_alphas(self.run_dir) if a.get("step", 0) <= self.step]
        self.collapse.restore(metrics, alphas, self.model.variant, self.cfg.max_skip)
        return metrics

    def _truncate_logs(self) -> None:
        super()._truncate_logs()
        self.collapse.truncate(self.step)

    # ---------------------------------------------------------------- one step
    def _open_epoch(self) -> Any:
        shard = (self.world.rank, self.world.size)  # this rank's slice of every global batch
        batches = (self.data.batches("train", self.epoch, self.cfg.batch_size, start=self.batch, shard=shard),
                   self.data.batches("valid", self.epoch, self.cfg.batch_size, start=self.batch, shard=shard))
        self.model.start_epoch(self.epoch, self.cfg.epochs)  # the variant's schedules (GDAS's temperature)
        return batches

    def _one_step(self) -> None:
        cfg, dev = self.cfg, self.device
        train_batches, valid_batches = self._epoch_batches()
        t0 = time.perf_counter()
        train = tuple(t.to(dev, non_blocking=True) for t in next(train_batches))  # (B, C, H, W), (B,)
        valid = tuple(t.to(dev, non_blocking=True) for t in next(valid_batches))
        out = bilevel_step(self.model, self.architect, self.w_opt, train, valid, cfg, dev, epoch=self.epoch,
                           world=self.world)
        if not out.finite:
            self._non_finite(f"train loss {out.train_loss}, valid loss {out.valid_loss}",
                             f"Stop, then resume with a lower w_lr or a_lr (e.g. --set w_lr={cfg.w_lr / 10:g}).")
            return
        self._count_step(t0)
        self.meters.update(out)
        end_of_epoch = self.batch == self.steps_per_epoch
        logged = self.step % cfg.log_every == 0 or end_of_epoch or self.collapse.due(self.step)
        alphas = self.model.arch_numpy()
        metrics = alphas_row = None
        if logged:
            metrics = {"step": self.step, "epoch": self.epoch, **self.meters.means(), "w_lr": out.w_lr,
                       "a_lr": self.architect.optimizer.param_groups[0]["lr"], **self._pace()}
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
        self._end_step(metrics, alphas_row)
        self._after_step()

    def _end_epoch(self, metrics: dict[str, Any] | None, alphas_row: dict[str, Any] | None) -> None:
        self._next_epoch()
        final = self.epoch == self.cfg.epochs
        row = {"step": self.step, "epoch": self.epoch - 1, "kind": "final" if final else "epoch_end",
               "genotype": self.genotype.to_dict()}
        event = self._end_step(metrics, alphas_row, epoch=self.epoch - 1, checkpoint=True)
        self.hooks.on_epoch_end(event, row)
        self.epoch_genotype = self.genotype
        self._after_step()

    # ---------------------------------------------------------------- the genotype
    def _genotype(self) -> Any:
        """The variant's genotype of the architecture now, with the config's skip cap (max_skip)."""
        if self.cfg.max_skip is None:
            return self.model.genotype()
        return cap_skips(self.model.variant, self.model.arch_numpy(), self.cfg.max_skip)

    def _last_step_epoch(self) -> int:
        """The epoch of the last step taken: at an epoch's end the position has moved on to the next one."""
        return self.epoch - 1 if self.batch == 0 and self.step > 0 else self.epoch

    def _write_genotype(self, kind: str, **extra: Any) -> None:
        self.writer.write_genotype({"step": self.step, "epoch": self._last_step_epoch(), "kind": kind, **extra,
                                    "genotype": self.genotype.to_dict()})

    def _early_stop(self, from_step: int) -> bool:
        """RobustDARTS's rule fired (the metrics row says so either way). With `early_stop`, the search stops on
        the genotype of `from_step`, before the eigenvalue rose; not at the last step, where it ends anyway.
        True when it stopped."""
        genotype = self.collapse.stop_genotype()
        if not self.cfg.early_stop or genotype is None or self.step >= self.total_steps:
            return False
        self.genotype = genotype
        self._write_genotype("early_stop", from_step=from_step)
        self.control.stop()
        return True

    def _derive(self) -> None:
        if self.genotype is None:
            self.genotype = self._genotype()
        self._write_genotype("derive")

    def _stopping(self) -> None:
        if self.genotype is not None:  # the genotype after the last step, for the run's listing and exports
            self._write_genotype("stopped")

    # ---------------------------------------------------------------- status and snapshot
    def _status(self) -> dict[str, Any]:
        return {**super()._status(), "world_size": self.world.size}

    def _picture(self) -> dict[str, Any]:
        model = self.model
        return {"alphas": model.arch_numpy() if model is not None else {},
                "weights": model.op_weights() if model is not None else {},
                "initial_weights": self.initial_weights, "genotype": self.genotype,
                "epoch_genotype": self.epoch_genotype}
