"""What one alphas record shows (its genotype and op weights under the run's variant), and which record a replay
step shows."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine import variants
from engine.space.cnn.genotype import Genotype

__all__ = ["record_genotype", "record_weights", "replay_steps", "replay_index"]


def record_genotype(record: Mapping[str, Any], variant: str | Mapping[str, Any] = "darts") -> Genotype:
    """The genotype the run's variant derives from the raw architecture parameters of one alphas record (pass
    the run's config to derive with its variant's options and its skip cap, as the run did)."""
    cap = variants.run_skip_cap(variant) if isinstance(variant, Mapping) else None
    return variants.record_genotype(record, variant, cap)


def record_weights(record: Mapping[str, Any], variant: str | Mapping[str, Any] = "darts") -> dict[str, np.ndarray]:
    """The op weights (edges, ops) per cell kind that the run's variant gives one alphas record."""
    return variants.record_weights(record, variant)


def replay_steps(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """The global step of each recorded alphas line, in file order (non-decreasing for one run)."""
    return [int(r.get("step", i)) for i, r in enumerate(records)]


def replay_index(records: Sequence[Mapping[str, Any]], step: int) -> int:
    """Index of the last record at or before `step` (the first record when `step` precedes them all)."""
    if not records:
        raise ValueError("no recorded alphas to replay")
    steps = replay_steps(records)
    return max(0, bisect.bisect_right(steps, step) - 1)
