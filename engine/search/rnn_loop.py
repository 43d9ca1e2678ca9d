"""The recurrent search as a job on the shared run lifecycle (engine/runs/lifecycle.py): config + run directory
+ control + observers, as engine/search/loop.py runs the convolutional one.

One step = `step.bilevel_step`: the alphas on the next BPTT window of the valid split, then the weights on the
next window of the train split (quark0/darts rnn/train_search.py; both splits batchified at `batch_size`, the
valid one read from the train window's row modulo its length, as the reference does). The hidden state carries
from window to window within an epoch (truncated BPTT) and starts from zeros at each epoch, as the reference's
`train()` does; it is part of the checkpoint, so a resumed run continues exactly. The sequence length is fixed
at `bptt` (the reference halves it at random one window in twenty; a fixed grid keeps the epoch's steps fixed).

The config's `variant` relaxes the op choice (engine/variants/, docs/variants.md "On the recurrent cell"): its
buffers are in the network's state (so in every checkpoint), its schedules are set before each epoch's first step
and on resume, and every alphas.jsonl line carries them beside "recurrent", so a reader turns a line into the
same op weights with `engine.variants.record_weights(line, config)`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.core.config import ConfigError
from engine.datasets.corpus import EMBEDDED_CORPUS, CorpusError, batchify, bptt_starts, get_batch, load_corpus
from engine.nn.rnn_supernet import RNNSearchNetwork
from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint, load_states
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter
from engine.runs.lifecycle import RunLoop
from engine.runs.lifecycle_launch import launch
from engine.runs.lifecycle_resume import RunningMeans
from engine.runs.snapshot import SnapshotBox
from engine.runs.tensorboard import TensorBoardLog
from engine.runtime.distributed import SINGLE, World, gather_rows
from engine.search.rnn_config import RNNSearchConfig
from engine.search.rnn_step import bilevel_step, evaluate, make_optimizers
from engine.variants import record_weights

__all__ = ["run_rnn_search", "RNNSearchData", "load_rnn_search_data"]

# What fixes the searched problem: a resume must not change it (the learning rates and dropouts may change).
# The variant too: its buffers are part of the checkpointed network.
_FIXED = ("corpus", "max_vocab", "emsize", "nhid", "nodes", "bptt", "batch_size", "variant")
EVAL_BATCH = 10  # the reference's eval_batch_size
_REQUIRED = ("format", "step", "epoch", "batch", "model", "w_optimizer", "a_optimizer", "scheduler", "rng", "config",
             "hidden_train", "hidden_valid")


@dataclass(frozen=True)
class RNNSearchData:
    """The corpus cut for the search, with the fields config.json records for any run's data."""
    name: str
    fingerprint: str
    words: tuple[str, ...]
    train: torch.Tensor     # (rows, batch_size) token ids
    valid: torch.Tensor
    valid_eval: torch.Tensor  # the valid split again, (rows, 10): what the epoch's perplexity is measured on
    num_train: int          # tokens of each split
    num_valid: int
    in_channels: None = None   # image fields of the shared record: none for text
    image_size: None = None

    @property
    def num_classes(self) -> int:  # what a model predicts: a word of the vocabulary
        return len(self.words)


def load_rnn_search_data(cfg: RNNSearchConfig) -> RNNSearchData:
    directory = EMBEDDED_CORPUS if cfg.corpus == "embedded" else Path(cfg.corpus)
    try:
        corpus = load_corpus(directory, cfg.max_vocab)
    except CorpusError as e:
        raise ConfigError("corpus", cfg.corpus, str(e)) from None
    try:
        train, valid = batchify(corpus.train, cfg.batch_size), batchify(corpus.valid, cfg.batch_size)
    except ValueError as e:
        raise ConfigError("batch_size", cfg.batch_size, str(e)) from None
    digest = hashlib.sha256("\n".join(corpus.words).encode())
    for ids in (corpus.train, corpus.valid):
        digest.update(np.ascontiguousarray(ids).tobytes())
    return RNNSearchData(cfg.corpus, digest.hexdigest()[:16], corpus.words, train, valid,
                         batchify(corpus.valid, min(EVAL_BATCH, len(corpus.valid) // 2)), len(corpus.train),
                         len(corpus.valid))


def run_rnn_search(config: RNNSearchConfig, run_dir: str | Path, *, control: Control | None = None,
                   callbacks: list[Callback] | None = None, box: SnapshotBox | None = None,
                   resume: bool = False, world: World = SINGLE) -> str:
    """Run (or resume) a recurrent search writing `run_dir`; returns the final state. Never raises for a failed
    run: the error ends up in status.json, the snapshot and `on_exception` (engine/runs/lifecycle_launch.py)."""
    # the run's variant with its options, so the events draw the op weights the search used; under torchrun every
    # rank calls this with its `world`, and rank 0 alone writes the run directory
    observers = [TensorBoardLog(run_dir, config.to_dict())] if world.main else []
    return launch(_RNNLoop, config, run_dir, control=control, callbacks=callbacks, box=box, resume=resume,
                  world=world, observers=observers)


class _Meters(RunningMeans):
    KEYS = ("train_loss", "valid_loss", "grad_norm")


def _rows(a: np.ndarray) -> Any:  # (edges, ops) rows, or a scalar buffer as a float
    return np.round(a.astype(np.float64), 7).tolist()


class _RNNLoop(RunLoop):
    KIND = "rnn_search"
    SPACE = "rnn"
    OOM_ADVICE = "lower batch_size, nhid and emsize, bptt or max_vocab, or use order=first"
    SPLITS = ("num_train", "num_valid")
    Meters = _Meters
    cfg: RNNSearchConfig
    model: RNNSearchNetwork

    def __init__(self, config: RNNSearchConfig, run_dir: Path, control: Control, hooks: CallbackList,
                 writer: RunDirWriter, box: SnapshotBox, world: World = SINGLE):
        self.genotype = self.epoch_genotype = None
        self.initial_weights: dict[str, np.ndarray] = {}
        self.hidden: tuple[torch.Tensor, torch.Tensor] | None = None
        self.whole_hidden: tuple[torch.Tensor, torch.Tensor] | None = None  # every rank's columns, for checkpoints
        super().__init__(config, run_dir, control, hooks, writer, box, world)

    # ---------------------------------------------------------------- setup, checkpoint, resume
    def _build(self) -> None:
        cfg, world = self.cfg, self.world
        if cfg.batch_size % world.size:
            raise ConfigError("batch_size", cfg.batch_size, f"a multiple of the {world.size} processes: each takes "
                                                            "an equal share of the batch's columns")
        self.data = load_rnn_search_data(cfg)
        # under torchrun each rank reads its own columns of every batch (the sequences are independent streams)
        share = cfg.batch_size // world.size
        self.columns = slice(world.rank * share, (world.rank + 1) * share)
        self.train_words = self.data.train[:, self.columns].contiguous()
        self.valid_words = self.data.valid[:, self.columns].contiguous()
        self.steps_per_epoch = len(bptt_starts(self.data.train, cfg.bptt))
        self.model = RNNSearchNetwork(self.data.num_classes, cfg.emsize, cfg.nhid, cfg.nodes, cfg.dropout,
                                      cfg.dropouth, cfg.dropoutx, cfg.dropouti, cfg.dropoute, variant=cfg.variant,
                                      variant_options=cfg.variant_options()).to(self.device)
        self.w_opt, self.a_opt = make_optimizers(self.model, cfg.w_lr, cfg.w_weight_decay, cfg.a_lr,
                                                 cfg.a_weight_decay)
        # The reference keeps the search's learning rate constant; a schedule object keeps the lifecycle's shape.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.w_opt, lambda epoch: 1.0)
        self.hidden = self._zero_hidden()
        self.whole_hidden = self._gathered()

    def _zero_hidden(self) -> tuple[torch.Tensor, torch.Tensor]:
        share = self.cfg.batch_size // self.world.size
        return self.model.init_hidden(share), self.model.init_hidden(share)

    def _op_weights(self) -> dict[str, np.ndarray]:
        return self.model.op_weights()  # the variant's weights (softmax rows for DARTS, sigmoids for FairDARTS)

    def _begin(self) -> None:
        self.initial_weights = self._op_weights()
        self.genotype = self.model.genotype()

    def _read_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.run_dir / rundir.CHECKPOINT, required=_REQUIRED, what="recurrent search")

    def _check_resume(self, ckpt: dict[str, Any], record: dict[str, Any]) -> None:
        saved = ckpt.get("config") or {}
        for name in _FIXED:
            if name in saved and saved[name] != getattr(self.cfg, name):
                raise ConfigError(name, getattr(self.cfg, name), f"{saved[name]!r}, as the run was searched with; "
                                                                 f"start a new run to change it")
        if ckpt.get("data_fingerprint") not in (None, self.data.fingerprint):
            raise ConfigError("corpus", self.cfg.corpus, "the corpus the run was searched on; its files changed")
        saved_world = ckpt.get("world_size", 1)
        if saved_world != self.world.size:  # each rank's columns, hence its batch norm statistics, would change
            raise ConfigError("world_size", self.world.size, f"the run was searched by {saved_world} process(es); "
                              f"resume it with the same number (torchrun --nproc_per_node {saved_world})")

    def _restore_parts(self, ckpt: dict[str, Any]) -> None:
        load_states(ckpt, {"model": self.model, "w_optimizer": self.w_opt, "a_optimizer": self.a_opt,
                           "scheduler": self.scheduler}, "this recurrent search network")
        # the checkpoint holds every column's state; this rank continues its own
        self.whole_hidden = (ckpt["hidden_train"].to(self.device), ckpt["hidden_valid"].to(self.device))
        self.hidden = tuple(h[self.columns] for h in self.whole_hidden)
        self.genotype = self.model.genotype()

    def _parts_state(self) -> dict[str, Any]:
        return {"w_optimizer": self.w_opt.state_dict(), "a_optimizer": self.a_opt.state_dict(),
                "scheduler": self.scheduler.state_dict(), "hidden_train": self.whole_hidden[0],
                "hidden_valid": self.whole_hidden[1], "world_size": self.world.size}

    def _load(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        metrics = super()._load(record)
        first = rundir.read_alphas(self.run_dir)[:1]
        if first and "recurrent" in first[0]:
            self.initial_weights = record_weights(first[0], self.model.variant)
        else:
            self.initial_weights = self._op_weights()
        return metrics

    # ---------------------------------------------------------------- one step
    def _open_epoch(self) -> Any:
        if self.batch == 0:  # a new epoch starts from a zero state; a resume mid-epoch keeps the restored one
            self.hidden = self._zero_hidden()
            self.whole_hidden = self._gathered()
        self.model.start_epoch(self.epoch, self.cfg.epochs)  # the variant's schedules (DARTS-'s beta, ...)
        return iter(bptt_starts(self.data.train, self.cfg.bptt)[self.batch:])

    def _one_step(self) -> None:
        cfg, dev = self.cfg, self.device
        starts = self._epoch_batches()
        t0 = time.perf_counter()
        row = next(starts)
        train = tuple(t.to(dev) for t in get_batch(self.train_words, row, cfg.bptt))
        valid = tuple(t.to(dev) for t in get_batch(self.valid_words, row % (len(self.valid_words) - 1), cfg.bptt))
        out = bilevel_step(self.model, self.w_opt, self.a_opt, train, valid, *self.hidden,
                           second_order=cfg.order == "second", clip=cfg.clip, beta=cfg.tar_beta, bptt=cfg.bptt,
                           world=self.world)
        if not np.isfinite([out.train_loss, out.valid_loss]).all():
            self._non_finite(f"train loss {out.train_loss}, valid loss {out.valid_loss}",
                             f"Stop, then resume with a lower w_lr or a_lr (e.g. --set w_lr={cfg.w_lr / 10:g}).")
            return
        self.hidden = (out.hidden_train, out.hidden_valid)
        self.whole_hidden = self._gathered()
        self._count_step(t0)
        self.meters.add({"train_loss": out.train_loss, "valid_loss": out.valid_loss, "grad_norm": out.grad_norm})
        end_of_epoch = self.batch == self.steps_per_epoch
        metrics = alphas_row = None
        if self.step % cfg.log_every == 0 or end_of_epoch:
            means = self.meters.means()
            # perplexity, the language model's usual score: exp of the mean cross-entropy (capped, as at epoch end)
            ppl = {f"{split}_ppl": float(np.exp(min(means[f"{split}_loss"], 50.0))) for split in ("train", "valid")
                   if f"{split}_loss" in means}
            metrics = {"step": self.step, "epoch": self.epoch, **means, **ppl,
                       "w_lr": self.w_opt.param_groups[0]["lr"], "a_lr": self.a_opt.param_groups[0]["lr"],
                       **self._pace()}
            self.recent.append(metrics)
            # the alphas and the variant's buffers: what `record_weights` needs to give the step's op weights
            alphas_row = {"step": self.step, "epoch": self.epoch,
                          **{k: _rows(v) for k, v in self.model.arch_numpy().items()}}
        self.genotype = self.model.genotype()
        if end_of_epoch:
            # The reference's per-epoch check: the whole valid split, dropout off, 10 columns (its eval batch).
            loss = evaluate(self.model, self.data.valid_eval.to(dev), cfg.bptt)
            metrics |= {"epoch_valid_loss": loss, "epoch_valid_ppl": float(np.exp(min(loss, 50.0)))}
            self._next_epoch()
            final = self.epoch == cfg.epochs
            grow = {"step": self.step, "epoch": self.epoch - 1, "kind": "final" if final else "epoch_end",
                    "genotype": self.genotype.to_dict()}
            event = self._end_step(metrics, alphas_row, epoch=self.epoch - 1, checkpoint=True)
            self.hooks.on_epoch_end(event, grow)
            self.epoch_genotype = self.genotype
        else:
            self._end_step(metrics, alphas_row)
        self._after_step()

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's hidden states in column order (the whole batch's): what a checkpoint keeps, so that a
        resume continues each column; gathered every step, as a checkpoint may be due at any step on rank 0."""
        return gather_rows(self.hidden[0], self.world), gather_rows(self.hidden[1], self.world)

    def _status(self) -> dict[str, Any]:
        return {**super()._status(), "world_size": self.world.size}

    # ---------------------------------------------------------------- genotype rows and snapshot
    def _write_genotype(self, kind: str) -> None:
        epoch = self.epoch - 1 if self.batch == 0 and self.step > 0 else self.epoch
        self.writer.write_genotype({"step": self.step, "epoch": epoch, "kind": kind,
                                    "genotype": self.genotype.to_dict()})

    def _derive(self) -> None:
        if self.genotype is None:
            self.genotype = self.model.genotype()
        self._write_genotype("derive")

    def _stopping(self) -> None:
        if self.genotype is not None:
            self._write_genotype("stopped")

    def _picture(self) -> dict[str, Any]:
        model = self.model
        return {"alphas": model.arch_numpy() if model is not None else {},
                "weights": self._op_weights() if model is not None else {},
                "initial_weights": self.initial_weights, "genotype": self.genotype,
                "epoch_genotype": self.epoch_genotype}
