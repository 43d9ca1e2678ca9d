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

import torch

from engine.space.cnn.cell import CELL_KINDS
from engine.variants import _BUILTIN, register
from engine.variants.base import Variant

__all__ = ["DartsMinus", "aux_weight_at"]


def aux_weight_at(epoch: int, epochs: int, beta0: float) -> float:
    """beta0 at epoch 0, linear to 0 at the last epoch (beta0 throughout a one-epoch search)."""
    return beta0 if epochs <= 1 else beta0 * (1.0 - epoch / (epochs - 1))


@register
class DartsMinus(Variant):
    name = "darts_minus"
    summary = _BUILTIN["darts_minus"]["summary"]
    options = ("darts_minus_beta",)
    defaults = {"darts_minus_beta": 1.0}
    aux_skip = True

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        return {"aux_skip_weight": torch.tensor(float(self.config["darts_minus_beta"]))}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {kind: torch.softmax(arch[kind], dim=-1) for kind in CELL_KINDS}

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.weights(arch)
        if "aux_skip_weight" in arch:
            out["aux_skip"] = arch["aux_skip_weight"]  # scalar: every edge adds aux_skip * skip(x)
        return out

    def start_epoch(self, state: Mapping[str, torch.Tensor], epoch: int, epochs: int) -> None:
        state["aux_skip_weight"].fill_(aux_weight_at(epoch, epochs, float(self.config["darts_minus_beta"])))
