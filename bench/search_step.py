"""Fast path vs plain path: seconds per search step, first and second order, and peak memory.

    python bench/search_step.py [--steps 5] [--warmup 1] [--no-memory] [--size reference|paper]
                                [--device cpu|cuda|mps] [--amp]

`--size reference` (the default) is a small config a 2-core CPU can time in minutes: C=8, 5 cells,
batch 32, 3x32x32 inputs, 10 classes. `--size paper` is the paper's CIFAR-10
search network: C=16, 8 cells, batch 64, for a GPU. All four (order x path) steps run in this one process,
interleaved step by step, so a busy machine slows each of them alike and the ratios stay meaningful.
Memory is a per-process figure, so each combination also runs once in a fresh child process to measure it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.search.benchmark import SearchStep, count_aten_calls, machine_info, measure_search_step
from engine.search.config import SearchConfig

SIZES = {
    "reference": SearchConfig(dataset="fake", image_size=32, in_channels=3, num_classes=10, init_channels=8,
                              layers=5, batch_size=32, device="cpu"),
    "paper": SearchConfig(dataset="fake", image_size=32, in_channels=3, num_classes=10, init_channels=16,
                          layers=8, batch_size=64, device="cpu"),
}
ORDERS = ("first", "second")
PATHS = {"fast": True, "plain": False}


def time_interleaved(config: SearchConfig, steps: int, warmup: int,
                     ) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], int]]:
    """Seconds of each timed step, per (order, path), one step of each combination in turn; then the ATen calls
    of one more step of each (counted apart: the profiler slows the step it watches)."""
    runners = {(order, path): SearchStep(config.replace(order=order, fast=fast))
               for order in ORDERS for path, fast in PATHS.items()}
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for i in range(warmup + steps):
        for key, run in runners.items():
            elapsed = run()
            if i >= warmup:
                seconds[key].append(elapsed)
        print(f"  round {i + 1}/{warmup + steps}" + (" (warm-up)" if i < warmup else ""), file=sys.stderr)
    return seconds, {key: count_aten_calls(run) for key, run in runners.items()}


def memory_in_child(args: argparse.Namespace, order: str, path: str) -> dict:
    """measure_search_step (one warm-up, one step) in a fresh process, so the peak is this combination's own."""
    out = subprocess.run([sys.executable, __file__, "--child", order, path, "--size", args.size, "--device",
                          args.device, *(["--amp"] if args.amp else [])], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the child processes that measure memory")
    parser.add_argument("--size", choices=sorted(SIZES), default="reference",
                        help="reference: the CPU timing config; paper: the paper's search network (for a GPU)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    parser.add_argument("--amp", action="store_true", help="autocast (bf16 on the CPU and CUDA)")
    parser.add_argument("--child", nargs=2, metavar=("ORDER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = SIZES[args.size].replace(device=args.device, amp=args.amp)
    if args.child:
        order, path = args.child
        print(json.dumps(measure_search_step(config.replace(order=order, fast=PATHS[path]), steps=1, warmup=1)))
        return

    info, c = machine_info(), config
    print(f"machine: {info['platform']}, {info['processor']}, {info['cpu_count']} CPUs, "
          f"{info['threads']} torch threads, torch {info['torch']}, python {info['python']}, GPU {info['gpu']}")
    print(f"config: C={c.init_channels}, {c.layers} cells, batch {c.batch_size}, "
          f"{c.in_channels}x{c.image_size}x{c.image_size}, {c.num_classes} classes, SGD+clip weight step; "
          f"{args.steps} steps after {args.warmup} warm-up, interleaved; device {c.device}, amp {c.amp}")
    seconds, calls = time_interleaved(config, args.steps, args.warmup)
    memory = {} if args.no_memory else {(o, p): memory_in_child(args, o, p) for o in ORDERS for p in PATHS}

    print(f"\n{'order':<7} {'path':<6} {'s/step':>7} {'min':>6} {'max':>6} {'ATen calls':>10} {'MB before':>10} "
          f"{'peak MB':>8}")
    for order in ORDERS:
        for path in PATHS:
            s = seconds[(order, path)]
            mem = memory.get((order, path))
            mem_text = f"{mem['baseline_memory_mb']:>10.0f} {mem['peak_memory_mb']:>8.0f}" if mem else ""
            print(f"{order:<7} {path:<6} {statistics.median(s):>7.3f} {min(s):>6.3f} {max(s):>6.3f} "
                  f"{calls[(order, path)]:>10,} {mem_text}")
        fast, plain = seconds[(order, "fast")], seconds[(order, "plain")]
        # Interference only ever adds time, so the minima are the steadier comparison on a shared machine.
        print(f"{order:<7} fast is {statistics.median(plain) / statistics.median(fast):.2f}x as fast as plain "
              f"(medians), {min(plain) / min(fast):.2f}x (minima); "
              f"{calls[(order, 'fast')] / calls[(order, 'plain')]:.2f} of plain's ATen calls")
    if memory:
        kind = next(iter(memory.values()))["memory_kind"]
        print(f"\nmemory: {kind} of a fresh process per row, before its first step and at its peak "
              "(one warm-up step and one timed step)")


if __name__ == "__main__":
    main()
