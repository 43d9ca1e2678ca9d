"""Candidate operations of the DARTS search space and their registry.

`OPS[name](C, stride, affine)` builds one op that keeps the channel count C and divides the spatial size
by `stride` (rounding up, so odd sizes work). The registry order is `PRIMITIVES` (engine/space/cnn/cell.py),
which is also the column order of every alpha matrix: adding an op is one entry here and one name there.

The search network builds every op with `affine=False` and puts a BatchNorm after the pools itself
(engine/nn/supernet.py); the network built from a genotype (engine/nn/network.py) uses `affine=True` and
no extra BatchNorm, as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.space.cnn.cell import PRIMITIVES

__all__ = ["PRIMITIVES", "OPS", "OpFactory", "Zero", "Identity", "FactorizedReduce", "ReLUConvBN", "SepConv",
           "DilConv", "DilatedDepthwise", "conv_by_phases", "to_phases", "from_phases"]

OpFactory = Callable[[int, int, bool], nn.Module]  # (C, stride, affine) -> module


class Zero(nn.Module):
    """The `none` op: zeros shaped like the (strided) input. Lets a node drop an edge."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)  # (B, C, ceil(H/s), ceil(W/s))


class Identity(nn.Module):
    """The `skip_connect` op at stride 1 (a class of its own so a network can recognise it, e.g. for drop path)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ReLUConvBN(nn.Module):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing every other pixel: two 1x1 stride-2 convs, one shifted by a pixel."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        # The reference's 1x1 convs have stride 2; here the input is subsampled first and the convs have
        # stride 1: the same products and sums, but PyTorch 2.14's CPU backward of a strided 1x1 conv in
        # channels_last with fewer than 8 input channels corrupts the heap (the process aborts), and that
        # shape occurs in small searches (init_channels 2, or nodes=1 with init_channels 4).
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_relu(self.relu(x))

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The op on an input that has been through its leading ReLU already (shared by a mixed op's ops)."""
        even, odd = x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]  # (B, C_in, ceil(H/2), ceil(W/2)), (.., floor, floor)
        if odd.shape[2:] != even.shape[2:]:
            # On an odd size the shifted branch is one pixel smaller; a zero row/column at the far edge evens
            # them, as the reference's padding does.
            odd = F.pad(odd, (0, even.size(3) - odd.size(3), 0, even.size(2) - odd.size(2)))
        out = torch.cat([self.conv_1(even), self.conv_2(odd)], dim=1)  # (B, C_out, ceil(H/2), ceil(W/2))
        return self.bn(out)


class _ReLUFirst(nn.Module):
    """An op whose layers (`self.op`, a Sequential) start with a ReLU; `after_relu` runs the rest."""

    op: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The op on an input that has been through its leading ReLU already (shared by a mixed op's ops)."""
        for layer in self.op[1:]:
            x = layer(x)
        return x


class SepConv(_ReLUFirst):
    """Depthwise-separable conv applied twice (the second time at stride 1), as in DARTS/NASNet."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


def _phases_apply(conv: nn.Conv2d) -> bool:
    """A depthwise conv of dilation 2, odd square kernel k and padding k-1 (zeros): what `conv_by_phases` runs."""
    k = conv.kernel_size[0]
    return (conv.dilation == (2, 2) and conv.kernel_size == (k, k) and k % 2 == 1 and conv.padding == (k - 1, k - 1)
            and conv.groups == conv.in_channels and conv.padding_mode == "zeros")


def to_phases(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) with even H and W -> (4B, C, H/2, W/2): the four polyphase components stacked along the
    batch, block 2r + s holding x[:, :, r::2, s::2]. For a channels_last input the one copy is the reshape."""
    B, C, H, W = x.shape
    h, w = H // 2, W // 2
    phases = x.permute(0, 2, 3, 1).reshape(B, h, 2, w, 2, C).permute(2, 4, 0, 1, 3, 5)  # (2, 2, B, h, w, C)
    return phases.reshape(4 * B, h, w, C).permute(0, 3, 1, 2)


def from_phases(y: torch.Tensor) -> torch.Tensor:
    """The inverse of `to_phases`: (4B, C, h, w) -> (B, C, 2h, 2w), channels_last."""
    B4, C, h, w = y.shape
    B = B4 // 4
    image = y.permute(0, 2, 3, 1).reshape(2, 2, B, h, w, C).permute(2, 3, 0, 4, 1, 5)  # (B, h, 2, w, 2, C)
    return image.reshape(B, 2 * h, 2 * w, C).permute(0, 3, 1, 2)


def conv_by_phases(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor | None:
    """A depthwise conv of dilation 2 (stride 1 or 2, padding (k-1)) as undilated convs on the input's polyphase
    components; None where that does not apply (then the caller runs the conv as it is).

    Output pixel i of a dilation-2 conv reads inputs i + 2(t - c), t = 0..k-1, c = (k-1)/2: all from the phase
    of i (its parity). At stride 2 every output reads phase (0, 0) only: conv(x[:, :, ::2, ::2], padding c).
    At stride 1 the four phases (even H and W) are stacked along the batch and run as one undilated conv. The
    products and sums are those of the dilated conv (tests/test_ops.py checks outputs and gradients to float32
    rounding). It exists because oneDNN's undilated depthwise kernels are faster on a CPU than its dilated ones,
    forward and backward (docs/architecture.md, "The fast path", has the figures)."""
    if not _phases_apply(conv):
        return None
    c = (conv.kernel_size[0] - 1) // 2
    if conv.stride == (2, 2):
        return F.conv2d(x[:, :, ::2, ::2], conv.weight, conv.bias, 1, c, 1, conv.groups)
    if conv.stride != (1, 1) or x.shape[2] % 2 or x.shape[3] % 2:
        return None
    return from_phases(F.conv2d(to_phases(x), conv.weight, conv.bias, 1, c, 1, conv.groups))


class DilatedDepthwise(nn.Conv2d):
    """The depthwise conv of DilConv. With `by_phases` (set by the search network's fast path) it runs as
    `conv_by_phases`: the same arithmetic, faster on a CPU; the parameters and state_dict keys are Conv2d's."""

    by_phases = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = conv_by_phases(x, self) if self.by_phases else None
        return super().forward(x) if y is None else y

    @property
    def on_phases(self) -> bool:
        """Whether `phased` applies: the conv of `conv_by_phases` at stride 1."""
        return _phases_apply(self) and self.stride == (1, 1)

    def phased(self, p: torch.Tensor) -> torch.Tensor:
        """The conv on an input already split by `to_phases` (when `on_phases`): the result, also split."""
        return F.conv2d(p, self.weight, self.bias, 1, (self.kernel_size[0] - 1) // 2, 1, self.groups)


class DilConv(_ReLUFirst):
    """Dilated depthwise conv + 1x1 conv: a wide receptive field for few parameters."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            DilatedDepthwise(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                             groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def after_relu_phased(self, p: torch.Tensor) -> torch.Tensor:
        """The op, past its ReLU, on an input split by `to_phases`, where `self.op[1].on_phases`: the 1x1 conv and
        the BatchNorm act on each pixel and each channel's statistics alone, so they run on the split tensor
        too and the result is the op's output, split the same way."""
        return self.op[3](self.op[2](self.op[1].phased(p)))


def _skip_connect(C: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)


# The search space. Insertion order is the alpha column order (see PRIMITIVES).
OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": _skip_connect,
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
}

if tuple(OPS) != PRIMITIVES:  # engine/space/cnn/cell.py names the ops torch-free; the two lists must not drift apart
    raise RuntimeError(f"OPS {tuple(OPS)} and space.PRIMITIVES {PRIMITIVES} differ")
