"""The recurrent cell a search ends with, the rule that derives it, and its text forms, torch-free.

A recurrent genotype lists one (op_name, input_state) pair per intermediate node, in node order: pair i feeds
node i (state i + 1) from state j, 0 <= j <= i (0 = s_0). `concat` names the states whose average is the cell's
output; DARTS averages all intermediate nodes, `range(1, 9)`. The text form is the reference's namedtuple as it
prints and as quark0/darts rnn/genotypes.py writes it, so it pastes there:
`Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ...], concat=range(1, 9))`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.core.inputs import parse_json
from engine.core.literal import read_call
from engine.space.rnn.cell import PRIMITIVES, edge_endpoints, nodes_of
from engine.space.weights import softmax

__all__ = ["Genotype", "select_inputs", "genotype_from_weights", "derive_genotype", "KNOWN_GENOTYPES"]

Pair = tuple[str, int]
_FIELDS = ("recurrent", "concat")


@dataclass(frozen=True)
class Genotype:
    recurrent: tuple[Pair, ...]   # pair i feeds intermediate node i
    concat: tuple[int, ...]       # the states averaged into the output (1 = node 0)

    def __post_init__(self) -> None:
        # Lists and ranges are accepted (the reference writes both) and stored as tuples, validated once: every
        # Genotype that exists is one a network can be built from.
        pairs = tuple(_pair(p, f"recurrent pair {k}") for k, p in enumerate(_seq(self.recurrent, "recurrent")))
        concat = tuple(_int(c, "concat") for c in _seq(self.concat, "concat"))
        object.__setattr__(self, "recurrent", pairs)
        object.__setattr__(self, "concat", concat)
        if not pairs:
            raise ValueError("recurrent has no (op, input) pairs; a recurrent cell has one per node (8 in DARTS)")
        for k, (op, j) in enumerate(pairs):
            _check_op(k, op)
            if not 0 <= j <= k:
                raise ValueError(f"recurrent pair {k}: node {k} takes input {j}; node {k} may take states 0..{k}")
        states = range(1, len(pairs) + 1)
        if not concat or len(set(concat)) != len(concat) or any(c not in states for c in concat):
            raise ValueError(f"concat {list(concat)} must name distinct intermediate states from {list(states)}")

    @property
    def nodes(self) -> int:
        return len(self.recurrent)

    def to_dict(self) -> dict[str, Any]:
        return {"recurrent": [list(p) for p in self.recurrent], "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        if not isinstance(data, dict):
            raise ValueError(f"a genotype must be a JSON object, got {type(data).__name__}")
        for k, p in enumerate(data.get("recurrent") if isinstance(data.get("recurrent"), list) else ()):
            if isinstance(p, (list, tuple)) and p and isinstance(p[0], str):
                _check_op(k, p[0])  # a wrong op name is the more specific mistake: say it before a missing field
        unknown = sorted(set(data) - set(_FIELDS))
        missing = [k for k in _FIELDS if k not in data]
        if unknown or missing:
            raise ValueError(f"recurrent genotype keys: missing {missing}, unknown {unknown}; expected recurrent, "
                             f"concat")
        return cls(**data)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_darts(self) -> str:
        """The reference's printed form; a contiguous concat prints as range(a, b), as its genotypes.py writes it."""
        pairs = ", ".join(repr(p) for p in self.recurrent)
        c = self.concat
        contiguous = c == tuple(range(c[0], c[0] + len(c)))
        concat = f"range({c[0]}, {c[-1] + 1})" if contiguous else repr(list(c))
        return f"Genotype(recurrent=[{pairs}], concat={concat})"

    def __str__(self) -> str:  # print(genotype) shows the text people paste, as the reference's namedtuple does
        return self.to_darts()

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Our JSON (a genotype, or a genotypes.jsonl row holding one) or the reference's text, with or without
        `NAME = `. Read as data only: literals, `Genotype(...)` and `range(a, b)`; never evaluated."""
        stripped = text.strip()
        if stripped.startswith("{"):
            data = parse_json(stripped, "genotype JSON")
            if isinstance(data, dict) and "genotype" in data and "recurrent" not in data:
                data = data["genotype"]
            return cls.from_dict(data)
        return cls.from_dict(read_call(stripped, "Genotype"))


def select_inputs(weights: Any, primitives: Sequence[str] = PRIMITIVES) -> list[tuple[int, int]]:
    """The recurrent DARTS rule on op weights (edges, ops): per node, the one kept (row, op_index).

    An edge's strength is its largest non-`none` weight; a node keeps its strongest edge and that edge's
    strongest non-`none` op (quark0/darts rnn/model_search.py, `genotype`). Ties go to the earlier input and
    the earlier op, as the reference's stable sort and strict `>` do."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(primitives):
        raise ValueError(f"op weights must be (edges, {len(primitives)}), got {w.shape}")
    nodes = nodes_of(w.shape[0])
    if not np.isfinite(w).all():
        raise ValueError("op weights contain NaN or inf (did the search diverge?)")
    real = [k for k, op in enumerate(primitives) if op != "none"]
    best_op = np.asarray(real)[w[:, real].argmax(axis=1)]  # (edges,): argmax returns the first maximum
    strength = w[np.arange(len(w)), best_op]
    kept, start = [], 0
    for i in range(nodes):
        rows = range(start, start + i + 1)
        r = max(rows, key=lambda row: (strength[row], -row))  # strongest, then the earliest input
        kept.append((r, int(best_op[r])))
        start += i + 1
    return kept


def genotype_from_weights(weights: Any, primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """The genotype `select_inputs` picks from op weights (edges, ops); the output averages every node."""
    kept = select_inputs(weights, primitives)
    endpoints = edge_endpoints(len(kept))
    return Genotype([(primitives[k], endpoints[r][0]) for r, k in kept], range(1, len(kept) + 1))


def derive_genotype(alphas: Any) -> Genotype:
    """The DARTS genotype of raw (pre-softmax) alphas (edges, ops), numpy or torch: ranked by softmax weights."""
    if hasattr(alphas, "detach"):  # a torch tensor, maybe on a GPU and requiring grad
        alphas = alphas.detach().cpu().double().numpy()
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(PRIMITIVES):
        raise ValueError(f"alphas must be an (edges, {len(PRIMITIVES)}) matrix, got {a.shape}")
    return genotype_from_weights(softmax(a))


def _seq(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, range)):
        raise ValueError(f"{what} must be a list, got {value!r}")
    return value


def _int(value: Any, what: str) -> int:
    if type(value) is not int:  # bool is an int subclass and never an index
        raise ValueError(f"{what} must hold integers, got {value!r}")
    return value


def _pair(value: Any, what: str) -> Pair:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not isinstance(value[0], str):
        raise ValueError(f"{what} must be (op_name, input_index), got {value!r}")
    return value[0], _int(value[1], what)


def _check_op(k: int, op: str) -> None:
    allowed = ", ".join(p for p in PRIMITIVES if p != "none")
    if op == "none":
        raise ValueError(f"recurrent pair {k}: 'none' is not an op of a genotype (it means no edge); "
                         f"allowed: {allowed}")
    if op not in PRIMITIVES:
        raise ValueError(f"recurrent pair {k}: unknown op {op!r}; allowed: {allowed}")


# Published cells as the exact text quark0/darts rnn/genotypes.py holds, so parsing them runs on every import.
# DARTS_RNN is the paper's Figure 6 cell (second-order search; the reference's DARTS_V2 and its DARTS default).
_KNOWN_TEXT: Mapping[str, str] = {
    "DARTS_RNN": "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
                 "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))",
    "DARTS_RNN_V1": "Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), "
                    "('identity', 1), ('relu', 5), ('relu', 1)], concat=range(1, 9))",
    "ENAS_RNN": "Genotype(recurrent=[('tanh', 0), ('tanh', 1), ('relu', 1), ('tanh', 3), ('tanh', 3), ('relu', 3), "
                "('relu', 4), ('relu', 7), ('relu', 8), ('relu', 8), ('relu', 8)], concat=[2, 5, 6, 9, 10, 11])",
}
# Read-only: module globals are shared by every dashboard session.
KNOWN_GENOTYPES: MappingProxyType[str, Genotype] = MappingProxyType(
    {name: Genotype.parse(text) for name, text in _KNOWN_TEXT.items()})
