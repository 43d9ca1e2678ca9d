"""Exports of a search: genotype text (JSON, DARTS), cell pictures (DOT, SVG) and the alphas history (CSV).

Everything but `write_export` is a pure function of its arguments, so the dashboard offers the same bytes
as downloads that the command line writes under RUN_DIR/exports/. DOT comes from engine/space/cnn/dot.py (its
cell pictures are re-exported here as export formats); only SVG needs Graphviz's `dot` program. A training run's
model (a self-describing checkpoint, TorchScript, ONNX) is exported by engine/train/export.py under the same rule
for where an export may go (`_target`); it is kept there so that importing this module still does not import torch.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.atomic import write_bytes_atomic
from engine.runs import rundir
from engine.runs.handle import RunHandle
from engine.space import space_of_genotype, space_of_kinds
from engine.space.cnn.dot import cell_dot, weighted_cell_dot
from engine.space.cnn.genotype import Genotype
from engine.variants import Variant, arch_of, op_weights

__all__ = ["FORMATS", "CSV_COLUMNS", "GraphvizMissingError", "genotype_to", "cell_dot", "genotype_dot",
           "weighted_cell_dot", "render_image", "render_svg", "alphas_csv", "write_export"]

# format -> default file name under RUN_DIR/exports/
FORMATS = {"json": "genotype.json", "darts": "genotype.txt", "dot": "genotype.dot", "svg": "genotype.svg",
           "csv": "alphas.csv"}
CSV_COLUMNS = ("step", "epoch", "cell", "edge", "source", "node", "op", "alpha", "weight")
# The files a run directory lives on: an export must never replace one of them.
_RUN_FILES = {rundir.CONFIG, rundir.STATUS, rundir.METRICS, rundir.ALPHAS, rundir.GENOTYPES, rundir.CHECKPOINT,
              rundir.CONTROL, rundir.CONTROL_LOCK, rundir.RUN_LOCK}
_INSTALL_HINT = ("Graphviz's `dot` program is not installed (SVG needs it; DOT export does not). Install it: "
                 "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
                 "or `conda install graphviz`.")


class GraphvizMissingError(RuntimeError):
    """SVG was asked for and Graphviz's `dot` program is not on PATH; the message says how to install it."""


def genotype_dot(genotype: Any) -> str:
    """The DOT drawing of a genotype of any search space (both convolutional cells side by side, or the recurrent
    cell)."""
    return space_of_genotype(genotype).dot(genotype)


def genotype_to(fmt: str, genotype: Genotype) -> str:
    """The genotype as text: "json" (ours), "darts" (pastes into the reference's genotypes.py) or "dot"."""
    if fmt == "json":
        return genotype.to_json(indent=2)
    if fmt == "darts":
        return genotype.to_darts()
    if fmt == "dot":
        return genotype_dot(genotype)
    raise ValueError(f"format {fmt!r} is not a genotype text format: json, darts or dot")


def render_image(dot_source: str, fmt: str = "svg") -> bytes:
    """SVG (or PNG) bytes of DOT source, drawn by Graphviz's `dot` (a GraphvizMissingError says how to install
    it)."""
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissingError("the `graphviz` Python package is missing: pip install graphviz. "
                                   + _INSTALL_HINT) from None
    try:
        return graphviz.Source(dot_source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissingError(_INSTALL_HINT) from None
    except graphviz.CalledProcessError as e:
        raise ValueError(f"dot could not draw this source: {(e.stderr or b'').decode(errors='replace')}") from None


def render_svg(dot_source: str) -> bytes:
    """SVG bytes of DOT source, drawn by Graphviz's `dot`."""
    return render_image(dot_source, "svg")


def alphas_csv(records: Iterable[Mapping[str, Any]], variant: str | Variant | Mapping[str, Any] = "darts") -> str:
    """alphas.jsonl records {"step", "epoch", "normal": (edges, ops), "reduce": ...} (or "recurrent": ...) as
    long-format CSV: one row per (record, cell, edge, op) with the raw alpha and the op weight the run's variant
    gives it (the softmax for DARTS); edge is the alpha row index. A variant's own state beside the alphas
    (PC-DARTS's betas_normal, GDAS's tau and sampled ops, ...) follows, one row per value: `cell` is its name, `edge`
    its index (empty for a single number), `alpha` the value, `op` and `weight` empty."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for rec in records:
        arch = arch_of(rec)
        space = space_of_kinds(arch)  # the record's search space: its cell kinds, ops and edges
        weights = op_weights(arch, variant)  # {kind: (edges, ops)}
        for cell in space.cell_kinds:
            alphas = arch[cell]  # (edges, ops)
            for r, (j, i) in enumerate(space.edge_endpoints(space.nodes_of(alphas.shape[0]))):
                for k, op in enumerate(space.primitives):
                    out.writerow([rec["step"], rec.get("epoch", ""), cell, r, space.source_name(j), space.node_name(i), op,
                                  float(alphas[r, k]), float(weights[cell][r, k])])
        for name in sorted(set(arch) - set(space.cell_kinds)):
            values = np.atleast_1d(arch[name]).reshape(-1)
            edges = [""] if np.ndim(arch[name]) == 0 else range(len(values))
            for r, value in zip(edges, values, strict=True):
                out.writerow([rec["step"], rec.get("epoch", ""), name, r, "", "", "", float(value), ""])
    return buf.getvalue()


def _target(run: Path, fmt: str, out: str | os.PathLike | None) -> Path:
    """Where an export goes: RUN_DIR/exports/<default name>, or `out` (relative to RUN_DIR) if it stays inside."""
    path = run / "exports" / FORMATS[fmt] if out is None else Path(out) if Path(out).is_absolute() else run / out
    resolved = path.resolve()  # follows symlinks, so a link pointing out of the run directory is caught
    if resolved == run or not resolved.is_relative_to(run):
        raise ValueError(f"export path {str(out)!r} resolves to {resolved}, outside the run directory {run}; "
                         f"give a path inside it (relative paths are taken from the run directory)")
    if resolved.is_dir() or (resolved.parent == run and resolved.name in _RUN_FILES):
        raise ValueError(f"export path {str(out)!r} is a directory or one of the run's own files")
    return resolved




def write_export(run_dir: str | os.PathLike, fmt: str, genotype: Genotype | None = None,
                 out: str | os.PathLike | None = None, records: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write one export atomically (temp file in the same directory, then os.replace) and return its path.

    fmt: json | darts | dot | svg (the genotype; default: the run's latest in genotypes.jsonl) or csv (the
    alphas `records`; default: the run's alphas.jsonl). `out` must stay inside the run directory."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist")
    target = _target(run, fmt, out)
    if fmt == "csv":
        records = rundir.read_alphas(run) if records is None else records
        if not records:
            raise ValueError(f"{run} has no recorded alphas to export")
        data = alphas_csv(records, RunHandle(run).config).encode()
    else:
        genotype = rundir.latest_genotype(run) if genotype is None else genotype
        if genotype is None:
            raise ValueError(f"{run} has no genotype yet (genotypes.jsonl is empty, missing or has no whole row)")
        data = render_svg(genotype_dot(genotype)) if fmt == "svg" else (genotype_to(fmt, genotype) + "\n").encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, data)
    return target
