"""The variants: every way of relaxing the cell choice that the engine can search with.

One module per variant in this package (darts.py is the reference); each defines a `Variant` subclass that
declares all the engine and the dashboard need to know of it (options with their checks, labels and help,
summary, lesson, paper, state figures) and decorates it with `@register` (registry.py). `variant` in a
SearchConfig names one.
A variant module imports torch inside its methods only, so reading a config, a declaration or a genotype never
loads torch.

The functions below are how the rest of the engine and the dashboard turn recorded architecture parameters
(a snapshot's arrays, an alphas.jsonl line) into op weights, a genotype and the variant's own state figures:
always through the run's variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.space import space_of_kinds
from engine.variants.base import Variant
from engine.variants.options import Option, Rule
from engine.variants.registry import (
    all_variant_options,
    as_variant,
    builtin_variant_options,
    make_variant,
    option_spec,
    register,
    second_order_refusal,
    space_variants,
    unregister,
    variant_class,
    variant_names,
    variant_options,
    variant_summary,
)
from engine.variants.skip_cap import cap_skips, check_max_skip
from engine.variants.state import StateFigure

__all__ = ["Variant", "Option", "Rule", "StateFigure", "register", "unregister", "variant_names", "variant_class",
           "make_variant", "as_variant", "arch_of", "op_weights", "derive", "record_weights", "record_genotype",
           "run_skip_cap", "variant_options", "all_variant_options", "builtin_variant_options", "option_spec",
           "second_order_refusal", "space_variants", "variant_summary", "state_figures", "state_text", "cap_skips",
           "check_max_skip"]

# Keys of an alphas.jsonl line that are not architecture parameters.
_RECORD_KEYS = frozenset({"step", "epoch"})


def arch_of(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The architecture parameters of an alphas.jsonl line (or a snapshot's `alphas`) as float64 arrays."""
    if space_of_kinds(record) is None:
        raise ValueError("an alphas record needs the matrices of a cell: 'normal' and 'reduce', or 'recurrent'")
    try:
        return {k: np.asarray(v, dtype=np.float64) for k, v in record.items() if k not in _RECORD_KEYS}
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"an alphas record holds something that is not a number: {e}") from None


def op_weights(arch: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts") -> dict[str, np.ndarray]:
    """The op weights the variant's search uses for these raw parameters: {"normal", "reduce"} -> (edges, ops).

    Computed by the variant's own `weights` (in float64, without gradients), so the dashboard shows exactly
    what the forward pass multiplies the op outputs by."""
    return as_variant(variant).op_weights(arch)


def derive(arch: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts",
           max_skip: int | None = None) -> Any:
    """The genotype the variant derives from raw architecture parameters (engine.space.cnn.genotype.Genotype); with
    `max_skip`, at most that many skip connections in the normal cell (P-DARTS's cap, engine/variants/skip_cap.py)."""
    v = as_variant(variant)
    if max_skip is not None:
        return cap_skips(v, arch, max_skip)
    arch = {k: np.asarray(a, dtype=np.float64) for k, a in arch.items()}
    return v.derive(v.op_weights(arch), arch)


def record_weights(record: Mapping[str, Any],
                   variant: str | Variant | Mapping[str, Any] = "darts") -> dict[str, np.ndarray]:
    """Op weights of one alphas.jsonl line (Replay, the alphas CSV, follow mode)."""
    return op_weights(arch_of(record), variant)


def record_genotype(record: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts",
                    max_skip: int | None = None) -> Any:
    """The genotype of one alphas.jsonl line, as the variant derives it (given a run's config, with its options);
    `max_skip` caps its skip connections (a run's own cap is its config's `max_skip`: RunHandle passes it)."""
    return derive(arch_of(record), variant, max_skip=max_skip)


def run_skip_cap(config: Mapping[str, Any]) -> int | None:
    """The skip cap a run derived its cells with: its config's `max_skip`, or None."""
    cap = config.get("max_skip")
    return cap if isinstance(cap, int) and not isinstance(cap, bool) else None


def _state_arch(arch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in arch.items() if k not in _RECORD_KEYS}


def state_figures(arch: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts") -> list[StateFigure]:
    """The variant's own state figures of a snapshot's parameters (or an alphas.jsonl line); [] before the first
    parameters. A ValueError or KeyError says a record lacks what the variant draws."""
    if "normal" not in arch:
        return []
    return as_variant(variant).state_figures(_state_arch(arch))


def state_text(arch: Mapping[str, Any], variant: str | Variant | Mapping[str, Any] = "darts") -> str | None:
    """The variant's line on its state now (a schedule's value); None when it has none. On either space: the
    schedules (DARTS-'s beta, beta-DARTS's lambda, SDARTS-RS's epsilon) are buffers of the recurrent search too."""
    if space_of_kinds(arch) is None:
        return None
    return as_variant(variant).state_text(_state_arch(arch))
