"""One ONNX file from an eval-mode module, through torch.export (the dynamo exporter): the convolutional and the
recurrent model exports (engine/train/export.py, export_rnn.py) both write theirs with it."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["onnx_bytes"]


def onnx_bytes(module: torch.nn.Module, example: tuple, inputs: list[str], outputs: list[str],
               dynamic_shapes: dict[str, Any]) -> bytes:
    """The module as ONNX bytes, its inputs and outputs named, the shapes' dynamic dimensions kept."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:  # say so plainly, before a long export fails deep in torch
        raise ValueError(f"ONNX export needs {' and '.join(missing)}: pip install 'dartboard[onnx]' "
                         "(or the onnx and onnxscript pins of requirements-dev.txt)")
    program = torch.onnx.export(module, example, dynamo=True, input_names=inputs, output_names=outputs,
                                dynamic_shapes=dynamic_shapes, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:  # ONNXProgram.save writes a path; the run gets it atomically
        path = Path(tmp) / "model.onnx"
        program.save(str(path))
        extra = [p.name for p in Path(tmp).iterdir() if p != path]
        if extra:  # weights put beside the graph (past 2 GB) would not travel with one file
            raise ValueError(f"the ONNX exporter wrote external data ({', '.join(extra)}); the model is too large "
                             "for a one-file export")
        return path.read_bytes()
