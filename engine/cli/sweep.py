"""`sweep`, `sweep-report` and `sweep-control`: many searches as one, what they found, and steering them.

    sweep --preset demo --grid variant=darts,beta_darts --grid max_skip=0,2 --seeds 4 [--jobs 2]
    sweep ... --train train-demo [--baseline --random 2]   then train each found cell (and DARTS_V2, random)
    sweep --resume SWEEP_DIR                   finished members are kept; the rest continue or start
    sweep-report SWEEP_DIR [--json]            per group of seeds: mean and spread, op frequencies, cells
    sweep-control SWEEP_DIR pause|resume|stop [--member NAME]

Exit status of `sweep`: 0 when every member finished, 1 when one failed or was interrupted (the others still
ran), 2 on bad input, 130 after Ctrl-C (running members stop after their step, with a checkpoint).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from typing import Any

from engine.cli.progress import NORMAL, SweepProgress, states_line

__all__ = ["add_sweep_commands"]


def add_sweep_commands(sub: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """`parents`: options every command takes (-q / -v); a sweep's progress follows them."""
    from engine.search.config import PRESETS

    s = sub.add_parser("sweep", help="one search per grid combination and seed, under one sweep directory",
                       parents=list(parents))
    s.add_argument("--preset", default="demo", choices=sorted(PRESETS), metavar="PRESET",
                   help="the members' base preset: " + ", ".join(sorted(PRESETS)))
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="a field fixed for every member")
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="a field varied across members")
    s.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds per combination (default 1)")
    s.add_argument("--first-seed", type=int, default=0, metavar="S", help="the seeds are S..S+N-1")
    s.add_argument("--name", help="the sweep directory's name (default: a timestamp and the preset)")
    s.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs); sweeps go in its sweeps/")
    s.add_argument("--train", metavar="PRESET", help="then train every found cell with this training preset")
    s.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="a training field (repeatable)")
    s.add_argument("--baseline", action="store_true",
                   help="with --train: also train DARTS_V2 and --random N random cells on the same budget")
    s.add_argument("--random", type=int, default=2, metavar="N", help="random cells with --baseline (default 2)")
    s.add_argument("--resume", metavar="SWEEP_DIR", help="continue this sweep: finished members are not redone")
    s.add_argument("--member", action="append", metavar="NAME", help="run only this member (repeatable)")
    s.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: processes on this machine; ray: Ray tasks (RAY_ADDRESS or --ray-address)")
    s.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="local: members at a time (default: the cores divided by --threads)")
    s.add_argument("--threads", type=int, default=1, metavar="T", help="torch threads per member (default 1)")
    s.add_argument("--ray-address", metavar="ADDR", help="ray: HOST:PORT or ray://HOST:PORT of a running cluster")
    s.add_argument("--gpus-per-run", type=float, default=0.0, metavar="G",
                   help="ray: GPUs per member (0.5 shares one GPU between two)")
    s.set_defaults(func=cmd_sweep)
    r = sub.add_parser("sweep-report", help="a sweep's members and, per group of seeds, what they found")
    r.add_argument("sweep_dir", metavar="SWEEP_DIR")
    r.add_argument("--json", action="store_true", help="the report as JSON")
    r.set_defaults(func=cmd_sweep_report)
    c = sub.add_parser("sweep-control", help="pause, resume or stop a running sweep's members")
    c.add_argument("sweep_dir", metavar="SWEEP_DIR")
    c.add_argument("command", choices=("pause", "resume", "stop"))
    c.add_argument("--member", action="append", metavar="NAME", help="only this member (repeatable)")
    c.set_defaults(func=cmd_sweep_control)


def _print_states(states: dict[str, str]) -> None:
    print(states_line(states), file=sys.stderr)


def cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from engine.cli.common import BadInput
    from engine.core.config import parse_overrides
    from engine.runs import rundir
    from engine.search.config import SearchConfig
    from engine.sweep.run import member_states, run_local, run_on_ray
    from engine.sweep.spec import SweepError, create_sweep, load_sweep, parse_grid

    if args.threads < 1:
        raise BadInput("--threads must be at least 1")
    try:
        if args.resume:
            if args.grid or args.set:
                raise BadInput("--resume continues a sweep as it was created: no --grid or --set")
            sweep = load_sweep(args.resume)
            from engine.sweep.gate import set_sweep_gate

            set_sweep_gate(sweep.path, "running")  # a sweep stopped or paused as a whole goes on
        else:
            grid = parse_grid(args.grid or [])
            if not grid and args.seeds < 2:
                raise BadInput("an empty sweep: give --grid KEY=V1,V2 and/or --seeds N with N >= 2")
            sets = parse_overrides(args.set or [], SearchConfig)
            root = rundir.runs_root(args.runs_dir) / "sweeps"
            name = args.name or f"{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%SZ}-{args.preset}"
            from engine.train.config import TrainConfig

            train_sets = parse_overrides(args.train_set or [], TrainConfig)
            sweep = create_sweep(root, name, args.preset, sets, grid, args.seeds, args.first_seed, args.backend,
                                 train=args.train, train_sets=train_sets, baseline=args.baseline,
                                 random_cells=args.random)
        print(f"sweep directory: {sweep.path} ({len(sweep.members)} members)", file=sys.stderr)
        progress = SweepProgress(member_states(sweep), getattr(args, "verbosity", NORMAL), args.member)
        try:
            if args.backend == "ray":
                states = run_on_ray(sweep, args.threads, args.gpus_per_run, args.ray_address, args.member,
                                    on_change=progress)
            else:
                jobs = args.jobs if args.jobs is not None else max(1, (os.cpu_count() or 1) // args.threads)
                states = run_local(sweep, jobs, args.threads, args.member, on_change=progress)
        except KeyboardInterrupt:
            progress.close()
            print(f"\nstopped: resume with `python -m engine sweep --resume {sweep.path}`", file=sys.stderr)
            return 130
        finally:
            progress.close()
    except SweepError as e:
        raise BadInput(str(e)) from None
    _print_states(states)
    bad = {n: s for n, s in states.items() if s != "finished"}
    for name, state in bad.items():
        print(f"  {name}: {state}", file=sys.stderr)
    print(str(sweep.path))
    return 1 if bad else 0


def _report(sweep_dir: str) -> dict[str, Any]:
    from engine.sweep.report import compare_groups, group_summaries, member_results
    from engine.sweep.spec import load_sweep

    sweep = load_sweep(sweep_dir)
    results = member_results(sweep)
    groups = group_summaries(results)
    trained = member_results(sweep, "train")
    trained_groups = group_summaries(trained)
    varied = list(sweep.grid)
    return {
        "trainings": [{"name": r.member.name, "state": r.state, "step": r.step, **r.member.settings,
                       "test_acc": r.figures.get("test_acc"), "genotype": r.genotype} for r in trained],
        "trained_groups": [{"settings": dict(g.settings), "test_acc": g.stats["test_acc"]} for g in trained_groups],
        "trained_comparisons": [compare_groups(a, b, "test_acc")
                                for a, b in zip(trained_groups, trained_groups[1:], strict=False)],
        "sweep": str(sweep.path), "preset": sweep.preset, "varied": varied, "seeds": sweep.seeds,
        "members": [{"name": r.member.name, "state": r.state, "step": r.step, **r.member.settings, **r.figures,
                     "genotype": r.genotype} for r in results],
        "groups": [{"settings": dict(g.settings), "stats": g.stats, "cells": [{"genotype": c, "seeds": n}
                                                                              for c, n in g.cells],
                    "win_freq": {k: v.round(4).tolist() for k, v in g.win_freq.items()}} for g in groups],
        "comparisons": [compare_groups(a, b) for a, b in zip(groups, groups[1:], strict=False)],
    }


def cmd_sweep_report(args: argparse.Namespace) -> int:
    from engine.cli.common import BadInput
    from engine.sweep.spec import SweepError

    try:
        report = _report(args.sweep_dir)
    except SweepError as e:
        raise BadInput(str(e)) from None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    varied = report["varied"]
    print(f"sweep {report['sweep']}: preset {report['preset']}, varied {', '.join(varied) or 'seed only'}, "
          f"seeds {report['seeds']}")
    header = ["member", "state", "step", *varied, "seed", "valid_acc", "skips_normal"]
    print("  ".join(header))
    for m in report["members"]:
        acc, skips = m.get("valid_acc"), m.get("skips_normal")
        print("  ".join([m["name"], m["state"], str(m["step"]), *(str(m[k]) for k in varied), str(m["seed"]),
                         "-" if acc is None else f"{acc:.4f}", "-" if skips is None else f"{skips:.0f}"]))
    for g in report["groups"]:
        label = ", ".join(f"{k}={v}" for k, v in g["settings"].items()) or "all members"
        print(f"\n{label}")
        for figure, s in g["stats"].items():
            if s["n"]:
                spread = "" if s["std"] is None else f" +- {s['std']:.4f}"
                print(f"  {figure}: {s['mean']:.4f}{spread} (n={s['n']}, {s['min']:.4f}..{s['max']:.4f})")
        for cell in g["cells"]:
            print(f"  {cell['seeds']} seed(s): {cell['genotype']}")
    for line in report["comparisons"]:
        print(f"\n{line}")
    if report["trainings"]:
        print("\ntrained cells (test accuracy of the network built from each cell)")
        for t in report["trainings"]:
            acc = t.get("test_acc")
            print(f"  {t['name']}  {t['state']}  " + ("-" if acc is None else f"{acc:.4f}"))
        for g in report["trained_groups"]:
            s = g["test_acc"]
            if s["n"]:
                label = ", ".join(f"{k}={v}" for k, v in g["settings"].items())
                spread = "" if s["std"] is None else f" +- {s['std']:.4f}"
                print(f"  {label}: test_acc {s['mean']:.4f}{spread} (n={s['n']})")
        for line in report["trained_comparisons"]:
            print(f"  {line}")
    return 0


def cmd_sweep_control(args: argparse.Namespace) -> int:
    from engine.cli.common import BadInput
    from engine.sweep.control import steer
    from engine.sweep.spec import SweepError, load_sweep

    try:
        sweep = load_sweep(args.sweep_dir)
        asked = steer(sweep, args.command, args.member)
    except SweepError as e:
        raise BadInput(str(e)) from None
    whole = "" if args.member else {"pause": "; no member starts until the sweep is resumed",
                                    "resume": "; members start again",
                                    "stop": "; no member starts again until `sweep --resume`"}[args.command]
    print(f"{args.command}: asked {asked} running member(s){whole}", file=sys.stderr)
    return 0
