"""What a variant of DARTS is: the one place where architecture parameters become op weights and a genotype.

The search network, the live snapshot, derivation in the loop, Replay, exports, the alphas CSV and resume
all ask the run's variant; none of them computes a softmax of its own. So a variant that relaxes
differently (a sigmoid, a sampled Dirichlet, edge weights beside the alphas) is drawn, derived and exported
the way it searches.

A variant sees the architecture as a mapping `arch`: "normal" and "reduce" are (edges, ops) matrices, and
any parameters the variant adds (`extra_parameters`) sit beside them under their own names. The same
mapping is what `SearchNetwork.arch()` holds (as parameters), what a checkpoint stores, and what one line of
alphas.jsonl records (as lists), so every reader can rebuild the op weights from a record alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..genotype import Genotype, genotype_from_weights

if TYPE_CHECKING:
    import torch

__all__ = ["Variant"]


class Variant:
    """Base class of the variants; one instance per search network (a variant may keep state of its own).

    Subclasses set `name` (what users type as `variant`) and `summary` (one line for the sidebar), and
    implement `weights`. They register themselves with `engine.variants.register`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def extra_parameters(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        """Initial values of architecture parameters the variant adds beside the alphas; plain DARTS has none.

        They become `nn.Parameter`s of the search network under these names, so they are in `state_dict()`,
        in the architecture optimiser, in snapshots and in every alphas.jsonl line."""
        return {}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The op weights that multiply each mixed op's outputs: {"normal": (edges, ops), "reduce": (edges, ops)}.

        Differentiable: the search's forward pass calls it on the live parameters."""
        raise NotImplementedError

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        """The discrete cell of these op weights (as `weights` gave them, numpy) and raw parameters.

        The default is the DARTS rule on the op weights (engine.genotype.select_edges): per node, the two
        edges whose strongest non-`none` weight is largest, each with that op."""
        return genotype_from_weights(weights["normal"], weights["reduce"])
