"""Networks built from a genotype (the "evaluation" networks of docs/darts.md, section 4), and what they cost.

Module names follow the reference (`stem`, `cells.i.preprocess0`, `cells.i._ops.k`, `auxiliary_head`,
`classifier`), so a state_dict trained by the reference code loads here and parameter counts line up.
Every op is built with `affine=True` and the pools get no extra BatchNorm, as in the reference.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine.nn.ops import OPS, FactorizedReduce, Identity, ReLUConvBN
from engine.space.cnn.genotype import Genotype

__all__ = ["EvalCell", "NetworkCIFAR", "NetworkImageNet", "AuxiliaryHeadCIFAR", "AuxiliaryHeadImageNet",
           "drop_path", "count_parameters", "count_cifar_parameters", "count_multiply_adds", "cifar_costs"]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of an op's output with probability `drop_prob`, scaling the rest to keep the mean."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)  # (B, 1, 1, 1)
    return x / keep * mask


def _preprocess(C_in: int, C: int, reduce: bool) -> nn.Module:
    # c_{k-2} is twice the size of c_{k-1} after a reduction cell; FactorizedReduce brings it down.
    return FactorizedReduce(C_in, C) if reduce else ReLUConvBN(C_in, C, 1, 1, 0)


def _stride(reduction: bool, j: int) -> int:
    return 2 if reduction and j < 2 else 1  # only edges from the cell inputs reduce


class EvalCell(nn.Module):
    """One cell of a genotype: each node sums its ops' outputs; the output concatenates the `concat` nodes.

    Reads the genotype node by node (`cell_nodes`), so a node may have any number of inputs (FairDARTS
    keeps 0..2); DARTS genotypes give exactly two, op_{2i} + op_{2i+1} as in the reference."""

    def __init__(self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        cell = "reduce" if reduction else "normal"
        self.reduction = reduction
        self.preprocess0 = _preprocess(C_prev_prev, C, reduction_prev)
        self.preprocess1 = _preprocess(C_prev, C, False)
        self.concat: tuple[int, ...] = getattr(genotype, f"{cell}_concat")
        self.multiplier = len(self.concat)
        self._inputs: list[tuple[int, ...]] = []  # per node, the state index each of its ops reads
        self._ops = nn.ModuleList()  # flat, in genotype order (the reference's layout)
        for pairs in genotype.cell_nodes(cell):
            self._inputs.append(tuple(j for _, j in pairs))
            for op_name, j in pairs:
                self._ops.append(OPS[op_name](C, _stride(reduction, j), True))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states: list[torch.Tensor | None] = [self.preprocess0(s0), self.preprocess1(s1)]  # (B, C, H, W) each
        k = 0
        for inputs in self._inputs:
            node = None
            for j in inputs:
                op = self._ops[k]
                h = op(states[j])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
                k += 1
            states.append(node)  # None for a node with no inputs; Genotype keeps it out of inputs and concat
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, multiplier*C, H', W')


class AuxiliaryHeadCIFAR(nn.Module):
    """Classifier on the output of cell 2*layers//3 (8x8 for 32x32 input), used in training only."""

    def __init__(self, C: int, num_classes: int, final_bn: bool = True, pool_stride: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # not in place: the cell output it reads also feeds the next cells
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),  # (B, C, 2, 2)
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),  # (B, 768, 1, 1)
            *([nn.BatchNorm2d(768)] if final_bn else []),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features[:2](x)  # (B, C, 2, 2) at the input size the head was designed for
        if x.shape[-2:] != (2, 2):
            raise ValueError(f"the auxiliary head needs a 2x2 map after its pool, got {tuple(x.shape[-2:])}: it is "
                             f"sized for 32x32 (CIFAR) or 224x224 (ImageNet) input; build the network without it")
        return self.classifier(self.features[2:](x).flatten(1))  # (B, 768) -> (B, classes)


class AuxiliaryHeadImageNet(AuxiliaryHeadCIFAR):
    """The reference's ImageNet head (on 7x7): pool stride 2 and no BatchNorm after the 768 conv (a typo there
    that the paper's numbers were produced with, so it is kept)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__(C, num_classes, final_bn=False, pool_stride=2)


CellSpec = tuple[int, int, int, bool, bool]  # EvalCell's (C_prev_prev, C_prev, C, reduction, reduction_prev)


def _cell_plan(genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, layers: int,
               reduction_prev: bool) -> tuple[list[CellSpec], int, int]:
    """The cell stack's shapes; returns them with the channels of the last cell and of cell 2*layers//3
    (auxiliary head)."""
    plan: list[CellSpec] = []
    C_aux = C_prev
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        C = C * 2 if reduction else C  # channels double where the spatial size halves
        plan.append((C_prev_prev, C_prev, C, reduction, reduction_prev))
        multiplier = len(genotype.reduce_concat if reduction else genotype.normal_concat)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, multiplier * C
        if i == 2 * layers // 3:
            C_aux = C_prev
    return plan, C_prev, C_aux


def _cells(genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, layers: int,
           reduction_prev: bool) -> tuple[nn.ModuleList, int, int]:
    """The cell stack; returns it with the channels of the last cell and of cell 2*layers//3 (auxiliary head)."""
    plan, C_prev, C_aux = _cell_plan(genotype, C_prev_prev, C_prev, C, layers, reduction_prev)
    return nn.ModuleList(EvalCell(genotype, *spec) for spec in plan), C_prev, C_aux


def _run_cells(net: nn.Module, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    logits_aux = None
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, cell(s0, s1, drop_prob)
        if i == 2 * net.layers // 3 and net.auxiliary_head is not None and net.training:
            logits_aux = net.auxiliary_head(s1)
    return s1, logits_aux


class NetworkCIFAR(nn.Module):
    """Stem Conv3x3(in, 3C) + BN, `layers` cells (reductions at layers//3 and 2*layers//3), pool + Linear.

    forward returns (logits, logits_aux); logits_aux is None unless auxiliary and training. The training
    loop ramps `drop_path_prob` (0 -> 0.2 in the paper) by setting the attribute each epoch."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype,
                 in_channels: int = 3, drop_path_prob: float = 0.0):
        super().__init__()
        self.layers, self.drop_path_prob = layers, drop_path_prob
        C_stem = 3 * C  # stem multiplier 3, as the reference
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        self.cells, C_prev, C_aux = _cells(genotype, C_stem, C_stem, C, layers, reduction_prev=False)
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.stem(x)  # (B, 3C, H, W)
        out, logits_aux = _run_cells(self, s, s, self.drop_path_prob)
        return self.classifier(self.global_pooling(out).flatten(1)), logits_aux


class NetworkImageNet(nn.Module):
    """Two stride-2 stems (224 -> 28), `layers` cells, global pool + Linear; the first cell sees a reduced c_{k-2}.

    The reference pools with AvgPool2d(7), which is the global pool at 224x224; AdaptiveAvgPool2d(1) is the
    same there and also runs at other input sizes."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype,
                 in_channels: int = 3, drop_path_prob: float = 0.0):
        super().__init__()
        self.layers, self.drop_path_prob = layers, drop_path_prob
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),  # not in place: stem0's output is also the first cell's c_{k-2}
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.cells, C_prev, C_aux = _cells(genotype, C, C, C, layers, reduction_prev=True)
        self.auxiliary_head = AuxiliaryHeadImageNet(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = self.stem0(x)  # (B, C, H/4, W/4)
        s1 = self.stem1(s0)  # (B, C, H/8, W/8)
        out, logits_aux = _run_cells(self, s0, s1, self.drop_path_prob)
        return self.classifier(self.global_pooling(out).flatten(1)), logits_aux


def count_parameters(model: nn.Module) -> int:
    """Parameters without the auxiliary head, as the paper counts ("3.3M" for DARTS_V2 on CIFAR-10)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)


@functools.cache
def _numel(kind: str, *args) -> int:
    """Parameters of one op (kind "op": name, C, stride) or preprocessing layer ("pre": C_in, C, reduce), built
    once on the meta device (shapes only: no memory, no initialisation)."""
    with torch.device("meta"):
        module = OPS[args[0]](*args[1:], True) if kind == "op" else _preprocess(*args)
    return sum(p.numel() for p in module.parameters())


def _cell_parameters(genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                     reduction_prev: bool) -> int:
    """count_parameters(EvalCell(...)) with the same arguments, from the cached counts of its parts."""
    ops = sum(_numel("op", name, C, _stride(reduction, j))
              for pairs in genotype.cell_nodes("reduce" if reduction else "normal") for name, j in pairs)
    return _numel("pre", C_prev_prev, C, reduction_prev) + _numel("pre", C_prev, C, False) + ops


def count_cifar_parameters(C: int, num_classes: int, layers: int, genotype: Genotype, in_channels: int = 3) -> int:
    """count_parameters(NetworkCIFAR(C, num_classes, layers, False, genotype, in_channels)) without building the
    network: from the cached counts of each op and preprocessing layer at each width, so a dashboard can count
    every genotype a search passes through (a new genotype costs additions only)."""
    C_stem = 3 * C
    plan, C_prev, _ = _cell_plan(genotype, C_stem, C_stem, C, layers, reduction_prev=False)
    stem = in_channels * C_stem * 9 + 2 * C_stem          # Conv3x3 without bias + BatchNorm
    classifier = C_prev * num_classes + num_classes
    return stem + sum(_cell_parameters(genotype, *spec) for spec in plan) + classifier


def count_multiply_adds(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Multiply-adds for one sample, of an eval-mode forward (so the auxiliary head, training-only, is not
    counted), by PyTorch's FlopCounterMode: it counts convolutions and matrix products (2 FLOPs per
    multiply-add), not BatchNorm, pools or additions, which is how the paper's "528M" for DARTS_V2 counts."""
    was_training = model.training
    param = next(model.parameters(), None)
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_size, device=param.device if param is not None else "cpu"))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // input_size[0]


def cifar_costs(genotype: Genotype, C: int = 36, layers: int = 20, num_classes: int = 10, in_channels: int = 3,
                image_size: int | None = None) -> tuple[int, int | None]:
    """(parameters, multiply-adds of one image) of NetworkCIFAR(C, num_classes, layers, False, genotype,
    in_channels), for callers that read genotypes and build no networks (the dashboard). The parameters are
    counted without building it (count_cifar_parameters); the multiply-adds, only with an `image_size`, by building
    it and counting one image's forward pass (count_multiply_adds), as `python -m engine compare` does."""
    params = count_cifar_parameters(C, num_classes, layers, genotype, in_channels)
    if image_size is None:
        return params, None
    net = NetworkCIFAR(C, num_classes, layers, False, genotype, in_channels=in_channels)
    return params, count_multiply_adds(net, (1, in_channels, image_size, image_size))
