"""Which genotype a training trains: a known name, a file, a search run (at its end or at a step), or a random cell.

    DARTS_V2                 a published cell (engine.space.cnn.genotype.KNOWN_GENOTYPES)
    cell.json / cell.txt     our JSON or the DARTS text (Genotype.parse)
    runs/<search>            the run's final genotype (the last line of genotypes.jsonl)
    runs/<search>@STEP       the genotype recorded at that step
    random, random:SEED      a cell drawn uniformly from the search space (the paper's random baseline)

`resolve_genotype` returns the genotype and a `source` record (written into the training's config.json);
anything it cannot use is a GenotypeSourceError (a ValueError) with a one-line reason.
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

__all__ = ["GenotypeSourceError", "random_genotype", "resolve_genotype"]

RANDOM_NODES = 4  # the DARTS cell: 4 intermediate nodes, outputs concatenated


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


def _from_random(text: str) -> tuple[Genotype, dict[str, Any]]:
    seed_text = text.partition(":")[2]
    if text == "random":
        seed = secrets.randbelow(2**31)  # drawn now, recorded, so the run can be repeated
    elif seed_text.isdigit() and int(seed_text) < 2**32:
        seed = int(seed_text)
    else:
        raise GenotypeSourceError(f"{text!r}: write random or random:SEED with SEED an integer from 0 to 2**32-1")
    return random_genotype(seed), {"kind": "random", "seed": seed, "label": f"random:{seed}"}


def _from_run(path: Path, step_text: str | None) -> tuple[Genotype, dict[str, Any]]:
    record = rundir.read_config(path)  # a RunDirError (one line) for a folder that is not a run
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
            genotype = Genotype.from_dict(row["genotype"])
        except (KeyError, TypeError, ValueError) as e:
            if step_text is not None:
                raise GenotypeSourceError(f"{path}@{step_text}: the recorded genotype does not parse ({e})") from None
            continue
        kind = "train" if record.get("kind") == "train" else "search"
        label = f"{path.name}@{row['step']}"
        return genotype, {"kind": kind, "run_dir": str(path.resolve()), "step": row["step"], "label": label}
    raise GenotypeSourceError(f"{path} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")


def resolve_genotype(spec: str) -> tuple[Genotype, dict[str, Any]]:
    """(genotype, source) for a GENOTYPE argument; GenotypeSourceError / RunDirError with a reason otherwise."""
    spec = str(spec).strip()
    if spec in KNOWN_GENOTYPES:
        return KNOWN_GENOTYPES[spec], {"kind": "known", "name": spec, "label": spec}
    if spec == "random" or spec.startswith("random:"):
        return _from_random(spec)
    path = Path(spec)
    head, at, tail = spec.rpartition("@")
    if not path.exists() and at and Path(head).is_dir():
        return _from_run(Path(head), tail)
    if path.is_dir():
        return _from_run(path, None)
    if path.exists():
        try:
            genotype = Genotype.parse(read_input_text(path, "genotype file"))
        except ValueError as e:
            raise GenotypeSourceError(f"{path} does not hold a genotype that fits: {e}") from None
        return genotype, {"kind": "file", "path": str(path.resolve()), "label": path.name}
    raise GenotypeSourceError(f"{spec!r} is neither a known genotype ({', '.join(KNOWN_GENOTYPES)}), random[:SEED], "
                              "a genotype file nor a run directory (RUN_DIR or RUN_DIR@STEP)")
