"""Genotype: the discrete cell a search ends with, the rule that derives it, and its text forms.

A cell's genotype lists (op_name, input_index) pairs node by node: input 0 = c_{k-2}, 1 = c_{k-1},
j >= 2 = intermediate node j-2. DARTS keeps exactly two pairs per node, so pairs 2i and 2i+1 feed node i
(the reference layout, `normal_fanin=None`). A variant that keeps another number of inputs per node
(FairDARTS: 0..2) sets `normal_fanin` / `reduce_fanin` to the inputs of each node, e.g. (2, 1, 0, 2): the
pairs still come node by node, and `cell_nodes()` groups them. Networks read `cell_nodes()`, never `k // 2`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.core.inputs import parse_json
from engine.core.literal import read_call
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints, nodes_of
from engine.space.weights import softmax

__all__ = ["Genotype", "GenotypeChange", "derive_genotype", "genotype_from_weights", "select_edges", "diff_genotypes",
           "node_difference",
           "KNOWN_GENOTYPES"]

Pair = tuple[str, int]
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat", "normal_fanin", "reduce_fanin")


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]       # output = concat of these states (2 = node 0)
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]
    normal_fanin: tuple[int, ...] | None = None   # inputs per node; None = two each (DARTS)
    reduce_fanin: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists and ranges (the reference writes both), store tuples, validate once: every Genotype
        # that exists is one a network can be built from.
        for cell in CELL_KINDS:
            pairs = tuple(_pair(p, f"{cell} pair {k}") for k, p in enumerate(_seq(getattr(self, cell), cell)))
            concat = _ints(getattr(self, f"{cell}_concat"), f"{cell}_concat")
            fanin = getattr(self, f"{cell}_fanin")
            fanin = None if fanin is None else _ints(fanin, f"{cell}_fanin")
            if fanin and all(n == 2 for n in fanin) and len(pairs) == 2 * len(fanin):
                fanin = None  # the DARTS layout written out: one form, so equal cells compare equal
            object.__setattr__(self, cell, pairs)
            object.__setattr__(self, f"{cell}_concat", concat)
            object.__setattr__(self, f"{cell}_fanin", fanin)
            _validate(cell, pairs, concat, fanin)

    def fanin(self, cell: str) -> tuple[int, ...]:
        """Inputs of each intermediate node of `cell` ("normal" or "reduce")."""
        if cell not in CELL_KINDS:
            raise ValueError(f"cell must be 'normal' or 'reduce', got {cell!r}")
        explicit = getattr(self, f"{cell}_fanin")
        return explicit if explicit is not None else (2,) * (len(getattr(self, cell)) // 2)

    def cell_nodes(self, cell: str) -> tuple[tuple[Pair, ...], ...]:
        """The pairs of `cell` grouped by the node they feed: ((pair, pair), (pair, pair), ...)."""
        fanin, pairs, out, start = self.fanin(cell), getattr(self, cell), [], 0
        for n in fanin:
            out.append(pairs[start:start + n])
            start += n
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; the fanin keys appear only for non-DARTS layouts."""
        d: dict[str, Any] = {}
        for cell in CELL_KINDS:
            d |= {cell: [list(p) for p in getattr(self, cell)], f"{cell}_concat": list(getattr(self, f"{cell}_concat"))}
            if getattr(self, f"{cell}_fanin") is not None:
                d[f"{cell}_fanin"] = list(getattr(self, f"{cell}_fanin"))
        return d

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        if not isinstance(data, dict):
            raise ValueError(f"a genotype must be a JSON object, got {type(data).__name__}")
        for cell in CELL_KINDS:  # a wrong op name is the more specific mistake: say it before a missing field
            for k, p in enumerate(data.get(cell) if isinstance(data.get(cell), list) else ()):
                if isinstance(p, (list, tuple)) and p and isinstance(p[0], str):
                    _check_op(cell, k, p[0])
        unknown = sorted(set(data) - set(_FIELDS))
        missing = [k for k in _FIELDS[:4] if k not in data]
        if unknown or missing:
            raise ValueError(f"genotype keys: missing {missing}, unknown {unknown}; expected {', '.join(_FIELDS)}")
        return cls(**data)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_darts(self) -> str:
        """The reference's printed form, pastes into its genotypes.py: Genotype(normal=[('sep_conv_3x3', 0), ...], ...).

        A non-DARTS layout adds normal_fanin=/reduce_fanin=, which the reference's 4-field namedtuple
        rejects, as it should: its network cannot build such a cell."""
        parts = []
        for cell in CELL_KINDS:
            parts.append(f"{cell}=[{', '.join(repr(tuple(p)) for p in getattr(self, cell))}]")
            parts.append(f"{cell}_concat={list(getattr(self, f'{cell}_concat'))}")
        parts += [f"{c}_fanin={list(getattr(self, f'{c}_fanin'))}" for c in CELL_KINDS
                  if getattr(self, f"{c}_fanin") is not None]
        return f"Genotype({', '.join(parts)})"

    def __str__(self) -> str:  # print(genotype) shows the text people paste, as the reference's namedtuple does
        return self.to_darts()

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Our JSON (a genotype, or a genotypes.jsonl row holding one) or the DARTS text, with or without
        `NAME = `. Read as data only: literals, `Genotype(...)` and `range(a, b)`; never evaluated."""
        stripped = text.strip()
        if stripped.startswith("{"):
            data = parse_json(stripped, "genotype JSON")
            if isinstance(data, dict) and "genotype" in data and "normal" not in data:
                data = data["genotype"]
            return cls.from_dict(data)
        return cls.from_dict(read_call(stripped, "Genotype"))


@dataclass(frozen=True)
class GenotypeChange:
    """An (op, input) pair a node lost (`before`) and the one it gained in its place (`after`); None when a node
    only lost or only gained one. `slot` numbers the changes of one node."""
    cell: str
    node: int
    slot: int
    before: Pair | None
    after: Pair | None


def node_difference(a: Sequence[Pair], b: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    """The pairs only `a` has and those only `b` has, comparing a node's inputs as a multiset: a node sums its
    inputs, so the same two (op, input) pairs in the other order are the same node."""
    rest = list(b)
    only_a = []
    for pair in a:
        if pair in rest:
            rest.remove(pair)
        else:
            only_a.append(pair)
    return only_a, rest


def diff_genotypes(old: Genotype | None, new: Genotype) -> tuple[GenotypeChange, ...]:
    """What changed from `old` to `new`, node by node (no `old`: every entry of `new` is a change)."""
    changes = []
    for cell in CELL_KINDS:
        before = old.cell_nodes(cell) if old is not None else ()
        for node, (a, b) in enumerate(zip_longest(before, new.cell_nodes(cell), fillvalue=())):
            lost, gained = node_difference(a, b)
            for slot, (pa, pb) in enumerate(zip_longest(lost, gained)):
                changes.append(GenotypeChange(cell, node, slot, pa, pb))
    return tuple(changes)


def select_edges(weights: Any, keep: int = 2, primitives: Sequence[str] = PRIMITIVES) -> list[list[tuple[int, int]]]:
    """The DARTS rule (docs/darts.md) on one cell's op weights: per node, the kept (row, op_index), strongest first.

    An edge's strength is its largest non-`none` weight; a node keeps its `keep` strongest edges. Python's
    sort is stable and np.argmax returns the first maximum, so ties go to the lower edge and op index. The
    number of nodes follows from the number of rows (14 rows: 4 nodes)."""
    w = np.asarray(weights, dtype=np.float64)  # (edges, ops)
    if w.ndim != 2 or w.shape[1] != len(primitives):
        raise ValueError(f"op weights must be (edges, {len(primitives)}), got {w.shape}")
    nodes = nodes_of(w.shape[0])
    if not np.isfinite(w).all():
        raise ValueError("op weights contain NaN or inf (did the search diverge?)")
    real = [k for k, op in enumerate(primitives) if op != "none"]
    best_op = np.asarray(real)[w[:, real].argmax(axis=1)]  # (edges,) column of the strongest real op
    strength = w[np.arange(len(w)), best_op]  # (edges,)
    kept, start = [], 0
    for i in range(nodes):
        rows = range(start, start + i + 2)
        ranked = sorted(rows, key=lambda r: -strength[r])[:keep]
        kept.append([(r, int(best_op[r])) for r in ranked])
        start += i + 2
    return kept


def genotype_from_weights(weights_normal: Any, weights_reduce: Any, keep: int = 2,
                          primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """The genotype `select_edges` picks from op weights, each (edges, ops): what every variant's derivation
    comes down to once it has its op weights (PC-DARTS first multiplies each row by its edge's weight)."""
    cells, nodes = {}, None
    for cell, weights in (("normal", weights_normal), ("reduce", weights_reduce)):
        kept = select_edges(weights, keep, primitives)
        if nodes is not None and len(kept) != nodes:
            raise ValueError(f"the normal cell has {nodes} nodes and the reduction cell {len(kept)}; they must agree")
        nodes = len(kept)
        endpoints = edge_endpoints(nodes)
        cells[cell] = [(primitives[k], endpoints[r][0]) for node in kept for r, k in node]
    concat = tuple(range(2, 2 + nodes))
    fanin = tuple(min(keep, i + 2) for i in range(nodes))  # node i has only i + 2 candidates; all 2s is DARTS
    return Genotype(cells["normal"], concat, cells["reduce"], concat, fanin, fanin)


def derive_genotype(alphas_normal: Any, alphas_reduce: Any) -> Genotype:
    """The DARTS genotype of raw (pre-softmax) alphas, each (edges, ops), numpy or torch. Ranking uses the softmax
    weights, not raw alphas: an edge whose `none` is large has small real-op weights even when its raw alphas
    are large. The same cell as `engine.variants.derive(arch, "darts")` (tests/test_genotype.py checks it),
    computed without torch."""
    return genotype_from_weights(softmax(_numpy(alphas_normal)), softmax(_numpy(alphas_reduce)))


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, maybe on a GPU and requiring grad
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=np.float64)  # (edges, ops)
    if a.ndim != 2 or a.shape[1] != len(PRIMITIVES):
        raise ValueError(f"alphas must be (edges, {len(PRIMITIVES)}) matrices, got {a.shape}")
    return a


def _seq(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, range)):
        raise ValueError(f"{what} must be a list, got {value!r}")
    return value


def _int(value: Any, what: str) -> int:
    if type(value) is not int:  # bool is an int subclass and never an index
        raise ValueError(f"{what} must hold integers, got {value!r}")
    return value


def _ints(value: Any, what: str) -> tuple[int, ...]:
    return tuple(_int(v, what) for v in _seq(value, what))


def _pair(value: Any, what: str) -> Pair:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not isinstance(value[0], str):
        raise ValueError(f"{what} must be (op_name, input_index), got {value!r}")
    return value[0], _int(value[1], what)


def _check_op(cell: str, k: int, op: str) -> None:
    allowed = ", ".join(p for p in PRIMITIVES if p != "none")
    if op == "none":
        raise ValueError(f"{cell} pair {k}: 'none' is not an op of a genotype (it means no edge); allowed: {allowed}")
    if op not in PRIMITIVES:
        raise ValueError(f"{cell} pair {k}: unknown op {op!r}; allowed: {allowed}")


def _validate(cell: str, pairs: tuple[Pair, ...], concat: tuple[int, ...], fanin: tuple[int, ...] | None) -> None:
    if fanin is None and (not pairs or len(pairs) % 2):
        raise ValueError(f"{cell} has {len(pairs)} (op, input) pairs; a DARTS cell has 2 per node (8 for 4 nodes)")
    if fanin is not None and (any(n < 0 for n in fanin) or sum(fanin) != len(pairs)):
        raise ValueError(f"{cell}_fanin {list(fanin)} does not account for the {len(pairs)} pairs of {cell}")
    fanin = fanin if fanin is not None else (2,) * (len(pairs) // 2)
    node_of = [i for i, n in enumerate(fanin) for _ in range(n)]
    for k, ((op, j), node) in enumerate(zip(pairs, node_of, strict=True)):
        _check_op(cell, k, op)
        if not 0 <= j <= node + 1:
            raise ValueError(f"{cell} pair {k}: node {node} takes input {j}; node {node} may take inputs 0..{node + 1}")
        if j >= 2 and fanin[j - 2] == 0:
            raise ValueError(f"{cell} pair {k}: input {j} is node {j - 2}, which has no inputs")
    states = range(2, 2 + len(fanin))
    if not concat or len(set(concat)) != len(concat) or any(c not in states or fanin[c - 2] == 0 for c in concat):
        raise ValueError(f"{cell}_concat {list(concat)} must name distinct nodes with inputs, from {list(states)}")


# Published cells, stored as the exact text their repositories print (assets/genotypes/known.json), so
# parsing them is exercised on every import. Read-only: module globals are shared by every dashboard session.
_KNOWN_PATH = Path(__file__).resolve().parents[3] / "assets" / "genotypes" / "known.json"
KNOWN_GENOTYPES: MappingProxyType[str, Genotype] = MappingProxyType(
    {name: Genotype.parse(entry["darts"]) for name, entry in json.loads(_KNOWN_PATH.read_text()).items()})
