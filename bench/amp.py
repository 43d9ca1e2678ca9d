"""bf16 autocast against float32 for the `demo` search step on this machine, side by side in one process.

    python bench/amp.py [--steps 3]

The `demo` preset's step (C=8, 5 cells, batch 64, 1x16x16, 10 classes, first order, fast path) on random
batches of that shape (engine/search/benchmark.py), `amp=false` and `amp=true` in turn, one warm-up step each. On a
CPU, autocast runs the convolutions in bfloat16: fast only where the CPU has bf16 arithmetic (AVX512-BF16,
AMX); elsewhere oneDNN converts and is slower. `amp` becomes the `demo` default only if it is faster and the
search's cell and accuracy stay the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.search.benchmark import SearchStep, machine_info
from engine.search.config import from_preset


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    found = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(found) or "none of avx512f, avx512_bf16, amx_bf16"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    cfg = from_preset("demo").replace(dataset="fake", in_channels=1, num_classes=10, image_size=16, device="cpu")
    runs = {amp: SearchStep(cfg.replace(amp=amp)) for amp in (False, True)}
    seconds: dict[bool, list[float]] = {amp: [] for amp in runs}
    for i in range(args.steps + 1):
        for amp, run in runs.items():
            elapsed = run()
            if i:
                seconds[amp].append(elapsed)
    info = machine_info()
    print(f"machine: {info['platform']}, {info['cpu_count']} CPUs, {info['threads']} torch threads, torch "
          f"{info['torch']}; CPU flags: {cpu_flags()}")
    for amp, s in seconds.items():
        print(f"amp={str(amp).lower():<5} {statistics.median(s):.3f} s a step (median of {len(s)})")
    ratio = statistics.median(seconds[True]) / statistics.median(seconds[False])
    print(f"bf16 autocast takes {ratio:.2f}x the float32 step")


if __name__ == "__main__":
    main()
