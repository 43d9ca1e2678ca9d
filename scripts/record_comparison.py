"""Record a comparison for assets/compare/, the one the Train page shows at once, before anything has trained.

    python scripts/record_comparison.py                  # train-demo: the shipped demo search's cell, DARTS_V2 and
                                                         # one random cell (about 30 minutes on a 2-core CPU)
    python scripts/record_comparison.py --preset train-smoke --random 2 --out /tmp/cmp    # seconds, for a test

It runs `python -m engine compare` on the demo recording (assets/runs/*-example-demo), then keeps of each training
what the page reads (config.json, status.json without the machine's pid and host, metrics.jsonl, genotypes.jsonl;
no checkpoint, no TensorBoard events) beside comparison.json: the comparison's table (cell, genotype, state, test
accuracy, parameters, mult-adds, wall time, run id), the preset, and the machine and date it was recorded on.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.core.atomic import write_json_atomic  # noqa: E402  (the repository root is on the path now)
from engine.runs import examples, rundir  # noqa: E402

KEEP = (rundir.CONFIG, rundir.METRICS, rundir.GENOTYPES)


def trim(source: Path, target: Path) -> None:
    """The files the page reads, with the status stripped of what only the recording machine knew."""
    target.mkdir(parents=True)
    for name in KEEP:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    status = {k: v for k, v in rundir.read_status(source).items() if k not in ("pid", "host", "traceback")}
    (target / rundir.STATUS).write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")


def record(preset: str, random_cells: int, out: Path) -> dict:
    import torch

    from engine.train.compare import compare
    from engine.train.config import from_train_preset

    demo = examples.example(examples.DEFAULT_EXAMPLE)
    if demo is None:
        raise SystemExit("the demo recording (assets/runs/*-example-demo) is missing")
    with tempfile.TemporaryDirectory() as tmp:
        signals: list[int] = []  # Ctrl-C or SIGTERM stops the training in flight and starts no more
        rows = compare(str(demo.path), from_train_preset(preset), random_cells=random_cells, runs_dir=tmp,
                       signals=signals)
        if signals:
            raise SystemExit(f"stopped by signal {signals[0]}: nothing recorded")
        if any(r["state"] != "finished" for r in rows):
            raise SystemExit("a training did not finish: " + ", ".join(f"{r['name']} {r['state']}" for r in rows))
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        kept = []
        for row in rows:
            run_dir = Path(row["run_dir"])
            trim(run_dir, out / run_dir.name)
            kept.append({k: v for k, v in row.items() if k not in ("run_dir", "error")} | {"run_id": run_dir.name})
    record = {"format": "dartboard-comparison/1", "preset": preset, "search": demo.run_id, "rows": kept,
              "recorded": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"}
    write_json_atomic(out / examples.COMPARISON_FILE, record)
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="train-demo")
    p.add_argument("--random", type=int, default=1, metavar="N", help="random cells beside the found one and DARTS_V2")
    p.add_argument("--out", type=Path, default=examples.COMPARISONS_ROOT / examples.DEFAULT_EXAMPLE)
    args = p.parse_args()
    result = record(args.preset, args.random, args.out)
    for row in result["rows"]:
        print(f"{row['name']:<10} {row['test_acc']:.4f}  {row['run_id']}")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
