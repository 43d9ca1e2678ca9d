"""Exports of a recurrent training's language model: the same four formats as a convolutional training's
(engine/train/export.py), for a model that reads one word at a time.

    checkpoint   model.pt: {"format", "genotype", "config", "words", "step", "epoch", "state_dict"};
                 `torch.load(weights_only=True)` reads it and `load_rnn_model` rebuilds the network from it alone
    pt2          model.pt2: torch.export.load(path).module()(tokens, hidden) -> (log_probs, hidden)
    onnx         model.onnx: inputs "tokens" (batch,) int64 and "hidden" (batch, nhid), outputs "log_probs"
                 (batch, vocabulary) and "next_hidden" (batch, nhid)
    torchscript  model.torchscript.pt: torch.jit.load(path)(tokens, hidden) -> (log_probs, hidden)

Each graph is one time step of the network in eval mode (no dropout), with a dynamic batch: a sequence is read by
calling it once a word, feeding each step's hidden state to the next, from zeros. One step, not a whole sequence,
because the cell is unrolled by a Python loop over time: torch.export would fix the sequence length at the
example's. The weights are the best ones by validation (what the training tested); the vocabulary, one word a
line in id order, goes beside every graph as exports/vocab.txt and inside model.pt, so text can be turned into
ids and back without this code.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.core.atomic import write_bytes_atomic
from engine.nn.rnn_network import RNNModel
from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint
from engine.space.rnn.genotype import Genotype
from engine.space.rnn.train_config import RNNTrainConfig
from engine.train.onnx import onnx_bytes

__all__ = ["RNN_MODEL_FORMAT", "VOCAB_FILE", "rnn_model_record", "load_rnn_model", "OneStep", "rnn_graph_bytes",
           "write_vocab"]

RNN_MODEL_FORMAT = "dartboard-rnn-model/1"
VOCAB_FILE = "vocab.txt"
_MAX_BATCH = 1 << 16


class OneStep(torch.nn.Module):
    """One word of the language model: token ids (batch,) and the hidden state (batch, nhid) -> the next word's
    log-probabilities (batch, vocabulary) and the new hidden state."""

    def __init__(self, model: RNNModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        h = m.cell.step(F.embedding(tokens, m.encoder.weight), hidden, None, None)
        return F.log_softmax(m.decoder(h), dim=-1), h


def rnn_model_record(run_dir: str | Path) -> dict[str, Any]:
    """The self-describing model of a recurrent training run: its best weights by validation (its latest ones when
    no epoch has ended yet), its genotype, config and vocabulary."""
    from engine.train.rnn_loop import RNN_TRAIN_FORMAT, load_rnn_train_data

    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / rundir.CHECKPOINT, RNN_TRAIN_FORMAT,
                           ("model", "config", "genotype", "best_model", "step", "epoch"), "recurrent training")
    config = RNNTrainConfig.from_dict(ckpt["config"])
    data = load_rnn_train_data(config)  # the vocabulary is the corpus's, rebuilt as the training built it
    if ckpt.get("data_fingerprint") not in (None, data.fingerprint):
        raise ValueError(f"the corpus {config.corpus!r} changed since this model was trained: its vocabulary cannot "
                         "be rebuilt; export from the files it was trained on")
    weights = ckpt["best_model"] or ckpt["model"]
    return {"format": RNN_MODEL_FORMAT, "config": ckpt["config"], "genotype": ckpt["genotype"],
            "source": ckpt.get("source"), "words": list(data.words), "step": ckpt["step"], "epoch": ckpt["epoch"],
            "state_dict": {k: v.detach().cpu() for k, v in weights.items()}}


def load_rnn_model(record: dict[str, Any] | str | Path) -> RNNModel:
    """The network of a recurrent model record (or a model.pt path), in eval mode."""
    if not isinstance(record, dict):
        record = torch.load(record, map_location="cpu", weights_only=True)
    if record.get("format") != RNN_MODEL_FORMAT:
        raise ValueError(f"not a dartboard recurrent model (expected format {RNN_MODEL_FORMAT})")
    cfg = record["config"]
    net = RNNModel(len(record["words"]), Genotype.from_dict(record["genotype"]), ninp=cfg["emsize"],
                   nhid=cfg["nhid"])
    net.load_state_dict(record["state_dict"])
    return net.eval()


def _example(record: dict[str, Any], batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(batch, dtype=torch.long), torch.zeros(batch, record["config"]["nhid"])


def rnn_graph_bytes(record: dict[str, Any], fmt: str) -> bytes:
    """The model of `record` as `fmt` (checkpoint, pt2, torchscript or onnx), as bytes."""
    buf = io.BytesIO()
    if fmt == "checkpoint":
        torch.save(record, buf)
        return buf.getvalue()
    step = OneStep(load_rnn_model(record)).eval()
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    shapes = {"tokens": {0: batch}, "hidden": {0: batch}}
    if fmt == "pt2":
        torch.export.save(torch.export.export(step, _example(record), dynamic_shapes=shapes), buf)
    elif fmt == "torchscript":
        if not hasattr(torch.jit, "trace"):
            raise ValueError(f"this PyTorch ({torch.__version__}) has no TorchScript; export pt2 instead")
        torch.jit.save(torch.jit.trace(step, _example(record)), buf)
    elif fmt == "onnx":
        return onnx_bytes(step, _example(record), ["tokens", "hidden"], ["log_probs", "next_hidden"], shapes)
    else:
        raise ValueError(f"model format {fmt!r} is not one of checkpoint, pt2, onnx, torchscript")
    return buf.getvalue()


def write_vocab(target_dir: Path, record: dict[str, Any]) -> Path:
    """exports/vocab.txt: the vocabulary, one word a line, line n being token id n."""
    path = target_dir / VOCAB_FILE
    write_bytes_atomic(path, ("\n".join(record["words"]) + "\n").encode())
    return path
