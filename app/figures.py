"""Pure functions from search data to what the dashboard draws: plotly figures, DOT source, frames.

No Streamlit here: every function takes plain data (numpy arrays, metric rows, alphas records,
genotypes) and returns a plotly `Figure`, a DOT string or a pandas `DataFrame`, so it is tested
without a browser and reused by every page (Search, Runs, Replay, Learn).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine import export as _export
from engine import variants
from engine.genotype import Genotype, diff_genotypes, node_difference
from engine.space import PARAM_FREE, PRIMITIVES, edge_labels, nodes_of, source_name

__all__ = [
    "HEATMAP_MODES", "CURVES", "weights_frame", "heatmap", "curve_figure", "overlay_figure",
    "op_share_figure", "cell_dot", "weighted_cell_dot", "genotype_frame", "genotype_changes",
    "compare_genotypes_frame", "replay_steps", "replay_index", "record_genotype", "record_weights",
    "format_duration", "progress_text", "runs_frame",
]

# How a heatmap colours the softmax weights (key -> label shown in the page).
HEATMAP_MODES = {
    "softmax": "Weights (fixed 0..1)",
    "uniform": "Centred on uniform (1/8)",
    "change": "Change since start",
}

# The curves of the live panel: key -> (title, y axis, [(metric key, trace name), ...]).
CURVES = {
    "loss": ("Loss", "cross-entropy", [("train_loss", "train"), ("valid_loss", "valid")]),
    "accuracy": ("Accuracy", "accuracy", [("train_acc", "train"), ("valid_acc", "valid")]),
    "lr": ("Weight learning rate", "lr", [("w_lr", "w_lr")]),
}


def weights_frame(weights: np.ndarray, ops: Sequence[str] = PRIMITIVES) -> pd.DataFrame:
    """(edges, ops) weights as a frame: one row per edge labelled `source -> node`, one column per op."""
    w = np.asarray(weights, dtype=np.float64)  # (edges, ops)
    return pd.DataFrame(w, index=list(edge_labels(nodes_of(w.shape[0]))), columns=list(ops))


def heatmap(weights: np.ndarray, *, title: str = "", mode: str = "softmax", initial: np.ndarray | None = None,
            ops: Sequence[str] = PRIMITIVES, height: int = 430) -> go.Figure:
    """Per-edge op weights of one cell as a heatmap.

    mode "softmax": the weights on a fixed 0..1 scale (comparable across steps and runs).
    mode "uniform": the same weights on a diverging scale centred on 1/ops, stretched to the largest
        deviation, so the first small moves away from uniform are visible.
    mode "change": weights minus `initial` (the weights at step 0) on a diverging scale centred on 0.
    """
    if mode not in HEATMAP_MODES:
        raise ValueError(f"mode={mode!r}: one of {', '.join(HEATMAP_MODES)}")
    frame = weights_frame(weights, ops)
    w = frame.to_numpy()  # (edges, ops)
    uniform = 1.0 / w.shape[1]
    hover = "%{y}<br>%{x}<br>weight %{customdata[0]:.4f}<br>change since start %{customdata[1]:+.4f}<extra></extra>"
    start = np.full_like(w, uniform) if initial is None else np.asarray(initial, dtype=np.float64)
    custom = np.stack([w, w - start], axis=-1)  # (edges, ops, 2)
    common = dict(x=list(frame.columns), y=list(frame.index), customdata=custom, hovertemplate=hover)
    if mode == "softmax":
        trace = go.Heatmap(z=w, zmin=0.0, zmax=1.0, colorscale="Viridis", texttemplate="%{z:.2f}",
                           colorbar=dict(title="weight"), **common)
    elif mode == "uniform":
        span = max(float(np.abs(w - uniform).max()), 1e-4)
        trace = go.Heatmap(z=w, zmin=uniform - span, zmax=uniform + span, zmid=uniform, colorscale="RdBu_r",
                           texttemplate="%{z:.3f}", colorbar=dict(title="weight"), **common)
    else:
        delta = w - start
        span = max(float(np.abs(delta).max()), 1e-4)
        trace = go.Heatmap(z=delta, zmin=-span, zmax=span, zmid=0.0, colorscale="RdBu_r",
                           texttemplate="%{z:+.3f}", colorbar=dict(title="change"), **common)
    fig = go.Figure(trace)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed", title=None)  # edge 0 at the top, as in the alpha matrix
    fig.update_xaxes(side="top", tickangle=-30, title=None)
    return fig


def _series(metrics: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for row in metrics:
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and "step" in row:
            xs.append(int(row["step"]))
            ys.append(float(v))
    return xs, ys


def _epoch_starts(metrics: Sequence[Mapping[str, Any]]) -> list[int]:
    """The step before the first row of each epoch after the first: where the running means start afresh."""
    starts, last_epoch, last_step = [], None, None
    for row in metrics:
        epoch, step = row.get("epoch"), row.get("step")
        if last_epoch is not None and epoch != last_epoch and isinstance(last_step, int):
            starts.append(last_step)
        last_epoch, last_step = epoch, step
    return starts


def _by_epoch(metrics: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int | None], list[float | None]]:
    """A series with a gap (None) between epochs, so a reset running mean is not drawn as a jump."""
    xs: list[int | None] = []
    ys: list[float | None] = []
    last_epoch = None
    for row in metrics:
        x, y = _series([row], key)
        if not x:
            continue
        if last_epoch is not None and row.get("epoch") != last_epoch:
            xs.append(None)
            ys.append(None)
        xs.append(x[0])
        ys.append(y[0])
        last_epoch = row.get("epoch")
    return xs, ys


# Distinct colours for runs side by side (Okabe-Ito, readable by colour-blind viewers); dashes tell them apart
# in grey print too.
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
_DASHES = ("solid", "dash", "dot", "dashdot")


def curve_figure(metrics: Sequence[Mapping[str, Any]], curve: str, height: int = 280) -> go.Figure:
    """One of CURVES (loss, accuracy, lr) against the global step; rows missing a value are skipped.

    Losses and accuracies are running means over the epoch so far, which start afresh at each epoch: each
    epoch is its own segment, and a dotted line marks where a new one starts. The lr axis starts at zero,
    so a constant learning rate reads as constant, not as a line in an arbitrary band."""
    title, y_title, keys = CURVES[curve]
    fig = go.Figure()
    for i, (key, name) in enumerate(keys):
        xs, ys = _by_epoch(metrics, key) if curve != "lr" else _series(metrics, key)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, connectgaps=False,
                                 line=dict(color=RUN_COLOURS[i])))
    if curve != "lr":
        for x in _epoch_starts(metrics):
            fig.add_vline(x=x + 0.5, line=dict(color="grey", width=1, dash="dot"))
        y_title = f"{y_title} (mean over the epoch so far)"
    else:
        fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="step", yaxis_title=y_title, legend=dict(orientation="h", y=-0.25))
    return fig


def overlay_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], key: str, title: str = "",
                   height: int = 300) -> go.Figure:
    """One metric of several runs on one plot (run label -> metric rows), each run its own colour and dash."""
    fig = go.Figure()
    for i, (label, metrics) in enumerate(runs.items()):
        xs, ys = _series(metrics, key)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label,
                                 line=dict(color=RUN_COLOURS[i % len(RUN_COLOURS)], dash=_DASHES[i % len(_DASHES)])))
    fig.update_layout(title=title or key, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="step", yaxis_title=key, legend=dict(orientation="h", y=-0.25))
    if key.endswith("lr"):
        fig.update_yaxes(rangemode="tozero")
    return fig


def record_genotype(record: Mapping[str, Any], variant: str = "darts") -> Genotype:
    """The genotype the run's variant derives from the raw architecture parameters of one alphas record."""
    return variants.record_genotype(record, variant)


def record_weights(record: Mapping[str, Any], variant: str = "darts") -> dict[str, np.ndarray]:
    """The op weights (edges, ops) per cell kind that the run's variant gives one alphas record."""
    return variants.record_weights(record, variant)


def op_share_figure(records: Sequence[Mapping[str, Any]], cell: str = "normal", variant: str = "darts",
                    height: int = 320) -> go.Figure:
    """Mean op weight of each op over the cell's edges, against the step: one line per op.

    Skip-connection collapse shows as the skip_connect line (and the other parameter-free ops)
    climbing while the convolutions fall."""
    steps = [int(r.get("step", i)) for i, r in enumerate(records)]
    means = np.array([record_weights(r, variant)[cell].mean(axis=0) for r in records])
    means = means.reshape(len(records), -1)  # (T, ops)
    fig = go.Figure()
    for j, op in enumerate(PRIMITIVES):
        dash = "dot" if op in PARAM_FREE else "solid"
        fig.add_trace(go.Scatter(x=steps, y=means[:, j] if len(records) else [], mode="lines", name=op,
                                 line=dict(dash=dash)))
    fig.update_layout(title=f"Mean weight per op ({cell} cell)", height=height, xaxis_title="step",
                      yaxis_title="mean op weight", margin=dict(l=10, r=10, t=40, b=10))
    return fig


def cell_dot(genotype: Genotype, cell: str = "normal", weights: np.ndarray | None = None) -> str:
    """DOT source of one cell of a genotype (op names on the edges); with `weights`, the (edges, ops) op
    weights of that cell, each kept op's weight is on its label and sets the pen width."""
    return _export.cell_dot(genotype, cell=cell, weights=weights)


def weighted_cell_dot(weights: np.ndarray, cell: str = "normal") -> str:
    """DOT source drawing every candidate edge of a cell, pen width by its strongest non-none weight."""
    return _export.weighted_cell_dot(np.asarray(weights, dtype=np.float64), cell=cell)


def genotype_frame(genotype: Genotype) -> pd.DataFrame:
    """One row per kept edge: cell, node, input, op."""
    rows = []
    for cell in ("normal", "reduce"):
        for node, pairs in enumerate(genotype.cell_nodes(cell)):
            for op, j in pairs:
                rows.append({"cell": cell, "node": node, "input": source_name(j), "op": op})
    return pd.DataFrame(rows, columns=["cell", "node", "input", "op"])


def _pair_text(pair: tuple[str, int] | None) -> str:
    return "nothing" if pair is None else f"{pair[0]} from {source_name(pair[1])}"


def genotype_changes(old: Genotype | None, new: Genotype | None) -> list[str]:
    """What changed between two genotypes, one line per changed (cell, node, slot); empty when the same."""
    if old is None or new is None:
        return []
    return [f"{c.cell} node {c.node}: {_pair_text(c.before)} -> {_pair_text(c.after)}"
            for c in diff_genotypes(old, new)]


def compare_genotypes_frame(a: Genotype, b: Genotype, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Two genotypes node by node: the (op, input) pairs both have first ("same": yes), then the ones that differ.

    A node sums its inputs, so its pairs are compared as a set: the same two pairs in the other order agree."""
    def text(pair: tuple[str, int] | None) -> str:
        return "" if pair is None else f"{pair[0]} <- {source_name(pair[1])}"

    rows = []
    for cell in ("normal", "reduce"):
        for node, (pa, pb) in enumerate(zip_longest(a.cell_nodes(cell), b.cell_nodes(cell), fillvalue=())):
            only_a, only_b = node_difference(pa, pb)
            shared = list(pa)
            for pair in only_a:
                shared.remove(pair)
            for pair in shared:
                rows.append({"cell": cell, "node": node, names[0]: text(pair), names[1]: text(pair), "same": "yes"})
            for ea, eb in zip_longest(only_a, only_b):
                rows.append({"cell": cell, "node": node, names[0]: text(ea), names[1]: text(eb), "same": "no"})
    return pd.DataFrame(rows, columns=["cell", "node", names[0], names[1], "same"])


def replay_steps(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """The global step of each recorded alphas line, in file order (non-decreasing for one run)."""
    return [int(r.get("step", i)) for i, r in enumerate(records)]


def replay_index(records: Sequence[Mapping[str, Any]], step: int) -> int:
    """Index of the last record at or before `step` (the first record when `step` precedes them all)."""
    if not records:
        raise ValueError("no recorded alphas to replay")
    steps = replay_steps(records)
    return max(0, bisect.bisect_right(steps, step) - 1)


def format_duration(seconds: float | None) -> str:
    """12 s, 4 min 05 s, 2 h 07 min; an em dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def progress_text(epoch: int, epochs: int, step: int, total_steps: int) -> str:
    """'epoch 2/8 · step 120/400' with epochs counted from 1 for people."""
    shown_epoch = min(epoch + 1, epochs) if epochs else epoch + 1
    return f"epoch {shown_epoch}/{epochs or '?'} · step {step}/{total_steps or '?'}"


def runs_frame(runs: Sequence[Any]) -> pd.DataFrame:
    """The runs table of the Runs page from engine.catalog.RunInfo rows."""
    rows = []
    for r in runs:
        cfg = r.config or {}
        rows.append({
            "run": r.run_id, "state": r.state, "epoch": f"{min(r.epoch + 1, r.epochs or r.epoch + 1)}/{r.epochs}",
            "step": f"{r.step}/{r.total_steps}", "valid acc": r.valid_acc, "dataset": cfg.get("dataset", ""),
            "order": cfg.get("order", ""), "genotype": "yes" if r.genotype is not None else "no",
            "created": r.created,
        })
    return pd.DataFrame(rows, columns=["run", "state", "epoch", "step", "valid acc", "dataset", "order",
                                       "genotype", "created"])
