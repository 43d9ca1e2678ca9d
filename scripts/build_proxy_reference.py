"""Build assets/proxies/reference.json: the cells `python -m engine score` ranks a cell's proxies against.

    python scripts/build_proxy_reference.py [--random 50] [--preset train-demo] [--out assets/proxies/reference.json]

The set is random:0 .. random:N-1 (engine/train/source.py's uniform draw from the DARTS space) plus every
published cell of assets/genotypes/known.json, each scored exactly as `score` scores a cell
(engine/derive/proxies.py: score_genotype at the preset's size, on its first unaugmented training batch).
A cell's `test_acc` is filled in from finished trainings of the same recipe under --runs-dir, where there are
any (`python -m engine compare` writes them); the correlations over those cells are stored too.
The file is written atomically; the run takes about a second a cell on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from engine.core.atomic import write_json_atomic
from engine.derive import proxies
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from engine.train.source import random_genotype


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--random", type=int, default=50, help="random cells (seeds 0..N-1)")
    p.add_argument("--preset", default=proxies.DEFAULT_PRESET)
    p.add_argument("--out", default=str(proxies.REFERENCE_PATH))
    p.add_argument("--runs-dir", help="trainings to take test accuracies from (default: none)")
    args = p.parse_args(argv)
    if args.random < 0:
        p.error("--random must be >= 0")
    torch.set_num_threads(1)
    cells = [(f"random:{s}", random_genotype(s)) for s in range(args.random)] + list(KNOWN_GENOTYPES.items())
    trained = proxies.trained_cells(args.runs_dir, args.preset) if args.runs_dir else []
    accuracy = {t["genotype"]: t["test_acc"] for t in trained}  # the last training of a cell wins
    rows, t0 = [], time.monotonic()
    for k, (name, genotype) in enumerate(cells):
        scores = proxies.score_genotype(genotype, args.preset)
        row = {"name": name, "genotype": genotype.to_dict(), **scores}
        if genotype in accuracy:
            row["test_acc"] = accuracy[genotype]
        rows.append(row)
        print(f"{k + 1}/{len(cells)} {name}: {scores}", file=sys.stderr, flush=True)
    with_acc = [r for r in rows if "test_acc" in r]
    x, y, _ = proxies.proxy_batch(args.preset)
    write_json_atomic(args.out, {
        "format": proxies.REFERENCE_FORMAT, "preset": args.preset,
        "config": proxies.score_config(args.preset).to_dict(), "batch": list(x.shape),
        "seed": proxies.SCORE_SEED, "torch": torch.__version__, "seconds": round(time.monotonic() - t0, 1),
        "correlation": {"cells": len(with_acc),
                        **proxies.correlations(with_acc, [r["test_acc"] for r in with_acc])},
        "cells": rows})
    print(f"wrote {args.out}: {len(rows)} cells, {len(with_acc)} with a test accuracy, "
          f"{time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
