"""`search` and `bench`: a headless search in the foreground (a progress bar on a terminal, a line per epoch
otherwise, engine/cli/progress.py; Ctrl-C, SIGTERM and SIGHUP stop after the step in flight with a checkpoint and
exit 128 + the signal's number, 130 for Ctrl-C, as a shell reports a command a signal ended), and what a step
costs."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import BAD_INPUT, BadInput
from engine.cli.progress import NORMAL, QUIET, VERBOSE, job_progress
from engine.core.config import parse_overrides
from engine.runs import rundir
from engine.runs.liveness import is_interrupted
from engine.search.config import SearchConfig, from_preset

__all__ = ["cmd_search", "cmd_bench"]


def _recurrent(args: argparse.Namespace) -> bool:
    """A search of the recurrent space: an rnn preset, or the resume of a run that was one."""
    if args.resume:
        try:
            return rundir.read_config(args.resume).get("kind") == "rnn_search"
        except rundir.RunDirError:
            return False  # said by the convolutional path's own reading of the run
    from engine.search.rnn_config import RNN_PRESETS

    return args.preset in RNN_PRESETS


def _cmd_rnn_search(args: argparse.Namespace) -> int:
    """The recurrent space's search (engine/search/rnn_loop.py), with the same signals, progress and exits."""
    from engine.runs.control import Control
    from engine.runs.hooks import Callback
    from engine.runs.snapshot import SnapshotBox
    from engine.runtime import distributed
    from engine.runtime.threads import apply_threads
    from engine.search.rnn_config import RNNSearchConfig, from_rnn_preset
    from engine.search.rnn_loop import run_rnn_search
    from engine.space.rnn.genotype import Genotype as RNNGenotype

    overrides = parse_overrides(args.set or [], RNNSearchConfig)
    world = distributed.from_environment(overrides.get("device", "auto"))  # torchrun: one search, N ranks
    if args.resume:
        run_dir = Path(args.resume)
        status = rundir.read_status(run_dir)
        if status.get("state") in ("running", "paused", "stopping") and not is_interrupted(status):
            raise BadInput(f"{run_dir} is still {status['state']} in process {status.get('pid')}; stop it first")
        config = RNNSearchConfig.from_dict({**rundir.read_config(run_dir)["config"], **overrides})
    else:
        config = from_rnn_preset(args.preset, **overrides)
        run_dir = None
        if world.main:
            run_dir = rundir.new_run_dir(rundir.runs_root(args.runs_dir), args.preset)
        run_dir = Path(distributed.broadcast_object(None if run_dir is None else str(run_dir), world))
    apply_threads(config.threads)  # one by default: the recurrent cell's small products run slower on two
    control, box, signals, errors, started = Control(), SnapshotBox(), [], [], []
    verbosity = getattr(args, "verbosity", NORMAL)

    _stop_on_signals(control, signals)

    class _Errors(Callback):
        def on_run_start(self, info):
            started.append(True)
            if verbosity > QUIET:
                print(f"run directory: {run_dir}", file=sys.stderr)

        def on_exception(self, exc, traceback_text):
            errors.append(type(exc).__name__)

    progress = job_progress(verbosity)
    callbacks = [_Errors(), progress] if world.main else []  # rank 0 speaks for the run
    try:
        state = run_rnn_search(config, run_dir, control=control, callbacks=callbacks, box=box,
                               resume=bool(args.resume), world=world)
    finally:
        progress.close()
        distributed.shutdown(world)
    ended = _ended_badly(state, world, box, errors, started, (*BAD_INPUT, "CorpusError"))
    if ended is not None:
        return ended
    if verbosity > QUIET:
        print(f"{state}: {run_dir}", file=sys.stderr)
    rows = rundir.read_genotypes(run_dir)
    if rows:
        print(RNNGenotype.from_dict(rows[-1]["genotype"]).to_darts())
    return 128 + signals[0] if signals else 0


def _stop_on_signals(control: Any, signals: list[int]) -> None:
    """Ctrl-C, `kill` (SIGTERM: systemd, docker stop, a cluster's scheduler) and a closed terminal (SIGHUP) all end
    a search the same way: the step in flight finishes, a checkpoint is written, state "stopped". A second Ctrl-C
    aborts. `signals` collects them, for the exit status."""
    def on_signal(signum, frame):
        signals.append(signum)
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after this step with a checkpoint (Ctrl-C again to abort)...", file=sys.stderr)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)


def _ended_badly(state: str, world: Any, box: Any, errors: list[str], started: list[bool],
                 bad_input: tuple[str, ...]) -> int | None:
    """The exit status of a search that is over for this process, said in one line; None when rank 0's run
    stopped or finished and the command goes on to print its cell. A failure whose exception is one of
    `bad_input` exits 2, said as "error:" when it was refused before the run began."""
    if not world.main:
        return 0 if state not in ("failed", "interrupted") else 1
    if state == "interrupted":  # another rank died (engine/runtime/distributed.py PeerLost)
        print(f"interrupted: {box.get().message}", file=sys.stderr)
        return 1
    if state == "failed":
        bad = bool(errors) and errors[0] in bad_input
        print(f"{'error' if bad and not started else 'failed'}: {box.get().error}", file=sys.stderr)
        return 2 if bad else 1
    return None


def cmd_search(args: argparse.Namespace) -> int:
    if _recurrent(args):
        return _cmd_rnn_search(args)
    from engine.jobs.controller import resume_config
    from engine.runs.control import Control
    from engine.runs.hooks import Callback
    from engine.runs.snapshot import SnapshotBox
    from engine.runtime import distributed
    from engine.runtime.device import select_device
    from engine.runtime.threads import apply_threads
    from engine.search.loop import run_search

    overrides = parse_overrides(args.set or [], SearchConfig)
    world = distributed.from_environment(overrides.get("device", "auto"))  # torchrun: one search, N ranks
    if args.resume:
        run_dir = Path(args.resume)
        status = rundir.read_status(run_dir)
        if status.get("state") in ("running", "paused", "stopping") and not is_interrupted(status):
            raise BadInput(f"{run_dir} is still {status['state']} in process {status.get('pid')}; stop it first")
        if rundir.read_config(run_dir).get("kind") == "train":
            raise BadInput(f"{run_dir} is a training, not a search; resume it with `python -m engine train --resume`")
        config = resume_config(run_dir, overrides)
    else:
        config = from_preset(args.preset, overrides)
        select_device(config.device)  # a device that is not there is bad input, refused before a run exists
        run_dir = None
        if world.main:
            run_dir = rundir.new_run_dir(rundir.runs_root(args.runs_dir), f"{args.preset}-{config.dataset}")
        run_dir = Path(distributed.broadcast_object(None if run_dir is None else str(run_dir), world))
    if world.active and config.device in ("auto", "cuda") and select_device(config.device).type == "cuda":
        config = config.replace(device=f"cuda:{world.local_rank}")  # one GPU a rank (NCCL)
    threads = apply_threads(config.threads)  # before the first step (docs/threads.md: 0 = auto)
    control = Control()
    verbosity = getattr(args, "verbosity", NORMAL)
    signals: list[int] = []

    _stop_on_signals(control, signals)
    box = SnapshotBox()
    errors: list[str] = []
    started: list[bool] = []

    class _Errors(Callback):
        def on_run_start(self, info):
            started.append(True)
            if verbosity > QUIET:  # said once the run began, so a refusal before it stays one line
                print(f"run directory: {run_dir}", file=sys.stderr)
                print(f"torch threads: {threads}{' (auto)' if config.threads == 0 else ''}", file=sys.stderr)
            if verbosity >= VERBOSE:
                print(f"config: {json.dumps(config.to_dict(), sort_keys=True)}", file=sys.stderr)

        def on_exception(self, exc, traceback_text):
            errors.append(type(exc).__name__)

    progress = job_progress(verbosity)
    callbacks = [_Errors(), progress] if world.main else []  # rank 0 speaks for the run
    try:
        state = run_search(config, run_dir, control=control, callbacks=callbacks, box=box, resume=bool(args.resume),
                           world=world)
    finally:
        progress.close()
        distributed.shutdown(world)
    ended = _ended_badly(state, world, box, errors, started, BAD_INPUT)
    if ended is not None:
        return ended
    if verbosity > QUIET:
        print(f"{state}: {run_dir}", file=sys.stderr)
    genotype = rundir.latest_genotype(run_dir)
    if state == "finished" and config.derive_method == "pt" and not signals:
        try:
            genotype = _derive_pt(run_dir, verbosity)
        except KeyboardInterrupt:
            print(f"\nDARTS-PT stopped; its decisions so far are kept: `python -m engine derive {run_dir} --method pt` "
                  "continues it", file=sys.stderr)
            return 130
    if genotype is not None:
        print(genotype.to_darts())
    # stopped by a signal: the checkpoint is written, and the exit status says a signal ended it (a script that
    # runs searches in a loop then stops too, as for any command interrupted by Ctrl-C)
    return 128 + signals[0] if signals else 0


def _derive_pt(run_dir: Path, verbosity: int) -> Any:
    """derive_method=pt: DARTS-PT on the finished search's checkpoint (engine/derive/pt.py), its decisions in
    RUN/pt.jsonl; returns PT's cell. A Ctrl-C now ends PT between its saved rounds (the search is already done)."""
    from engine.derive import pt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if verbosity > QUIET:
        print("derive_method=pt: DARTS-PT on the final checkpoint (docs/derivation.md)", file=sys.stderr)

    def progress(done: int, total: int, row: dict[str, Any]) -> None:
        if verbosity > QUIET:
            print(f"pt {done}/{total}: {pt.describe(row)}", file=sys.stderr, flush=True)

    return pt.run_pt(run_dir, pt.PTOptions(), progress=progress).genotype


def cmd_bench(args: argparse.Namespace) -> int:
    from engine.runtime.threads import apply_threads
    from engine.search.benchmark import measure_search_step

    config = from_preset(args.preset, parse_overrides(args.set or [], SearchConfig))
    shape_from = "config"
    if config.dataset != "fake":  # time the step on the data's own shape (grey 28x28, RGB 32x32, ...)
        from engine.search.data import DataError, load_search_data

        try:
            data = load_search_data(config)
            config = config.replace(in_channels=data.in_channels, num_classes=data.num_classes,
                                    image_size=data.image_size)
            shape_from = "data"
        except DataError:
            shape_from = "config (data not found here)"
    apply_threads(config.threads)
    result = measure_search_step(config, steps=args.steps)
    print(json.dumps({**result, "input_shape_from": shape_from}, indent=2))
    return 0
