"""Training the network built from a genotype, as an ordinary function: config + genotype + run directory.

The run's lifecycle is a search's (engine/runs/lifecycle.py): an exclusive `.run.lock`, the hooks and the writer
thread (engine/runs/hooks.py) for every file, `Control.gate()` between steps with control.json polled
(engine/runs/control_file.py), a pause when the disk refuses a write, checkpoints, exact resume, a snapshot in a
`SnapshotBox`. What a training adds: one step is one SGD step on an augmented training batch; each epoch ends
with the test-set score, the schedule's step and a checkpoint. Derive does not apply to a training (it has no
architecture parameters): a request is dropped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from engine.core.config import ConfigError
from engine.nn.network import NetworkCIFAR, NetworkImageNet, count_parameters
from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter
from engine.runs.lifecycle import RunLoop
from engine.runs.lifecycle_launch import launch
from engine.runs.snapshot import SnapshotBox
from engine.runs.tensorboard import TensorBoardLog
from engine.runtime.distributed import SINGLE, World
from engine.space.cnn.genotype import Genotype
from engine.train.config import MIN_IMAGENET_SIZE, TrainConfig
from engine.train.data import load_train_data
from engine.train.resume import TRAIN_FORMAT, check_train_resume, load_train_checkpoint, restore_train_state
from engine.train.step import TrainMeters, auxiliary_fits, evaluate, train_step

__all__ = ["run_training"]


def run_training(config: TrainConfig, genotype: Genotype, run_dir: str | Path, *, source: dict[str, Any] | None = None,
                 control: Control | None = None, callbacks: list[Callback] | None = None,
                 box: SnapshotBox | None = None, resume: bool = False) -> str:
    """Train (or resume) writing `run_dir`; returns the final state. A failure never raises: it ends up in
    status.json, the snapshot and `on_exception`. Until setup has checked everything it writes nothing."""
    return launch(_TrainLoop, config, run_dir, control=control, callbacks=callbacks, box=box, resume=resume,
                  observers=[TensorBoardLog(run_dir)], genotype=genotype, source=source or {})


class _TrainLoop(RunLoop):
    KIND = "train"
    OOM_ADVICE = "lower batch_size, init_channels or layers, or set amp=true on a GPU"
    SPLITS = ("num_train", "num_test")
    Meters = TrainMeters
    cfg: TrainConfig
    model: NetworkCIFAR | NetworkImageNet

    def __init__(self, config: TrainConfig, run_dir: Path, control: Control, hooks: CallbackList,
                 writer: RunDirWriter, box: SnapshotBox, world: World = SINGLE, *, genotype: Genotype,
                 source: dict[str, Any]):
        self.genotype, self.source = genotype, source
        super().__init__(config, run_dir, control, hooks, writer, box, world)

    # ---------------------------------------------------------------- setup, checkpoint, resume
    def _build(self) -> None:
        cfg = self.cfg
        self.data = load_train_data(cfg)
        size, imagenet = self.data.image_size, cfg.network == "imagenet"
        if imagenet and size < MIN_IMAGENET_SIZE:  # the data's own size: the config checks image_size only
            raise ConfigError("image_size", size, f"at least {MIN_IMAGENET_SIZE} for network=imagenet (the data's "
                                                  f"images are {size}x{size}; set image_size)")
        if cfg.auxiliary_weight > 0 and not auxiliary_fits(size, cfg.network):
            need = "about 224x224 (image_size 193-256)" if imagenet else "about 32x32 (image_size 29-40)"
            raise ConfigError("auxiliary_weight", cfg.auxiliary_weight, f"0 at {size}x{size} input: the auxiliary "
                                                                        f"head needs {need}")
        self.steps_per_epoch = self.data.steps_per_epoch(cfg.batch_size)
        network = NetworkImageNet if imagenet else NetworkCIFAR
        self.model = network(cfg.init_channels, self.data.num_classes, cfg.layers, cfg.auxiliary_weight > 0,
                             self.genotype, in_channels=self.data.in_channels).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        if cfg.lr_schedule == "exponential":  # the reference's StepLR(step 1, gamma): lr * gamma**epoch
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 1, cfg.lr_gamma)
        else:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, float(cfg.epochs), cfg.lr_min)

    def _begin(self) -> None:
        self.writer.write_genotype({"step": 0, "epoch": 0, "kind": "train", "genotype": self.genotype.to_dict()})

    def _record_extra(self) -> dict[str, Any]:
        return {"genotype": self.genotype.to_dict(), "source": self.source, "parameters": count_parameters(self.model)}

    def _read_checkpoint(self) -> dict[str, Any]:
        return load_train_checkpoint(self.run_dir / rundir.CHECKPOINT)

    def _check_resume(self, ckpt: dict[str, Any], record: dict[str, Any]) -> None:
        check_train_resume(ckpt, self.cfg, self.genotype, self.data.fingerprint)

    def _restore_parts(self, ckpt: dict[str, Any]) -> None:
        restore_train_state(ckpt, self.model, self.optimizer, self.scheduler)

    def _parts_state(self) -> dict[str, Any]:
        d = self.data
        return {"format": TRAIN_FORMAT, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "genotype": self.genotype.to_dict(), "source": self.source,
                "num_classes": d.num_classes, "in_channels": d.in_channels, "image_size": d.image_size,
                "mean": list(d.mean), "std": list(d.std)}

    # ---------------------------------------------------------------- one step
    def _open_epoch(self) -> Any:
        self.model.drop_path_prob = self.cfg.drop_path_prob * self.epoch / self.cfg.epochs  # the reference's ramp
        return self.data.batches(self.epoch, self.cfg.batch_size, start=self.batch)

    def _one_step(self) -> None:
        cfg = self.cfg
        batches = self._epoch_batches()
        t0 = time.perf_counter()
        batch = tuple(t.to(self.device, non_blocking=True) for t in next(batches))
        out = train_step(self.model, self.optimizer, batch, cfg, self.device)
        if not out.finite:
            self._non_finite(f"loss {out.loss}", f"Stop, then resume with a lower lr (e.g. --set lr={cfg.lr / 10:g})")
            return
        self._count_step(t0)
        self.meters.update(out)
        end = self.batch == self.steps_per_epoch
        row = None
        if end or self.step % cfg.log_every == 0:
            row = {"step": self.step, "epoch": self.epoch, **self.meters.means(), "lr": out.lr}
        if end:
            row |= evaluate(self.model, self.data.test_batches(cfg.batch_size), self.device, cfg.amp, cfg.top5)
            self._next_epoch()
        if row is not None:
            row |= self._pace()
            self.recent.append(row)
        self._end_step(row, checkpoint=end)
        self._after_step()

    def _picture(self) -> dict[str, Any]:
        return {"genotype": self.genotype, "epoch_genotype": self.genotype}
