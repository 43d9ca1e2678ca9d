"""A sweep on the local pool against the same searches one after another: wall time of each, on this machine.

    python bench/sweep.py [--preset demo] [--set epochs=1] [--variants darts,beta_darts] [--seeds 2] [--jobs 2]

Both runs do the same searches (every variant x seed). "One after another" runs them in sequence with the
machine's automatic thread count (docs/threads.md), as a user starting `python -m engine search` by hand would;
"pool" is `engine.sweep.run.run_local` with `--jobs` members at a time and one torch thread each. Both start a
process per search, so both pay torch's import per search. Prints the config, the machine, and both wall times
with their ratio; the machine's other load at the start and end is printed too, since it changes the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.core.config import parse_overrides  # noqa: E402
from engine.runtime.threads import machine_load  # noqa: E402
from engine.search.benchmark import machine_info  # noqa: E402
from engine.search.config import SearchConfig  # noqa: E402
from engine.sweep.report import compare_groups, group_summaries, member_results  # noqa: E402
from engine.sweep.run import run_local  # noqa: E402
from engine.sweep.spec import create_sweep  # noqa: E402


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _load(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--variants", default="darts,beta_darts")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--keep", metavar="DIR", help="run in DIR (a new folder) and keep both sets of searches there, "
                   "to open the pool's sweep on the Sweeps page (default: a temporary folder)")
    args = p.parse_args()
    if args.keep and Path(args.keep).exists():
        p.error(f"--keep {args.keep}: exists; give a new folder")
    sets = parse_overrides(args.set, SearchConfig)
    variants = args.variants.split(",")
    print(json.dumps({"preset": args.preset, "sets": sets, "variants": variants, "seeds": args.seeds,
                      "jobs": args.jobs, "machine": machine_info()}, indent=2))
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        load0 = machine_load()
        t0 = time.perf_counter()
        for v in variants:
            for seed in range(args.seeds):
                cmd = [sys.executable, "-m", "engine", "search", "--preset", args.preset, "--runs-dir",
                       f"{tmp}/seq", "--set", f"variant={v}", "--set", f"seed={seed}",
                       *(x for k, val in sets.items() for x in ("--set", f"{k}={_text(val)}"))]
                subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ})
        sequential = time.perf_counter() - t0
        load1 = machine_load()
        sweep = create_sweep(Path(tmp) / "sweeps", "bench", args.preset, sets, {"variant": variants}, args.seeds)
        t0 = time.perf_counter()
        states = run_local(sweep, jobs=args.jobs, threads=1)
        pool = time.perf_counter() - t0
        load2 = machine_load()
        groups = group_summaries(member_results(sweep))  # what the Sweeps page shows of the pool's sweep
    assert set(states.values()) == {"finished"}, states
    print(f"searches: {len(variants) * args.seeds}")
    print(f"one after another (auto threads): {sequential:.1f} s   (load {_load(load0)} -> {_load(load1)})")
    print(f"pool, {args.jobs} at a time, 1 thread each: {pool:.1f} s   (load {_load(load1)} -> {_load(load2)})")
    print(f"pool / one after another: {pool / sequential:.3f}")
    for g in groups:
        acc, skips = g.stats["valid_acc"], g.stats["skips_normal"]
        print(f"{g.label}: supernet valid acc {acc['mean']:.4f} +- {acc['std'] or 0:.4f} "
              f"({acc['min']:.4f}..{acc['max']:.4f}), normal-cell skips {skips['mean']:.2f} "
              f"({skips['min']:.0f}..{skips['max']:.0f}), {len(g.cells)} distinct cells in {len(g.members)} seeds")
    for a, b in zip(groups, groups[1:], strict=False):
        print(compare_groups(a, b))
        print(compare_groups(a, b, "skips_normal"))


if __name__ == "__main__":
    main()
