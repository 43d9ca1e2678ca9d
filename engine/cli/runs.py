"""`derive`, `inspect`, `export` and `runs`: commands that read genotypes, alphas and run directories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.cli.common import BadInput
from engine.core.inputs import parse_json, read_input_text
from engine.runs import rundir
from engine.runs.catalog import UNREADABLE, list_runs
from engine.space import space_of_genotype, space_of_kinds

__all__ = ["MODEL_FORMATS", "cmd_derive", "cmd_inspect", "cmd_export", "cmd_runs"]

MODEL_FORMATS = ("checkpoint", "pt2", "onnx", "torchscript")  # a training run's model (engine/train/export.py)


def _load_alphas(source: Path) -> dict[str, Any]:
    if source.is_dir():
        rows = rundir.read_alphas(source)  # whole records of the run's space (engine.runs.rundir)
        if not rows:
            raise BadInput(f"{source} has no alphas yet (alphas.jsonl is empty, missing or has no whole record)")
        return rows[-1]
    data = parse_json(read_input_text(source, "alphas file"), f"alphas file {source}")
    if not isinstance(data, dict) or space_of_kinds(data) is None:
        raise BadInput(f'{source} must hold {{"normal": [[8 numbers] x 14], "reduce": [...]}} '
                       '(or a recurrent cell\'s {"recurrent": [[5 numbers] x 36]})')
    return data


def cmd_derive(args: argparse.Namespace) -> int:
    import numpy as np

    from engine.runs.handle import RunHandle
    from engine.variants import arch_of, derive, run_skip_cap

    source = Path(args.source)
    data = _load_alphas(source)
    try:
        arch = arch_of(data)
    except ValueError as e:
        raise BadInput(f"alphas must be numeric matrices: {e}") from None
    space = space_of_kinds(arch)
    for name in space.cell_kinds:
        a = arch[name]
        if a.ndim != 2 or a.shape[1] != space.num_ops or not np.isfinite(a).all():
            raise BadInput(f"{name} alphas must be a finite (edges, {space.num_ops}) matrix, got shape {a.shape}")
    max_skip = _max_skip(args)
    if max_skip is not None and space.name != "cnn":
        raise BadInput("--max-skip caps a convolutional cell's skip connections; a recurrent cell has none")
    if source.is_dir():  # a run's own variant, with its options and its skip cap, turns its alphas into a cell
        run = RunHandle(source)
        if max_skip is None:
            max_skip = run_skip_cap(run.config)
        geno = run.genotype_of(data, max_skip=max_skip)
    else:  # an alphas file is read with --variant (darts by default)
        geno = derive(arch, args.variant, max_skip=max_skip)
    if args.format == "json" and max_skip is not None:  # the cap applied (--max-skip or the run's) is recorded
        print(json.dumps({"genotype": geno.to_dict(), "max_skip": max_skip}))
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
    from engine.runs.handle import RunHandle

    run = RunHandle(run_dir)
    rows = run.genotypes()
    if not rows:
        raise BadInput(f"{run_dir} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")
    last = rows[-1]
    early = [r for r in rows if r.get("kind") == "early_stop" and isinstance(r.get("from_step"), int)]
    stop = early[-1] if early else {}
    on_stop = (stop.get("step"), stop.get("genotype")) == (last.get("step"), last.get("genotype"))
    step = stop["from_step"] if early and on_stop else last.get("step")
    if not isinstance(step, int):
        raise BadInput(f"{run_dir}: the latest row of genotypes.jsonl has no step to derive a capped genotype at")
    alphas = run.alphas_at(step)
    if alphas is None:
        raise BadInput(f"{run_dir} has no alphas at or before step {step} to derive a capped genotype from")
    return run.genotype_of(alphas, max_skip=max_skip)


def _load_genotype(text: str):
    """A genotype of either search space: a published name, a run directory, or a JSON / reference-text file."""
    from engine.space import get_space
    from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype

    rnn = get_space("rnn")
    if text in KNOWN_GENOTYPES:
        return KNOWN_GENOTYPES[text]
    if text in rnn.known_genotypes:
        return rnn.known_genotypes[text]
    path = Path(text)
    if path.is_dir():
        genotype = rundir.latest_genotype(path)
        if genotype is None:
            raise BadInput(f"{path} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")
        return genotype
    if path.exists():  # a file, or a device or pipe someone points us at: read_input_text caps what is read
        content = read_input_text(path, "genotype file")
        # a recurrent genotype names its one cell `recurrent`; anything else is read (and refused) as convolutional
        return (rnn.parse_genotype if "recurrent" in content else Genotype.parse)(content)
    known = ", ".join([*KNOWN_GENOTYPES, *rnn.known_genotypes])
    raise BadInput(f"{text!r} is neither a known genotype ({known}), a file, nor a run directory")


def _inspect_recurrent(args: argparse.Namespace, geno) -> int:
    """The evaluation language model of a recurrent genotype (the paper's 850/850 by default)."""
    from engine.nn.network import count_parameters
    from engine.nn.rnn_network import RNNModel

    if args.dataset != "cifar10" or args.init_channels is not None or args.layers is not None:
        raise BadInput("a recurrent genotype builds a language model: --dataset, --init-channels and --layers are "
                       "for convolutional cells; use --vocab and --nhid")
    vocab = 10_000 if args.vocab is None else args.vocab  # Penn Treebank's, as the paper counts its 23M
    nhid = 850 if args.nhid is None else args.nhid
    try:
        model = RNNModel(vocab, geno, ninp=nhid, nhid=nhid)
    except ValueError as e:
        raise BadInput(str(e)) from None
    print(json.dumps({"space": "rnn", "vocab": vocab, "emsize": nhid, "nhid": nhid,
                      "parameters": count_parameters(model), "genotype": geno.to_dict()}, indent=2))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import torch

    from engine.nn.network import NetworkCIFAR, NetworkImageNet, count_multiply_adds, count_parameters

    geno = _load_genotype(args.genotype)
    if space_of_genotype(geno).name == "rnn":
        return _inspect_recurrent(args, geno)
    if args.vocab is not None or args.nhid is not None:
        raise BadInput("--vocab and --nhid are for recurrent genotypes (DARTS_RNN); this one is convolutional")
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


def _genotype_line(genotype: Any) -> str:
    """op:input pairs of a genotype's cells, the normal and reduction cell split by a bar."""
    cells = [getattr(genotype, kind) for kind in space_of_genotype(genotype).cell_kinds]
    return " | ".join(" ".join(f"{op}:{i}" for op, i in cell) for cell in cells)


def _run_json(r) -> dict[str, Any]:
    return {"run_id": r.run_id, "path": str(r.path), "kind": r.kind, "state": r.state, "created": r.created,
            "epoch": r.epoch, "epochs": r.epochs, "step": r.step, "total_steps": r.total_steps,
            "space": r.space, "valid_acc": r.valid_acc, "test_acc": r.test_acc, "test_ppl": r.test_ppl,
            "error": r.error,
            "genotype": None if r.genotype is None else r.genotype.to_dict(), "config": r.config}


def cmd_runs(args: argparse.Namespace) -> int:
    runs = list_runs(args.runs_dir)
    if getattr(args, "json", False):  # for scripts: every run, an empty array when there is none
        print(json.dumps([_run_json(r) for r in runs], indent=2, default=str))
        return 0
    if not runs:
        print(f"no runs under {rundir.runs_root(args.runs_dir)}")
        return 0
    print(f"{'run':<44} {'state':<12} {'step':>11} {'epoch':>7} {'score':>12}  genotype (normal | reduce; "
          "or recurrent)")
    for r in runs:  # a search's supernet validation accuracy; a training's test accuracy or perplexity
        acc = "" if r.valid_acc is None else f"{r.valid_acc:.3f} valid"
        acc = acc if r.test_acc is None else f"{r.test_acc:.3f} test"
        acc = acc if r.test_ppl is None else f"{r.test_ppl:.1f} ppl"
        geno = "" if r.genotype is None else _genotype_line(r.genotype)
        if r.state == UNREADABLE:
            print(f"{r.run_id:<44} {r.state:<12} {r.error}")
            continue
        print(f"{r.run_id:<44} {r.state:<12} {f'{r.step}/{r.total_steps}':>11} "
              f"{f'{r.epoch}/{r.epochs}':>7} {acc:>12}  {geno}")
    return 0
