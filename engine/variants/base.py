"""What a variant of DARTS is: the one place where architecture parameters become op weights and a genotype.

The search network, the live snapshot, derivation in the loop, Replay, exports, the alphas CSV and resume
all ask the run's variant; none of them computes a softmax of its own. So a variant that relaxes
differently (a sigmoid, a sampled Dirichlet, edge weights beside the alphas) is drawn, derived and exported
the way it searches.

A variant sees the architecture as a mapping `arch`: "normal" and "reduce" are (edges, ops) matrices, and
any parameters the variant adds (`extra_parameters`) sit beside them under their own names. The same
mapping is what `SearchNetwork.arch()` holds (as tensors), what a checkpoint stores, and what one line of
alphas.jsonl records (as lists), so every reader can rebuild the op weights from a record alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from engine.space import DEFAULT_SPACE, get_space, space_of_kinds
from engine.space.cnn.genotype import Genotype, genotype_from_weights
from engine.variants.options import Option, Rule
from engine.variants.state import StateFigure

if TYPE_CHECKING:
    import torch

__all__ = ["Variant", "cell_kinds", "real_ops"]


class Variant:
    """Base class of the variants; one instance per search network (a variant may keep state of its own).

    Subclasses declare what they are (the class attributes below: read without an instance and without torch,
    so a variant module imports torch inside its methods only) and implement `weights`. They register
    themselves with `engine.variants.register`.
    """

    name: ClassVar[str] = ""      # what users type as `variant`
    summary: ClassVar[str] = ""   # one line for the sidebar
    paper: ClassVar[str] = ""     # where it comes from: the paper, and the official code it follows
    lesson_title: ClassVar[str] = ""
    lesson: ClassVar[str] = ""    # the Learn page's paragraph (Markdown); empty: no lesson of its own
    # The config options this variant reads. Validation refuses a non-default value of one variant's option in a
    # config that searches another.
    options: ClassVar[tuple[Option, ...]] = ()
    # Conditions on those options that only hold for this variant (option name -> rules).
    rules: ClassVar[Mapping[str, tuple[Rule, ...]]] = {}
    # Why the second-order (unrolled) step does not apply to this variant; empty: it does.
    no_second_order: ClassVar[str] = ""
    # PC-DARTS: the mixed op sees 1/K of the channels (None: all of them).
    partial_channels: int | None = None
    # GDAS: only the sampled op of each edge runs; forward_weights gives "<kind>_index" (edges,) beside the weights.
    samples_one_op: ClassVar[bool] = False
    # DARTS-: every edge adds `aux_skip * skip(x)`; forward_weights gives the scalar "aux_skip" beside the weights.
    aux_skip: ClassVar[bool] = False
    # The search spaces (engine.space names) this variant relaxes. A variant whose idea applies to any softmax over
    # the ops of an edge works on every space whose op weights are (edges, ops) rows; one whose mechanism needs the
    # convolutional cell (its channels, or a mixed op that runs one sampled convolution) names "cnn" only. The
    # default is "cnn" only: a variant says it reads nothing but the rows before a config may put it elsewhere.
    spaces: ClassVar[tuple[str, ...]] = ("cnn",)
    # Why a space outside `spaces` cannot take this variant, one line per space name (a refusal's message).
    space_refusals: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **options: Any):
        names = self.option_names()
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"variant {self.name!r} has no option {unknown[0]!r}; its options: {list(names)}")
        self.config: dict[str, Any] = {**{o.name: o.default for o in self.options}, **options}

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(o.name for o in cls.options)

    @classmethod
    def option_errors(cls, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(option, what is allowed) for each check of the variant's options that `values` (a whole config, flat)
        fails: an option's own checks, then, once its value is allowed, the variant's rules on it. Lazy, so a caller
        that stops at the first never meets a rule that reads a value already found wrong."""
        for option in cls.options:
            yield from ((option.name, allowed) for allowed in option.errors(values[option.name], values))
            if option.accepts(values[option.name]):
                for rule in cls.rules.get(option.name, ()):
                    if not rule.test(values):
                        yield option.name, (rule.allowed or option.allowed).format_map(values)

    @classmethod
    def space_errors(cls, space: str, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(field, why) for each reason a config of `space` (flat values) cannot search with this variant: the
        space is not one of `spaces`; a subclass adds conditions on its options (beta-DARTS: no PC-DARTS base
        on a cell without channels)."""
        if space not in cls.spaces:
            yield "variant", (cls.space_refusals.get(space)
                              or f"variant={cls.name} relaxes the {', '.join(cls.spaces)} space only")

    def extra_parameters(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        """Initial values of architecture parameters the variant adds beside the alphas; plain DARTS has none.

        They become `nn.Parameter`s of the search network under these names, so they are in `state_dict()`,
        in the architecture optimiser, in snapshots and in every alphas.jsonl line."""
        return {}

    def buffers(self, edges: int, num_ops: int) -> dict[str, torch.Tensor]:
        """Non-trainable state the variant keeps beside the alphas (GDAS's temperature and sampled ops).

        They become buffers of the search network under these names: in `state_dict()` (so checkpoints and
        exact resume), in `arch_numpy()`, every snapshot and every alphas.jsonl line, and in the mapping
        `weights` and `derive` are given, so a reader rebuilds the same op weights from a record alone."""
        return {}

    def weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The op weights a reader draws and derives from: {"normal": (edges, ops), "reduce": (edges, ops)}.

        Deterministic (a function of `arch` only). For a variant that does not sample, these are what multiply
        each mixed op's outputs (the forward pass calls `forward_weights`, which defaults to this); for a
        sampling variant, the distribution's probabilities (GDAS) or mean (DrNAS)."""
        raise NotImplementedError

    def forward_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What one forward pass of the search network multiplies with: the op weights {"normal", "reduce"}
        (differentiable in the live parameters; a sample for a sampling variant, drawn with the global torch
        RNG so a resumed search draws the same), plus, where the variant needs them, "<kind>_edge" (edges,)
        weights of whole edges (PC-DARTS) and "<kind>_index" (edges,) the one op each edge runs (GDAS)."""
        return self.weights(arch)

    def weight_step_weights(self, arch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the forward pass of the weight step multiplies with (engine/search/step.py); `forward_weights` unless
        the variant perturbs the weight step only (SDARTS-RS). The architecture step always uses `forward_weights`."""
        return self.forward_weights(arch)

    def start_epoch(self, state: Mapping[str, torch.Tensor], epoch: int, epochs: int) -> None:
        """Called before the first step of each epoch (and on resume): update schedules kept in `buffers`."""

    def arch_loss_extra(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """A term added to the architecture objective (first and second order); None: plain validation loss."""
        return None

    def op_weights(self, arch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """`weights` of raw parameters (arrays or lists) in float64 without gradients, as numpy arrays."""
        import torch

        with torch.no_grad():
            tensors = {k: torch.as_tensor(np.asarray(a, dtype=np.float64)) for k, a in arch.items()}
            return {kind: w.detach().cpu().numpy() for kind, w in self.weights(tensors).items()}

    def state_figures(self, arch: Mapping[str, np.ndarray]) -> list[StateFigure]:
        """Charts of the variant's own state in these parameters (a snapshot's float64 arrays), beside the op-weight
        heatmaps; none by default. A ValueError or KeyError says a record lacks what the variant draws."""
        return []

    def state_text(self, arch: Mapping[str, np.ndarray]) -> str | None:
        """One line on the variant's state now (a schedule's value); None by default."""
        return None

    def derive(self, weights: Mapping[str, np.ndarray], arch: Mapping[str, Any]) -> Genotype:
        """The discrete cell of these op weights (as `weights` gave them, numpy) and raw parameters.

        The default is the DARTS rule on the op weights (engine.space.cnn.genotype.select_edges): per node, the two
        edges whose strongest non-`none` weight is largest, each with that op; for the weights of another search
        space's cells (the recurrent cell), that space's rule."""
        space = space_of_kinds(weights)
        if space is not None and space.name != DEFAULT_SPACE:
            return space.derive(weights)
        return genotype_from_weights(weights["normal"], weights["reduce"])


def cell_kinds(arch: Mapping[str, Any]) -> tuple[str, ...]:
    """The cell kinds of an arch mapping's search space: ("normal", "reduce") or ("recurrent",). A variant that
    computes per cell kind reads them here, so it works on whichever space the arch belongs to."""
    space = space_of_kinds(arch)
    return space.cell_kinds if space is not None else get_space(DEFAULT_SPACE).cell_kinds


def real_ops(arch: Mapping[str, Any]) -> list[int]:
    """The columns of the arch's op weights that are ops other than `none` (in its space's primitives)."""
    space = space_of_kinds(arch) or get_space(DEFAULT_SPACE)
    return [k for k, op in enumerate(space.primitives) if op != "none"]
