"""beta-DARTS (Ye et al., CVPR 2022): the Beta-Decay regulariser on the architecture parameters.

The architecture objective adds lambda * mean over edges of logsumexp(alpha_edge) (the official
`Architect.mlc_loss`, over every edge of both cells here). Its gradient on alpha_edge is
lambda / |E| * softmax(alpha_edge): each step lowers every alpha in proportion to its softmax weight, so the
strongest ops are pulled down most and the alphas (and the softmax weights) of an edge stay close, which is
the paper's "keeps the value and variance of activated architecture parameters from too large".

lambda grows linearly over the epochs, lambda = beta_decay_weight * epoch / epochs (0 at the first epoch),
kept beside the alphas as a buffer (`beta_weight`). The official code writes 50 * epoch / 100 for its
100-epoch NAS-Bench-201 search, which is this with beta_decay_weight = 50; the DARTS-space preset uses 25
over 50 epochs, the code's same 0.5 per epoch (docs/variants.md).

`beta_base` says what the regulariser is added to: `darts` (softmax op weights) or `pc_darts` (partial
channels with `pc_k`, edge weights beside the alphas, as the paper's beta-DARTS on PC-DARTS). The regulariser
acts on the op alphas only, not on PC-DARTS's edge betas.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.space.cnn.genotype import Genotype
from engine.variants import make_variant, register
from engine.variants.base import Variant, cell_kinds
from engine.variants.options import Option, Rule
from engine.variants.pc_darts import PC_K, edge_weight_figures
from engine.variants.state import StateFigure

if TYPE_CHECKING:
    import torch

__all__ = ["BetaDarts", "beta_decay_loss", "beta_weight_at", "BASES"]

BASES = ("darts", "pc_darts")


def beta_decay_loss(arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """mean over every edge of every cell kind (both convolutional cells, or the recurrent one) of
    logsumexp(alpha_edge): the Beta-Decay loss before its weight."""
    import torch

    return torch.cat([torch.logsumexp(arch[kind], dim=-1) for kind in cell_kinds(arch)]).mean()


def beta_weight_at(epoch: int, epochs: int, weight: float) -> float:
    """lambda of `epoch`: weight * epoch / epochs (0 at the first epoch), as the official linear schedule."""
    return weight * epoch / epochs


@register
class BetaDarts(Variant):
    name = "beta_darts"
    summary = "DARTS (or PC-DARTS) plus the Beta-Decay regulariser on the alphas (beta-DARTS)"
    paper = ("Ye et al., beta-DARTS: Beta-Decay Regularization for Differentiable Architecture Search, CVPR 2022 "
             "(Sunshine-Ye/Beta-DARTS)")
    lesson_title = "beta-DARTS: keep the alphas small"
    lesson = ("A **Beta-Decay** loss adds lambda times the mean logsumexp of each edge's alphas to the architecture "
              "loss, with lambda growing over the search. It keeps the alphas from running away, so the op weights "
              "stay comparable and no op saturates its edge early; it can regularise PC-DARTS as well.")
    options = (
        Option("beta_decay_weight", 50.0, label="Beta-decay weight", allowed="a number from 0 to 1e4", minimum=0,
               maximum=1e4, step=5.0, help="beta-DARTS: lambda = this x epoch / epochs on the mean logsumexp of the "
                                           "alphas"),
        Option("beta_base", "darts", label="Regularised search", allowed="darts or pc_darts", choices=BASES,
               help="beta-DARTS on plain DARTS or on PC-DARTS (then K applies)"),
        PC_K,
    )
    # The loss reads the logits of each edge's softmax over ops, which the recurrent cell has too; only a PC-DARTS
    # base needs the convolutional cell (space_errors).
    spaces = ("cnn", "rnn")
    rules = {"pc_k": (Rule(lambda v: v["beta_base"] == "pc_darts" or v["pc_k"] == PC_K.default,
                           f"left at {PC_K.default} unless beta_base=pc_darts (beta_darts on DARTS has no partial "
                           "channels)"),)}

    @classmethod
    def space_errors(cls, space: str, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        yield from super().space_errors(space, values)
        if space != "cnn" and values.get("beta_base") == "pc_darts":
            yield "beta_base", ("darts outside the convolutional cell (a PC-DARTS base samples the channels of a "
                                "convolutional edge, which this cell does not have)")

    def __init__(self, **options: Any):
        super().__init__(**options)
        base = str(self.config["beta_base"])
        if base not in BASES:
            raise ValueError(f"beta_base={base!r}: one of {', '.join(BASES)}")
        self.base = make_variant(base, {"pc_k": self.config["pc_k"]})

    @property
    def partial_channels(self) -> int | None:  # type: ignore[override]
        return self.base.partial_channels

    def extra_parameters(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        return self.base.extra_parameters(edges, num_ops)

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        import torch

        return {"beta_weight": torch.tensor(0.0)}  # lambda of the current epoch (start_epoch sets it)

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.base.weights(arch)

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.base.forward_weights(arch)

    def start_epoch(self, state: Mapping[str, torch.Tensor], epoch: int, epochs: int) -> None:
        state["beta_weight"].fill_(beta_weight_at(epoch, epochs, float(self.config["beta_decay_weight"])))

    def arch_loss_extra(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        weight = arch.get("beta_weight")
        if weight is None or float(weight) == 0.0:
            return None
        return weight * beta_decay_loss(arch)

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        return self.base.derive(weights, arch)

    def state_figures(self, arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
        return edge_weight_figures(arch)  # on PC-DARTS: its edge weights; on DARTS: none

    def state_text(self, arch: Mapping[str, np.ndarray]) -> str | None:
        if "beta_weight" not in arch:
            return None
        return (f"Beta-Decay weight lambda = {float(np.ravel(arch['beta_weight'])[0]):.3g}: the architecture loss "
                "adds lambda x the mean logsumexp of each edge's alphas, which keeps them small and the op weights "
                "from saturating; lambda grows with the epoch.")
