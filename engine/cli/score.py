"""`score GENOTYPE...`: parameters, mult-adds and zero-cost proxies of cells, each as a percentile of a reference
set; and `derive RUN --method pt` (cmd_derive_pt), the perturbation-based derivation of DARTS-PT.

Both live here so that engine/cli/main.py only registers them (`add_parser(sub)`, and `cmd_derive_pt` called from
`derive` when --method pt). docs/derivation.md describes the scores and the derivation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import BadInput

__all__ = ["add_parser", "add_pt_arguments", "cmd_score", "cmd_derive_pt", "format_scores"]

_HEADERS = {"parameters": "parameters", "mult_adds": "mult-adds", "synflow": "synflow", "naswot": "naswot",
            "grad_norm": "grad-norm"}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `score` on the subparsers `sub` of python -m engine."""
    from engine.train.config import TRAIN_PRESETS

    s = sub.add_parser("score", help="parameters, mult-adds and zero-cost proxies of cells (proxies, not accuracy)")
    s.add_argument("genotypes", nargs="+", metavar="GENOTYPE",
                   help="DARTS_V2, random:SEED, a JSON/DARTS file, a run directory (RUN or RUN@STEP)")
    s.add_argument("--preset", default="train-demo", choices=sorted(TRAIN_PRESETS),
                   help="the training preset whose network size and data the cells are scored at")
    s.add_argument("--runs-dir", help="where to look for trained cells to correlate with (default $DARTBOARD_RUNS "
                                      "or ./runs)")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=cmd_score)
    return s


def _genotype(spec: str) -> tuple[Any, str]:
    from engine.space.cnn.genotype import Genotype
    from engine.train.source import RANDOM_NODES, resolve_genotype

    text = spec.strip()
    if text.startswith(("{", "Genotype(")):  # written inline on the command line; parsed as data, never run
        try:
            genotype, label = Genotype.parse(text), "inline"
        except ValueError as e:
            raise BadInput(f"{text[:40]!r} is not a DARTS genotype: {e}") from None
    else:
        genotype, source = resolve_genotype(text)
        label = source["label"]
    if not hasattr(genotype, "fanin"):  # a recurrent cell: the proxies and their reference are image networks'
        raise BadInput(f"{spec} is a recurrent cell; the proxies score the convolutional cell's image network "
                       "(a language model has no reference set here)")
    for kind in ("normal", "reduce"):
        nodes = len(genotype.fanin(kind))
        if nodes != RANDOM_NODES or len(getattr(genotype, kind)) != 2 * nodes:
            raise BadInput(f"{spec}: its {kind} cell is not the {RANDOM_NODES}-node, 2-inputs-a-node DARTS cell the "
                           "reference set was scored in, so its percentiles would compare another space")
    return genotype, label


def score_rows(specs: list[str], preset: str, runs_dir: str | None) -> dict[str, Any]:
    """The scores of every GENOTYPE (all resolved before any is scored, so a bad one fails first), their
    percentiles where the reference was scored at `preset`, and the correlations over the trained cells."""
    from engine.derive import proxies
    from engine.runs import rundir

    cells = [(spec, *_genotype(spec)) for spec in specs]
    try:
        reference = proxies.load_reference()
    except proxies.ReferenceError as e:
        raise BadInput(f"{e} (python scripts/build_proxy_reference.py writes it)") from None
    from engine.train.config import from_train_preset

    same = proxies.comparable(reference, from_train_preset(preset))
    rows = []
    for spec, genotype, label in cells:
        scores = proxies.score_genotype(genotype, preset)
        rows.append({"cell": label, "genotype": spec, "scores": scores,
                     "percentiles": proxies.reference_percentiles(scores, reference) if same else None})
    trained = proxies.trained_cells(rundir.runs_root(runs_dir), preset)
    trained_scores = [proxies.score_genotype(t["genotype"], preset) for t in trained]
    return {"preset": preset, "reference_cells": len(reference["cells"]) if same else 0,
            "reference_preset": reference.get("preset"), "rows": rows, "trained_cells": len(trained),
            "correlation": proxies.correlations(trained_scores, [t["test_acc"] for t in trained]),
            "reference_correlation": reference.get("correlation")}


def _num(v: float) -> str:
    if isinstance(v, int):
        return f"{v:,}"
    return "-inf" if math.isinf(v) else f"{v:.4g}"


def format_scores(result: dict[str, Any]) -> str:
    """The table: one line a cell, each column its value and (in brackets) its percentile of the reference."""
    lines = [f"{'cell':<24}" + "".join(f" {_HEADERS[k]:>20}" for k in _HEADERS)]
    for r in result["rows"]:
        cols = []
        for k in _HEADERS:
            pct = "" if r["percentiles"] is None else f" ({r['percentiles'][k]:3.0f}%)"
            cols.append(f" {_num(r['scores'][k]) + pct:>20}")
        lines.append(f"{r['cell'][:24]:<24}" + "".join(cols))
    lines.append(f"Proxies of a freshly initialised {result['preset']} network on one batch of its training "
                 "images: not accuracy.")
    if result["reference_cells"]:
        lines.append(f"(NN%): percentile among {result['reference_cells']} reference cells (random cells and the "
                     "published ones, assets/proxies/reference.json).")
    else:
        lines.append(f"No percentiles: the reference set was scored at {result['reference_preset']}, "
                     f"not {result['preset']}.")
    n = result["trained_cells"]
    if n >= 3:
        corr = ", ".join(f"{_HEADERS[k]} {'-' if v is None else f'{v:+.2f}'}" for k, v in result["correlation"].items())
        lines.append(f"Rank correlation with test accuracy over {n} trained cells under the runs root: {corr}.")
    else:
        lines.append(f"{n} finished {result['preset']} trainings under the runs root: at least 3 are needed for a rank "
                     "correlation with accuracy. On the DARTS space the literature finds these proxies weak: "
                     "parameters and mult-adds rank cells about as well (NAS-Bench-Suite-Zero; docs/derivation.md).")
    return "\n".join(lines)


def cmd_score(args: argparse.Namespace) -> int:
    result = score_rows(list(args.genotypes), args.preset, args.runs_dir)
    if args.format == "json":
        print(json.dumps(result))
    else:
        print(format_scores(result))
    return 0


def add_pt_arguments(d: argparse.ArgumentParser) -> None:
    """The options `derive` gains for --method pt (engine/cli/main.py adds --method itself)."""
    d.add_argument("--tune-steps", type=int, metavar="N",
                   help="weight steps of fine-tuning between two PT decisions (default: the preset's budget, "
                        "docs/derivation.md)")
    d.add_argument("--eval-batches", type=int, metavar="N",
                   help="validation batches each PT measurement reads (default: all of the architecture half, "
                        "capped)")
    d.add_argument("--seed", type=int, default=0, help="the seed of the PT edge order")


def cmd_derive_pt(args: argparse.Namespace) -> int:
    """derive RUN --method pt: DARTS-PT's selection on RUN's checkpoint; the decisions go to RUN/pt/, never into
    the search's own files. Prints the cell as `derive` does."""
    from engine.derive import pt

    source = Path(args.source)
    if getattr(args, "max_skip", None) is not None:
        raise BadInput("--max-skip caps the argmax rule's skips; --method pt keeps the ops the supernet needs")
    if not source.is_dir():
        raise BadInput(f"--method pt needs a search run directory with a checkpoint, not {source}")
    options = pt.PTOptions.of(tune_steps=getattr(args, "tune_steps", None),
                              eval_batches=getattr(args, "eval_batches", None), seed=getattr(args, "seed", 0))

    def progress(done: int, total: int, row: dict[str, Any]) -> None:
        print(f"pt {done}/{total}: {pt.describe(row)}", file=sys.stderr, flush=True)

    result = pt.run_pt(source, options, progress=progress)
    geno = result.genotype
    print(geno.to_json() if getattr(args, "format", "darts") == "json" else geno.to_darts())
    return 0
