"""What a user of the `demo` preset waits for, fast path against plain path, measured in one run.

    python bench/demo_timeline.py [--epochs 1] [--recording assets/runs/<run>]

Runs the `demo` search (the embedded Fashion-MNIST subset, 16x16, C=8, 5 cells, batch 64, first order) for
`--epochs` epochs with `fast=true` and with `fast=false`, each in a fresh run directory, one step of each in
turn (paused searches stepped alternately, so a change in the machine's load hits both alike), and prints
for each path:
- time to the first heatmap: setup (data, network, the step-0 checkpoint) and the first step;
- seconds per step and per epoch (median over the timed steps);
- the time until half of the normal cell's edges have a top op weight above 0.25: the step at which that
  happens is a property of the search (it does not depend on the path, which computes the same function),
  read from a finished recording of the same preset (`--recording`, default: the shipped demo recording),
  and turned into time with this run's setup time and seconds per step.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from engine.jobs.controller import Controller
from engine.runs import rundir
from engine.runs.examples import EXAMPLES_ROOT
from engine.search.benchmark import machine_info
from engine.search.config import from_preset
from engine.variants import make_variant


def _wait(cond, timeout: float = 3600.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("a search did not advance in an hour")
        time.sleep(0.005)


def half_edges_step(run: Path, threshold: float = 0.25) -> int | None:
    """The first recorded step at which half of the normal cell's edges have a top op weight above `threshold`."""
    config = json.loads((run / rundir.CONFIG).read_text())
    variant = make_variant(config.get("variant", "darts"))
    for row in rundir.read_alphas(run):
        arch = {k: torch.tensor(np.asarray(v, dtype=np.float32)) for k, v in row.items()
                if k in ("normal", "reduce")}
        top = variant.weights(arch)["normal"].max(dim=1).values
        if (top > threshold).float().mean().item() >= 0.5:
            return int(row["step"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--recording", type=Path, default=None,
                        help="a finished demo run (default: the shipped demo recording)")
    args = parser.parse_args()
    recording = args.recording or next(EXAMPLES_ROOT.glob("*-example-demo"))
    info = machine_info()
    print(f"machine: {info['platform']}, {info['processor']}, {info['cpu_count']} CPUs, {info['threads']} torch "
          f"threads, torch {info['torch']}, GPU {info['gpu']}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fast": True, "plain": False}
        runs = {name: Path(tmp) / name for name in paths}
        jobs, setup = {}, {}
        for name, fast in paths.items():
            job = Controller(from_preset("demo", {"fast": fast, "epochs": args.epochs}), runs[name])
            job.control.pause()  # set up, then wait: the two take their steps in turn
            start = time.perf_counter()
            job.start()
            _wait(lambda job=job: job.snapshot().state in ("paused", "failed"))
            setup[name] = time.perf_counter() - start
            jobs[name] = job
        total = jobs["fast"].snapshot().total_steps
        for i in range(total):
            for name, job in jobs.items():
                if job.snapshot().state == "failed":
                    raise SystemExit(f"{name}: {job.snapshot().error}")
                job.step_once()
                _wait(lambda job=job, i=i: job.snapshot().step > i or job.snapshot().state == "failed")
            if (i + 1) % 25 == 0:
                print(f"  step {i + 1}/{total}", file=sys.stderr)
        for job in jobs.values():
            job.resume()
            job.join(600)
        steps = half_edges_step(recording)
        cfg = from_preset("demo")
        print(f"config: demo preset (embedded data, {cfg.image_size}x{cfg.image_size}, C={cfg.init_channels}, "
              f"{cfg.layers} cells, batch {cfg.batch_size}, {cfg.order} order); {args.epochs} epoch(s) per path, "
              "one step of each in turn")
        print(f"half of the normal edges pass a top weight of 0.25 at step {steps} of {recording.name}")
        print(f"\n{'path':<6} {'first heatmap s':>15} {'s/step':>7} {'epoch s':>8} {'10 epochs min':>13} "
              f"{'half edges > 0.25 s':>19}")
        per_step = {}
        for name in paths:
            walls = [m["wall_s"] for m in rundir.read_metrics(runs[name])]  # seconds of steps so far, per step
            per_step[name] = statistics.median(b - a for a, b in itertools.pairwise(walls))
            steps_per_epoch = rundir.read_status(runs[name])["steps_per_epoch"] or 0
            epoch_s = per_step[name] * steps_per_epoch
            first_heatmap = setup[name] + rundir.read_metrics(runs[name])[0]["wall_s"]  # setup, then step 1
            half = "" if steps is None else f"{first_heatmap + (steps - 1) * per_step[name]:>19.0f}"
            print(f"{name:<6} {first_heatmap:>15.1f} {per_step[name]:>7.3f} {epoch_s:>8.1f} "
                  f"{10 * epoch_s / 60:>13.1f} {half}")
        print(f"\nfast is {per_step['plain'] / per_step['fast']:.2f}x as fast as plain per step (medians)")


if __name__ == "__main__":
    main()
