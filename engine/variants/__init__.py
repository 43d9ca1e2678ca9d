"""The variant registry: every way of relaxing the cell choice that the engine can search with.

One module per variant in this package (darts.py is the reference); each defines a `Variant` subclass and
decorates it with `@register`. `variant` in a SearchConfig names one. Modules are imported on first use,
so reading a config or a genotype never loads torch.

The functions below are how the rest of the engine and the dashboard turn recorded architecture parameters
(a snapshot's arrays, an alphas.jsonl line) into op weights and a genotype: always through the run's variant.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import Variant

__all__ = ["Variant", "register", "unregister", "variant_names", "make_variant", "arch_of", "op_weights",
           "derive", "record_weights", "record_genotype"]

# Built-in variants: name -> module of this package that registers it (imported on first use).
_MODULES = {"darts": "darts"}
_REGISTRY: dict[str, type[Variant]] = {}
# Keys of an alphas.jsonl line that are not architecture parameters.
_RECORD_KEYS = frozenset({"step", "epoch"})


def register(cls: type[Variant]) -> type[Variant]:
    """Class decorator: make `cls` available as `variant=cls.name`."""
    if not cls.name or not cls.name.isidentifier():
        raise ValueError(f"a variant needs a name that is an identifier, got {cls.name!r}")
    if _REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"variant {cls.name!r} is already registered by {_REGISTRY[cls.name].__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a variant registered at run time (tests); built-in variants stay."""
    if name in _MODULES:
        raise ValueError(f"{name!r} is a built-in variant")
    _REGISTRY.pop(name, None)


def variant_names() -> tuple[str, ...]:
    """Every variant a config may name: the built-in ones (darts first), then any registered at run time."""
    return tuple(_MODULES) + tuple(sorted(set(_REGISTRY) - set(_MODULES)))


def make_variant(name: str) -> Variant:
    """A fresh instance of the variant called `name`; a ValueError that lists the known names otherwise."""
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(f"{__name__}.{_MODULES[name]}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(variant_names())}")
    return _REGISTRY[name]()


def _variant(variant: str | Variant) -> Variant:
    return make_variant(variant) if isinstance(variant, str) else variant


def arch_of(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The architecture parameters of an alphas.jsonl line (or a snapshot's `alphas`) as float64 arrays."""
    if "normal" not in record or "reduce" not in record:
        raise ValueError("an alphas record needs 'normal' and 'reduce' matrices")
    try:
        return {k: np.asarray(v, dtype=np.float64) for k, v in record.items() if k not in _RECORD_KEYS}
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"an alphas record holds something that is not a number: {e}") from None


def op_weights(arch: Mapping[str, Any], variant: str | Variant = "darts") -> dict[str, np.ndarray]:
    """The op weights the variant's search uses for these raw parameters: {"normal", "reduce"} -> (edges, ops).

    Computed by the variant's own `weights` (in float64, without gradients), so the dashboard shows exactly
    what the forward pass multiplies the op outputs by."""
    import torch

    v = _variant(variant)
    with torch.no_grad():
        tensors = {k: torch.as_tensor(np.asarray(a, dtype=np.float64)) for k, a in arch.items()}
        weights = v.weights(tensors)
    return {kind: w.detach().cpu().numpy() for kind, w in weights.items()}


def derive(arch: Mapping[str, Any], variant: str | Variant = "darts") -> Any:
    """The genotype the variant derives from raw architecture parameters (engine.genotype.Genotype)."""
    v = _variant(variant)
    arch = {k: np.asarray(a, dtype=np.float64) for k, a in arch.items()}
    return v.derive(op_weights(arch, v), arch)


def record_weights(record: Mapping[str, Any], variant: str | Variant = "darts") -> dict[str, np.ndarray]:
    """Op weights of one alphas.jsonl line (Replay, the alphas CSV, follow mode)."""
    return op_weights(arch_of(record), variant)


def record_genotype(record: Mapping[str, Any], variant: str | Variant = "darts") -> Any:
    """The genotype of one alphas.jsonl line, as the run's variant derives it."""
    return derive(arch_of(record), variant)
