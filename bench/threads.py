"""One torch thread or two: steps/s of the `demo` search on this machine as found, and with added load.

    python bench/threads.py [--threads 1,2] [--steps 2] [--rounds 2] [--load N]

The `demo` preset's search step (C=8, 5 cells, batch 64, 1x16x16 images, 10 classes, first order; random
batches of that shape, engine/search/benchmark.py) is timed with each thread count in turn, in one process, in two
phases: the machine as found (`load +0`), then with N extra processes that spin on a core each (`load +N`,
default: one per core), which is what other work does to a search. Within a phase the thread counts take
turns round by round, so a change in the machine's other load hits each of them alike. The table gives the
median seconds a step, steps/s, the 1-minute load average at the start and end of the phase, and what the
`threads=0` (auto) rule of engine/runtime/threads.py would choose at the phase's start.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from engine.runtime.threads import auto_threads, machine_cpus, machine_load
from engine.search.benchmark import SearchStep, machine_info
from engine.search.config import PRESETS


def _spin() -> None:
    while True:
        pass


def demo_config():
    """The demo preset's network and batch on random data of the embedded set's shape (1x16x16, 10 classes)."""
    return PRESETS["demo"].replace(dataset="fake", in_channels=1, image_size=16, num_classes=10, device="cpu")


def phase(step: SearchStep, threads: list[int], steps: int, rounds: int) -> dict[int, list[float]]:
    seconds: dict[int, list[float]] = {n: [] for n in threads}
    for r in range(rounds):
        for n in threads:
            torch.set_num_threads(n)
            for _ in range(steps):
                seconds[n].append(step())
            print(f"  round {r + 1}/{rounds}, {n} thread(s): {statistics.median(seconds[n]):.2f} s/step",
                  file=sys.stderr)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts to compare, comma separated")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per thread count and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--load", type=int, default=machine_cpus(), help="spinning processes of the loaded phase")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    torch.manual_seed(0)
    step = SearchStep(demo_config())
    step()
    rows = []
    for extra in (0, args.load):
        spinners = [mp.Process(target=_spin, daemon=True) for _ in range(extra)]
        for p in spinners:
            p.start()
        try:
            if extra:
                time.sleep(5)  # let the spinners get their share before timing
            load_start = machine_load()
            auto = auto_threads(machine_cpus(), load_start)
            print(f"phase load +{extra}: load average {load_start}, auto would choose {auto}", file=sys.stderr)
            seconds = phase(step, threads, args.steps, args.rounds)
            load_end = machine_load()
        finally:
            for p in spinners:
                p.kill()
                p.join()
        for n in threads:
            med = statistics.median(seconds[n])
            rows.append({"added_load": extra, "threads": n, "median_s_per_step": round(med, 3),
                         "steps_per_s": round(1 / med, 3), "steps": len(seconds[n]),
                         "load_start": load_start, "load_end": load_end, "auto_choice": auto})
    print(json.dumps({"machine": machine_info(), "cpus": machine_cpus(),
                      "env_OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "rows": rows}, indent=2))
    print("\n| added load | threads | s/step (median) | steps/s | load avg start -> end | auto chose |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| +{r['added_load']} | {r['threads']} | {r['median_s_per_step']} | {r['steps_per_s']} | "
              f"{r['load_start']:.2f} -> {r['load_end']:.2f} | {r['auto_choice']} |")


if __name__ == "__main__":
    main()
