"""The variants side by side on the same data and config: seconds per step, peak memory, supernet accuracy, genotype.

    python bench/variants.py [--steps 20] [--eval-batches 8] [--variants darts,pc_darts,...] [--device cpu]

Config (the goals in docs/variants.md are stated for it): the embedded Fashion-MNIST subset resized to 32x32,
C=16, 5 cells, batch 32, first order, seed 2; arch lr 5e-2 as the demo preset (few steps). Each variant runs
in a fresh child process, so its peak memory is its own: "memory" is the peak resident set (CUDA: max
allocated) above the baseline measured after the network and the data are loaded and before the first step.
Each child times `--steps` search steps after one warm-up step (median), then measures the supernet's
validation accuracy (eval mode, as the search runs it: a sampling variant samples) on `--eval-batches`
validation batches, and derives the genotype. The children run one after another, so a machine that gets
busier during the run slows the later ones; run twice if the figures look odd.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.search.config import SearchConfig
from engine.variants import variant_names


def bench_config(variant: str, device: str) -> SearchConfig:
    return SearchConfig(dataset="embedded", image_size=32, subset=3200, init_channels=16, layers=5, batch_size=32,
                        epochs=1, order="first", variant=variant, a_lr=5e-2, a_weight_decay=0.0, seed=2,
                        device=device)


def child(variant: str, steps: int, eval_batches: int, device: str) -> dict:
    import torch

    from engine.runtime.device import select_device
    from engine.search.architect import Architect
    from engine.search.benchmark import current_memory_mb, peak_memory_mb, reset_peak_memory
    from engine.search.build import build_network
    from engine.search.data import load_search_data
    from engine.search.step import bilevel_step

    cfg = bench_config(variant, device)
    dev = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_search_data(cfg)
    model = build_network(cfg, data.in_channels, data.num_classes).to(dev)
    w_opt = torch.optim.SGD(model.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    architect = Architect(model, cfg.a_lr, cfg.a_betas, cfg.a_weight_decay, order=cfg.order)
    model.start_epoch(0, cfg.epochs)
    train = data.batches("train", 0, cfg.batch_size)
    valid = data.batches("valid", 0, cfg.batch_size)
    batches = [(next(train), next(valid)) for _ in range(steps + 1)]
    baseline = current_memory_mb(dev)
    reset_peak_memory(dev)
    seconds = []
    for i, (tb, vb) in enumerate(batches):
        tb, vb = tuple(t.to(dev) for t in tb), tuple(t.to(dev) for t in vb)
        start = time.perf_counter()
        bilevel_step(model, architect, w_opt, tb, vb, cfg, dev, epoch=0)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:  # the first step warms up
            seconds.append(time.perf_counter() - start)
    peak, kind = peak_memory_mb(dev)
    model.eval()
    correct = total = 0
    held_out = data.batches("valid", 1, cfg.batch_size)
    with torch.no_grad():
        for _ in range(eval_batches):
            x, y = (t.to(dev) for t in next(held_out))
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return {"variant": variant, "seconds_per_step": statistics.median(seconds), "peak_mb": peak,
            "baseline_mb": baseline, "above_baseline_mb": None if peak is None or baseline is None else peak - baseline,
            "memory_kind": kind, "valid_acc": correct / max(total, 1), "genotype": str(model.genotype()),
            "steps": steps, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--variants", default=",".join(variant_names()))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.eval_batches, args.device)))
        return
    results = []
    for name in args.variants.split(","):
        print(f"  {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps),
                              "--eval-batches", str(args.eval_batches), "--device", args.device],
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = next((r for r in results if r["variant"] == "darts"), None)
    print(f"{'variant':<11} {'s/step':>7} {'x darts':>7} {'mem MB':>7} {'x darts':>7} {'val acc':>7}")
    for r in results:
        t_ratio = r["seconds_per_step"] / base["seconds_per_step"] if base else float("nan")
        mem = r["above_baseline_mb"]
        m_ratio = mem / base["above_baseline_mb"] if base and mem is not None and base["above_baseline_mb"] else None
        mem_text = f"{mem:7.1f}" if mem is not None else "    n/a"
        ratio_text = f"{m_ratio:7.2f}" if m_ratio is not None else "    n/a"
        print(f"{r['variant']:<11} {r['seconds_per_step']:7.3f} {t_ratio:7.2f} {mem_text} {ratio_text} "
              f"{r['valid_acc']:7.3f}")
    for r in results:
        print(f"{r['variant']}: {r['genotype']}")
    print(f"({results[0]['steps']} timed steps after 1 warm-up; memory = peak above the baseline "
          f"({results[0]['memory_kind']}); accuracy of the supernet on {args.eval_batches} held-out batches)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
