"""Training the network of a recurrent genotype (the paper's evaluation of the RNN cell) as a job on the shared run
lifecycle (engine/runs/lifecycle.py), as engine/train/loop.py trains a convolutional one.

Paper Appendix A.2.2 and quark0/darts rnn/train.py: one step is one SGD step on the next BPTT window of the train
split, the loss the NLL plus the temporal activation regularisation, the gradient clipped to `clip`; the hidden state
carries from window to window within an epoch (truncated BPTT) and starts from zeros at each epoch, as the
reference's `train()`. It is in the checkpoint, with every RNG state, so a resumed run continues exactly. Each epoch
ends with the validation loss (dropout off, `eval_batch_size` columns; under ASGD of the averaged weights, as the
reference measures them); the best weights so far are kept, and SGD becomes ASGD (t0=0, lambda=0) once the loss is
worse than the best of all but the last `nonmono` epochs. The last epoch ends with the test split's perplexity of
the best weights (the reference tests its best saved model), in that step's metrics row.

The windows are `bptt` long (the last of an epoch shorter, its learning rate scaled by its length / bptt as the
reference scales its random lengths); the reference draws each length around bptt, which would make the number of
steps of an epoch random.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.config import ConfigError
from engine.datasets.corpus import EMBEDDED_CORPUS, CorpusError, batchify, bptt_starts, get_batch, load_corpus
from engine.nn.rnn_network import RNNModel
from engine.runs import rundir
from engine.runs.checkpoint import CheckpointError, load_checkpoint, load_states
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter
from engine.runs.lifecycle import RunLoop
from engine.runs.lifecycle_launch import launch
from engine.runs.lifecycle_resume import RunningMeans
from engine.runs.snapshot import SnapshotBox
from engine.runs.tensorboard import TensorBoardLog
from engine.runtime.distributed import SINGLE, World
from engine.space.rnn.genotype import Genotype
from engine.space.rnn.train_config import RESUMABLE_RNN_TRAIN_FIELDS, RNNTrainConfig

__all__ = ["run_rnn_training", "RNNTrainData", "load_rnn_train_data", "switches_to_asgd", "RNN_TRAIN_FORMAT"]

RNN_TRAIN_FORMAT = "dartboard-rnn-train-checkpoint/1"
_REQUIRED = ("format", "step", "epoch", "batch", "model", "optimizer", "optimizer_kind", "rng", "config", "genotype",
             "hidden", "history", "best_loss", "best_model")
_MAX_LOSS = 50.0  # exp() of a larger loss overflows nothing useful: a perplexity past 5e21 is "diverged"


@dataclass(frozen=True)
class RNNTrainData:
    """The corpus cut for the training, with the fields config.json records for any run's data."""
    name: str
    fingerprint: str
    words: tuple[str, ...]
    train: torch.Tensor   # (rows, batch_size) token ids
    valid: torch.Tensor   # (rows, eval_batch_size)
    test: torch.Tensor    # (rows, test_batch_size)
    num_train: int        # tokens of each split
    num_valid: int
    num_test: int
    in_channels: None = None   # image fields of the shared record: none for text
    image_size: None = None

    @property
    def num_classes(self) -> int:
        return len(self.words)


def load_rnn_train_data(cfg: RNNTrainConfig) -> RNNTrainData:
    directory = EMBEDDED_CORPUS if cfg.corpus == "embedded" else Path(cfg.corpus)
    try:
        corpus = load_corpus(directory, cfg.max_vocab)
    except CorpusError as e:
        raise ConfigError("corpus", cfg.corpus, str(e)) from None
    splits = {}
    for split, field in (("train", "batch_size"), ("valid", "eval_batch_size"), ("test", "test_batch_size")):
        try:
            splits[split] = batchify(corpus.split(split), getattr(cfg, field))
        except ValueError as e:
            raise ConfigError(field, getattr(cfg, field), f"{split} split: {e}") from None
    digest = hashlib.sha256("\n".join(corpus.words).encode())
    for ids in (corpus.train, corpus.valid, corpus.test):
        digest.update(np.ascontiguousarray(ids).tobytes())
    return RNNTrainData(cfg.corpus, digest.hexdigest()[:16], corpus.words, splits["train"], splits["valid"],
                        splits["test"], len(corpus.train), len(corpus.valid), len(corpus.test))


def switches_to_asgd(history: list[float], loss: float, nonmono: int) -> bool:
    """The reference's non-monotone trigger: this epoch's validation loss is worse than the best of the epochs
    before the last `nonmono` ones (and there were more than `nonmono` epochs before it)."""
    older = history[:len(history) - nonmono]
    return len(history) > nonmono and bool(older) and loss > min(older)


def run_rnn_training(config: RNNTrainConfig, genotype: Genotype, run_dir: str | Path, *,
                     source: dict[str, Any] | None = None, control: Control | None = None,
                     callbacks: list[Callback] | None = None, box: SnapshotBox | None = None,
                     resume: bool = False) -> str:
    """Train (or resume) a recurrent genotype's network writing `run_dir`; returns the final state. A failure never
    raises: it ends up in status.json, the snapshot and `on_exception`. Until setup has checked everything it
    writes nothing."""
    return launch(_RNNTrainLoop, config, run_dir, control=control, callbacks=callbacks, box=box, resume=resume,
                  observers=[TensorBoardLog(run_dir)], genotype=genotype, source=source or {})


class _Meters(RunningMeans):
    KEYS = ("train_loss", "grad_norm")


class _Constant:
    """The lifecycle steps a schedule once an epoch; the reference keeps lr fixed (ASGD averages instead)."""

    def step(self) -> None: ...


def _nll(log_prob: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(log_prob.reshape(-1, log_prob.size(-1)), targets.reshape(-1))


def _ppl(loss: float) -> float:
    return float(math.exp(min(loss, _MAX_LOSS)))


@torch.no_grad()
def _evaluate(model: RNNModel, source: torch.Tensor, bptt: int, device: torch.device) -> float:
    """Mean NLL per token over a batchified split, dropout off, the state carried across windows."""
    model.eval()
    hidden = model.init_hidden(source.size(1))
    total, count = 0.0, 0
    for start in bptt_starts(source, bptt):
        words, targets = (t.to(device) for t in get_batch(source, start, bptt))
        log_prob, hidden, _ = model(words, hidden)
        total += _nll(log_prob, targets).item() * targets.numel()
        count += targets.numel()
    return total / count


class _RNNTrainLoop(RunLoop):
    KIND = "rnn_train"
    SPACE = "rnn"  # the snapshot says which space its genotype is of
    OOM_ADVICE = "lower batch_size, nhid and emsize, bptt or max_vocab"
    SPLITS = ("num_train", "num_valid", "num_test")
    Meters = _Meters
    cfg: RNNTrainConfig
    model: RNNModel

    def __init__(self, config: RNNTrainConfig, run_dir: Path, control: Control, hooks: CallbackList,
                 writer: RunDirWriter, box: SnapshotBox, world: World = SINGLE, *, genotype: Genotype,
                 source: dict[str, Any]):
        self.genotype, self.source = genotype, source
        self.hidden: torch.Tensor | None = None
        self.history: list[float] = []   # each epoch's validation loss before the switch (the reference's)
        self.best_loss = math.inf
        self.best_model: dict[str, torch.Tensor] | None = None
        self.optimizer_kind = "sgd"
        super().__init__(config, run_dir, control, hooks, writer, box, world)

    # ---------------------------------------------------------------- setup, checkpoint, resume
    def _build(self) -> None:
        cfg = self.cfg
        if not isinstance(self.genotype, Genotype):
            raise ConfigError("genotype", type(self.genotype).__module__, "a recurrent cell (Genotype(recurrent="
                              "...)); train a convolutional one with a convolutional preset")
        if cfg.amp:
            raise ConfigError("amp", cfg.amp, "false: the recurrent training runs in float32")
        self.data = load_rnn_train_data(cfg)
        self.steps_per_epoch = len(bptt_starts(self.data.train, cfg.bptt))
        try:
            model = RNNModel(self.data.num_classes, self.genotype, cfg.emsize, cfg.nhid, cfg.dropout, cfg.dropouth,
                             cfg.dropoutx, cfg.dropouti, cfg.dropoute)
        except ValueError as e:  # a size this machine cannot hold (check_sizes)
            raise ConfigError("nhid", cfg.nhid, str(e)) from None
        self.model = model.to(self.device)
        self.optimizer = self._optimizer("sgd")
        self.scheduler = _Constant()
        self.hidden = self.model.init_hidden(cfg.batch_size)

    def _optimizer(self, kind: str) -> torch.optim.Optimizer:
        cfg, params = self.cfg, self.model.parameters()
        self.optimizer_kind = kind
        if kind == "asgd":  # the reference's switch: plain averaging from the switch on, the same lr and decay
            return torch.optim.ASGD(params, lr=cfg.lr, t0=0, lambd=0.0, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _begin(self) -> None:
        self.writer.write_genotype({"step": 0, "epoch": 0, "kind": "train", "genotype": self.genotype.to_dict()})

    def _record_extra(self) -> dict[str, Any]:
        return {"genotype": self.genotype.to_dict(), "source": self.source, "space": "rnn",
                "parameters": sum(p.numel() for p in self.model.parameters())}

    def _read_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.run_dir / rundir.CHECKPOINT, RNN_TRAIN_FORMAT, _REQUIRED, "recurrent training")

    def _check_resume(self, ckpt: dict[str, Any], record: dict[str, Any]) -> None:
        saved = ckpt.get("config") or {}
        for key, value in self.cfg.to_dict().items():
            if key not in RESUMABLE_RNN_TRAIN_FIELDS and key in saved and saved[key] != value:
                raise ConfigError(key, value, f"{saved[key]!r}, as the run was trained with; a resumed training keeps "
                                              f"it (only {', '.join(sorted(RESUMABLE_RNN_TRAIN_FIELDS))} may change)")
        try:
            same = Genotype.from_dict(ckpt["genotype"]) == self.genotype
        except (TypeError, ValueError, KeyError):
            same = False
        if not same:
            raise CheckpointError("the checkpoint trained another genotype than config.json names")
        if ckpt.get("data_fingerprint") not in (None, self.data.fingerprint):
            raise ConfigError("corpus", self.cfg.corpus, "the corpus the run was trained on; its files changed")

    def _restore_parts(self, ckpt: dict[str, Any]) -> None:
        if ckpt["optimizer_kind"] not in ("sgd", "asgd"):
            raise CheckpointError(f"unknown optimizer {ckpt['optimizer_kind']!r} in the checkpoint")
        self.optimizer = self._optimizer(ckpt["optimizer_kind"])
        load_states(ckpt, {"model": self.model, "optimizer": self.optimizer}, "this recurrent network")
        try:
            self.hidden = ckpt["hidden"].to(self.device)
            self.history = [float(x) for x in ckpt["history"]]
            self.best_loss = float(ckpt["best_loss"])
            self.best_model = ckpt["best_model"] or None
        except (AttributeError, TypeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint's training state is not readable ({e})"[:400]) from None

    def _parts_state(self) -> dict[str, Any]:
        return {"format": RNN_TRAIN_FORMAT, "optimizer": self.optimizer.state_dict(),
                "optimizer_kind": self.optimizer_kind, "genotype": self.genotype.to_dict(), "source": self.source,
                "hidden": self.hidden, "history": list(self.history), "best_loss": self.best_loss,
                "best_model": self.best_model or {}, "words": len(self.data.words)}

    # ---------------------------------------------------------------- one step
    def _open_epoch(self) -> Any:
        if self.batch == 0:  # a new epoch starts from a zero state; a resume mid-epoch keeps the restored one
            self.hidden = self.model.init_hidden(self.cfg.batch_size)
        return iter(bptt_starts(self.data.train, self.cfg.bptt)[self.batch:])

    def _one_step(self) -> None:
        cfg = self.cfg
        starts = self._epoch_batches()
        t0 = time.perf_counter()
        words, targets = (t.to(self.device) for t in get_batch(self.data.train, next(starts), cfg.bptt))
        self.model.train()
        log_prob, hidden, raw = self.model(words, self.hidden.detach())
        loss = _nll(log_prob, targets)
        total = loss + cfg.tar_beta * (raw[1:] - raw[:-1]).pow(2).mean() if len(raw) > 1 else loss
        if not math.isfinite(total.item()):
            self._non_finite(f"loss {total.item()}",
                             f"Stop, then resume with a lower lr (e.g. --set lr={cfg.lr / 10:g})")
            return
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip))
        group = self.optimizer.param_groups[0]
        group["lr"] = cfg.lr * len(words) / cfg.bptt
        try:
            self.optimizer.step()
        finally:
            group["lr"] = cfg.lr
        self.hidden = hidden.detach()
        self._count_step(t0)
        self.meters.add({"train_loss": loss.item(), "grad_norm": norm})
        end = self.batch == self.steps_per_epoch
        row = None
        if end or self.step % cfg.log_every == 0:
            means = self.meters.means()
            row = {"step": self.step, "epoch": self.epoch, **means, "train_ppl": _ppl(means["train_loss"]),
                   "lr": cfg.lr, "optimizer": self.optimizer_kind}
        if end:
            row |= self._end_of_epoch()
            self._next_epoch()
        if row is not None:
            row |= self._pace()
            self.recent.append(row)
        self._end_step(row, checkpoint=end)
        self._after_step()

    @contextlib.contextmanager
    def _averaged(self) -> Iterator[None]:
        """Under ASGD the weights measured (and kept as the best) are the averages, as the reference swaps them in."""
        params = [p for p in self.model.parameters() if "ax" in self.optimizer.state.get(p, {})]
        if self.optimizer_kind != "asgd" or not params:
            yield
            return
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.copy_(self.optimizer.state[p]["ax"])
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)

    def _end_of_epoch(self) -> dict[str, Any]:
        cfg = self.cfg
        with self._averaged():
            loss = _evaluate(self.model, self.data.valid, cfg.bptt, self.device)
            if loss < self.best_loss:
                self.best_loss = loss
                self.best_model = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        row = {"valid_loss": loss, "valid_ppl": _ppl(loss), "best_valid_ppl": _ppl(self.best_loss)}
        if self.optimizer_kind == "sgd":
            if cfg.asgd and switches_to_asgd(self.history, loss, cfg.nonmono):
                self.optimizer = self._optimizer("asgd")
                row["switched_to"] = "asgd"
            self.history.append(loss)
        if self.epoch + 1 == cfg.epochs:
            row |= self._test()
        return row

    def _test(self) -> dict[str, Any]:
        """The test split's loss of the best weights; they stay in the model, so the final checkpoint is the
        network the score belongs to."""
        if self.best_model:
            self.model.load_state_dict(self.best_model)
        loss = _evaluate(self.model, self.data.test, self.cfg.bptt, self.device)
        return {"test_loss": loss, "test_ppl": _ppl(loss)}

    def _picture(self) -> dict[str, Any]:
        return {"genotype": self.genotype, "epoch_genotype": self.genotype}
