"""DARTS- (Chu et al., ICLR 2021): an auxiliary skip connection on every edge, its weight decaying to zero.

Each mixed op's output gets `beta * skip(x)` added: the identity on a stride-1 edge, a FactorizedReduce
(no affine BN; trained with the weights) on a stride-2 edge, as the official `MixedOp` with `--auxiliary_skip`
(engine/nn/supernet.py). The skip gives every edge the residual path whose absence makes DARTS favour the
parameter-free skip op; as it fades, the ops must carry the signal alone. The op weights are DARTS's
softmax rows and derivation is the DARTS rule (the auxiliary skip is not an op of the space).

beta decays linearly over the epochs from `darts_minus_beta` (1.0) to 0 at the last epoch,
beta = beta0 * (1 - epoch / (epochs - 1)). It is kept beside the alphas as a buffer (`aux_skip_weight`), so
checkpoints, snapshots and every alphas.jsonl line carry it. The official code steps it once per epoch as
beta0 * (epochs - epoch) / epochs, which ends at beta0 / epochs, not 0 (docs/variants.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from engine.variants import register
from engine.variants.base import Variant
from engine.variants.darts import softmax_weights
from engine.variants.options import Option

if TYPE_CHECKING:
    import torch

__all__ = ["DartsMinus", "aux_weight_at"]


def aux_weight_at(epoch: int, epochs: int, beta0: float) -> float:
    """beta0 at epoch 0, linear to 0 at the last epoch (beta0 throughout a one-epoch search)."""
    return beta0 if epochs <= 1 else beta0 * (1.0 - epoch / (epochs - 1))


@register
class DartsMinus(Variant):
    name = "darts_minus"
    summary = "DARTS plus an auxiliary skip on every edge, its weight decaying to 0 (DARTS-)"
    paper = ("Chu et al., DARTS-: Robustly Stepping out of Performance Collapse Without Indicators, ICLR 2021 "
             "(Meituan-AutoML/DARTS-)")
    lesson_title = "DARTS-: an auxiliary skip on every edge"
    lesson = ("Skip connections win partly because they carry the gradient, not because they are good ops. DARTS- "
              "adds a separate skip beside the ops of every edge, weighted by beta, which decays from 1 to 0 over the "
              "search: the skip op no longer needs to win the edge to keep the gradient flowing, and at the end the "
              "supernet is plain DARTS again.")
    options = (Option("darts_minus_beta", 1.0, label="Aux. skip weight at start", minimum=0, maximum=10, step=0.1,
                      allowed="a number from 0 to 10 (the auxiliary skip's weight at the first epoch; 1 in DARTS-)",
                      help="DARTS-: weight of the auxiliary skip on every edge, decaying linearly to 0 at the end"),)
    aux_skip = True
    # On the recurrent cell the auxiliary skip is the `identity` op's highway beside the softmax (docs/variants.md,
    # "On the recurrent cell"; engine/nn/rnn_supernet.py).
    spaces = ("cnn", "rnn")

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        import torch

        return {"aux_skip_weight": torch.tensor(float(self.config["darts_minus_beta"]))}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return softmax_weights(arch)

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.weights(arch)
        if "aux_skip_weight" in arch:
            out["aux_skip"] = arch["aux_skip_weight"]  # scalar: every edge adds aux_skip * skip(x)
        return out

    def start_epoch(self, state: Mapping[str, torch.Tensor], epoch: int, epochs: int) -> None:
        state["aux_skip_weight"].fill_(aux_weight_at(epoch, epochs, float(self.config["darts_minus_beta"])))

    def state_text(self, arch: Mapping[str, np.ndarray]) -> str | None:
        if "aux_skip_weight" not in arch:
            return None
        beta = float(np.ravel(arch["aux_skip_weight"])[0])
        return (f"Auxiliary skip weight beta = {beta:.3f}: every edge adds beta x skip(x) beside its ops, so the "
                "skip op need not win the edge to keep the gradient flowing; beta decays linearly to 0 at the last "
                "epoch.")
