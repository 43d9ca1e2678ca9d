"""Which genotype a training trains: a known name, a file, a search run (at its end or at a step), or a random cell.

    DARTS_V2, DARTS_RNN      a published cell (the KNOWN_GENOTYPES of engine.space.cnn and engine.space.rnn)
    cell.json / cell.txt     our JSON or the DARTS text (either space's Genotype.parse)
    runs/<search>            the run's final genotype (the last line of genotypes.jsonl)
    runs/<search>@STEP       the genotype recorded at that step
    random, random:SEED      a cell drawn uniformly from the search space (the paper's random baseline)

`resolve_genotype` returns the genotype and a `source` record (written into the training's config.json);
anything it cannot use is a GenotypeSourceError (a ValueError) with a one-line reason. The genotype's class says
its space (`space_of`): a convolutional cell or a recurrent one; `random` draws from the space it is asked for.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.inputs import read_input_text
from engine.runs import rundir
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype
from engine.space.rnn.cell import PRIMITIVES as RNN_PRIMITIVES
from engine.space.rnn.genotype import KNOWN_GENOTYPES as RNN_KNOWN
from engine.space.rnn.genotype import Genotype as RNNGenotype

__all__ = ["GenotypeSourceError", "random_genotype", "random_rnn_genotype", "resolve_genotype", "space_of", "SPACES"]

RANDOM_NODES = 4  # the DARTS cell: 4 intermediate nodes, outputs concatenated
RANDOM_RNN_NODES = 8  # the recurrent DARTS cell: 8 nodes, outputs averaged
SPACES = ("cnn", "rnn")
_RNN_RUN_KINDS = ("rnn_search", "rnn_train")


def space_of(genotype: Genotype | RNNGenotype) -> str:
    """"rnn" for a recurrent cell, "cnn" for a convolutional one."""
    return "rnn" if isinstance(genotype, RNNGenotype) else "cnn"


class GenotypeSourceError(ValueError):
    """A GENOTYPE argument that names no usable genotype; the message says why in one line."""


def random_genotype(seed: int, nodes: int = RANDOM_NODES) -> Genotype:
    """A cell drawn uniformly from the DARTS space, as the paper's random baseline: for each node of each cell,
    2 distinct inputs among the states before it (the two cell inputs and the earlier nodes) and, for each,
    a random op other than `none`. A pure function of `seed` (numpy's generator seeded by [seed])."""
    rng = np.random.default_rng([seed])
    ops = [p for p in PRIMITIVES if p != "none"]
    cells = {}
    for cell in ("normal", "reduce"):
        pairs = []
        for i in range(nodes):
            inputs = sorted(int(j) for j in rng.choice(i + 2, size=2, replace=False))
            pairs += [(ops[int(rng.integers(len(ops)))], j) for j in inputs]
        cells[cell] = pairs
    concat = list(range(2, 2 + nodes))
    return Genotype(cells["normal"], concat, cells["reduce"], concat)


def random_rnn_genotype(seed: int, nodes: int = RANDOM_RNN_NODES) -> RNNGenotype:
    """A recurrent cell drawn uniformly from the paper's space (one input kept per node, as derivation keeps):
    node i's input among the states 0..i and a random op other than `none`, the output the mean of all nodes.
    A pure function of `seed`."""
    rng = np.random.default_rng([seed])
    ops = [p for p in RNN_PRIMITIVES if p != "none"]
    pairs = [(ops[int(rng.integers(len(ops)))], int(rng.integers(i + 1))) for i in range(nodes)]
    return RNNGenotype(pairs, range(1, nodes + 1))


def _from_random(text: str, space: str) -> tuple[Genotype | RNNGenotype, dict[str, Any]]:
    seed_text = text.partition(":")[2]
    if text == "random":
        seed = secrets.randbelow(2**31)  # drawn now, recorded, so the run can be repeated
    elif seed_text.isdigit() and int(seed_text) < 2**32:
        seed = int(seed_text)
    else:
        raise GenotypeSourceError(f"{text!r}: write random or random:SEED with SEED an integer from 0 to 2**32-1")
    if space == "rnn":
        return random_rnn_genotype(seed), {"kind": "random", "seed": seed, "space": "rnn", "label": f"random:{seed}"}
    return random_genotype(seed), {"kind": "random", "seed": seed, "label": f"random:{seed}"}


def _from_run(path: Path, step_text: str | None) -> tuple[Genotype | RNNGenotype, dict[str, Any]]:
    record = rundir.read_config(path)  # a RunDirError (one line) for a folder that is not a run
    cls = RNNGenotype if record.get("kind") in _RNN_RUN_KINDS else Genotype
    rows = rundir.read_genotypes(path)
    if step_text is not None:
        if not step_text.isdigit():
            raise GenotypeSourceError(f"{path}@{step_text}: STEP must be a step number, e.g. {path}@250")
        step = int(step_text)
        rows = [r for r in rows if r["step"] == step]
        if not rows:
            recorded = sorted({r["step"] for r in rundir.read_genotypes(path)})
            shown = ", ".join(map(str, recorded[-10:])) or "none"
            raise GenotypeSourceError(f"{path} has no genotype recorded at step {step} (steps with one: {shown})")
    for row in reversed(rows):
        try:
            genotype = cls.from_dict(row["genotype"])
        except (KeyError, TypeError, ValueError) as e:
            if step_text is not None:
                raise GenotypeSourceError(f"{path}@{step_text}: the recorded genotype does not parse ({e})") from None
            continue
        kind = "train" if record.get("kind") in ("train", "rnn_train") else "search"
        label = f"{path.name}@{row['step']}"
        return genotype, {"kind": kind, "run_dir": str(path.resolve()), "step": row["step"], "label": label}
    raise GenotypeSourceError(f"{path} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")


def _parse_file(path: Path) -> Genotype | RNNGenotype:
    """Either space's genotype: the text names its own (a recurrent one has `recurrent`, a convolutional one
    `normal`), so the error reported is the one of the space the file meant."""
    text = read_input_text(path, "genotype file")
    try:
        return Genotype.parse(text)
    except ValueError as cnn_error:
        try:
            return RNNGenotype.parse(text)
        except ValueError as rnn_error:
            raise rnn_error if "recurrent" in text and "normal" not in text else cnn_error from None


def resolve_genotype(spec: str, space: str = "cnn") -> tuple[Genotype | RNNGenotype, dict[str, Any]]:
    """(genotype, source) for a GENOTYPE argument; GenotypeSourceError / RunDirError with a reason otherwise.
    `space` says which space `random` draws from; every other form names its own."""
    spec = str(spec).strip()
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    if spec in KNOWN_GENOTYPES:
        return KNOWN_GENOTYPES[spec], {"kind": "known", "name": spec, "label": spec}
    if spec in RNN_KNOWN:
        return RNN_KNOWN[spec], {"kind": "known", "name": spec, "label": spec}
    if spec == "random" or spec.startswith("random:"):
        return _from_random(spec, space)
    path = Path(spec)
    head, at, tail = spec.rpartition("@")
    if not path.exists() and at and Path(head).is_dir():
        return _from_run(Path(head), tail)
    if path.is_dir():
        return _from_run(path, None)
    if path.exists():
        try:
            genotype = _parse_file(path)
        except ValueError as e:
            raise GenotypeSourceError(f"{path} does not hold a genotype that fits: {e}") from None
        return genotype, {"kind": "file", "path": str(path.resolve()), "label": path.name}
    known = ", ".join([*KNOWN_GENOTYPES, *RNN_KNOWN])
    raise GenotypeSourceError(f"{spec!r} is neither a known genotype ({known}), random[:SEED], "
                              "a genotype file nor a run directory (RUN_DIR or RUN_DIR@STEP)")
