"""The command line: python -m engine search | train | compare | derive | inspect | export | runs | bench.

Exit status: 0 on success, 1 when a search itself failed, 2 on bad input with a one-line reason on
stderr (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from engine.cli.train import add_train_commands
from engine.core.config import ConfigError, parse_overrides
from engine.core.inputs import parse_json, read_input_text
from engine.runs import rundir
from engine.runs.catalog import UNREADABLE, list_runs
from engine.runs.liveness import is_interrupted
from engine.search.config import PRESETS, SearchConfig, from_preset
from engine.variants import variant_names

MODEL_FORMATS = ("checkpoint", "torchscript", "onnx")  # a training run's model (engine/train/export.py)

_BAD_INPUT = ("ConfigError", "DataError", "CheckpointError", "RunDirError", "GraphvizMissingError")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


class BadInput(Exception):
    pass


def _progress_callback():
    from engine.runs.hooks import Callback

    class Progress(Callback):
        """A progress bar on a terminal; one line per epoch otherwise (logs, CI)."""

        def __init__(self) -> None:
            self.tty = sys.stderr.isatty()

        def on_step_end(self, event) -> None:
            s = event.status
            total = max(int(s.get("total_steps") or 1), 1)
            frac = event.step / total
            m = event.metrics or {}
            eta = s.get("eta_s")
            text = (f"step {event.step}/{total} epoch {event.epoch + 1} "
                    f"{'' if eta is None else f'eta {eta:5.0f}s '}"
                    + " ".join(f"{k} {m[k]:.3f}" for k in ("train_loss", "valid_acc") if k in m))
            if self.tty:
                bar = "#" * int(30 * frac)
                print(f"\r[{bar:<30}] {text}", end="", file=sys.stderr, flush=True)

        def on_epoch_end(self, event, genotype_row) -> None:
            if self.tty:
                print(file=sys.stderr)
            print(f"epoch {event.epoch + 1} done at step {event.step}: "
                  + json.dumps({k: round(v, 4) for k, v in (event.metrics or {}).items()
                                if k in ("train_loss", "train_acc", "valid_loss", "valid_acc")}), file=sys.stderr)

        def on_state(self, status) -> None:
            if status.get("message"):
                print(f"\n{status['state']}: {status['message']}", file=sys.stderr)

    return Progress()


def cmd_search(args: argparse.Namespace) -> int:
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

    def on_signal(signum, frame):  # first signal: stop after this step with a checkpoint; a second Ctrl-C aborts
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after this step with a checkpoint (Ctrl-C again to abort)...", file=sys.stderr)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # Ctrl-C, `kill` (SIGTERM: systemd, docker stop, a cluster's scheduler) and a closed terminal (SIGHUP)
    # all end the run the same way: the step in flight finishes, a checkpoint is written, state "stopped".
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)
    box = SnapshotBox()
    errors: list[str] = []
    started: list[bool] = []

    class _Errors(Callback):
        def on_run_start(self, info):
            started.append(True)
            print(f"run directory: {run_dir}", file=sys.stderr)
            # said once the run began, so a refusal before it stays one line
            print(f"torch threads: {threads}{' (auto)' if config.threads == 0 else ''}", file=sys.stderr)

        def on_exception(self, exc, traceback_text):
            errors.append(type(exc).__name__)

    callbacks = [_Errors(), _progress_callback()] if world.main else []  # rank 0 speaks for the run
    try:
        state = run_search(config, run_dir, control=control, callbacks=callbacks, box=box, resume=bool(args.resume),
                           world=world)
    finally:
        distributed.shutdown(world)
    if not world.main:
        return 0 if state not in ("failed", "interrupted") else 1
    if state == "interrupted":  # another rank died (engine/runtime/distributed.py PeerLost)
        print(f"\ninterrupted: {box.get().message}", file=sys.stderr)
        return 1
    if state == "failed":
        bad_input = bool(errors) and errors[0] in _BAD_INPUT
        if bad_input and not started:  # refused before it began: one line, as for any bad input
            print(f"error: {box.get().error}", file=sys.stderr)
            return 2
        print(f"\nfailed: {box.get().error}", file=sys.stderr)
        return 2 if bad_input else 1
    print(f"\n{state}: {run_dir}", file=sys.stderr)
    genotype = rundir.latest_genotype(run_dir)
    if genotype is not None:
        print(genotype.to_darts())
    return 0


def _load_alphas(source: Path) -> dict[str, Any]:
    if source.is_dir():
        rows = [r for r in rundir.read_alphas(source) if "normal" in r and "reduce" in r]
        if not rows:
            raise BadInput(f"{source} has no alphas yet (alphas.jsonl is empty, missing or has no whole record)")
        return rows[-1]
    data = parse_json(read_input_text(source, "alphas file"), f"alphas file {source}")
    if not isinstance(data, dict) or "normal" not in data or "reduce" not in data:
        raise BadInput(f'{source} must hold {{"normal": [[8 numbers] x 14], "reduce": [...]}}')
    return data


def cmd_derive(args: argparse.Namespace) -> int:
    import numpy as np

    from engine.space.cnn.cell import PRIMITIVES
    from engine.variants import arch_of, derive

    source = Path(args.source)
    data = _load_alphas(source)
    # a run's own variant turns its alphas into a cell; an alphas file is read with --variant (darts by default)
    variant = rundir.read_config(source)["config"].get("variant", "darts") if source.is_dir() else args.variant
    try:
        arch = arch_of(data)
    except ValueError as e:
        raise BadInput(f"alphas must be numeric matrices: {e}") from None
    for name in ("normal", "reduce"):
        a = arch[name]
        if a.ndim != 2 or a.shape[1] != len(PRIMITIVES) or not np.isfinite(a).all():
            raise BadInput(f"{name} alphas must be a finite (edges, {len(PRIMITIVES)}) matrix, got shape {a.shape}")
    geno = derive(arch, variant, max_skip=_max_skip(args))
    if args.format == "json" and args.max_skip is not None:  # the cap is recorded with the genotype
        print(json.dumps({"genotype": geno.to_dict(), "max_skip": args.max_skip}))
    else:
        print(geno.to_json() if args.format == "json" else geno.to_darts())
    return 0


def _max_skip(args: argparse.Namespace) -> int | None:
    from engine.search.collapse import check_max_skip

    try:
        return check_max_skip(args.max_skip)
    except ValueError as e:
        raise BadInput(f"--max-skip: {e}") from None


def _capped_genotype(run_dir: Path, max_skip: int):
    """The run's genotype derived again with at most `max_skip` skip connections per normal cell: from the alphas
    of the step its latest genotype row was derived at. That is the early stop's `from_step` while the latest
    row is the early stop's cell (its own row, or the `stopped` row after it); once a search resumed after an
    early stop writes a row, that row's own step."""
    from engine.variants import arch_of, derive

    rows = rundir.read_genotypes(run_dir)
    if not rows:
        raise BadInput(f"{run_dir} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")
    last = rows[-1]
    early = [r for r in rows if r.get("kind") == "early_stop" and isinstance(r.get("from_step"), int)]
    stop = early[-1] if early else {}
    on_stop = (stop.get("step"), stop.get("genotype")) == (last.get("step"), last.get("genotype"))
    step = stop["from_step"] if early and on_stop else last.get("step")
    if not isinstance(step, int):
        raise BadInput(f"{run_dir}: the latest row of genotypes.jsonl has no step to derive a capped genotype at")
    alphas = [r for r in rundir.read_alphas(run_dir) if r["step"] <= step]
    if not alphas:
        raise BadInput(f"{run_dir} has no alphas at or before step {step} to derive a capped genotype from")
    return derive(arch_of(alphas[-1]), rundir.read_config(run_dir)["config"], max_skip=max_skip)


def _load_genotype(text: str):
    from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype

    if text in KNOWN_GENOTYPES:
        return KNOWN_GENOTYPES[text]
    path = Path(text)
    if path.is_dir():
        genotype = rundir.latest_genotype(path)
        if genotype is None:
            raise BadInput(f"{path} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")
        return genotype
    if path.exists():  # a file, or a device or pipe someone points us at: read_input_text caps what is read
        return Genotype.parse(read_input_text(path, "genotype file"))
    raise BadInput(f"{text!r} is neither a known genotype ({', '.join(KNOWN_GENOTYPES)}), a file, nor a run directory")


def cmd_inspect(args: argparse.Namespace) -> int:
    import torch

    from engine.nn.network import NetworkCIFAR, NetworkImageNet, count_multiply_adds, count_parameters

    geno = _load_genotype(args.genotype)
    imagenet = args.dataset == "imagenet"
    c = args.init_channels if args.init_channels is not None else (48 if imagenet else 36)
    layers = args.layers if args.layers is not None else (14 if imagenet else 20)
    if not (2 <= c <= 512 and c % 2 == 0):  # the same range a search accepts (FactorizedReduce halves C)
        raise BadInput(f"--init-channels must be an even integer from 2 to 512, got {c}")
    if not 3 <= layers <= 64:
        raise BadInput(f"--layers must be an integer from 3 to 64, got {layers}")
    if imagenet:
        classes, size = 1000, 224
        model = NetworkImageNet(c, classes, layers, True, geno)
    else:
        classes, size = 10, 32
        model = NetworkCIFAR(c, classes, layers, True, geno)
    model.eval()
    with torch.no_grad():
        madds = count_multiply_adds(model, (1, 3, size, size))
    print(json.dumps({"dataset": args.dataset, "init_channels": c, "layers": layers, "num_classes": classes,
                      "parameters": count_parameters(model), "multiply_adds": madds,
                      "genotype": geno.to_dict()}, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.runs.export import write_export

    run_dir = Path(args.run_dir)
    rundir.read_config(run_dir)
    if args.format in MODEL_FORMATS:
        if args.max_skip is not None:
            raise BadInput(f"--max-skip applies to a genotype export (json, darts, dot, svg), not {args.format}")
        from engine.train.export import write_model_export

        print(write_model_export(run_dir, args.format, out=args.out))
        return 0
    max_skip, out = _max_skip(args), args.out
    if max_skip is None:
        geno = _load_genotype(str(run_dir))
    else:  # the cap goes into the default file name: genotype-max-skip-2.json
        from engine.runs.export import FORMATS

        geno = _capped_genotype(run_dir, max_skip)
        name = Path(FORMATS[args.format])
        out = out or str(Path("exports") / f"{name.stem}-max-skip-{max_skip}{name.suffix}")
    path = write_export(run_dir, args.format, genotype=geno, out=out)
    print(path)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    runs = list_runs(args.runs_dir)
    if not runs:
        print(f"no runs under {rundir.runs_root(args.runs_dir)}")
        return 0
    print(f"{'run':<44} {'state':<12} {'step':>11} {'epoch':>7} {'acc':>11}  genotype (normal | reduce)")
    for r in runs:  # a search's supernet validation accuracy; a training's test accuracy
        acc = "" if r.valid_acc is None else f"{r.valid_acc:.3f} valid"
        acc = acc if r.test_acc is None else f"{r.test_acc:.3f} test"
        geno = "" if r.genotype is None else (" ".join(f"{op}:{i}" for op, i in r.genotype.normal) + " | "
                                              + " ".join(f"{op}:{i}" for op, i in r.genotype.reduce))
        if r.state == UNREADABLE:
            print(f"{r.run_id:<44} {r.state:<12} {r.error}")
            continue
        print(f"{r.run_id:<44} {r.state:<12} {f'{r.step}/{r.total_steps}':>11} "
              f"{f'{r.epoch}/{r.epochs}':>7} {acc:>11}  {geno}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine", description="dartboard: DARTS search engine")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("search", help="run a search headless, writing a run directory")
    s.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    s.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its checkpoint")
    s.set_defaults(func=cmd_search)
    add_train_commands(sub)
    d = sub.add_parser("derive", help="genotype of a run's latest alphas or of an alphas JSON file")
    d.add_argument("source", metavar="RUN_DIR_OR_ALPHAS_JSON")
    d.add_argument("--format", choices=("json", "darts"), default="darts")
    d.add_argument("--variant", default="darts", choices=variant_names(),
                   help="how an alphas file's parameters become op weights (a run directory says its own)")
    d.add_argument("--max-skip", type=int, metavar="K",
                   help="at most K skip connections per normal cell (P-DARTS keeps 2; docs/collapse.md)")
    d.set_defaults(func=cmd_derive)
    i = sub.add_parser("inspect", help="parameters and mult-adds of the network built from a genotype")
    i.add_argument("genotype", metavar="GENOTYPE", help="DARTS_V1, DARTS_V2, a JSON/DARTS file or a run directory")
    i.add_argument("--dataset", choices=("cifar10", "imagenet"), default="cifar10")
    i.add_argument("--init-channels", type=int)
    i.add_argument("--layers", type=int)
    i.set_defaults(func=cmd_inspect)
    e = sub.add_parser("export", help="write the run's genotype, cell picture or trained model under RUN_DIR/exports/")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--format", choices=("json", "darts", "dot", "svg", *MODEL_FORMATS), required=True,
                   help="a genotype format, or (for a training run) the trained model: " + ", ".join(MODEL_FORMATS))
    e.add_argument("--out", help="file name inside the run directory")
    e.add_argument("--max-skip", type=int, metavar="K",
                   help="derive the genotype again with at most K skip connections per normal cell")
    e.set_defaults(func=cmd_export)
    r = sub.add_parser("runs", help="list runs with state, progress, genotype and accuracy")
    r.add_argument("--runs-dir")
    r.set_defaults(func=cmd_runs)
    b = sub.add_parser("bench", help="seconds per search step and peak memory for a config, as JSON")
    b.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    b.add_argument("--set", action="append", metavar="KEY=VALUE")
    b.add_argument("--steps", type=int, default=5)
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("train", "compare"):  # a training has no threads field: the auto rule (docs/threads.md)
        from engine.runtime.threads import apply_threads

        apply_threads(0)
    try:
        return args.func(args)
    except (BadInput, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # errors named by the engine for bad input files
        if type(e).__name__ in _BAD_INPUT:
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise

