"""checkpoint.pt: the full state of a search, enough to continue it exactly.

It holds the supernet's state_dict (alphas included, they are registered parameters), both
optimisers, the weight-lr scheduler, every RNG state and the position in the data (epoch and batch),
next to the resolved config, so a checkpoint rebuilds its search on its own. Only tensors and plain
Python values go in, so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import io
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.core.atomic import write_bytes_atomic

__all__ = ["CheckpointError", "capture_rng", "restore_rng", "clone_state", "save_checkpoint", "load_checkpoint",
           "load_states", "FORMAT"]

FORMAT = "dartboard-search-checkpoint/1"
_REQUIRED = ("format", "step", "epoch", "batch", "model", "w_optimizer", "a_optimizer", "scheduler", "rng", "config")


class CheckpointError(RuntimeError):
    """The checkpoint is missing, truncated or not one of ours; the message names the file."""


def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    # random.setstate wants nested tuples; a round trip through a checkpoint may give lists.
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def clone_state(obj: Any) -> Any:
    """Deep copy of a state tree with tensors detached to the CPU, so it can be saved off-thread."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_state(v) for v in obj)
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Serialise to memory, then write atomically: a crash mid-save leaves the previous checkpoint."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, fmt: str = FORMAT, required: tuple[str, ...] = _REQUIRED,
                    what: str = "search") -> dict[str, Any]:
    """The checkpoint at `path`, checked for its format tag and keys (a training's has its own: engine/train/resume.py);
    a CheckpointError that names the file otherwise. Loaded with weights_only=True: tensors and plain values only."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the run stopped before its first checkpoint was written")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"{path} is not readable: truncated or not a checkpoint ({_why(e)})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(f"{path} is not a dartboard {what} checkpoint (expected format {fmt})")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {', '.join(missing)}")
    return state


def _why(e: Exception) -> str:
    """One line on why torch.load failed. Its unpickling error is several lines advising weights_only=False,
    which is wrong for a damaged file and unsafe for a foreign one: ours hold tensors and plain values only."""
    if isinstance(e, pickle.UnpicklingError):
        return "its contents are not tensors and plain values"
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first}"[:200] if first else type(e).__name__


def load_states(ckpt: dict[str, Any], parts: dict[str, Any], what: str) -> None:
    """Load each checkpoint entry into its part (`{"model": model, "scheduler": scheduler, ...}`); a CheckpointError
    that names `what` ("this search network") if one is missing or does not fit."""
    try:
        for key, part in parts.items():
            part.load_state_dict(ckpt[key])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
        raise CheckpointError(f"the checkpoint does not fit {what} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:300]})") from None
