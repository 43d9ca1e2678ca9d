"""One read handle for a run directory: its config, its variant, its records and its genotype at any step.

`derive RUN` and the exports that derive from stored alphas read runs through this, so "which variant turns
these alphas into op weights" and "which cell did the run have at step N" have one answer each (the dashboard's
run lists summarise many runs through engine/runs/catalog.py instead). The files
themselves are read by `rundir` (each reader skips torn or damaged lines); a handle caches only config.json,
which a run writes once, so the records it returns are always the files' current lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.runs import rundir
from engine.space.cnn.genotype import Genotype

__all__ = ["RunHandle"]

DEFAULT_VARIANT = "darts"  # what a config written before variants existed searched with


class RunHandle:
    """A run directory, read: `RunHandle(path)` raises RunDirError unless it holds a readable config.json."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.record: dict[str, Any] = rundir.read_config(self.path)  # config.json: kind, config, torch, ...

    @property
    def kind(self) -> str:
        """"search" or "train"."""
        return str(self.record.get("kind", "search"))

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config's fields, as written (a SearchConfig's or a TrainConfig's)."""
        return self.record["config"]

    @property
    def variant(self) -> str:
        """The variant the run searched with."""
        return str(self.config.get("variant", DEFAULT_VARIANT))

    def status(self) -> dict[str, Any]:
        return rundir.read_status(self.path)

    def metrics(self) -> list[dict[str, Any]]:
        return rundir.read_metrics(self.path)

    def alphas(self) -> list[dict[str, Any]]:
        return rundir.read_alphas(self.path)

    def genotypes(self) -> list[dict[str, Any]]:
        return rundir.read_genotypes(self.path)

    def latest_genotype(self) -> Genotype | None:
        return rundir.latest_genotype(self.path)

    def weights(self, alphas_row: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The op weights of one alphas.jsonl line as the run's variant, with its options, computes them."""
        from engine.variants import record_weights

        return record_weights(alphas_row, self.config)

    def genotype_of(self, alphas_row: Mapping[str, Any], max_skip: int | None = None) -> Genotype:
        """The cell the run's variant derives from one alphas line; `max_skip` caps its skips (P-DARTS), else the
        run's own cap (its `max_skip` field) applies, as the run derived it."""
        from engine.variants import record_genotype, run_skip_cap

        return record_genotype(alphas_row, self.config, run_skip_cap(self.config) if max_skip is None else max_skip)

    def alphas_at(self, step: int) -> dict[str, Any] | None:
        """The last alphas line at or before `step`, or None."""
        rows = [r for r in self.alphas() if r["step"] <= step]
        return rows[-1] if rows else None
