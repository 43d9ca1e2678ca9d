"""Exports of a training run's model: a self-describing checkpoint, torch.export, ONNX and TorchScript.

    checkpoint   model.pt: {"format", "genotype", "config", "num_classes", "in_channels", "image_size",
                 "mean", "std", "step", "epoch", "state_dict"}; `torch.load(weights_only=True)` reads it and
                 `load_model` rebuilds the network from it alone
    pt2          model.pt2: torch.export.load(path).module()(x) -> logits, no dartboard code needed
    onnx         model.onnx: input "input" (batch, C, H, W), output "logits" (batch, classes)
    torchscript  model.torchscript.pt: torch.jit.load(path)(x) -> logits; kept for runtimes that only read
                 TorchScript, while PyTorch still ships it (2.14 marks torch.jit.trace deprecated and says so)

Every graph is the network in eval mode: no drop path, no auxiliary head, BatchNorm on its running
statistics, with a dynamic batch dimension. Inputs are normalised images ((pixel / 255 - mean) / std per channel,
the recorded mean/std). Written only inside the run directory, atomically, like the genotype exports
(engine/runs/export.py).

pt2 and ONNX come from the same torch.export graph (ONNX through torch's dynamo exporter, which needs the `onnx`
and `onnxscript` packages: the `onnx` extra). The TorchScript-based ONNX exporter (`dynamo=False`) and
torch.jit.trace are the two PyTorch 2.14 marks deprecated; their warnings are no longer hidden here.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from engine.core.atomic import write_bytes_atomic
from engine.nn.network import NetworkCIFAR, NetworkImageNet
from engine.runs import rundir
from engine.runs.export import _target
from engine.space.cnn.genotype import Genotype
from engine.train.onnx import onnx_bytes
from engine.train.resume import load_train_checkpoint

__all__ = ["MODEL_FORMAT", "MODEL_FILES", "model_record", "load_model", "write_model_export"]

MODEL_FORMAT = "dartboard-model/1"
MODEL_FILES = {"checkpoint": "model.pt", "pt2": "model.pt2", "onnx": "model.onnx",
               "torchscript": "model.torchscript.pt"}
_MAX_BATCH = 1 << 16  # the dynamic batch dimension's upper bound: torch.export wants one


class _Logits(torch.nn.Module):
    """The network's first output only (the auxiliary output is None in eval mode), for tracing."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def model_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The self-describing model of a training run, from its latest checkpoint (auxiliary head left out)."""
    run_dir = Path(run_dir)
    if rundir.read_config(run_dir).get("kind") not in ("train", "rnn_train"):
        raise ValueError(f"{run_dir} is a search run; model exports (checkpoint, pt2, onnx, torchscript) are for a "
                         "training run: `python -m engine train RUN_DIR` first")
    ckpt = load_train_checkpoint(run_dir / rundir.CHECKPOINT)
    weights = {k: v for k, v in ckpt["model"].items() if not k.startswith("auxiliary_head.")}
    keys = ("config", "genotype", "source", "num_classes", "in_channels", "image_size", "mean", "std", "step", "epoch")
    return {"format": MODEL_FORMAT, **{k: ckpt.get(k) for k in keys}, "state_dict": weights}


def load_model(record: dict[str, Any] | str | os.PathLike) -> NetworkCIFAR | NetworkImageNet:
    """The network of a model record (or a model.pt path), in eval mode."""
    if not isinstance(record, dict):
        record = torch.load(record, map_location="cpu", weights_only=True)
    if record.get("format") != MODEL_FORMAT:
        raise ValueError(f"not a dartboard model (expected format {MODEL_FORMAT})")
    cfg = record["config"]
    # config.json of a run from before the ImageNet preset has no "network": it trained NetworkCIFAR
    network = NetworkImageNet if cfg.get("network") == "imagenet" else NetworkCIFAR
    net = network(cfg["init_channels"], record["num_classes"], cfg["layers"], False,
                  Genotype.from_dict(record["genotype"]), in_channels=record["in_channels"])
    net.load_state_dict(record["state_dict"])
    return net.eval()


def _example(record: dict[str, Any], batch: int = 2) -> torch.Tensor:
    return torch.zeros(batch, record["in_channels"], record["image_size"], record["image_size"])


def _graph(record: dict[str, Any]):
    """The eval-mode network as a torch.export program whose batch dimension is dynamic (from 1 image)."""
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    return torch.export.export(_Logits(load_model(record)).eval(), (_example(record),),
                               dynamic_shapes={"x": {0: batch}})


def _pt2(record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.export.save(_graph(record), buf)
    return buf.getvalue()


def _torchscript(record: dict[str, Any]) -> bytes:
    if not hasattr(torch.jit, "trace"):  # a PyTorch that no longer ships TorchScript
        raise ValueError(f"this PyTorch ({torch.__version__}) has no TorchScript; export pt2 (torch.export) instead")
    traced = torch.jit.trace(_Logits(load_model(record)).eval(), _example(record))
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    return buf.getvalue()


def _onnx(record: dict[str, Any]) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    return onnx_bytes(_Logits(load_model(record)).eval(), (_example(record),), ["input"], ["logits"],
                      {"x": {0: batch}})


def write_model_export(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> Path:
    """Write the training run's model as `fmt` under RUN_DIR/exports/ (or `out`, inside the run); its path."""
    if fmt not in MODEL_FILES:
        raise ValueError(f"model format {fmt!r} is not one of {', '.join(MODEL_FILES)}")
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist")
    target = _target(run, "json", out if out is not None else Path("exports") / MODEL_FILES[fmt])
    if rundir.read_config(run).get("kind") == "rnn_train":  # a language model: one word a call (export_rnn.py)
        from engine.train.export_rnn import rnn_graph_bytes, rnn_model_record, write_vocab

        record = rnn_model_record(run)
        data = rnn_graph_bytes(record, fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)
        write_vocab(target.parent, record)
        return target
    record = model_record(run)
    if fmt == "checkpoint":
        buf = io.BytesIO()
        torch.save(record, buf)
        data = buf.getvalue()
    else:
        data = {"pt2": _pt2, "onnx": _onnx, "torchscript": _torchscript}[fmt](record)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, data)
    return target
