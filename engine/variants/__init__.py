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

from engine.variants.base import Variant

__all__ = ["Variant", "register", "unregister", "variant_names", "make_variant", "arch_of", "op_weights",
           "derive", "record_weights", "record_genotype", "variant_options", "all_variant_options",
           "second_order_refusal", "variant_summary"]

# Built-in variants: name -> module of this package that registers it (imported on first use).
_MODULES = {"darts": "darts", "pc_darts": "pc_darts", "gdas": "gdas", "fair_darts": "fair_darts", "drnas": "drnas",
            "darts_minus": "darts_minus", "beta_darts": "beta_darts", "sdarts_rs": "sdarts_rs"}
# What config validation and the sidebar need to know of the built-in variants without importing torch. Each
# Variant class declares the same (`options`, `no_second_order`, `summary`); tests/test_variants.py checks
# that the two agree.
_BUILTIN: dict[str, dict[str, Any]] = {
    "darts": {"options": (), "no_second_order": "",
              "summary": "softmax over the ops of each edge (the original DARTS)"},
    "pc_darts": {"options": ("pc_k",), "no_second_order": "",
                 "summary": "1/K of the channels through the mixed op, edge weights beside the alphas (PC-DARTS)"},
    "gdas": {"options": ("gdas_tau_max", "gdas_tau_min"),
             "no_second_order": "its forward pass samples one op per edge, so the finite-difference "
                                "Hessian-vector product would difference two different samples (GDAS is first order)",
             "summary": "one op per edge sampled by hard Gumbel-softmax, straight-through gradients (GDAS)"},
    "fair_darts": {"options": ("fair_zero_one_weight", "fair_threshold"),
                   "no_second_order": "FairDARTS's search is first order (its architect has no unrolled step)",
                   "summary": "independent sigmoid op weights pushed to 0 or 1 by the zero-one loss (FairDARTS)"},
    "drnas": {"options": ("drnas_kl_weight",),
              "no_second_order": "its forward pass samples the op weights from a Dirichlet, so the finite-difference "
                                 "Hessian-vector product would difference two different samples",
              "summary": "op weights sampled from a Dirichlet whose concentration is learned (DrNAS)"},
    "darts_minus": {"options": ("darts_minus_beta",), "no_second_order": "",
                    "summary": "DARTS plus an auxiliary skip on every edge, its weight decaying to 0 (DARTS-)"},
    "beta_darts": {"options": ("beta_decay_weight", "beta_base", "pc_k"), "no_second_order": "",
                   "summary": "DARTS (or PC-DARTS) plus the Beta-Decay regulariser on the alphas (beta-DARTS)"},
    "sdarts_rs": {"options": ("sdarts_epsilon_min", "sdarts_epsilon_max"), "no_second_order": "",
                  "summary": "DARTS with uniform noise on the op weights in the weight step (SDARTS-RS)"},
}
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


def _info(name: str) -> dict[str, Any]:
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _REGISTRY:
        cls = _REGISTRY[name]
        return {"options": tuple(cls.options), "no_second_order": cls.no_second_order, "summary": cls.summary}
    raise ValueError(f"unknown variant {name!r}; known: {', '.join(variant_names())}")


def variant_options(name: str) -> tuple[str, ...]:
    """The SearchConfig fields the variant reads (its own options); torch-free."""
    return tuple(_info(name)["options"])


def all_variant_options() -> dict[str, str]:
    """Every variant option of every known variant -> the variant that owns it (the first that reads it: beta_darts
    also reads pc_darts's `pc_k`)."""
    out: dict[str, str] = {}
    for name in variant_names():
        for opt in variant_options(name):
            out.setdefault(opt, name)
    return out


def second_order_refusal(name: str) -> str:
    """Why the variant cannot take the second-order (unrolled) step; empty when it can."""
    return str(_info(name)["no_second_order"])


def variant_summary(name: str) -> str:
    return str(_info(name)["summary"])


def make_variant(name: str, options: Mapping[str, Any] | None = None) -> Variant:
    """A fresh instance of the variant called `name` with these option values (config fields; missing ones take
    the variant's defaults); a ValueError that lists the known names otherwise."""
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(f"{__name__}.{_MODULES[name]}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(variant_names())}")
    cls = _REGISTRY[name]
    return cls(**{k: v for k, v in (options or {}).items() if k in cls.options})


def _variant(variant: str | Variant | Mapping[str, Any]) -> Variant:
    """A variant by name, as is, or from a run's config dict (its `variant` and that variant's options)."""
    if isinstance(variant, Variant):
        return variant
    if isinstance(variant, Mapping):
        return make_variant(str(variant.get("variant", "darts")), variant)
    return make_variant(variant)


def arch_of(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The architecture parameters of an alphas.jsonl line (or a snapshot's `alphas`) as float64 arrays."""
    if "normal" not in record or "reduce" not in record:
        raise ValueError("an alphas record needs 'normal' and 'reduce' matrices")
    try:
        return {k: np.asarray(v, dtype=np.float64) for k, v in record.items() if k not in _RECORD_KEYS}
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"an alphas record holds something that is not a number: {e}") from None


def op_weights(arch: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts") -> dict[str, np.ndarray]:
    """The op weights the variant's search uses for these raw parameters: {"normal", "reduce"} -> (edges, ops).

    Computed by the variant's own `weights` (in float64, without gradients), so the dashboard shows exactly
    what the forward pass multiplies the op outputs by."""
    import torch

    v = _variant(variant)
    with torch.no_grad():
        tensors = {k: torch.as_tensor(np.asarray(a, dtype=np.float64)) for k, a in arch.items()}
        weights = v.weights(tensors)
    return {kind: w.detach().cpu().numpy() for kind, w in weights.items()}


def derive(arch: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts",
           max_skip: int | None = None) -> Any:
    """The genotype the variant derives from raw architecture parameters (engine.space.cnn.genotype.Genotype); with
    `max_skip`, at most that many skip connections in the normal cell (P-DARTS's cap, engine/search/collapse.py)."""
    v = _variant(variant)
    if max_skip is not None:
        from engine.search.collapse import cap_skips

        return cap_skips(v, arch, max_skip)
    arch = {k: np.asarray(a, dtype=np.float64) for k, a in arch.items()}
    return v.derive(op_weights(arch, v), arch)


def record_weights(record: Mapping[str, Any],
                   variant: str | Variant | Mapping[str, Any] = "darts") -> dict[str, np.ndarray]:
    """Op weights of one alphas.jsonl line (Replay, the alphas CSV, follow mode)."""
    return op_weights(arch_of(record), variant)


def record_genotype(record: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts") -> Any:
    """The genotype of one alphas.jsonl line, as the run's variant derives it; given the run's config (a
    mapping), with its variant's options and its skip cap (`max_skip`), as the run itself derived it."""
    cap = variant.get("max_skip") if isinstance(variant, Mapping) else None
    return derive(arch_of(record), variant, max_skip=cap if isinstance(cap, int) else None)
