"""The command line: `dartboard` (installed) or `python -m engine`, with the commands search | train | compare |
derive | inspect | export | score | sweep | sweep-report | sweep-control | runs | bench | config | ui.

Exit status: 0 on success, 1 when a job itself failed, 2 on bad input with a one-line reason on stderr (never a
traceback for bad input), 128 + the signal's number when a signal stopped a search (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from engine.cli.common import BAD_INPUT, BadInput, Parser
from engine.cli.fields import fields_epilog
from engine.cli.progress import NORMAL
from engine.cli.runs import MODEL_FORMATS, cmd_derive, cmd_export, cmd_inspect, cmd_runs
from engine.cli.score import add_parser as add_score_parser
from engine.cli.score import add_pt_arguments, cmd_derive_pt
from engine.cli.search import cmd_bench, cmd_search
from engine.cli.sweep import add_sweep_commands
from engine.cli.train import add_train_commands
from engine.core.config import ConfigError, parse_overrides
from engine.search.config import PRESETS, SearchConfig
from engine.variants import variant_names
from engine.version import version_line

__all__ = ["build_parser", "main", "cmd_config", "cmd_derive_any", "cmd_ui"]


def _verbosity_options() -> argparse.ArgumentParser:
    """-q / -v, taken after any command (`dartboard search -q`)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=NORMAL,
                   help="no progress bar nor per-epoch lines: errors and the result only")
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                   help="also print the resolved config when the run starts")
    return p


def _set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable); the fields are listed below")


def build_parser(prog: str = "dartboard") -> argparse.ArgumentParser:
    verbosity = _verbosity_options()
    p = Parser(prog=prog, description="dartboard: DARTS search engine and dashboard")
    p.add_argument("--version", action="version", version=version_line())
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    fields = argparse.RawDescriptionHelpFormatter
    s = sub.add_parser("search", help="run a search headless, writing a run directory", parents=[verbosity],
                       formatter_class=fields, epilog=fields_epilog(SearchConfig, PRESETS, prog))
    from engine.search.rnn_config import RNN_PRESETS

    s.add_argument("--preset", default="demo", choices=sorted({*PRESETS, *RNN_PRESETS}), metavar="PRESET",
                   help="the config to start from (default demo; listed below); " + ", ".join(RNN_PRESETS)
                   + " search the recurrent space (docs/darts.md)")
    _set_option(s)
    s.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its checkpoint")
    s.set_defaults(func=cmd_search)
    add_train_commands(sub, prog, parents=[verbosity])
    d = sub.add_parser("derive", help="genotype of a run's latest alphas or of an alphas JSON file")
    d.add_argument("source", metavar="RUN_DIR_OR_ALPHAS_JSON")
    d.add_argument("--format", choices=("json", "darts"), default="darts",
                   help="darts: a Genotype(...) line for the reference code's genotypes.py; json: a JSON object")
    d.add_argument("--variant", default="darts", choices=variant_names(),
                   help="how an alphas file's parameters become op weights (a run directory says its own)")
    d.add_argument("--max-skip", type=int, metavar="K",
                   help="at most K skip connections per normal cell (P-DARTS keeps 2; docs/collapse.md)")
    d.add_argument("--method", choices=("argmax", "pt"), default="argmax",
                   help="argmax: the run's own rule on its alphas (default); pt: DARTS-PT's perturbation-based "
                        "selection on the run's checkpoint (docs/derivation.md)")
    add_pt_arguments(d)
    d.set_defaults(func=cmd_derive_any)
    i = sub.add_parser("inspect", help="parameters and mult-adds of the network built from a genotype")
    i.add_argument("genotype", metavar="GENOTYPE",
                   help="DARTS_V1, DARTS_V2, DARTS_RNN, a JSON/DARTS file or a run directory")
    i.add_argument("--dataset", choices=("cifar10", "imagenet"), default="cifar10",
                   help="which evaluation network: CIFAR (32x32, 10 classes) or ImageNet (224x224, 1000 classes)")
    i.add_argument("--init-channels", type=int, metavar="C", help="C of the first cell (default 36, ImageNet 48)")
    i.add_argument("--layers", type=int, metavar="N", help="cells (default 20, ImageNet 14)")
    i.add_argument("--vocab", type=int, metavar="N",
                   help="a recurrent cell's vocabulary (default 10000, Penn Treebank)")
    i.add_argument("--nhid", type=int, metavar="N", help="a recurrent cell's hidden and embedding size (default 850)")
    i.set_defaults(func=cmd_inspect)
    e = sub.add_parser("export", help="write the run's genotype, cell picture or trained model under RUN_DIR/exports/")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--format", choices=("json", "darts", "dot", "svg", *MODEL_FORMATS), required=True,
                   help="a genotype format, or (for a training run) the trained model: " + ", ".join(MODEL_FORMATS))
    e.add_argument("--out", help="file name inside the run directory (default exports/<format's name>)")
    e.add_argument("--max-skip", type=int, metavar="K",
                   help="derive the genotype again with at most K skip connections per normal cell")
    e.set_defaults(func=cmd_export)
    add_score_parser(sub)
    add_sweep_commands(sub, parents=[verbosity])
    r = sub.add_parser("runs", help="list runs with state, progress, genotype and accuracy")
    r.add_argument("--runs-dir", help="runs root (default $DARTBOARD_RUNS or ./runs)")
    r.add_argument("--json", action="store_true", help="one JSON array, a run an object (config included)")
    r.set_defaults(func=cmd_runs)
    b = sub.add_parser("bench", help="seconds per search step and peak memory for a config, as JSON",
                       formatter_class=fields, epilog=fields_epilog(SearchConfig, PRESETS, prog))
    b.add_argument("--preset", default="demo", choices=sorted(PRESETS), metavar="PRESET",
                   help="the config to time (default demo)")
    _set_option(b)
    b.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step (default 5)")
    b.set_defaults(func=cmd_bench)
    from engine.train.config import TRAIN_PRESETS

    c = sub.add_parser("config", help="print a preset's config, with --set applied and checked, as JSON")
    from engine.space.rnn.train_config import RNN_TRAIN_PRESETS

    c.add_argument("--preset", default="demo", choices=sorted({*PRESETS, *TRAIN_PRESETS, *RNN_PRESETS,
                                                                *RNN_TRAIN_PRESETS}), metavar="PRESET",
                   help="a search preset (" + ", ".join([*PRESETS, *RNN_PRESETS]) + ") or a training preset ("
                   + ", ".join([*TRAIN_PRESETS, *RNN_TRAIN_PRESETS]) + ")")
    _set_option(c)
    c.set_defaults(func=cmd_config)
    sub.add_parser("ui", help="start the dashboard; the options after `ui` are the dashboard server's "
                              "(`dartboard ui --server.port 8502`)")
    return p


def cmd_derive_any(args: argparse.Namespace) -> int:
    if args.method == "pt":
        return cmd_derive_pt(args)
    given = [flag for flag, value in (("--tune-steps", args.tune_steps), ("--eval-batches", args.eval_batches))
             if value is not None]
    if given:  # an option of the other method would be ignored without a word
        raise BadInput(f"{given[0]} applies to --method pt only")
    return cmd_derive(args)


def cmd_config(args: argparse.Namespace) -> int:
    from engine.search.config import from_preset
    from engine.search.rnn_config import RNN_PRESETS, RNNSearchConfig, from_rnn_preset
    from engine.space.rnn.train_config import RNN_TRAIN_PRESETS, RNNTrainConfig, from_rnn_train_preset
    from engine.train.config import TRAIN_PRESETS, TrainConfig, from_train_preset

    if args.preset in TRAIN_PRESETS:
        config = from_train_preset(args.preset, parse_overrides(args.set or [], TrainConfig))
    elif args.preset in RNN_PRESETS:
        config = from_rnn_preset(args.preset, **parse_overrides(args.set or [], RNNSearchConfig))
    elif args.preset in RNN_TRAIN_PRESETS:
        config = from_rnn_train_preset(args.preset, parse_overrides(args.set or [], RNNTrainConfig))
    else:
        config = from_preset(args.preset, parse_overrides(args.set or [], SearchConfig))
    print(config.to_json())
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    # The dashboard starts itself (`python -m app`, app/__main__.py): the engine knows nothing of the web framework
    # the app is drawn with (tests/test_architecture.py), so it only hands over the arguments.
    try:
        launcher = importlib.util.find_spec("app.__main__")
    except ImportError:  # no `app` package on the path at all
        launcher = None
    if launcher is None:
        raise BadInput("the dashboard is not in this installation (app/__main__.py is missing)")
    command = [sys.executable, "-m", "app", *args.ui_args]
    if os.name == "posix":
        # This process becomes the dashboard (which in turn becomes its server): a stop sent to `dartboard ui` (a
        # kill, a service manager's SIGTERM, a closed terminal's SIGHUP) reaches the server itself, with no
        # launcher in between that could exit and leave the server holding its port.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)
    proc = subprocess.Popen(command)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the terminal's Ctrl-C reached the dashboard too: let it shut down, then say so
        proc.wait()
        return 130


def _prog() -> str:
    return "python -m engine" if Path(sys.argv[0]).name == "__main__.py" else "dartboard"


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(prog or _prog())
    if argv[:1] == ["ui"]:  # everything after `ui` is the dashboard server's, --help included
        args = argparse.Namespace(command="ui", func=cmd_ui, ui_args=argv[1:], verbosity=NORMAL)
    else:
        args = parser.parse_args(argv)
    # A training, a PT derivation and the proxies have no threads field: the auto rule (docs/threads.md).
    if args.command in ("train", "compare", "score") or getattr(args, "method", None) == "pt":
        from engine.runtime.threads import apply_threads

        apply_threads(0)
    try:
        return args.func(args)
    except (BadInput, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: abort now, the last checkpoint stays
        print("aborted", file=sys.stderr)
        return 130
    except Exception as e:  # errors named by the engine for bad input files
        if type(e).__name__ in BAD_INPUT:
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
