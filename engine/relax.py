"""Relaxations: how a DARTS variant turns architecture parameters into op weights.

A variant is one `Relaxation` subclass, registered in `RELAXATIONS` under the name users type as
`variant` (engine/config.py keeps the same names in `VARIANTS`; a test holds them in step).

The search network owns the parameters and asks its relaxation two things:
- `extra_parameters(edges, num_ops)`: initial values of architecture parameters the variant adds beside
  `alphas_normal` / `alphas_reduce`, keyed by the name they are registered under (PC-DARTS would add
  per-edge `betas_normal` / `betas_reduce`). They become `nn.Parameter`s of the network, so they are
  in `state_dict()`, in `arch_parameters()` (the architect's optimiser) and in `arch_state()`.
- `weights(arch)`: from `{"normal": (edges, ops), "reduce": (edges, ops), **extras}` to the op weights
  `{"normal": (edges, ops), "reduce": (edges, ops)}` that multiply the op outputs of each mixed op.

Variants that change more than the weights (GDAS runs only the sampled op, PC-DARTS sends a quarter of the
channels through the mixed op) will add a hook here and a branch in the mixed op when they arrive.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["CELL_KINDS", "Relaxation", "SoftmaxRelaxation", "RELAXATIONS", "make_relaxation"]

CELL_KINDS = ("normal", "reduce")  # every normal cell shares one alpha matrix, every reduction cell the other


class Relaxation:
    """Base class of the variants; one instance per search network (a variant may hold state, e.g. a temperature)."""

    name: str = ""

    def extra_parameters(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        """Initial values of the variant's own architecture parameters; plain DARTS has none."""
        return {}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class SoftmaxRelaxation(Relaxation):
    """DARTS: a softmax over the ops of each edge, so every op runs and the weights sum to one per row."""

    name = "darts"

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {kind: F.softmax(arch[kind], dim=-1) for kind in CELL_KINDS}  # (edges, ops) each


RELAXATIONS: dict[str, type[Relaxation]] = {cls.name: cls for cls in (SoftmaxRelaxation,)}


def make_relaxation(name: str) -> Relaxation:
    if name not in RELAXATIONS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(RELAXATIONS)}")
    return RELAXATIONS[name]()
