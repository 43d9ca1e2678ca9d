"""`python -m engine train` and `python -m engine compare`: training genotypes from the command line.

    train GENOTYPE --preset NAME [--set k=v ...] [--runs-dir DIR] [--resume RUN_DIR]
    compare RUN_DIR --preset NAME [--random N] [--set k=v ...]   the found cell vs DARTS_V2 vs N random cells

Bad input (a genotype that names nothing usable, a config value out of range) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import BadInput
from engine.cli.fields import fields_epilog
from engine.core.config import parse_overrides
from engine.runs import rundir
from engine.runs.liveness import is_interrupted
from engine.train.config import TRAIN_PRESETS, TrainConfig, from_train_preset
from engine.train.run import TrainFailed, resume_train_config, train_one

__all__ = ["add_train_commands", "cmd_train", "cmd_compare"]

def cmd_train(args: argparse.Namespace) -> int:
    from engine.runtime.device import select_device
    from engine.train.source import resolve_genotype

    overrides = parse_overrides(args.set or [], TrainConfig)
    if args.resume:
        run_dir = Path(args.resume)
        status = rundir.read_status(run_dir)
        if status.get("state") in ("running", "paused", "stopping") and not is_interrupted(status):
            print(f"error: {run_dir} is still {status['state']} in process {status.get('pid')}; stop it first",
                  file=sys.stderr)
            return 2
        config, genotype, source = resume_train_config(run_dir, overrides)
    else:
        if args.genotype is None:
            print("error: give a GENOTYPE to train (or --resume RUN_DIR)", file=sys.stderr)
            return 2
        genotype, source = resolve_genotype(args.genotype)
        config = from_train_preset(args.preset, overrides)
        select_device(config.device)
        run_dir = rundir.new_run_dir(rundir.runs_root(args.runs_dir), f"train-{source['label']}-{config.dataset}")
    if getattr(args, "verbosity", 0) > 0:
        print(f"config: {json.dumps(config.to_dict(), sort_keys=True)}", file=sys.stderr)
    from engine.cli.progress import job_progress

    verbosity = getattr(args, "verbosity", 0)
    signals: list[int] = []
    try:
        state = train_one(config, genotype, source, run_dir, resume=bool(args.resume), quiet=verbosity < 0,
                          progress=job_progress(verbosity), signals=signals)
    except TrainFailed as e:
        print(f"{'error' if e.bad_input else 'failed'}: {e}", file=sys.stderr)
        return 2 if e.bad_input else 1
    last = [m for m in rundir.read_metrics(run_dir) if "test_acc" in m]
    print(f"{state}: {run_dir}" + (f" test_acc {last[-1]['test_acc']:.4f}" if last else ""), file=sys.stderr)
    return 128 + signals[0] if signals else 0  # a stop by a signal (after its checkpoint) is not a success


def cmd_compare(args: argparse.Namespace) -> int:
    from engine.train.compare import compare, format_table

    if args.random < 0:
        raise BadInput(f"--random must be 0 or more random cells, got {args.random}")
    if args.seed < 0:
        raise BadInput(f"--seed must be 0 or more (random:SEED), got {args.seed}")
    if args.search is not None and not Path(args.search.rsplit("@", 1)[0]).is_dir():
        # the found cell is a search's: a genotype named here (DARTS_V2, a file) would be trained and labelled
        # `found`, beside the DARTS_V2 baseline
        raise BadInput(f"{args.search!r} is not a search run directory (SEARCH_RUN_DIR or SEARCH_RUN_DIR@STEP)")
    overrides = parse_overrides(args.set or [], TrainConfig)
    config = from_train_preset(args.preset, overrides)
    from engine.cli.progress import job_progress

    verbosity = getattr(args, "verbosity", 0)
    signals: list[int] = []
    rows = compare(args.search, config, random_cells=args.random, runs_dir=args.runs_dir, first_seed=args.seed,
                   quiet=verbosity < 0, progress=lambda: job_progress(verbosity), signals=signals)
    print(format_table(rows))
    if signals:
        return 128 + signals[0]
    return 0 if all(r["state"] == "finished" for r in rows) else 1


def add_train_commands(sub: Any, prog: str = "dartboard", parents: list[argparse.ArgumentParser] | None = None) -> None:
    presets = sorted(TRAIN_PRESETS)
    shared = {"parents": parents or [], "formatter_class": argparse.RawDescriptionHelpFormatter,
              "epilog": fields_epilog(TrainConfig, TRAIN_PRESETS, prog)}
    t = sub.add_parser("train", help="train the network built from a genotype, writing a run directory", **shared)
    t.add_argument("genotype", nargs="?", metavar="GENOTYPE",
                   help="DARTS_V2, a JSON/DARTS file, a search RUN_DIR or RUN_DIR@STEP, random or random:SEED")
    t.add_argument("--preset", default="train-demo", choices=presets, metavar="PRESET",
                   help="the config to start from (default train-demo; listed below)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable); the fields are listed below")
    t.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this training from its checkpoint")
    t.set_defaults(func=cmd_train)
    c = sub.add_parser("compare", help="train the found cell, DARTS_V2 and N random cells on the same budget",
                       **shared)
    c.add_argument("search", nargs="?", metavar="SEARCH_RUN_DIR",
                   help="the search whose final genotype (or SEARCH_RUN_DIR@STEP: the one at a step) to train")
    c.add_argument("--preset", default="train-demo", choices=presets, metavar="PRESET",
                   help="the training config every cell gets (default train-demo; listed below)")
    c.add_argument("--random", type=int, default=2, metavar="N", help="random cells, 0 or more (random:SEED..SEED+N-1)")
    c.add_argument("--seed", type=int, default=0, help="the first random cell's seed (default 0)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable); the fields are listed below")
    c.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    c.set_defaults(func=cmd_compare)
