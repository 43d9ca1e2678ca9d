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

from engine import variants
from engine.runs.export import candidate_edges, edge_style
from engine.space.cnn.cell import CELL_KINDS, PARAM_FREE, PRIMITIVES, edge_endpoints, nodes_of, num_edges, source_name
from engine.space.cnn.genotype import Genotype, diff_genotypes, node_difference

__all__ = [
    "HEATMAP_MODES", "CURVES", "weights_frame", "heatmap", "curve_figure", "overlay_figure",
    "op_share_figure", "normal_cell_counts", "collapse_counts_figure", "cell_dot", "weighted_cell_dot",
    "genotype_frame", "genotype_changes",
    "compare_genotypes_frame", "replay_steps", "replay_index", "record_genotype", "record_weights",
    "format_duration", "progress_text", "runs_frame", "pc_edge_weights", "edge_weight_figure", "gdas_figure",
    "fair_figure", "dirichlet_stats", "dirichlet_figure", "variant_state_figures", "input_name", "edge_names",
    "colour_domain", "heatmap_vega", "curve_vega", "LECTURE", "NORMAL",
]

# How the pages name a cell's states: plain text. The paper writes them c_{k-2}, c_{k-1}, c_{k} in LaTeX, which a
# chart, a graph or a table would print raw. (The DOT keeps engine.space.cnn.cell.source_name as node ids, so an edge's
# SVG title stays "c_{k-2}->0"; what a reader sees is these labels.)
INPUT_NAMES = ("c(k-2)", "c(k-1)")
OUTPUT_NAME = "c(k)"


def input_name(index: int) -> str:
    """Input index as the pages print it: 0 -> "c(k-2)", 1 -> "c(k-1)", j >= 2 -> the node number j-2."""
    return INPUT_NAMES[index] if index < 2 else str(index - 2)


def edge_names(nodes: int) -> list[str]:
    """A label per alpha row, in row order: ["c(k-2) -> 0", "c(k-1) -> 0", "c(k-2) -> 1", ..., "2 -> 3"]."""
    return [f"{input_name(j)} -> {i}" for j, i in edge_endpoints(nodes)]


# Sizes in pixels (Vega-Lite) and points (DOT) of the dashboard's normal view and of lecture (projector) mode,
# where numbers and labels must be readable from the back of a room: numbers >= 18 px, labels >= 16 px on screen.
NORMAL = {"cell_text": 11, "axis_label": 11, "title": 14, "row_px": 26, "dag_label": 14, "dag_node": 14}
LECTURE = {"cell_text": 20, "axis_label": 18, "title": 24, "row_px": 40, "dag_label": 16, "dag_node": 18}


def _sizes(lecture: bool) -> dict[str, int]:
    return LECTURE if lecture else NORMAL

# How a heatmap colours the op weights (key -> label shown in the page). Every mode has one fixed colour domain,
# the same for both cells and every step (colour_domain), so a colour means the same value wherever it is seen.
HEATMAP_MODES = {
    "softmax": "Op weights (0 to 1)",
    "uniform": f"Op weight minus 1/{len(PRIMITIVES)} (centred)",
    "change": "Change since the start",
}
# The diverging modes colour on a symmetric-log scale (Vega-Lite "symlog": sign(v) log(1 + |v| / c)): fixed ends,
# yet a move of 0.01 away from the centre already takes 15 % of the way to the end of the colour scale.
SYMLOG_CONSTANT = 0.01


def colour_domain(mode: str, ops: int = len(PRIMITIVES)) -> tuple[float, float]:
    """The fixed colour domain of a heatmap mode, from what its value can be (K ops):
    "softmax": a weight, 0 to 1; "uniform": weight - 1/K lies in [-1/K, 1 - 1/K], drawn on the symmetric
    [-(1 - 1/K), 1 - 1/K] so that 0 (uniform) is the middle colour; "change": weight - its start, in [-1, 1]."""
    if mode == "softmax":
        return 0.0, 1.0
    if mode == "uniform":
        return -(1.0 - 1.0 / ops), 1.0 - 1.0 / ops
    if mode == "change":
        return -1.0, 1.0
    raise ValueError(f"mode={mode!r}: one of {', '.join(HEATMAP_MODES)}")


def _symlog(v: np.ndarray, end: float) -> np.ndarray:
    """Values on the symmetric-log scale of the diverging modes, -1..1 between -end and end (plotly's colours)."""
    return np.sign(v) * np.log1p(np.abs(v) / SYMLOG_CONSTANT) / np.log1p(end / SYMLOG_CONSTANT)

# The curves of the live panel: key -> (title, y axis, [(metric key, trace name), ...]).
CURVES = {
    "loss": ("Loss", "cross-entropy", [("train_loss", "train"), ("valid_loss", "valid")]),
    "accuracy": ("Accuracy", "accuracy", [("train_acc", "train"), ("valid_acc", "valid")]),
    "lr": ("Network-weight learning rate", "lr", [("w_lr", "w_lr")]),
}


def weights_frame(weights: np.ndarray, ops: Sequence[str] = PRIMITIVES) -> pd.DataFrame:
    """(edges, ops) weights as a frame: one row per edge labelled `source -> node`, one column per op."""
    w = np.asarray(weights, dtype=np.float64)  # (edges, ops)
    return pd.DataFrame(w, index=edge_names(nodes_of(w.shape[0])), columns=list(ops))


def heatmap(weights: np.ndarray, *, title: str = "", mode: str = "softmax", initial: np.ndarray | None = None,
            ops: Sequence[str] = PRIMITIVES, height: int = 430) -> go.Figure:
    """Per-edge op weights of one cell as a heatmap, each mode on its fixed colour domain (colour_domain).

    mode "softmax": the weights on 0..1.
    mode "uniform": weight - 1/ops on a diverging symmetric-log scale centred on 0 (uniform).
    mode "change": weights minus `initial` (the weights at step 0) on a diverging symmetric-log scale.
    z holds the value shown (and written in each cell); in the diverging modes the colours follow _symlog(z),
    whose colour bar is labelled in values."""
    lo, hi = colour_domain(mode)
    frame = weights_frame(weights, ops)
    w = frame.to_numpy()  # (edges, ops)
    uniform = 1.0 / w.shape[1]
    hover = ("%{y}<br>%{x}<br>op weight %{customdata[0]:.4f}<br>change since start %{customdata[1]:+.4f}"
             "<extra></extra>")
    start = np.full_like(w, uniform) if initial is None else np.asarray(initial, dtype=np.float64)
    custom = np.stack([w, w - start], axis=-1)  # (edges, ops, 2)
    common = dict(x=list(frame.columns), y=list(frame.index), customdata=custom, hovertemplate=hover)
    if mode == "softmax":
        trace = go.Heatmap(z=w, zmin=lo, zmax=hi, colorscale="Viridis", texttemplate="%{z:.2f}",
                           colorbar=dict(title="op weight"), **common)
    else:
        value = w - uniform if mode == "uniform" else w - start
        ticks = np.array([-hi, -0.1, -0.01, 0.0, 0.01, 0.1, hi])
        trace = go.Heatmap(z=_symlog(value, hi), zmin=-1.0, zmax=1.0, zmid=0.0, colorscale="RdBu_r",
                           text=np.char.mod("%+.3f", value), texttemplate="%{text}",
                           colorbar=dict(title="op weight - 1/8" if mode == "uniform" else "change",
                                         tickvals=_symlog(ticks, hi).tolist(), ticktext=[f"{t:+.2g}" for t in ticks]),
                           **common)
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


def record_genotype(record: Mapping[str, Any], variant: str | Mapping[str, Any] = "darts") -> Genotype:
    """The genotype the run's variant derives from the raw architecture parameters of one alphas record (pass
    the run's config to derive with its variant's options and skip cap)."""
    return variants.record_genotype(record, variant)


def record_weights(record: Mapping[str, Any], variant: str | Mapping[str, Any] = "darts") -> dict[str, np.ndarray]:
    """The op weights (edges, ops) per cell kind that the run's variant gives one alphas record."""
    return variants.record_weights(record, variant)


def op_shares(records: Sequence[Mapping[str, Any]], cell: str = "normal",
              variant: str | Mapping[str, Any] = "darts") -> np.ndarray:
    """(steps, ops) each real op's share of its edge's non-`none` weight, averaged over the cell's edges; the
    `none` column is 0. This is the competition the derivation rule decides (it never keeps `none`), without
    `none`'s own weight, which only says how little an edge matters."""
    if not records:
        return np.zeros((0, len(PRIMITIVES)))
    real = np.array([op != "none" for op in PRIMITIVES])
    out = []
    for r in records:
        w = np.asarray(record_weights(r, variant)[cell], dtype=np.float64) * real  # (edges, ops), none zeroed
        out.append((w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)).mean(axis=0))
    return np.array(out)  # (steps, ops)


def op_share_figure(records: Sequence[Mapping[str, Any]], cell: str = "normal", variant: str = "darts",
                    height: int = 320) -> go.Figure:
    """Each real op's share of the non-`none` weight (op_shares), against the step: one line per op, `none` left
    out (it is never chosen). skip_connect is the thick red line: skip-connection collapse shows as it climbing
    (with the other parameter-free ops, dotted) while the convolutions fall."""
    steps = [int(r.get("step", i)) for i, r in enumerate(records)]
    shares = op_shares(records, cell, variant)  # (T, ops)
    fig = go.Figure()
    for j, op in enumerate(PRIMITIVES):
        if op == "none":
            continue
        line = dict(dash="dot" if op in PARAM_FREE else "solid")
        if op == "skip_connect":
            line = dict(color="#D62728", width=4)
        fig.add_trace(go.Scatter(x=steps, y=shares[:, j] if len(records) else [], mode="lines", name=op, line=line))
    fig.update_layout(title=f"Share of each op in the {cell} cell (none left out)", height=height,
                      xaxis_title="step", yaxis_title="mean share of the non-none op weight",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def normal_cell_counts(metrics: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int], list[int]]:
    """(steps, skip connections, parameter-free ops) of the normal cell's current genotype, one value per step
    (the last row of a step, as an epoch end logs one more), in step order; rows without the counts are skipped."""
    by_step: dict[int, tuple[int, int]] = {}
    for row in metrics:
        skips, free = row.get("skips_normal"), row.get("param_free_normal")
        if isinstance(skips, (int, float)) and isinstance(free, (int, float)) and "step" in row:
            by_step[int(row["step"])] = (int(skips), int(free))
    steps = sorted(by_step)
    return steps, [by_step[s][0] for s in steps], [by_step[s][1] for s in steps]


def collapse_counts_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], count: str = "skips",
                           lecture: bool = False, ops: int = 8, settled: int | None = None) -> go.Figure:
    """The normal cell's skip connections (`count="skips"`) or parameter-free ops (`"param_free"`) against the
    step for several runs on one plot (run label -> metrics rows), each run its own colour and dash, drawn as
    steps (a count changes when the genotype does). The y axis is fixed at 0..`ops` (the cell's kept ops), so
    two such figures, or two runs, read on the same scale. `settled`: the steps before it are shaded, as those
    where the alphas are still close to uniform and the cell flips between ops almost at random."""
    if count not in ("skips", "param_free"):
        raise ValueError(f"count must be 'skips' or 'param_free', got {count!r}")
    title = ("Skip connections in the normal cell" if count == "skips"
             else "Parameter-free ops (skip, pools) in the normal cell")
    size = _sizes(lecture)
    fig = go.Figure()
    for i, (label, metrics) in enumerate(runs.items()):
        steps, skips, free = normal_cell_counts(metrics)
        fig.add_trace(go.Scatter(x=steps, y=skips if count == "skips" else free, mode="lines", name=label,
                                 line=dict(color=RUN_COLOURS[i % len(RUN_COLOURS)], dash=_DASHES[i % len(_DASHES)],
                                           width=4 if lecture else 3, shape="hv")))
    fig.update_layout(title=dict(text=title, font=dict(size=size["title"])), height=460 if lecture else 320,
                      margin=dict(l=10, r=10, t=50, b=10), xaxis_title="step", yaxis_title=f"of {ops} kept ops",
                      legend=dict(orientation="h", y=-0.25, font=dict(size=size["axis_label"])),
                      font=dict(size=size["axis_label"]))
    fig.update_yaxes(range=[-0.2, ops + 0.2], dtick=1)
    # on the axes themselves: Streamlit's chart theme sets tick and axis-title fonts that layout.font would not win
    axis_font = dict(tickfont=dict(size=size["axis_label"]), title_font=dict(size=size["axis_label"]))
    fig.update_xaxes(**axis_font)
    fig.update_yaxes(**axis_font)
    if settled:
        fig.add_vrect(x0=0, x1=settled, fillcolor="grey", opacity=0.12, line_width=0, annotation_text="noise",
                      annotation_position="top left")
    return fig


def _q(text: str) -> str:
    """A DOT identifier or label, quoted (node ids like c_{k-2} hold braces)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dag_lines(nodes: int, outputs: Sequence[int], lecture: bool) -> list[str]:
    """The head and the states of a cell graph, laid out the same way whatever its edges, top to bottom: inputs
    c(k-2) left of c(k-1) in the first row, node i in row i + 1, the output in the last. Graphviz ranks a node
    after all its inputs, so without the invisible chain c(k-1) -> 0 -> 1 -> ... -> c(k) a node moves to another
    row when its inputs change, and the whole picture jumps between refreshes; with it only the edges change.
    Top to bottom, not left to right: a graph is scaled to its column's width, and a cell is taller than wide
    only this way round, so its labels come out about twice as large (tests/test_lecture.py measures them).
    Node ids are engine.space.cnn.cell.source_name (the export's), labels the plain names of input_name."""
    size = _sizes(lecture)
    out_id = _q("c_{k}")
    ids = [_q(source_name(j)) for j in range(nodes + 2)]  # c_{k-2}, c_{k-1}, 0, 1, ...
    lines = ["rankdir=TB;", "newrank=true;", "ranksep=0.3;", "nodesep=0.15;",
             f'node [style=filled, shape=rect, fontname="Helvetica", fontsize={size["dag_node"]}, penwidth=2, '
             'margin="0.08,0.04"];',
             f'edge [fontname="Helvetica", fontsize={size["dag_label"]}];']
    lines += [f"{ids[j]} [label={_q(input_name(j))}, tooltip={_q(input_name(j))}, fillcolor=darkseagreen2];"
              for j in (0, 1)]
    lines += [f"{ids[i + 2]} [label={_q(str(i))}, tooltip={_q('node ' + str(i))}, fillcolor=lightblue];"
              for i in range(nodes)]
    lines.append(f"{out_id} [label={_q(OUTPUT_NAME)}, tooltip={_q(OUTPUT_NAME)}, fillcolor=palegoldenrod];")
    lines.append(f"{{rank=same; {ids[0]}; {ids[1]};}}")
    lines.append(f"{ids[0]} -> {ids[1]} [style=invis];")  # c(k-2) before c(k-1)
    chain = " -> ".join([*ids[1:], out_id])
    lines.append(f"{chain} [style=invis, weight=0];")
    lines += [f"{ids[s]} -> {out_id} [color=gray];" for s in outputs]
    return lines


def _digraph(name: str, lines: Sequence[str]) -> str:
    return f"digraph {_q(name)} {{\n  " + "\n  ".join(lines) + "\n}\n"


def cell_dot(genotype: Genotype, cell: str = "normal", weights: np.ndarray | None = None,
             lecture: bool = False) -> str:
    """DOT source of one cell of a genotype: op names on the kept edges, the states in fixed rows (_dag_lines);
    with `weights`, the (edges, ops) op weights of that cell, each kept op's weight is on its label and sets the
    pen width. `lecture`: the larger fonts of lecture mode (LECTURE)."""
    nodes = genotype.cell_nodes(cell)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)  # (edges, ops)
    if w is not None and w.shape != (num_edges(len(nodes)), len(PRIMITIVES)):
        raise ValueError(f"weights for a {len(nodes)}-node cell must be ({num_edges(len(nodes))}, {len(PRIMITIVES)})"
                         f", got {w.shape}")
    lines = _dag_lines(len(nodes), getattr(genotype, f"{cell}_concat"), lecture)
    for i, pairs in enumerate(nodes):
        for op, j in pairs:
            attrs = [f"label={_q(op)}"]
            if w is not None:  # the kept op's weight on this edge: row of (input j -> node i)
                weight = float(w[num_edges(i) + j, PRIMITIVES.index(op)])
                attrs = [f"label={_q(f'{op} {weight:.2f}')}", f"penwidth={0.5 + 4.5 * weight:.2f}"]
            attrs.append(f"tooltip={_q(f'{input_name(j)} -> {i}: {op}')}")
            lines.append(f"{_q(source_name(j))} -> {_q(str(i))} [{', '.join(attrs)}];")
    return _digraph(cell, lines)


def weighted_cell_dot(weights: np.ndarray, cell: str = "normal", lecture: bool = False) -> str:
    """DOT source drawing every candidate edge of a cell from its (edges, ops) op weights: labelled with its
    strongest non-`none` op, pen width and opacity by that weight on a fixed 0..1 scale; solid where the
    derivation rule keeps the edge, dashed where it does not (engine/runs/export.py draws the same edges for the
    export). The states sit in the rows of cell_dot; each edge has a tooltip."""
    nodes = nodes_of(np.shape(weights)[0])
    lines = _dag_lines(nodes, range(2, 2 + nodes), lecture)
    for j, i, op, strength, kept in candidate_edges(weights):
        lines.append(f"{_q(source_name(j))} -> {_q(str(i))} [label={_q(f'{op} {strength:.2f}')}, "
                     f"{edge_style(strength, kept)}, tooltip={_q(f'{input_name(j)} -> {i}: {op} {strength:.2f}')}];")
    return _digraph(cell, lines)


def genotype_frame(genotype: Genotype) -> pd.DataFrame:
    """One row per kept edge: cell, node, input, op."""
    rows = []
    for cell in ("normal", "reduce"):
        for node, pairs in enumerate(genotype.cell_nodes(cell)):
            for op, j in pairs:
                rows.append({"cell": cell, "node": node, "input": input_name(j), "op": op})
    return pd.DataFrame(rows, columns=["cell", "node", "input", "op"])


def _pair_text(pair: tuple[str, int] | None) -> str:
    return "nothing" if pair is None else f"{pair[0]} from {input_name(pair[1])}"


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
        return "" if pair is None else f"{pair[0]} <- {input_name(pair[1])}"

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
    """The runs table of the Runs page from engine.runs.catalog.RunInfo rows."""
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


# ---------------------------------------------------------------- each variant's own state (app/views/variant_state.py)
def _softmax_rows(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def pc_edge_weights(betas: np.ndarray) -> np.ndarray:
    """PC-DARTS's edge weights: softmax of the betas over each node's incoming edges ((edges,) -> (edges,))."""
    b = np.asarray(betas, dtype=np.float64)
    parts, start = [], 0
    for i in range(nodes_of(len(b))):
        parts.append(_softmax_rows(b[start:start + i + 2]))
        start += i + 2
    return np.concatenate(parts)


def edge_weight_figure(arch: Mapping[str, Any], height: int = 430) -> go.Figure:
    """PC-DARTS: each edge's weight (softmax of its beta over the node's inputs), normal and reduction side by
    side, one row per edge as in the op-weight heatmaps; 1/(inputs of the node) is an even split."""
    cols = [k for k in ("normal", "reduce") if f"betas_{k}" in arch]
    if not cols:
        raise ValueError("no edge weights (betas_normal, betas_reduce) in these architecture parameters")
    w = np.stack([pc_edge_weights(arch[f"betas_{k}"]) for k in cols], axis=1)  # (edges, cells)
    labels = edge_names(nodes_of(w.shape[0]))
    fig = go.Figure(go.Heatmap(z=w, x=cols, y=labels, zmin=0.0, zmax=1.0, colorscale="Viridis",
                               texttemplate="%{z:.2f}", colorbar=dict(title="edge weight"),
                               hovertemplate="%{y}<br>%{x} cell<br>edge weight %{z:.4f}<extra></extra>"))
    fig.update_layout(title="Edge weights (edge normalisation)", height=height, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(side="top", title=None)
    return fig


def gdas_figure(arch: Mapping[str, Any], cell: str = "normal", height: int = 430) -> go.Figure:
    """GDAS: the sampling probabilities softmax(alpha / tau) of one cell, with the op each edge ran in the
    step's last forward pass marked; the temperature in the title."""
    tau = float(np.asarray(arch["tau"]))
    probs = _softmax_rows(np.asarray(arch[cell], dtype=np.float64) / tau)  # (edges, ops)
    fig = heatmap(probs, title=f"{cell}: sampling probabilities at tau = {tau:.3g}", height=height)
    sampled = np.asarray(arch.get(f"{cell}_sampled", []), dtype=np.float64).astype(int)
    labels = edge_names(nodes_of(probs.shape[0]))
    rows = [r for r, k in enumerate(sampled) if 0 <= k < len(PRIMITIVES)]
    if rows:
        fig.add_trace(go.Scatter(x=[PRIMITIVES[sampled[r]] for r in rows], y=[labels[r] for r in rows],
                                 mode="markers", name="sampled this step", showlegend=False,
                                 marker=dict(symbol="square-open", size=22, color="red", line=dict(width=3)),
                                 hovertemplate="%{y}: ran %{x}<extra>sampled</extra>"))
    return fig


def fair_figure(weights: np.ndarray, threshold: float, cell: str = "normal", height: int = 430) -> go.Figure:
    """FairDARTS: each edge's strongest sigmoid weight (non-`none`) as a bar, with the threshold line: an
    edge over it can be kept (at most two per node, by strength)."""
    w = np.asarray(weights, dtype=np.float64)
    real = [k for k, op in enumerate(PRIMITIVES) if op != "none"]
    best = np.asarray(real)[w[:, real].argmax(axis=1)]
    strength = w[np.arange(len(w)), best]
    labels = edge_names(nodes_of(len(w)))
    colors = ["#2a9d8f" if s >= threshold else "#b0b0b0" for s in strength]
    fig = go.Figure(go.Bar(x=strength, y=labels, orientation="h", marker_color=colors,
                           text=[PRIMITIVES[k] for k in best], textposition="inside",
                           hovertemplate="%{y}<br>%{text}: sigmoid %{x:.4f}<extra></extra>"))
    fig.add_vline(x=threshold, line_dash="dash", line_color="red", annotation_text=f"threshold {threshold:g}")
    fig.update_layout(title=f"{cell}: strongest op weight per edge (independent sigmoids)", height=height,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis=dict(range=[0, 1], title="sigmoid weight"))
    fig.update_yaxes(autorange="reversed", title=None)
    return fig


def dirichlet_stats(alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DrNAS: (mean, standard deviation) of each op weight under Dirichlet(ELU(alpha) + 1), each (edges, ops)."""
    a = np.asarray(alphas, dtype=np.float64)
    conc = np.where(a > 0, a, np.expm1(np.minimum(a, 0))) + 1.0  # ELU + 1
    total = conc.sum(axis=-1, keepdims=True)
    mean = conc / total
    return mean, np.sqrt(mean * (1 - mean) / (total + 1))


def dirichlet_figure(alphas: np.ndarray, cell: str = "normal", height: int = 430) -> go.Figure:
    """DrNAS: the Dirichlet mean of each op weight (colour) with its spread (the text: mean ± std)."""
    mean, std = dirichlet_stats(alphas)
    frame = weights_frame(mean)
    text = np.char.add(np.char.add(np.char.mod("%.2f", mean), "±"), np.char.mod("%.2f", std))
    fig = go.Figure(go.Heatmap(z=mean, x=list(frame.columns), y=list(frame.index), zmin=0.0, zmax=1.0,
                               colorscale="Viridis", text=text, texttemplate="%{text}", customdata=std,
                               colorbar=dict(title="mean op weight"),
                               hovertemplate="%{y}<br>%{x}<br>mean %{z:.4f}<br>std %{customdata:.4f}<extra></extra>"))
    fig.update_layout(title=f"{cell}: Dirichlet mean ± std of each op weight", height=height,
                      margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(side="top", tickangle=-30, title=None)
    return fig


def variant_state_text(variant: str, arch: Mapping[str, Any], epochs: int | None = None) -> str | None:
    """One line on a regularised variant's schedule now (its scalar beside the alphas); None for the others."""
    def scalar(name: str) -> float | None:
        value = arch.get(name)
        return None if value is None else float(np.asarray(value, dtype=np.float64).reshape(-1)[0])

    if variant == "darts_minus" and scalar("aux_skip_weight") is not None:
        return (f"Auxiliary skip weight beta = {scalar('aux_skip_weight'):.3f}: every edge adds beta x skip(x) "
                "beside its ops, so the skip op need not win the edge to keep the gradient flowing; beta decays "
                "linearly to 0 at the last epoch.")
    if variant == "beta_darts" and scalar("beta_weight") is not None:
        return (f"Beta-Decay weight lambda = {scalar('beta_weight'):.3g}: the architecture loss adds lambda x the "
                "mean logsumexp of each edge's alphas, which keeps them small and the op weights from saturating; "
                "lambda grows with the epoch.")
    if variant == "sdarts_rs" and scalar("epsilon") is not None:
        return (f"Noise radius epsilon = {scalar('epsilon'):.3f}: the weight step sees op weights perturbed by "
                "uniform noise in [-epsilon, epsilon], so the network weights learn to do well around the "
                "current architecture (a smoother loss in alpha); the architecture step sees none.")
    return None


def variant_state_figures(variant: str, arch: Mapping[str, Any], weights: Mapping[str, Any] | None = None,
                          ) -> list[tuple[str, go.Figure]]:
    """(caption, figure) pairs that show a variant's own state, in its own meaning; [] for plain DARTS."""
    arch = {k: np.asarray(v) for k, v in arch.items()}
    if not arch or "normal" not in arch:
        return []
    if variant in ("pc_darts", "beta_darts") and "betas_normal" in arch:  # beta-DARTS on PC-DARTS too
        return [("Each edge's output is multiplied by its edge weight; the genotype ranks edges by op weight times "
                 "edge weight.", edge_weight_figure(arch))]
    if variant == "gdas" and "tau" in arch:
        return [("Only the sampled op of each edge runs (red square); tau anneals towards its minimum.",
                 gdas_figure(arch, cell)) for cell in ("normal", "reduce")]
    if variant == "fair_darts":
        w = weights if weights is not None else {c: 1 / (1 + np.exp(-arch[c].astype(np.float64))) for c in CELL_KINDS}
        threshold = float(arch.get("threshold", 0.85))
        return [("Green edges pass the threshold; a node keeps at most two of them, and may keep none.",
                 fair_figure(np.asarray(w[cell]), threshold, cell)) for cell in ("normal", "reduce")]
    if variant == "drnas":
        return [("Op weights are sampled each step; the spread shrinks as the concentration grows.",
                 dirichlet_figure(arch[cell], cell)) for cell in ("normal", "reduce")]
    return []


# ---------------------------------------------------------------- Vega-Lite: charts the browser updates in place
# st.vega_lite_chart keeps a chart whose spec did not change and swaps its data in place, where a plotly figure
# with new numbers is a new element (its spec is its identity) that the browser builds from scratch: for the
# live heatmaps that is about a fifth of the browser's CPU. So the spec holds only the chart's kind and options
# and every number is in the data frame.

def heatmap_vega(weights: np.ndarray, *, title: str = "", mode: str = "softmax", initial: np.ndarray | None = None,
                 ops: Sequence[str] = PRIMITIVES, height: int | None = None,
                 lecture: bool = False) -> tuple[dict[str, Any], pd.DataFrame]:
    """heatmap() as a Vega-Lite spec and its data: one row per (edge, op), edges in order, ops in order within
    an edge, with the op weight, its change since the start (`initial`, else uniform 1/ops) and `value`, what the
    colour and the cell's text show: the op weight; in mode "uniform" the op weight minus 1/ops; in mode
    "change" the change. Each mode's colour domain is fixed (colour_domain): the spec does not depend on the
    data, so both cells and every step share one colour scale. `lecture`: lecture mode's sizes (LECTURE); the
    height defaults to a row height per edge."""
    lo, hi = colour_domain(mode, len(ops))
    size = _sizes(lecture)
    frame = weights_frame(weights, ops)
    w = frame.to_numpy()  # (edges, ops)
    start = np.full_like(w, 1.0 / w.shape[1]) if initial is None else np.asarray(initial, dtype=np.float64)
    data = pd.DataFrame({"edge": np.repeat(frame.index.to_numpy(), w.shape[1]),
                         "op": np.tile(frame.columns.to_numpy(), w.shape[0]),
                         "weight": w.ravel(), "change": (w - start).ravel()})
    data["value"] = {"softmax": data["weight"], "uniform": data["weight"] - 1.0 / w.shape[1],
                     "change": data["change"]}[mode]
    # each cell's ARIA label (SVG): the exact numbers, for screen readers and for tests that read the page
    data["label"] = [f"{e}, {o}: weight {v:.6f}, change since start {c:+.6f}"
                     for e, o, v, c in zip(data["edge"], data["op"], data["weight"], data["change"], strict=True)]
    if mode == "softmax":
        scale, fmt, legend = {"domain": [lo, hi], "scheme": "viridis"}, ".2f", "op weight"
        text_colour = {"condition": {"test": "datum.value > 0.6", "value": "black"}, "value": "white"}
    else:
        scale = {"type": "symlog", "constant": SYMLOG_CONSTANT, "domain": [lo, hi], "domainMid": 0.0,
                 "clamp": True, "scheme": "redblue", "reverse": True}
        fmt = "+.3f"
        legend = f"op weight - 1/{w.shape[1]}" if mode == "uniform" else "change since start"
        text_colour = {"condition": {"test": "abs(datum.value) > 0.2", "value": "white"}, "value": "black"}
    tooltip = [{"field": "edge", "title": "edge"}, {"field": "op", "title": "op"},
               {"field": "weight", "type": "quantitative", "format": ".4f", "title": "op weight"},
               {"field": "change", "type": "quantitative", "format": "+.4f", "title": "change since start"}]
    axis = {"labelOverlap": False, "labelLimit": 300, "labelFontSize": size["axis_label"]}
    spec = {
        "title": {"text": title, "fontSize": size["title"]} if lecture else title,
        "width": "container", "height": height or size["row_px"] * len(frame.index),
        "encoding": {
            "x": {"field": "op", "type": "nominal", "sort": list(frame.columns), "title": None,
                  "axis": {"orient": "top", "labelAngle": -30, **axis}},
            "y": {"field": "edge", "type": "nominal", "sort": list(frame.index), "title": None, "axis": axis},
        },
        "layer": [
            {"mark": "rect", "encoding": {"color": {"field": "value", "type": "quantitative", "scale": scale,
                                                    "title": legend,
                                                    "legend": {"labelFontSize": size["axis_label"],
                                                               "titleFontSize": size["axis_label"]}},
                                          "tooltip": tooltip, "description": {"field": "label", "type": "nominal"}}},
            {"mark": {"type": "text", "fontSize": size["cell_text"], "aria": False},
             "encoding": {"text": {"field": "value", "type": "quantitative", "format": fmt}, "color": text_colour,
                          "tooltip": tooltip}},
        ],
    }
    return spec, data


def curve_vega(metrics: Sequence[Mapping[str, Any]], curve: str, height: int = 280,
               lecture: bool = False) -> tuple[dict[str, Any], pd.DataFrame]:
    """curve_figure() as a Vega-Lite spec and its data, built without plotly (add_vline costs ~10 ms a line, and
    a live panel redraws the curves at every step): one row per point (kind "line") with its series and segment
    (losses and accuracies break their line where an epoch starts, as curve_figure does), one row per epoch
    marker (kind "rule"). The spec depends on `curve` (and `lecture`: lecture mode's sizes) only."""
    size = _sizes(lecture)
    title, y_title, keys = CURVES[curve]
    rows: list[dict[str, Any]] = []
    for key, series in keys:
        xs, ys = _by_epoch(metrics, key) if curve != "lr" else _series(metrics, key)
        segment = 0
        for x, y in zip(xs, ys, strict=True):
            if x is None or y is None:
                segment += 1
                continue
            rows.append({"kind": "line", "series": series, "segment": f"{series}/{segment}", "x": float(x),
                         "y": float(y)})
    if curve != "lr":
        rows += [{"kind": "rule", "series": "", "segment": "", "x": x + 0.5, "y": float("nan")}
                 for x in _epoch_starts(metrics)]
        y_title = f"{y_title} (mean over the epoch so far)"
    data = pd.DataFrame(rows, columns=["kind", "series", "segment", "x", "y"])
    names = [series for _, series in keys]
    axis = {"axis": {"labelFontSize": size["axis_label"], "titleFontSize": size["axis_label"]}} if lecture else {}
    spec = {  # the y axis's title under the chart's title: upright, it would take the height of the plot
        "title": {"text": title, "subtitle": y_title, **({"fontSize": size["title"],
                                                          "subtitleFontSize": size["axis_label"]} if lecture else {})},
        "width": "container", "height": height,
        "layer": [
            {"transform": [{"filter": "datum.kind === 'line'"}], "mark": {"type": "line", "clip": True},
             "encoding": {
                 "x": {"field": "x", "type": "quantitative", "title": "step", "scale": {"zero": False},
                       **axis},
                 "y": {"field": "y", "type": "quantitative", "title": None, "scale": {"zero": curve == "lr"},
                       **axis},
                 "color": {"field": "series", "type": "nominal",
                           "scale": {"domain": names, "range": list(RUN_COLOURS[:len(names)])},
                           "legend": {"orient": "bottom", "title": None, "labelFontSize": size["axis_label"]}},
                 "detail": {"field": "segment", "type": "nominal"}}},
            {"transform": [{"filter": "datum.kind === 'rule'"}],
             "mark": {"type": "rule", "color": "grey", "strokeDash": [2, 3], "strokeWidth": 1},
             "encoding": {"x": {"field": "x", "type": "quantitative"}}},
        ],
    }
    return spec, data
