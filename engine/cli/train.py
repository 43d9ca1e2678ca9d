"""`python -m engine train` and `python -m engine compare`: training genotypes from the command line.

    train GENOTYPE --preset NAME [--set k=v ...] [--runs-dir DIR] [--resume RUN_DIR]
    compare RUN_DIR --preset NAME [--random N] [--set k=v ...]   the found cell vs DARTS_V2 vs N random cells

`train` takes a convolutional or a recurrent cell: the genotype's space (or an rnn preset's) picks the config
(`_SPACES`), and engine/train/run.py the job; a cell and a preset of different spaces are refused. Bad input (a
genotype that names nothing usable, a config value out of range) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

from engine.cli.common import BadInput
from engine.cli.fields import fields_epilog
from engine.core.config import parse_overrides
from engine.runs import rundir
from engine.runs.liveness import is_interrupted
from engine.space.rnn.train_config import ONE_THREAD_NHID, RNN_TRAIN_PRESETS, RNNTrainConfig, from_rnn_train_preset
from engine.train.config import TRAIN_PRESETS, TrainConfig, from_train_preset
from engine.train.run import TRAIN_KINDS, TrainFailed, resume_train_config, score_of, train_one

__all__ = ["add_train_commands", "cmd_train", "cmd_compare"]

# space -> (what it is called, its presets, the default preset, the config class, preset + overrides -> config)
_SPACES: dict[str, tuple[str, dict[str, Any], str, type, Any]] = {
    "cnn": ("convolutional", TRAIN_PRESETS, "train-demo", TrainConfig, from_train_preset),
    "rnn": ("recurrent", RNN_TRAIN_PRESETS, "rnn-train-demo", RNNTrainConfig, from_rnn_train_preset),
}


def _recurrent_threads(config: Any) -> None:
    if isinstance(config, RNNTrainConfig) and config.nhid <= ONE_THREAD_NHID:
        from engine.runtime.threads import apply_threads

        apply_threads(1)


def _new_training(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], Path]:
    """(config, genotype, source, run directory) of a new training; BadInput when the cell and preset disagree."""
    from engine.runtime.device import select_device
    from engine.train.source import resolve_genotype, space_of

    preset_space = next((s for s, spec in _SPACES.items() if args.preset in spec[1]), None)
    genotype, source = resolve_genotype(args.genotype, preset_space or "cnn")
    space = space_of(genotype)
    name, presets, default, config_class, from_preset = _SPACES[space]
    if preset_space not in (None, space):
        raise BadInput(f"{source['label']} is a {name} cell and {args.preset} a {_SPACES[preset_space][0]} preset: "
                       f"train it with one of {', '.join(presets)}")
    config = from_preset(args.preset or default, parse_overrides(args.set or [], config_class))
    select_device(config.device)
    data = getattr(config, "dataset", None) or Path(getattr(config, "corpus", "")).name
    return config, genotype, source, rundir.new_run_dir(rundir.runs_root(args.runs_dir),
                                                        f"train-{source['label']}-{data}")


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        run_dir = Path(args.resume)
        status = rundir.read_status(run_dir)
        if status.get("state") in ("running", "paused", "stopping") and not is_interrupted(status):
            print(f"error: {run_dir} is still {status['state']} in process {status.get('pid')}; stop it first",
                  file=sys.stderr)
            return 2
        config_class = TRAIN_KINDS.get(rundir.read_config(run_dir).get("kind"), TrainConfig)
        config, genotype, source = resume_train_config(run_dir, parse_overrides(args.set or [], config_class))
    else:
        if args.genotype is None:
            print("error: give a GENOTYPE to train (or --resume RUN_DIR)", file=sys.stderr)
            return 2
        config, genotype, source, run_dir = _new_training(args)
    _recurrent_threads(config)
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
    scores = [score for m in rundir.read_metrics(run_dir) if (score := score_of(m))]
    print(f"{state}: {run_dir}" + (f" {scores[-1]}" if scores else ""), file=sys.stderr)
    return 128 + signals[0] if signals else 0  # a stop by a signal (after its checkpoint) is not a success


def _compare_config(args: argparse.Namespace) -> Any:
    """The config every entrant gets: the preset's space, or without one the search's (a recurrent search's cells
    are compared as recurrent cells)."""
    space = next((s for s, spec in _SPACES.items() if args.preset in spec[1]), None)
    if space is None:
        try:
            kind = rundir.read_config(args.search.rsplit("@", 1)[0]).get("kind") if args.search else None
        except rundir.RunDirError:
            kind = None  # said by the search's own reading, with the reason
        space = "rnn" if kind in ("rnn_search", "rnn_train") else "cnn"
    _, _, default, config_class, from_preset = _SPACES[space]
    return from_preset(args.preset or default, parse_overrides(args.set or [], config_class))


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
    config = _compare_config(args)
    _recurrent_threads(config)
    from engine.cli.progress import job_progress

    verbosity = getattr(args, "verbosity", 0)
    signals: list[int] = []
    rows = compare(args.search, config, random_cells=args.random, runs_dir=args.runs_dir, first_seed=args.seed,
                   quiet=verbosity < 0, progress=lambda: job_progress(verbosity), signals=signals)
    print(format_table(rows))
    if signals:
        return 128 + signals[0]
    if isinstance(config, TrainConfig) and rows:
        # what the seconds-long scores said of each cell, beside what its training found (docs/derivation.md)
        from engine.derive import proxies
        from engine.train.source import resolve_genotype

        proxies.add_proxies(rows, [resolve_genotype(r["genotype"])[0] for r in rows], config)
        print("\n" + proxies.format_proxies(rows))
    return 0 if all(r["state"] == "finished" for r in rows) else 1


def add_train_commands(sub: Any, prog: str = "dartboard", parents: list[argparse.ArgumentParser] | None = None) -> None:
    presets = sorted({*TRAIN_PRESETS, *RNN_TRAIN_PRESETS})  # either space: the cell or the search says which
    shared = {"parents": parents or [], "formatter_class": argparse.RawDescriptionHelpFormatter,
              "epilog": fields_epilog(TrainConfig, TRAIN_PRESETS, prog)}
    # One paragraph, not a second field table: the same names (epochs, lr, ...) accept other ranges there, and one
    # help with two lines for a name would leave the reader to guess which applies.
    recurrent = textwrap.fill(
        f"recurrent cells: presets {', '.join(RNN_TRAIN_PRESETS)} (chosen by default for DARTS_RNN, an rnn_search "
        f"run or another recurrent cell) take the fields {', '.join(RNNTrainConfig.known_keys())}; docs/darts.md, "
        "section 6, has their settings, and a bad value's error says what it accepts",
        max(shutil.get_terminal_size().columns - 2, 60))
    t = sub.add_parser("train", help="train the network built from a genotype, writing a run directory",
                       **(shared | {"epilog": f"{shared['epilog']}\n\n{recurrent}"}))
    t.add_argument("genotype", nargs="?", metavar="GENOTYPE",
                   help="DARTS_V2, DARTS_RNN, a JSON/DARTS file, a search RUN_DIR or RUN_DIR@STEP, random or "
                        "random:SEED (a recurrent one with an rnn preset)")
    t.add_argument("--preset", choices=presets, metavar="PRESET",
                   help="the config to start from (default train-demo, rnn-train-demo for a recurrent cell; "
                        "listed below)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable); the fields are listed below")
    t.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this training from its checkpoint")
    t.set_defaults(func=cmd_train)
    c = sub.add_parser("compare", help="train the found cell, DARTS_V2 (DARTS_RNN for a recurrent search) and N "
                                       "random cells on the same budget",
                       **(shared | {"epilog": f"{shared['epilog']}\n\n{recurrent}"}))
    c.add_argument("search", nargs="?", metavar="SEARCH_RUN_DIR",
                   help="the search whose final genotype (or SEARCH_RUN_DIR@STEP: the one at a step) to train")
    c.add_argument("--preset", choices=presets, metavar="PRESET",
                   help="the training config every cell gets (default train-demo, rnn-train-demo for a recurrent "
                        "search; listed below)")
    c.add_argument("--random", type=int, default=2, metavar="N", help="random cells, 0 or more (random:SEED..SEED+N-1)")
    c.add_argument("--seed", type=int, default=0, help="the first random cell's seed (default 0)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable); the fields are listed below")
    c.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    c.set_defaults(func=cmd_compare)
