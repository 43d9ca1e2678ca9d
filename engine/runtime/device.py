"""Device selection and mixed precision: CUDA, then MPS, then the CPU; no hard-coded `.cuda()`."""

from __future__ import annotations

import contextlib

import torch

from engine.core.config import ConfigError

__all__ = ["select_device", "autocast", "amp_dtype"]


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit name that is not available is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", name, "CUDA is not available here; use device=auto or cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ConfigError("device", name, f"this machine has {torch.cuda.device_count()} CUDA device(s), "
                                          f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device", name, "MPS is not available here; use device=auto or cpu")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype: bf16 on the CPU and on CUDA devices that have it (Ampere and newer), fp16 on MPS.

    bf16 has fp32's range, so the search needs no loss scaling. A CUDA device without bf16 is refused:
    fp16 there would need a gradient scaler on both the weight and the architecture step."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise RuntimeError(f"amp=true uses bf16, which {torch.cuda.get_device_name(device)} does not have "
                           "(CUDA devices before Ampere); run with amp=false")
    return torch.bfloat16 if device.type in ("cpu", "cuda") else torch.float16


def autocast(device: torch.device, enabled: bool):
    """Autocast for forward passes when `enabled`; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))
