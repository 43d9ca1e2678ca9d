"""What watching a search costs: steps/s of the real loop (snapshots, metrics and alphas lines, status
heartbeats, checkpoints, control polling) against a bare loop doing only the arithmetic of a step
(architecture step + weight step), on the same config, alternating blocks in one run to cancel noise.

    python bench/observation_overhead.py [--preset demo] [--steps 15] [--repeats 3] [--checkpoint-every-s 5]

Prints one JSON object: config, machine, torch, seconds per step of each mode, and the overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.nn.supernet import SearchNetwork
from engine.runs.control import Control
from engine.runs.hooks import Callback
from engine.search.architect import Architect
from engine.search.config import from_preset
from engine.search.data import load_search_data
from engine.search.loop import run_search


class StepClock(Callback):
    """Wall time between consecutive step ends: everything the loop does per step, observers included."""

    def __init__(self, control: Control, steps: int):
        self.control, self.steps, self.times = control, steps, []

    def on_step_end(self, event):
        if event.metrics is None and event.checkpoint is not None and event.step == 0:
            return  # the initial checkpoint, not a step
        self.times.append(time.perf_counter())
        if len(self.times) > self.steps:
            self.control.stop()


def observed(cfg, steps: int) -> list[float]:
    control = Control()
    clock = StepClock(control, steps)
    with tempfile.TemporaryDirectory() as tmp:
        run_search(cfg, Path(tmp), control=control, callbacks=[clock])
    return [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]


def bare(cfg, steps: int) -> list[float]:
    torch.manual_seed(cfg.seed)
    data = load_search_data(cfg)
    model = SearchNetwork(cfg.init_channels, data.num_classes, cfg.layers, in_channels=data.in_channels,
                          nodes=cfg.nodes, variant=cfg.variant, fast=cfg.fast)
    w_opt = torch.optim.SGD(model.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    architect = Architect(model, cfg.a_lr, cfg.a_betas, cfg.a_weight_decay, order=cfg.order)
    train = data.batches("train", 0, cfg.batch_size)
    valid = data.batches("valid", 0, cfg.batch_size)
    times, last = [], None
    for _ in range(min(steps + 1, data.steps_per_epoch(cfg.batch_size))):
        x, y = next(train)
        xv, yv = next(valid)
        architect.step(x, y, xv, yv, w_opt.param_groups[0]["lr"], w_opt)
        w_opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward(inputs=model.weight_parameters())  # as the loop does
        torch.nn.utils.clip_grad_norm_(model.weight_parameters(), cfg.w_grad_clip)
        w_opt.step()
        now = time.perf_counter()
        if last is not None:
            times.append(now - last)
        last = now
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpoint-every-s", type=float, default=5.0,
                   help="checkpoint period of the observed loop (the default config says 120 s; 5 s is pessimistic)")
    args = p.parse_args()
    cfg = from_preset(args.preset, {"log_every": 1, "checkpoint_every_s": args.checkpoint_every_s})
    runs = {"bare": [], "observed": []}
    for _ in range(args.repeats):
        runs["bare"] += bare(cfg, args.steps)
        runs["observed"] += observed(cfg, args.steps)
    med = {k: statistics.median(v) for k, v in runs.items()}
    mean = {k: statistics.fmean(v) for k, v in runs.items()}
    print(json.dumps({
        "preset": args.preset, "config": cfg.to_dict(), "steps_per_block": args.steps, "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "torch": str(torch.__version__),
        "seconds_per_step_median": med, "seconds_per_step_mean": mean,
        "observed_over_bare_steps_per_s_median": med["bare"] / med["observed"],
        "overhead_percent_median": 100 * (med["observed"] / med["bare"] - 1),
        "overhead_percent_mean": 100 * (mean["observed"] / mean["bare"] - 1),
    }, indent=2))


if __name__ == "__main__":
    main()
