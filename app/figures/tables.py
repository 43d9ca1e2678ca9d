"""The tables the pages show: a genotype's kept edges, what changed between two genotypes, two genotypes side by
side, and the runs of the Runs page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import Any

import pandas as pd

from app.figures.labels import input_name
from engine.space import DEFAULT_SPACE, space_of_genotype
from engine.space.cnn.genotype import Genotype, diff_genotypes, node_difference

__all__ = ["genotype_frame", "genotype_changes", "compare_genotypes_frame", "runs_frame", "SETTINGS",
           "differing_settings"]


def _recurrent(genotype: Any) -> bool:
    return space_of_genotype(genotype).name != DEFAULT_SPACE


def _state(j: int) -> str:
    """A recurrent cell's state as its genotype numbers it: 0 is s_0 (from x_t and h_{t-1})."""
    return "s_0" if j == 0 else f"node {j}"


def genotype_frame(genotype: Genotype) -> pd.DataFrame:
    """One row per kept edge: cell, node, input, op."""
    if _recurrent(genotype):  # one input per node, nodes numbered from 1 as in the genotype
        return pd.DataFrame([{"cell": "recurrent", "node": k + 1, "input": _state(j), "op": op}
                             for k, (op, j) in enumerate(genotype.recurrent)], columns=["cell", "node", "input", "op"])
    rows = []
    for cell in ("normal", "reduce"):
        for node, pairs in enumerate(genotype.cell_nodes(cell)):
            for op, j in pairs:
                rows.append({"cell": cell, "node": node, "input": input_name(j), "op": op})
    return pd.DataFrame(rows, columns=["cell", "node", "input", "op"])


def _pair_text(pair: tuple[str, int] | None) -> str:
    return "nothing" if pair is None else f"{pair[0]} from {input_name(pair[1])}"


def genotype_changes(old: Genotype | None, new: Genotype | None) -> list[str]:
    """What changed between two genotypes, one line per changed (cell, node, slot); empty when the same."""
    if old is None or new is None:
        return []
    if _recurrent(new):
        if not _recurrent(old):
            return ["a cell of another search space"]
        return [f"recurrent node {k + 1}: {a[0]} of {_state(a[1])} -> {b[0]} of {_state(b[1])}"
                for k, (a, b) in enumerate(zip(old.recurrent, new.recurrent, strict=False)) if a != b]
    return [f"{c.cell} node {c.node}: {_pair_text(c.before)} -> {_pair_text(c.after)}"
            for c in diff_genotypes(old, new)]


def compare_genotypes_frame(a: Genotype, b: Genotype, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Two genotypes node by node: the (op, input) pairs both have first ("same": yes), then the ones that differ.

    A node sums its inputs, so its pairs are compared as a set: the same two pairs in the other order agree."""
    def text(pair: tuple[str, int] | None) -> str:
        return "" if pair is None else f"{pair[0]} <- {input_name(pair[1])}"

    rows = []
    for cell in ("normal", "reduce"):
        for node, (pa, pb) in enumerate(zip_longest(a.cell_nodes(cell), b.cell_nodes(cell), fillvalue=())):
            only_a, only_b = node_difference(pa, pb)
            shared = list(pa)
            for pair in only_a:
                shared.remove(pair)
            for pair in shared:
                rows.append({"cell": cell, "node": node, names[0]: text(pair), names[1]: text(pair), "same": "yes"})
            for ea, eb in zip_longest(only_a, only_b):
                rows.append({"cell": cell, "node": node, names[0]: text(ea), names[1]: text(eb), "same": "no"})
    return pd.DataFrame(rows, columns=["cell", "node", names[0], names[1], "same"])


# The settings the Runs table shows (column -> the config fields it reads, the first one present): those that make
# two searches differ. A training reads `lr` where a search has `w_lr`; `variant` and `a_lr` are a search's only.
SETTINGS = {"dataset": ("dataset",), "variant": ("variant",), "order": ("order",), "lr": ("w_lr", "lr"),
            "a_lr": ("a_lr",), "batch": ("batch_size",), "seed": ("seed",), "epochs": ("epochs",)}


def _setting(cfg: Mapping[str, Any], fields: Sequence[str]) -> Any:
    return next((cfg[f] for f in fields if f in cfg), None)


def runs_frame(runs: Sequence[Any]) -> pd.DataFrame:
    """The runs table of the Runs page from engine.runs.catalog.RunInfo rows: progress, then the settings
    (SETTINGS), then what the run found."""
    rows = []
    for r in runs:
        cfg = r.config or {}
        rows.append({
            "run": r.run_id, "state": r.state, "epoch": f"{min(r.epoch + 1, r.epochs or r.epoch + 1)}/{r.epochs}",
            "step": f"{r.step}/{r.total_steps}", "valid acc": r.valid_acc,
            **{column: _setting(cfg, fields) for column, fields in SETTINGS.items()},
            "genotype": "yes" if r.genotype is not None else "no", "created": r.created,
        })
    return pd.DataFrame(rows, columns=["run", "state", "epoch", "step", "valid acc", *SETTINGS, "genotype",
                                       "created"])


def differing_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` without the SETTINGS columns that hold one value in every row (a missing value counts as a
    value): what is left says how the runs differ."""
    same = [c for c in SETTINGS if c in frame.columns and frame[c].astype(str).nunique(dropna=False) <= 1]
    return frame.drop(columns=same)
