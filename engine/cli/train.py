"""`python -m engine train` and `python -m engine compare`: training genotypes from the command line.

    train GENOTYPE --preset NAME [--set k=v ...] [--runs-dir DIR] [--resume RUN_DIR]
    compare RUN_DIR --preset NAME [--random N] [--set k=v ...]   the found cell vs DARTS_V2 vs N random cells

Bad input (a genotype that names nothing usable, a config value out of range) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from engine.core.config import parse_overrides
from engine.runs import rundir
from engine.runs.liveness import is_interrupted
from engine.train.config import TRAIN_PRESETS, TrainConfig, from_train_preset

__all__ = ["add_train_commands", "cmd_train", "cmd_compare", "train_one", "resume_train_config"]

_BAD_INPUT = ("ConfigError", "DataError", "CheckpointError", "RunDirError", "GenotypeSourceError")


class TrainFailed(Exception):
    """A training that could not start or ended failed; `bad_input` says whether the user can fix the input."""

    def __init__(self, message: str, bad_input: bool):
        super().__init__(message)
        self.bad_input = bad_input


def resume_train_config(run_dir: str | Path, overrides: dict[str, Any] | None = None):
    """(config, genotype, source) of a training run directory, with the (resumable) overrides applied."""
    from engine.space.cnn.genotype import Genotype

    record = rundir.read_config(run_dir)
    if record.get("kind") != "train":
        raise rundir.RunDirError(f"{run_dir} is a search, not a training; resume it with `python -m engine search "
                                 "--resume`")
    config = TrainConfig.from_dict({**record["config"], **(overrides or {})})
    return config, Genotype.from_dict(record["genotype"]), record.get("source") or {}


def _progress():
    from engine.runs.hooks import Callback

    class Progress(Callback):
        def on_run_start(self, info) -> None:
            print(f"run directory: {info['run_dir']}", file=sys.stderr)

        def on_step_end(self, event) -> None:
            m = event.metrics or {}
            if "test_acc" in m:
                print(f"epoch {m['epoch'] + 1} done at step {event.step}: " + json.dumps(
                    {k: round(m[k], 4) for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr")}),
                    file=sys.stderr, flush=True)

        def on_state(self, status) -> None:
            if status.get("message"):
                print(f"{status['state']}: {status['message']}", file=sys.stderr)

    return Progress()


def train_one(config: TrainConfig, genotype, source: dict[str, Any], run_dir: Path, resume: bool = False,
              quiet: bool = False) -> str:
    """Run one training in the foreground, stopping cleanly on SIGINT/SIGTERM/SIGHUP; TrainFailed if it failed."""
    from engine.runs.control import Control
    from engine.runs.hooks import Callback
    from engine.runs.snapshot import SnapshotBox
    from engine.train.loop import run_training

    control, box, errors, started = Control(), SnapshotBox(), [], []

    def on_signal(signum, frame):
        print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint...", file=sys.stderr)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signals = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}

    class _Errors(Callback):
        def on_run_start(self, info):
            started.append(True)

        def on_exception(self, exc, traceback_text):
            errors.append(type(exc).__name__)

    callbacks = [_Errors()] + ([] if quiet else [_progress()])
    try:
        state = run_training(config, genotype, run_dir, source=source, control=control, callbacks=callbacks, box=box,
                             resume=resume)
    finally:  # the next entrant of a comparison (or the caller) gets its own handling back
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if state == "failed":
        raise TrainFailed(str(box.get().error), bad_input=bool(errors) and errors[0] in _BAD_INPUT and not started)
    return state


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
    try:
        state = train_one(config, genotype, source, run_dir, resume=bool(args.resume))
    except TrainFailed as e:
        print(f"{'error' if e.bad_input else 'failed'}: {e}", file=sys.stderr)
        return 2 if e.bad_input else 1
    last = [m for m in rundir.read_metrics(run_dir) if "test_acc" in m]
    print(f"{state}: {run_dir}" + (f" test_acc {last[-1]['test_acc']:.4f}" if last else ""), file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from engine.train.compare import compare, format_table

    overrides = parse_overrides(args.set or [], TrainConfig)
    config = from_train_preset(args.preset, overrides)
    rows = compare(args.search, config, random_cells=args.random, runs_dir=args.runs_dir, first_seed=args.seed)
    print(format_table(rows))
    return 0 if all(r["state"] == "finished" for r in rows) else 1


def add_train_commands(sub: Any) -> None:
    presets = sorted(TRAIN_PRESETS)
    t = sub.add_parser("train", help="train the network built from a genotype, writing a run directory")
    t.add_argument("genotype", nargs="?", metavar="GENOTYPE",
                   help="DARTS_V2, a JSON/DARTS file, a search RUN_DIR or RUN_DIR@STEP, random or random:SEED")
    t.add_argument("--preset", default="train-demo", choices=presets)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    t.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this training from its checkpoint")
    t.set_defaults(func=cmd_train)
    c = sub.add_parser("compare", help="train the found cell, DARTS_V2 and N random cells on the same budget")
    c.add_argument("search", nargs="?", metavar="SEARCH_RUN_DIR", help="the search whose final genotype to train")
    c.add_argument("--preset", default="train-demo", choices=presets)
    c.add_argument("--random", type=int, default=2, metavar="N", help="random cells (random:SEED..SEED+N-1)")
    c.add_argument("--seed", type=int, default=0, help="the first random cell's seed")
    c.add_argument("--set", action="append", metavar="KEY=VALUE")
    c.add_argument("--runs-dir")
    c.set_defaults(func=cmd_compare)
