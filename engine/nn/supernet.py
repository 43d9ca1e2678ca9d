"""The DARTS supernet: mixed ops on every edge, search cells, and the search network that owns the alphas.

Two code paths compute the same function:
- fast (`fast=True`, the default): channels_last memory format for weights and activations (depthwise
  convolutions, which dominate on a CPU, run several times faster in it); the `none` op skipped in the
  mixed sum (its output is zero, so the sum, the loss and every alpha gradient are unchanged; the softmax
  still normalises over it); the leading ReLU of the conv ops and each pool computed once per state for
  all the edges leaving it; dilated convolutions by polyphase decomposition (engine/nn/ops.py), at stride 1
  with the dil_conv's 1x1 conv and BatchNorm on the input split once per state. Each exact (in float64 the
  two paths agree to 1e-9: tests/test_supernet.py).
- plain (`fast=False`): the reference's structure, every op run, default memory format. Kept to check the
  fast path against and to measure what it buys (bench/search_step.py).

`forward` puts its input into the right memory format itself; callers pass ordinary NCHW tensors.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.nn.ops import OPS, DilatedDepthwise, DilConv, FactorizedReduce, ReLUConvBN, from_phases, to_phases
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, num_edges
from engine.space.cnn.genotype import Genotype
from engine.variants import make_variant

__all__ = ["MixedOp", "SearchCell", "SearchNetwork", "buffers_kept", "channel_shuffle"]


def _leading_module(op: nn.Module) -> nn.Module:
    return op.relu if isinstance(op, FactorizedReduce) else op.op[0]


def _starts_with_relu(op: nn.Module) -> bool:
    if isinstance(op, FactorizedReduce):
        return isinstance(op.relu, nn.ReLU)
    return hasattr(op, "after_relu") and isinstance(getattr(op, "op", None), nn.Sequential) and isinstance(
        op.op[0], nn.ReLU)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W) with channel g*(C/groups) + i moved to i*groups + g: the K groups interleaved (PC-DARTS)."""
    B, C, H, W = x.shape
    return x.reshape(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


@contextlib.contextmanager
def buffers_kept(model: nn.Module) -> Iterator[None]:
    """Passes run inside leave every buffer of `model` as it was. The architecture step and the measurements
    only measure: BatchNorm running statistics should follow the weight-step batches alone. A BatchNorm in
    training mode normalises with the batch's own statistics whether or not it tracks running ones, so
    tracking is switched off for the duration (nothing to copy back, and the outputs are the same); any other
    buffer (a variant's state) is saved and restored."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.training and m.track_running_stats]
    tracked = {id(b) for m in norms for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None}
    others = [(b, b.detach().clone()) for b in model.buffers() if id(b) not in tracked]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        with torch.no_grad():
            for b, saved in others:
                b.copy_(saved)


def _total(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of the terms without the `0 +` that starts Python's sum (a whole-tensor add of its own)."""
    return functools.reduce(operator.add, terms)


def _weighted_total(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """sum(w * t for w, t in pairs), each term after the first added by `addcmul`: one pass over the tensor
    per term where a multiplication and then an addition take two. The same products and sums, up to rounding
    (a CPU kernel may fuse the multiply-add and round once: at most a few float32 ulps).
    w: a 0-d weight, cast to t's dtype as `w * t` would compute it (CUDA autocast runs addcmul in its widest
    input's dtype, which would turn bf16 op outputs into float32 sums)."""
    pairs = iter(pairs)
    w, t = next(pairs)
    total = w * t
    for w, t in pairs:
        total = torch.addcmul(total, w if w.dtype == t.dtype else w.to(t.dtype), t)
    return total


class MixedOp(nn.Module):
    """One edge of the supernet: every candidate op, summed with the edge's op weights.

    Two variants change what runs (engine/variants/): with `k` > 1 (PC-DARTS) the ops are built for and fed the
    first C/k channels only; the other channels bypass the ops (2x2 max-pooled on a stride-2 edge), then both
    parts are concatenated and channel-shuffled in k groups. Given an `index` (GDAS), only that op runs.
    """

    def __init__(self, C: int, stride: int, fast: bool, k: int = 1, aux: bool = False):
        super().__init__()
        if C % k:
            raise ValueError(f"partial channels: K={k} does not divide the {C} channels of an edge")
        self.k = k
        C_op = C // k
        self.ops = nn.ModuleList()
        for name in PRIMITIVES:
            op = OPS[name](C_op, stride, False)
            if isinstance(op, (nn.MaxPool2d, nn.AvgPool2d)):
                # Parameter-free outputs would otherwise live on a different scale from the BN'ed conv
                # outputs they are summed with (the reference does the same).
                op = nn.Sequential(op, nn.BatchNorm2d(C_op, affine=False))
            self.ops.append(op)
        # ceil_mode: on an odd size the ops round up (engine/nn/ops.py), and so must the bypass (the same as floor on
        # the even sizes of the reference)
        self.bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if k > 1 and stride == 2 else None
        # DARTS-: the auxiliary skip beside the ops, on all C channels (FactorizedReduce at stride 2, as the code)
        self.aux = (FactorizedReduce(C, C, affine=False) if stride == 2 else nn.Identity()) if aux else None
        self.fast = fast
        # Indices of the ops the sum runs; on the fast path `none` is left out, as it only adds w * 0.
        self.live = tuple(k for k, name in enumerate(PRIMITIVES) if not (fast and name == "none"))
        # oneDNN's dilated depthwise kernels are slow on a CPU, in channels_last most of all (docs/architecture.md
        # has the figures). The fast path runs the dilated convs of dil_conv_* by polyphase
        # decomposition instead (engine/nn/ops.py, conv_by_phases): undilated convs, the same arithmetic.
        # Where that does not apply (odd sizes at stride 1) the dilated conv runs in channels_last.
        # The fast path also computes the ReLU that starts the conv ops (and FactorizedReduce), and the pools,
        # once per state for all the edges leaving it (SearchCell.forward hands each edge its state's `shared`).
        self.shared_relu = frozenset(k for k, op in enumerate(self.ops) if fast and _starts_with_relu(op))
        self.pools = frozenset(k for k, op in enumerate(self.ops) if fast and isinstance(op, nn.Sequential)
                               and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d)))
        # At stride 1 a dil_conv's 1x1 conv and BatchNorm also run on the split input (DilConv.after_relu_phased):
        # the state's ReLU is split once for every such op of the edges leaving it, and an edge's dil_conv outputs
        # are summed split and put back together once.
        self.phased = frozenset(k for k in self.shared_relu if isinstance(self.ops[k], DilConv)
                                and self.ops[k].op[1].on_phases)
        if fast:
            for m in self.modules():
                if isinstance(m, DilatedDepthwise):
                    m.by_phases = True

    def use_channels_last(self) -> None:
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None,
                aux_weight: torch.Tensor | None = None, shared: dict | None = None) -> torch.Tensor:
        # weights: (ops,); index: the one op to run (GDAS), None: all of them; aux_weight: DARTS-'s skip weight;
        # shared: on the fast path, what the edges leaving the same state compute alike (SearchCell.forward)
        out = self._edge(x, weights, index, shared)
        if self.aux is not None and aux_weight is not None:
            out = out + aux_weight * self.aux(x)
        return out

    def _edge(self, x: torch.Tensor, weights: torch.Tensor, index: int | None, shared: dict | None) -> torch.Tensor:
        if self.k == 1:
            return self._mix(x, weights, index, shared)  # (B, C, H/stride, W/stride)
        c = x.shape[1] // self.k
        part, rest = x[:, :c], x[:, c:]  # (B, C/k, H, W), (B, C - C/k, H, W)
        if self.fast:
            part = part.contiguous(memory_format=torch.channels_last)
        mixed = self._mix(part, weights, index, shared)  # every edge of the state takes the same part
        if self.bypass is not None:
            rest = self.bypass(rest)
        out = channel_shuffle(torch.cat([mixed, rest], dim=1), self.k)
        return out.contiguous(memory_format=torch.channels_last) if self.fast else out

    def _mix(self, x: torch.Tensor, weights: torch.Tensor, index: int | None, shared: dict | None) -> torch.Tensor:
        if index is not None:
            k = int(index)
            return weights[k] * self.ops[k](x)
        if not self.fast:
            return sum(weights[k] * self.ops[k](x) for k in self.live)
        shared = {} if shared is None else shared
        w = weights.unbind(0)  # one op (and one in the backward) where indexing takes a select per op
        split = [k for k in self.live if k in self.phased] if x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0 else []
        if not split:
            return _weighted_total((w[k], self._op(k, x, shared)) for k in self.live)
        if "phases" not in shared:
            if "relu" not in shared:
                shared["relu"] = self._leading(x)
            shared["phases"] = to_phases(shared["relu"])
        merged = from_phases(_weighted_total((w[k], self.ops[k].after_relu_phased(shared["phases"])) for k in split))
        rest = [k for k in self.live if k not in split]
        return _weighted_total((w[k], self._op(k, x, shared)) for k in rest) + merged if rest else merged

    def _op(self, k: int, x: torch.Tensor, shared: dict) -> torch.Tensor:
        """Op k on the fast path. The edges leaving one state see the same input, so what does not depend on an
        edge's own parameters is computed once for all of them (`shared`): the leading ReLU of the conv ops
        and FactorizedReduce, and each pool (its BatchNorm stays the edge's own module)."""
        if k in self.shared_relu:
            if "relu" not in shared:
                shared["relu"] = self._leading(x)
            return self.ops[k].after_relu(shared["relu"])
        if k in self.pools:
            if k not in shared:
                shared[k] = self.ops[k][0](x)
            return self.ops[k][1](shared[k])
        return self.ops[k](x)

    def _leading(self, x: torch.Tensor) -> torch.Tensor:
        """The shared leading activation, run by the first op's own module (so a swapped activation, as in the
        smoothed network of tests/test_exactness.py, is the one applied)."""
        return _leading_module(self.ops[min(self.shared_relu)])(x)


class SearchCell(nn.Module):
    """A cell of `nodes` intermediate nodes; each node sums one mixed op per earlier state."""

    def __init__(self, nodes: int, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool,
                 fast: bool, k: int = 1, aux: bool = False):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        # The previous-previous state is twice as large when the previous cell reduced; halve it to match.
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        # Edge rows in the alpha order: node 0 from (s0, s1), node 1 from (s0, s1, n0), ...
        # In a reduction cell only the edges leaving the two cell inputs have stride 2.
        self.edges = nn.ModuleList(
            MixedOp(C, 2 if reduction and j < 2 else 1, fast, k, aux) for i in range(nodes) for j in range(2 + i)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None, index: list[int] | None = None,
                aux_weight: torch.Tensor | None = None) -> torch.Tensor:
        # weights: (edges, ops); edge_weights: (edges,) whole-edge weights (PC-DARTS); index: op per edge (GDAS);
        # aux_weight: the scalar weight of DARTS-'s auxiliary skip on every edge
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # 2 x (B, C, H, W)
        fast = self.edges[0].fast
        rows = weights.unbind(0) if fast else weights  # the fast path: one op where indexing takes one per edge
        row = 0
        shared: list[dict] = []  # per state, what its edges compute alike on the fast path (MixedOp._op)
        for _ in range(self.nodes):
            shared += [{} for _ in range(len(states) - len(shared))]
            outs = [self.edges[row + j](h, rows[row + j], None if index is None else index[row + j], aux_weight,
                                        shared[j]) for j, h in enumerate(states)]
            if edge_weights is not None:
                outs = [edge_weights[row + j] * o for j, o in enumerate(outs)]
            node = _total(outs) if fast else sum(outs)
            row += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)  # (B, nodes*C, H', W')


class SearchNetwork(nn.Module):
    """Stem, `layers` search cells (reductions at layers//3 and 2*layers//3), global pool, linear head.

    The architecture parameters are registered parameters (`alphas_normal`, `alphas_reduce`, plus any the
    variant adds), so `state_dict()` holds everything a resumed search needs.
    """

    def __init__(self, C: int, num_classes: int, layers: int, in_channels: int = 3, nodes: int = 4,
                 variant: str = "darts", fast: bool = True, stem_multiplier: int = 3,
                 variant_options: dict[str, Any] | None = None):
        super().__init__()
        self.model_args: dict[str, Any] = dict(C=C, num_classes=num_classes, layers=layers, in_channels=in_channels,
                                               nodes=nodes, variant=variant, fast=fast,
                                               stem_multiplier=stem_multiplier,
                                               variant_options=dict(variant_options or {}))
        self.fast = fast
        self.variant = make_variant(variant, variant_options)  # how the architecture parameters become op weights
        k = self.variant.partial_channels or 1
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(nodes, C_pp, C_p, C_curr, reduction, reduction_prev, fast, k,
                                         self.variant.aux_skip))
            reduction_prev = reduction
            C_pp, C_p = C_p, nodes * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

        edges = num_edges(nodes)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES)))  # (edges, ops)
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES)))  # (edges, ops)
        # arch key (as in arch_numpy and the variant's `weights`) -> attribute name of the parameter
        self._arch_attrs = {"normal": "alphas_normal", "reduce": "alphas_reduce"}
        for name, init in self.variant.extra_parameters(edges, len(PRIMITIVES)).items():
            self.register_parameter(name, nn.Parameter(init))
            self._arch_attrs[name] = name
        # non-trainable state of the variant (GDAS's temperature): buffers, recorded beside the alphas
        self._state_attrs: dict[str, str] = {}
        for name, init in self.variant.buffers(edges, len(PRIMITIVES)).items():
            self.register_buffer(name, init)
            self._state_attrs[name] = name
        if fast:
            self.to(memory_format=torch.channels_last)
            for mixed_op in self.modules():
                if isinstance(mixed_op, MixedOp):
                    mixed_op.use_channels_last()

    def arch(self) -> dict[str, torch.Tensor]:
        """The architecture by arch key, as the variant reads it: the parameters ("normal", "reduce", then the
        variant's extras), then the variant's buffers (e.g. GDAS's `tau`). `arch_parameters` is its trainable
        part, `arch_numpy` a copy of it."""
        return {**{key: getattr(self, attr) for key, attr in self._arch_attrs.items()},
                **{key: getattr(self, attr) for key, attr in self._state_attrs.items()}}

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Let the variant update its schedules (GDAS's temperature) before the first step of `epoch`."""
        with torch.no_grad():
            self.variant.start_epoch(self.arch(), epoch, epochs)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The trainable part of `arch()`: what the architect's optimiser updates."""
        return [getattr(self, attr) for attr in self._arch_attrs.values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch_ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch_ids]

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """The memory format the weights are in; forward calls this, so callers need not."""
        return x.contiguous(memory_format=torch.channels_last) if self.fast else x

    def forward(self, x: torch.Tensor, weight_step: bool = False) -> torch.Tensor:  # x: (B, in_channels, H, W)
        # weight_step: the weight step's forward pass (engine/search/step.py), where a variant may perturb (SDARTS-RS)
        arch = self.arch()
        weights = self.variant.weight_step_weights(arch) if weight_step else self.variant.forward_weights(arch)
        # weights: {"normal": (edges, ops), "reduce": ..., extras}
        index = {kind: weights[f"{kind}_index"].tolist() for kind in CELL_KINDS if f"{kind}_index" in weights}
        s0 = s1 = self.stem(self.prepare_input(x))  # (B, 3C, H, W)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], weights.get(f"{kind}_edge"), index.get(kind),
                              weights.get("aux_skip"))
        pooled = self.global_pooling(s1).flatten(1)  # (B, nodes*C_last)
        return self.classifier(pooled)  # (B, num_classes)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), y)

    def arch_numpy(self) -> dict[str, np.ndarray]:
        """`arch()` as numpy copies (safe to hand to another thread)."""
        return {key: p.detach().cpu().numpy().copy() for key, p in self.arch().items()}

    @torch.no_grad()
    def op_weights(self) -> dict[str, np.ndarray]:
        """The op weights the mixed ops use (softmax rows for DARTS), as numpy copies: (edges, ops) per cell kind."""
        weights = self.variant.weights(self.arch())
        return {kind: weights[kind].float().cpu().numpy().copy() for kind in CELL_KINDS}

    def genotype(self, weights: dict[str, np.ndarray] | None = None) -> Genotype:
        """The cell the variant derives from the current architecture (pass `op_weights()` if already at hand)."""
        weights = self.op_weights() if weights is None else weights
        return self.variant.derive(weights, self.arch_numpy())
