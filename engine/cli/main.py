"""The command line: python -m engine search | train | compare | derive | inspect | export | runs | bench.

Exit status: 0 on success, 1 when a search itself failed, 2 on bad input with a one-line reason on
stderr (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import sys

from engine.cli.common import BAD_INPUT, BadInput, Parser
from engine.cli.runs import MODEL_FORMATS, cmd_derive, cmd_export, cmd_inspect, cmd_runs
from engine.cli.search import cmd_bench, cmd_search
from engine.cli.train import add_train_commands
from engine.core.config import ConfigError
from engine.search.config import PRESETS
from engine.variants import variant_names

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m engine", description="dartboard: DARTS search engine")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
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
        if type(e).__name__ in BAD_INPUT:
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise

